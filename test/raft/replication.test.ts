import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotLeaderError, ProposalDroppedError } from '../../src/raft/errors.js';
import { ENTRY_OVERHEAD_BYTES } from '../../src/raft/raft-log.js';
import type { AppendRequest, AppendResponse, Message } from '../../src/raft/types.js';
import { entry, preload, type TestNetwork as Net, TestNetwork } from './network.js';
import { drain, newGroup } from './util.js';

function logTerms(net: Net, id: string): number[] {
  return net.node(id).disk.entries.map((e) => e.term);
}

function appends(ms: Message[], to?: string): AppendRequest[] {
  return ms.filter((m): m is AppendRequest => m.type === 'append' && (to === undefined || m.to === to));
}

describe('log replication (Raft §5.3)', () => {
  it('replicates proposals and applies them in order everywhere', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    for (let i = 0; i < 20; i++) net.propose('a', `v${i}`);
    const expected = Array.from({ length: 20 }, (_, i) => `v${i}`);
    for (const id of ['a', 'b', 'c']) {
      assert.deepEqual(net.node(id).appliedData(), expected);
      assert.equal(net.raft(id).status().commit, 21);
    }
  });

  it('a follower rejects proposals with the leader as hint', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    assert.throws(
      () => net.raft('b').propose(Buffer.from('x')),
      (e: unknown) => e instanceof NotLeaderError && e.leader === 'a',
    );
  });

  it('the leader counts itself toward a quorum only once its entries are durable', () => {
    const r = newGroup('a', ['a'], {}, 1);
    r.campaign();
    drain(r);
    const { index } = r.propose(Buffer.from('x'));
    const rd = r.ready();
    assert.equal(rd.entries.at(-1)?.index, index);
    assert.ok(!rd.committedEntries.some((e) => e.index === index), 'not committed before persisted');
    r.advance(rd);
    const rd2 = r.ready();
    assert.ok(rd2.committedEntries.some((e) => e.index === index));
    r.advance(rd2);
  });

  it('a leader sends entries proposed while its Ready is outstanding, and persists them with the next (thesis §10.2.1)', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    const a = net.raft('a');
    a.propose(Buffer.from('x'));
    const rd = a.ready(); // its write is in flight
    const { index } = a.propose(Buffer.from('y'));
    assert.throws(() => a.ready(), /before advance/);
    const early = a.takeEarlyReplication();
    for (const to of ['b', 'c']) {
      assert.ok(
        appends([...early], to).some((m) => m.entries.some((e) => e.index === index)),
        `y goes to ${to} before the leader persisted it`,
      );
    }
    assert.ok(early.every((m) => m.type === 'append' || m.type === 'heartbeat'));
    assert.deepEqual(a.takeEarlyReplication(), [], 'taken once');
    assert.ok(!rd.entries.some((e) => e.index === index), 'not in the outstanding Ready');
    a.advance(rd);
    const rd2 = a.ready();
    assert.ok(
      rd2.entries.some((e) => e.index === index),
      'persisted with the next Ready',
    );
    assert.ok(!appends(rd2.messages).some((m) => m.entries.some((e) => e.index === index)), 'not sent twice');
    a.advance(rd2);
    assert.deepEqual(net.raft('b').takeEarlyReplication(), [], 'a follower sends nothing early');
  });

  it('bounds uncommitted proposals (maxProposalQueue)', () => {
    const net = new TestNetwork(['a', 'b', 'c'], { maxProposalQueue: 5 });
    net.elect('a');
    net.isolate('a');
    for (let i = 0; i < 5; i++) net.raft('a').propose(Buffer.from(`p${i}`));
    assert.throws(
      () => net.raft('a').propose(Buffer.from('one too many')),
      (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'proposal-queue-full',
    );
  });

  it('recovers after a restart of every node, without re-applying', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.propose('a', 'x');
    net.propose('a', 'y');
    for (const id of ['a', 'b', 'c']) net.crash(id);
    for (const id of ['a', 'b', 'c']) net.restart(id);
    net.elect('b');
    net.propose('b', 'z');
    for (const id of ['a', 'b', 'c']) assert.deepEqual(net.node(id).appliedData(), ['x', 'y', 'z']);
  });

  describe('AppendEntries receiver (log matching, conflict truncation)', () => {
    // Follower log terms [1, 2, 2] at term 2 (commit 1); leader term 3.
    const cases: Array<{
      name: string;
      prev: [number, number];
      entries: number[];
      commit: number;
      reject: boolean;
      index: number;
      log: number[];
      wantCommit: number;
    }> = [
      {
        name: 'prev term mismatch',
        prev: [2, 3],
        entries: [3],
        commit: 3,
        reject: true,
        index: 2,
        log: [1, 2, 2],
        wantCommit: 1,
      },
      {
        name: 'prev beyond log',
        prev: [4, 2],
        entries: [3],
        commit: 3,
        reject: true,
        index: 4,
        log: [1, 2, 2],
        wantCommit: 1,
      },
      {
        name: 'append after match',
        prev: [3, 2],
        entries: [3],
        commit: 4,
        reject: false,
        index: 4,
        log: [1, 2, 2, 3],
        wantCommit: 4,
      },
      {
        name: 'conflict truncates the suffix',
        prev: [1, 1],
        entries: [3],
        commit: 2,
        reject: false,
        index: 2,
        log: [1, 3],
        wantCommit: 2,
      },
      {
        name: 'duplicate entries are idempotent',
        prev: [1, 1],
        entries: [2, 2],
        commit: 3,
        reject: false,
        index: 3,
        log: [1, 2, 2],
        wantCommit: 3,
      },
      {
        name: 'a shorter append keeps the matching suffix',
        prev: [1, 1],
        entries: [2],
        commit: 3,
        reject: false,
        index: 2,
        log: [1, 2, 2],
        wantCommit: 2,
      },
      {
        name: 'commit is capped at the last new entry',
        prev: [2, 2],
        entries: [],
        commit: 3,
        reject: false,
        index: 2,
        log: [1, 2, 2],
        wantCommit: 2,
      },
      {
        name: 'prev below commit answers commit',
        prev: [0, 0],
        entries: [1],
        commit: 1,
        reject: false,
        index: 1,
        log: [1, 2, 2],
        wantCommit: 1,
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const r = newGroup('b', ['a', 'b', 'c'], {}, 1, { terms: [1, 2, 2], term: 2, commit: 1 });
        drain(r);
        const m: AppendRequest = {
          type: 'append',
          group: 1,
          from: 'a',
          to: 'b',
          term: 3,
          prevLogIndex: c.prev[0],
          prevLogTerm: c.prev[1],
          entries: c.entries.map((t, i) => entry(c.prev[0] + 1 + i, t)),
          commit: c.commit,
        };
        r.step(m);
        const resp = drain(r).find((x): x is AppendResponse => x.type === 'appendResp');
        assert.ok(resp !== undefined);
        assert.equal(resp.reject, c.reject);
        assert.equal(resp.index, c.index);
        const terms: number[] = [];
        for (let i = 1; r.term(i) !== undefined; i++) terms.push(r.term(i)!);
        assert.deepEqual(terms, c.log);
        assert.equal(r.status().commit, c.wantCommit);
      });
    }

    it('an elected leader overwrites a conflicting uncommitted suffix on its followers', () => {
      const net = new TestNetwork(['a', 'b', 'c']);
      preload(net.node('a'), [1, 1, 3], 3);
      preload(net.node('b'), [1, 1, 2, 2, 2], 2);
      preload(net.node('c'), [1, 1], 3);
      net.elect('a');
      for (const id of ['a', 'b', 'c']) assert.deepEqual(logTerms(net, id), [1, 1, 3, 4]);
    });
  });

  describe('fast backtracking (Raft §5.3 end)', () => {
    it('the follower hints the last index whose term can match', () => {
      // Follower terms [1, 2, 2, 2, 4, 4]; leader probes prev (6, 3): no entry of term <= 3 after index 4.
      const r = newGroup('b', ['a', 'b'], {}, 1, { terms: [1, 2, 2, 2, 4, 4], term: 4 });
      r.step({
        type: 'append',
        group: 1,
        from: 'a',
        to: 'b',
        term: 5,
        prevLogIndex: 6,
        prevLogTerm: 3,
        entries: [],
        commit: 0,
      });
      const resp = drain(r).find((x): x is AppendResponse => x.type === 'appendResp');
      assert.ok(resp?.reject);
      assert.equal(resp.hintIndex, 4);
      assert.equal(resp.hintTerm, 2);
    });

    it('a divergent follower converges in a few round trips, not one per entry', () => {
      const n = 100;
      const net = new TestNetwork(['a', 'b', 'c']);
      preload(net.node('a'), [1, ...Array<number>(n).fill(3)], 3);
      preload(net.node('b'), [1, ...Array<number>(n).fill(2)], 2);
      preload(net.node('c'), [1, ...Array<number>(n).fill(3)], 3);
      net.elect('a');
      const rejects = net.sent.filter((m) => m.type === 'appendResp' && m.from === 'b' && m.reject);
      assert.ok(rejects.length <= 2, `${rejects.length} rejections`);
      assert.deepEqual(logTerms(net, 'b'), logTerms(net, 'a'));
    });
  });

  describe('commitment (Raft §5.4.2, Figure 8)', () => {
    /**
     * Figure 8: s1 led term 2 and wrote index 2 (term 2) to s2 only; s5 led term 3 and wrote its own
     * index 2 (term 3) nowhere else; s1 is leader again in term 4 and replicates index 2 (term 2)
     * to s3, a majority. It must not commit index 2 by counting replicas: s5 could still win term
     * 5 (votes of s2, s3, s4, whose last terms are <= 3) and overwrite it.
     */
    function figure8(bugs: Array<'commit-old-term'> = []) {
      const ids = ['s1', 's2', 's3', 's4', 's5'];
      const net = new TestNetwork(ids, { bugs });
      preload(net.node('s1'), [1, 2], 3);
      preload(net.node('s2'), [1, 2], 3);
      preload(net.node('s3'), [1], 3);
      preload(net.node('s4'), [1], 3);
      preload(net.node('s5'), [1, 3], 3, 's5');
      // s1 wins term 4 with s2 and s3 (s4, s5 unreachable); its no-op (index 3, term 4) reaches
      // nobody, and it crashes before a follower learns any commit index it may reach.
      net.partition(['s1', 's2', 's3'], ['s4', 's5']);
      net.rewrite = (m) =>
        m.type === 'append'
          ? { ...m, entries: m.entries.filter((e) => e.term !== 4), commit: Math.min(m.commit, 1) }
          : m;
      net.raft('s1').campaign();
      net.stabilize();
      assert.equal(net.raft('s1').status().role, 'leader');
      assert.equal(net.raft('s1').status().term, 4);
      assert.deepEqual(logTerms(net, 's3'), [1, 2], 'index 2 of term 2 is on a majority');
      return net;
    }

    /** s1 crashes; s5 runs until s2, s3, s4 elect it (their last terms are <= 3). */
    function electS5(net: Net): void {
      net.crash('s1');
      net.heal();
      for (let i = 0; i < 3 && net.raft('s5').status().role !== 'leader'; i++) {
        net.raft('s5').campaign();
        net.stabilize();
      }
      assert.equal(net.raft('s5').status().role, 'leader');
    }

    it('a leader does not commit an earlier term’s entry by counting replicas', () => {
      const net = figure8();
      assert.ok(net.raft('s1').status().commit < 2);
      // s5 is elected and overwrites index 2: allowed, since it was never committed.
      electS5(net);
      for (const id of ['s2', 's3', 's4', 's5']) {
        assert.equal(net.node(id).disk.entries[1].term, 3);
        assert.ok(!net.node(id).applied.some((e) => e.index === 2 && e.term === 2));
      }
    });

    it('it commits the earlier entry once an entry of its own term is on a majority', () => {
      const net = figure8();
      net.rewrite = null;
      net.tick('s1', 1);
      assert.equal(net.raft('s1').status().commit, 3);
      assert.ok(net.node('s3').applied.some((e) => e.index === 2 && e.term === 2));
    });

    it('with the planted bug commit-old-term the entry is committed and then lost', () => {
      const net = figure8(['commit-old-term']);
      assert.equal(net.raft('s1').status().commit, 2, 'committed by counting replicas');
      assert.ok(net.node('s1').applied.some((e) => e.index === 2 && e.term === 2));
      // s5 wins and overwrites the "committed" entry: state machine safety is violated.
      electS5(net);
      assert.ok(net.node('s5').applied.some((e) => e.index === 2 && e.term === 3));
    });
  });

  describe('flow control', () => {
    it('pipelines at most maxInflightMsgs appends to a follower, then resumes on acks', () => {
      // One entry per append (2-byte data + 32 overhead), so ten proposals need ten appends.
      const net = new TestNetwork(['a', 'b'], { maxInflightMsgs: 3, maxMsgBytes: 40 });
      net.elect('a');
      assert.equal(net.raft('a').status().progress?.b.state, 'replicate');
      for (let i = 0; i < 10; i++) net.raft('a').propose(Buffer.from(`p${i}`));
      let out = net.takeQueued();
      assert.equal(appends(out, 'b').length, 3, 'window of 3');
      assert.equal(net.raft('a').status().progress?.b.inflight, 3);
      // Deliver the three appends; b's three acks each free a slot and let the rest flow.
      net.deliverAll(out);
      out = net.takeQueued();
      net.deliverAll(out);
      net.stabilize();
      assert.equal(net.raft('b').status().commit, 11);
      assert.equal(net.node('b').appliedData().length, 10);
    });

    it('probes one message at a time until the follower’s position is known', () => {
      const net = new TestNetwork(['a', 'b', 'c']);
      net.cutLink('b', 'a'); // a never hears b's answers
      net.elect('a');
      for (let i = 0; i < 5; i++) net.propose('a', `p${i}`);
      assert.equal(net.raft('a').status().progress?.b.state, 'probe');
      assert.equal(appends(net.sent, 'b').length, 1, 'one outstanding probe');
      net.tick('a', 1); // a heartbeat response would unpause; b's answers are cut, so still one
      assert.equal(appends(net.sent, 'b').length, 1);
    });

    it('keeps each append within maxMsgBytes', () => {
      const budget = 1000;
      const size = 300;
      const net = new TestNetwork(['a', 'b', 'c'], { maxMsgBytes: budget });
      net.elect('a');
      net.isolate('c');
      for (let i = 0; i < 12; i++) net.propose('a', String(i).padStart(size, '.'));
      net.heal();
      net.tick('a', 1);
      const toC = appends(net.sent, 'c').filter((m) => m.entries.length > 0);
      assert.ok(toC.length >= 4);
      for (const m of toC) {
        const bytes = m.entries.reduce((n, e) => n + e.data.length + ENTRY_OVERHEAD_BYTES, 0);
        assert.ok(bytes <= budget, `append of ${bytes} bytes`);
      }
      assert.equal(net.node('c').appliedData().length, 12);
    });

    it('an unreachable follower goes back to probing', () => {
      const net = new TestNetwork(['a', 'b', 'c']);
      net.elect('a');
      assert.equal(net.raft('a').status().progress?.b.state, 'replicate');
      net.raft('a').reportUnreachable('b');
      assert.equal(net.raft('a').status().progress?.b.state, 'probe');
      net.propose('a', 'x');
      assert.equal(net.raft('a').status().progress?.b.state, 'replicate');
    });

    it('rejects a proposal larger than the message budget', () => {
      const net = new TestNetwork(['a'], { maxMsgBytes: 100 });
      net.elect('a');
      assert.throws(
        () => net.raft('a').propose(Buffer.alloc(101)),
        (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'entry-too-large',
      );
    });

    it('a lost append in replicate state is recovered through probing', () => {
      const net = new TestNetwork(['a', 'b', 'c']);
      net.elect('a');
      let dropOne = true;
      net.filter = (m) => {
        if (dropOne && m.type === 'append' && m.to === 'b' && m.entries.length > 0) {
          dropOne = false;
          return true;
        }
        return false;
      };
      net.propose('a', 'lost');
      net.propose('a', 'next');
      net.tick('a', 2);
      assert.deepEqual(net.node('b').appliedData(), ['lost', 'next']);
    });
  });
});
