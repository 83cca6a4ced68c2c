import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RaftInvariantError } from '../../src/raft/errors.js';
import type { AppendResponse, SnapshotRequest } from '../../src/raft/types.js';
import { TestNetwork } from './network.js';
import { conf, drain, newGroup } from './util.js';

function lagBehindCompaction(keepTail: number, keepTailBytes?: number): TestNetwork {
  const net = new TestNetwork(['a', 'b', 'c']);
  net.elect('a');
  net.propose('a', 'x0');
  net.isolate('c');
  for (let i = 1; i < 20; i++) net.propose('a', `x${i}`);
  net.node('a').compact(keepTail, keepTailBytes);
  return net;
}

/** An InstallSnapshot decision from leader a to b (as b's driver steps it once the data is staged). */
function snapshotFromA(term: number, index: number, snapshotTerm: number, voters: string[]): SnapshotRequest {
  return {
    type: 'snapshot',
    group: 1,
    from: 'a',
    to: 'b',
    term,
    snapshot: { index, term: snapshotTerm, conf: conf(voters) },
  };
}

function snapshotsTo(net: TestNetwork, to: string): number {
  return net.sent.filter((m) => m.type === 'snapshot' && m.to === to).length;
}

describe('snapshots and log compaction (Raft §7)', () => {
  it('compaction drops entries up to applied - keepTail', () => {
    const net = lagBehindCompaction(5);
    const s = net.raft('a').status();
    assert.equal(s.applied, 21);
    assert.equal(s.firstIndex, 17);
    assert.equal(net.raft('a').term(15), undefined);
    assert.equal(net.raft('a').term(16), 1, 'the term just before the first entry is kept');
  });

  it('the kept tail is also bounded in bytes (entryBytes: data + 32)', () => {
    // Entries 19, 20, 21 hold x17, x18, x19: 3 bytes of data, 35 entryBytes each.
    assert.equal(lagBehindCompaction(10, 105).raft('a').status().firstIndex, 19);
    assert.equal(lagBehindCompaction(10, 104).raft('a').status().firstIndex, 20);
    assert.equal(lagBehindCompaction(10, 0).raft('a').status().firstIndex, 22);
    assert.equal(lagBehindCompaction(2, 1_000_000).raft('a').status().firstIndex, 20, 'the entry count still binds');
    assert.throws(() => lagBehindCompaction(5, -1), RangeError);
  });

  it('a follower behind the compacted log gets a snapshot, installs it, then continues by appends', () => {
    const net = lagBehindCompaction(0);
    net.heal();
    net.tick('a', 1);
    assert.equal(snapshotsTo(net, 'c'), 1);
    const c = net.node('c');
    assert.equal(c.disk.snapshot?.index, 21);
    assert.deepEqual(c.appliedData(), net.node('a').appliedData());
    net.propose('a', 'after');
    assert.deepEqual(c.appliedData().at(-1), 'after');
    assert.equal(net.raft('a').status().progress?.c.state, 'replicate');
  });

  it('a follower within the kept tail catches up by appends, without a snapshot', () => {
    const net = lagBehindCompaction(25);
    net.heal();
    net.tick('a', 1);
    assert.equal(snapshotsTo(net, 'c'), 0);
    assert.deepEqual(net.node('c').appliedData(), net.node('a').appliedData());
  });

  it('a failed snapshot transfer is retried', () => {
    const net = lagBehindCompaction(0);
    net.heal();
    let failures = 1;
    net.filter = (m) => m.type === 'snapshot' && failures-- > 0;
    net.tick('a', 1);
    assert.equal(net.raft('a').status().progress?.c.state, 'probe', 'reportSnapshot(false) returns to probe');
    net.tick('a', 2);
    assert.equal(snapshotsTo(net, 'c'), 2);
    assert.deepEqual(net.node('c').appliedData(), net.node('a').appliedData());
  });

  it('rejects a stale snapshot (at or below its commit index)', () => {
    const r = newGroup('b', ['a', 'b'], {}, 1, { terms: [1, 1, 1], term: 1, commit: 3 });
    drain(r);
    const m = snapshotFromA(1, 2, 1, ['a', 'b']);
    r.step(m);
    const rd = r.ready();
    assert.equal(rd.snapshot, undefined);
    const resp = rd.messages.find((x): x is AppendResponse => x.type === 'appendResp');
    assert.equal(resp?.index, 3, 'answers with its commit index');
    r.advance(rd);
    assert.equal(r.status().dropped['stale-snapshot'], 1);
  });

  it('a snapshot whose last entry is in the log only advances the commit index', () => {
    const r = newGroup('b', ['a', 'b'], {}, 1, { terms: [1, 1, 1, 1], term: 1, commit: 1 });
    drain(r);
    r.step(snapshotFromA(1, 3, 1, ['a', 'b']));
    const rd = r.ready();
    assert.equal(rd.snapshot, undefined);
    assert.equal(rd.hardState?.commit, 3);
    r.advance(rd);
    assert.equal(r.status().lastIndex, 4, 'the entry after the snapshot is kept');
  });

  it('a snapshot that does not include the receiver is refused', () => {
    const r = newGroup('b', ['a', 'b'], {}, 1, { terms: [1], term: 1 });
    r.step(snapshotFromA(1, 5, 1, ['a', 'c']));
    drain(r);
    assert.equal(r.status().dropped['snapshot-excludes-self'], 1);
    assert.equal(r.status().lastIndex, 1);
  });

  it('an accepted snapshot replaces the log and the configuration', () => {
    const r = newGroup('b', ['a', 'b'], {}, 1, { terms: [1, 1], term: 1, commit: 1 });
    drain(r);
    r.step(snapshotFromA(2, 10, 2, ['a', 'b', 'c']));
    const rd = r.ready();
    assert.deepEqual(rd.snapshot?.index, 10);
    assert.equal(
      rd.committedEntries.length,
      0,
      'nothing to apply from the log until the snapshot is installed',
    );
    assert.equal(rd.hardState?.commit, 10);
    r.advance(rd);
    const s = r.status();
    assert.equal(s.applied, 10);
    assert.equal(s.firstIndex, 11);
    assert.equal(r.term(10), 2);
    assert.deepEqual(s.conf.voters, ['a', 'b', 'c']);
  });

  it('restarts from a snapshot plus a kept tail of entries', () => {
    const net = lagBehindCompaction(5);
    net.crash('a');
    net.restart('a');
    // The first entry of the kept tail becomes the log's marker (the term before it is unknown).
    assert.equal(net.raft('a').status().firstIndex, 18);
    assert.equal(net.raft('a').status().lastIndex, 21);
    assert.equal(net.raft('a').term(17), 1);
    net.heal();
    net.elect('a');
    net.propose('a', 'again');
    assert.deepEqual(net.node('c').appliedData(), net.node('a').appliedData());
  });

  it('refuses to compact past the applied index', () => {
    const net = new TestNetwork(['a']);
    net.elect('a');
    assert.throws(() => net.raft('a').compact(5, 0), RaftInvariantError);
    assert.throws(() => net.raft('a').compact(-1, 0), RangeError);
  });
});
