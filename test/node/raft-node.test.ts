import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NodeError } from '../../src/node/errors.js';
import type { Entry } from '../../src/raft/types.js';
import { TestCluster, address, put } from './test-cluster.js';

function code(e: unknown): string {
  assert.ok(e instanceof NodeError, `expected a NodeError, got ${String(e)}`);
  return e.code;
}

describe('RaftNode on a 3-node in-process cluster', () => {
  it('elects a leader; writes through leader and follower (forwarded); linearizable reads on both', async () => {
    const c = new TestCluster();
    await c.boot();
    const leader = await c.waitForLeader();
    const follower = c.followers()[0]!;
    const r1 = await c.settle(leader.write(put('a', '1')));
    assert.equal(r1.succeeded, true);
    const r2 = await c.settle(follower.write(put('b', '2')));
    assert.equal(r2.succeeded, true);
    assert.ok(r2.revision > r1.revision);
    // A linearizable read on a follower sees the write that completed before it started.
    const kv = await c.settle(follower.get(Buffer.from('a'), 'linearizable'));
    assert.equal(kv?.value.toString(), '1');
    const kv2 = await c.settle(leader.get(Buffer.from('b'), 'linearizable'));
    assert.equal(kv2?.value.toString(), '2');
    const range = await c.settle(follower.range({}, 'linearizable'));
    assert.deepEqual(
      range.map((x) => x.key.toString()),
      ['a', 'b'],
    );
    // A read-only txn evaluates compares locally.
    const t = await c.settle(
      follower.readTxn(
        {
          compare: [{ key: Buffer.from('a'), target: 'value', op: '=', value: Buffer.from('1') }],
          success: [{ type: 'get', key: Buffer.from('b') }],
          failure: [],
        },
        'linearizable',
      ),
    );
    assert.equal(t.succeeded, true);
    assert.equal(t.responses[0]?.type === 'get' ? t.responses[0].kv?.value.toString() : '', '2');
    assert.equal(
      code(await c.settle(follower.readTxn(put('x', 'y'), 'linearizable')).catch((e) => e)),
      'invalid_request',
    );
    // The store's own limits surface with their NodeError code.
    const tooMany = await c.settle(follower.range({ limit: 1_000_000_000 }, 'serializable')).catch((e) => e);
    assert.equal(code(tooMany), 'limit_exceeded');
    c.stopAll();
  });

  it('answers a committed write while the next append is being written, not after it', async () => {
    const c = new TestCluster();
    await c.boot();
    const leader = await c.waitForLeader();
    await c.settle(leader.write(put('warm', '1')));
    // The leader's disk is slow, the followers' fast: A commits on the followers' acknowledgements
    // while the leader's own append of A is still running; B arrives meanwhile.
    c.setDiskLatency(leader.id, 30);
    const t0 = c.now;
    let answeredA = -1;
    let answeredB = -1;
    const a = leader.write(put('a', '1')).then(() => {
      answeredA = c.now - t0;
    });
    await c.run(5);
    const b = leader.write(put('b', '2')).then(() => {
      answeredB = c.now - t0;
    });
    await c.settle(Promise.all([a, b]));
    // A is durable on the leader at ~30 ms; the Ready that carries its commit also carries B,
    // whose append takes until ~60 ms. A is answered when its own append is durable, not with B's.
    assert.ok(answeredA >= 30 && answeredA < 45, `A answered at ${answeredA} ms`);
    assert.ok(answeredB >= 60, `B answered at ${answeredB} ms`);
    c.stopAll();
  });

  it('batches the linearizable reads of one loop turn into one ReadIndex request', async () => {
    const readIndexCalls: number[] = [];
    const c = new TestCluster();
    await c.boot();
    const leader = await c.waitForLeader();
    await c.settle(leader.write(put('k', 'v')));
    const follower = c.followers()[0]!;
    const raft = follower.replica(0).raft;
    const original = raft.readIndex.bind(raft);
    raft.readIndex = (ctx: Buffer) => {
      readIndexCalls.push(c.now);
      original(ctx);
    };
    const reads = Array.from({ length: 10 }, () => follower.get(Buffer.from('k'), 'linearizable'));
    const values = await c.settle(Promise.all(reads));
    assert.ok(values.every((v) => v?.value.toString() === 'v'));
    assert.equal(readIndexCalls.length, 1);
    c.stopAll();
  });

  it('makes hard state and entries durable before any message that depends on them leaves', async () => {
    const c = new TestCluster({ diskLatencyMs: 3 });
    await c.boot();
    const leader = await c.waitForLeader();
    for (let i = 0; i < 20; i++) await c.settle(leader.write(put(`k${i}`, `${i}`)));
    c.crash(leader.id); // an election: votes must be durable before they are granted
    await c.waitForLeader();
    for (const t of c.nodes.values())
      assert.equal(t.sentBeforeDurable, 0, `${t.id} acknowledged state that was not durable`);
    c.stopAll();
  });

  it('with the planted bug ack-before-persist, sends before the append is durable', async () => {
    const c = new TestCluster({ diskLatencyMs: 3, settings: { bugs: new Set(['ack-before-persist']) } });
    await c.boot();
    const leader = await c.waitForLeader();
    for (let i = 0; i < 5; i++) await c.settle(leader.write(put(`k${i}`, `${i}`)));
    const early = [...c.nodes.values()].reduce((n, t) => n + t.sentBeforeDurable, 0);
    assert.ok(early > 0);
    c.stopAll();
  });

  it('applies a retried session write exactly once and answers it with the first result', async () => {
    const c = new TestCluster();
    await c.boot();
    const leader = await c.waitForLeader();
    const follower = c.followers()[0]!;
    const session = { clientId: 'client-1', seq: 1 };
    const first = await c.settle(leader.write(put('x', 'a'), session));
    const retry = await c.settle(follower.write(put('x', 'a'), session));
    assert.deepEqual(retry, first);
    const kv = await c.settle(leader.get(Buffer.from('x'), 'linearizable'));
    assert.equal(kv?.version, 1, 'a retried put must not apply again');
    // A newer request applies; the old one is then refused (it was applied before), never applied again.
    await c.settle(leader.write(put('x', 'b'), { clientId: 'client-1', seq: 2 }));
    const stale = await c.settle(leader.write(put('x', 'a'), session)).catch((e) => e);
    assert.equal(code(stale), 'outcome_unknown');
    assert.equal((await c.settle(leader.get(Buffer.from('x'), 'linearizable')))?.value.toString(), 'b');
    // An unknown client id starts a session with whatever seq it sends.
    const fresh = await c.settle(leader.write(put('y', '1'), { clientId: 'new-client', seq: 7 }));
    assert.equal(fresh.succeeded, true);
    c.stopAll();
  });

  it('keeps sessions across a restart (they live in the store meta space)', async () => {
    const c = new TestCluster({ settings: { snapshotEntries: 5 } });
    await c.boot();
    const leader = await c.waitForLeader();
    const session = { clientId: 'c', seq: 1 };
    const first = await c.settle(leader.write(put('s', '1'), session));
    for (let i = 0; i < 10; i++) await c.settle(leader.write(put(`f${i}`, 'x')));
    for (const id of [...c.nodes.keys()]) c.crash(id);
    for (const id of [...c.nodes.keys()]) await c.restart(id);
    const l2 = await c.waitForLeader();
    const again = await c.settle(l2.write(put('s', '1'), session));
    assert.deepEqual(again, first);
    assert.equal((await c.settle(l2.get(Buffer.from('s'), 'linearizable')))?.version, 1);
    c.stopAll();
  });

  it('answers no_quorum when no leader is reachable (never proposed) and outcome_unknown once proposed', async () => {
    const c = new TestCluster({ settings: { requestTimeoutMs: 300 } });
    await c.boot();
    const leader = await c.waitForLeader();
    const ids = [...c.nodes.keys()];
    const others = ids.filter((id) => id !== leader.id);
    c.network.partition([[leader.id], others]);
    // The isolated leader proposes but cannot commit: the outcome is unknown.
    const atLeader = await c.settle(leader.write(put('p', '1'))).catch((e) => e);
    assert.equal(code(atLeader), 'outcome_unknown');
    // A follower in a minority with no leader: certainly not proposed.
    c.network.heal();
    c.network.partition([[others[0]!], [leader.id, others[1]!]]);
    await c.run(400); // its leader lease runs out; it knows no leader
    const lone = c.node(others[0]!);
    await c.runUntil(() => lone.replica(0).currentLeader === '', 3000);
    const atFollower = await c.settle(lone.write(put('q', '1'))).catch((e) => e);
    assert.equal(code(atFollower), 'no_quorum');
    const read = await c.settle(lone.get(Buffer.from('q'), 'linearizable')).catch((e) => e);
    assert.equal(code(read), 'no_quorum');
    // Serializable reads are served locally even then.
    assert.equal(await c.settle(lone.get(Buffer.from('q'), 'serializable')), null);
    c.stopAll();
  });

  it('refuses requests beyond the pending bound with overloaded', async () => {
    const c = new TestCluster({ settings: { maxPendingRequests: 4, requestTimeoutMs: 200 } });
    await c.boot();
    const leader = await c.waitForLeader();
    c.network.partition([[leader.id], c.followers().map((f) => f.id)]);
    const writes = Array.from({ length: 6 }, (_, i) => leader.write(put(`o${i}`, 'x')).catch((e) => e));
    const results = await c.settle(Promise.all(writes));
    const codes = results.map(code);
    assert.equal(codes.filter((x) => x === 'overloaded').length, 2);
    assert.equal(codes.filter((x) => x === 'outcome_unknown').length, 4);
    c.stopAll();
  });

  it('rejects invalid input with specific errors', async () => {
    const c = new TestCluster({
      settings: { txnLimits: { maxKeyBytes: 8, maxValueBytes: 8, maxOpsPerTxn: 4, maxTxnBytes: 64 } },
    });
    await c.boot();
    const leader = await c.waitForLeader();
    assert.equal(
      code(await c.settle(leader.write(put('a-very-long-key', 'v'))).catch((e) => e)),
      'limit_exceeded',
    );
    assert.equal(
      code(await c.settle(leader.write(put('k', 'a-very-long-value'))).catch((e) => e)),
      'limit_exceeded',
    );
    assert.equal(code(await c.settle(leader.write(put('', 'v'))).catch((e) => e)), 'invalid_request');
    const bad = { compare: [], success: [{ type: 'nope', key: Buffer.from('k') }], failure: [] };
    assert.equal(code(await c.settle(leader.write(bad as never)).catch((e) => e)), 'invalid_request');
    assert.equal(
      code(await c.settle(leader.write(put('k', 'v'), { clientId: '', seq: 1 })).catch((e) => e)),
      'invalid_request',
    );
    c.stopAll();
  });

  it('recovers after a crash without applying any entry twice, and catches up', async () => {
    /** Per node, since its last start: the store's applied index at recovery, then each applied index. */
    const since = new Map<string, { recoveredAt: number; applied: number[] }>();
    const c = new TestCluster({
      hooks: (id) => ({
        recovered: (e) => since.set(id, { recoveredAt: e.applied, applied: [] }),
        entryApplied: (_g: number, e: Entry) => since.get(id)!.applied.push(e.index),
      }),
    });
    await c.boot();
    const leader = await c.waitForLeader();
    for (let i = 0; i < 10; i++) await c.settle(leader.write(put(`r${i}`, `${i}`)));
    const victim = c.followers()[0]!.id;
    await c.settle(c.get(victim).store.sync()); // what a compaction would have made durable
    c.crash(victim);
    for (let i = 10; i < 20; i++) await c.settle(leader.write(put(`r${i}`, `${i}`)));
    await c.restart(victim);
    await c.runUntil(
      () => c.get(victim).node?.replica(0).appliedIndex === leader.replica(0).appliedIndex,
      3000,
    );
    const s = since.get(victim)!;
    assert.ok(s.recoveredAt >= 10, 'the synced store state survived the crash');
    assert.deepEqual(
      s.applied,
      Array.from({ length: s.applied.length }, (_, i) => s.recoveredAt + 1 + i),
      'entries after the store applied index, each exactly once, in order',
    );
    const kv = await c.settle(c.node(victim).get(Buffer.from('r19'), 'linearizable'));
    assert.equal(kv?.value.toString(), '19');
    c.stopAll();
  });

  it('compacts its log and brings a lagging follower back with a chunked snapshot', async () => {
    const installed: number[] = [];
    const c = new TestCluster({
      settings: {
        snapshotEntries: 10,
        keepTail: 0,
        snapshotLimits: {
          window: 2,
          maxMessageBytes: 64,
          retransmitMs: 50,
          maxRetransmits: 10,
          maxStagedBytes: 1 << 20,
        },
      },
      hooks: () => ({ snapshotInstalled: (_g, meta) => installed.push(meta.index) }),
    });
    await c.boot();
    const leader = await c.waitForLeader();
    const victim = c.followers()[0]!.id;
    c.crash(victim);
    for (let i = 0; i < 40; i++) await c.settle(leader.write(put(`s${i % 7}`, `${i}`)));
    assert.ok(leader.status().snapshotIndex >= 10, 'the leader compacted');
    await c.restart(victim);
    await c.runUntil(() => installed.length > 0, 5000);
    await c.runUntil(
      () => c.get(victim).node?.replica(0).appliedIndex === leader.replica(0).appliedIndex,
      3000,
    );
    const follower = c.node(victim);
    for (let k = 0; k < 7; k++) {
      const a = await c.settle(follower.get(Buffer.from(`s${k}`), 'serializable'));
      const b = await c.settle(leader.get(Buffer.from(`s${k}`), 'serializable'));
      assert.deepEqual(a, b);
    }
    c.stopAll();
  });

  /**
   * A follower is down while 12 entries of ~10 KiB commit; the leader compacts by bytes. Returns
   * the leader's snapshot index after the writes and the snapshots the follower installed once back.
   */
  async function compactByBytes(snapshotBytes: number, keepTailBytes: number) {
    const installed: number[] = [];
    const c = new TestCluster({
      settings: { snapshotEntries: 1_000_000, snapshotBytes, keepTail: 1000, keepTailBytes },
      hooks: () => ({ snapshotInstalled: (_g, meta) => installed.push(meta.index) }),
    });
    await c.boot();
    const leader = await c.waitForLeader();
    const victim = c.followers()[0]!.id;
    c.crash(victim);
    const value = 'v'.repeat(10 * 1024);
    for (let i = 0; i < 12; i++) await c.settle(leader.write(put(`b${i}`, value)));
    const snapshotIndex = leader.status().snapshotIndex;
    await c.restart(victim);
    await c.runUntil(() => c.get(victim).node?.replica(0).appliedIndex === leader.replica(0).appliedIndex, 5000);
    const back = await c.settle(c.node(victim).get(Buffer.from('b11'), 'serializable'));
    assert.equal(back?.value.length, value.length);
    c.stopAll();
    return { snapshotIndex, installed };
  }

  it('compacts once the applied entries reach snapshotBytes, whatever their count', async () => {
    assert.ok((await compactByBytes(64 * 1024, 1 << 20)).snapshotIndex > 0, 'compacted by bytes');
    assert.equal((await compactByBytes(1 << 30, 1 << 20)).snapshotIndex, 0, 'below both thresholds: no compaction');
  });

  it('keeps at most keepTailBytes below a compaction point: a follower further behind gets a snapshot', async () => {
    const small = await compactByBytes(64 * 1024, 16 * 1024);
    assert.ok(small.snapshotIndex > 0);
    assert.ok(small.installed.length > 0, 'caught up from a snapshot');
    const large = await compactByBytes(64 * 1024, 1 << 20);
    assert.deepEqual(large.installed, [], 'a 1 MiB tail holds all it missed: caught up by appends');
  });

  it('adds a member as a learner, promotes it once caught up, and removes the leader', async () => {
    const c = new TestCluster();
    await c.boot();
    const leader = await c.waitForLeader();
    for (let i = 0; i < 5; i++) await c.settle(leader.write(put(`m${i}`, 'x')));
    const n4 = c.add('n4', []);
    c.start(n4);
    const a = address('n4');
    const members = await c.settle(c.followers()[0]!.addMember('n4', a.peerAddress, a.clientUrl, 'voter'));
    assert.equal(members.find((m) => m.id === 'n4')?.role, 'learner');
    assert.equal(
      code(await c.settle(leader.addMember('n4', 'x:1', '', 'learner')).catch((e) => e)),
      'member_exists',
    );
    // Promoted automatically once caught up, through joint consensus (left automatically).
    const conf = () => leader.replica(0).confState;
    await c.runUntil(() => conf().voters.includes('n4') && conf().votersOutgoing.length === 0, 5000);
    assert.equal(leader.members().find((m) => m.id === 'n4')?.role, 'voter');
    await c.runUntil(() => c.node('n4').replica(0).appliedIndex === leader.replica(0).appliedIndex, 3000);
    // The new member learned every address from the log (entry 1 carries the founders').
    assert.equal(
      c
        .node('n4')
        .members()
        .find((m) => m.id === 'n1')?.peerAddress,
      'n1:7000',
    );
    // Removing the leader: it steps down once the change is applied, another leader takes over.
    const oldLeader = leader.id;
    const after = await c.settle(leader.removeMember(oldLeader));
    assert.ok(
      after.some((m) => m.id === oldLeader && m.leaving === true) || !after.some((m) => m.id === oldLeader),
    );
    await c.runUntil(() => {
      const l = c.leader();
      return l !== null && l.id !== oldLeader && !l.members().some((m) => m.id === oldLeader);
    }, 5000);
    const l2 = c.leader()!;
    assert.equal((await c.settle(l2.write(put('after', 'removal')))).succeeded, true);
    assert.equal(code(await c.settle(l2.removeMember('nobody')).catch((e) => e)), 'member_not_found');
    c.stopAll();
  });

  it('transfers leadership on request', async () => {
    const c = new TestCluster();
    await c.boot();
    const leader = await c.waitForLeader();
    const target = c.followers()[1]!.id;
    const newLeader = await c.settle(c.followers()[0]!.transferLeadership(target));
    assert.equal(newLeader, target);
    await c.runUntil(() => c.leader()?.id === target, 2000);
    assert.notEqual(c.leader()!.id, leader.id);
    c.stopAll();
  });
});
