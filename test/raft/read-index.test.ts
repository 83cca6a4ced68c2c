import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotLeaderError } from '../../src/raft/errors.js';
import { TestNetwork } from './network.js';

const ctx = (s: string) => Buffer.from(s);

/** Tick everyone until one leader emerges (lease reads refuse votes for a timeout after boot). */
function electByTimeout(net: TestNetwork): string {
  for (let t = 0; t < 100 && net.leaders().length === 0; t++) net.tickAll();
  assert.equal(net.leaders().length, 1);
  return net.leaders()[0];
}

function contexts(net: TestNetwork, id: string): string[] {
  return net.node(id).readStates.map((r) => r.context.toString());
}

describe('ReadIndex (thesis §6.4)', () => {
  it('the leader confirms a whole batch of reads with one heartbeat round', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.propose('a', 'x');
    const before = net.sent.length;
    for (let i = 0; i < 10; i++) net.raft('a').readIndex(ctx(`r${i}`));
    net.stabilize();
    const heartbeats = net.sent.slice(before).filter((m) => m.type === 'heartbeat');
    assert.equal(heartbeats.length, 2, 'one round: one heartbeat per follower');
    const states = net.node('a').readStates;
    assert.equal(states.length, 10);
    for (const s of states) assert.equal(s.index, 2, 'the commit index when the batch started');
  });

  it('a read is not answered before a quorum confirms leadership', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.filter = (m) => m.type === 'heartbeatResp';
    net.raft('a').readIndex(ctx('r'));
    net.tick('a', 3);
    assert.deepEqual(contexts(net, 'a'), []);
    net.filter = (m) => m.type === 'heartbeatResp' && m.from === 'c';
    net.tick('a', 1);
    assert.deepEqual(contexts(net, 'a'), ['r'], 'a and b are a quorum');
  });

  it('a new leader defers reads until it has committed an entry of its term', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.propose('a', 'x');
    // b becomes leader in term 2 but its no-op cannot reach anyone yet.
    net.filter = (m) => m.type === 'append';
    net.raft('b').campaign();
    net.stabilize();
    assert.equal(net.raft('b').status().role, 'leader');
    net.raft('b').readIndex(ctx('early'));
    net.tick('b', 3);
    assert.deepEqual(contexts(net, 'b'), [], 'deferred: b does not know its commit index yet');
    net.filter = null;
    net.tick('b', 1);
    assert.deepEqual(contexts(net, 'b'), ['early']);
    assert.equal(net.node('b').readStates[0].index, 3, 'at or after its own no-op');
  });

  it('a deposed leader cannot serve a read', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.isolate('a');
    net.elect('b');
    net.propose('b', 'y');
    // a still believes it leads term 1; its read can never be confirmed.
    assert.equal(net.raft('a').status().role, 'leader');
    net.raft('a').readIndex(ctx('stale?'));
    net.tick('a', 5);
    assert.deepEqual(contexts(net, 'a'), []);
    net.heal();
    net.tick(['a', 'b'], 1); // b's heartbeat carries term 2
    assert.equal(net.raft('a').status().role, 'follower');
    assert.deepEqual(contexts(net, 'a'), [], 'the read was abandoned, never answered');
    assert.ok((net.raft('a').status().dropped['reads-abandoned'] ?? 0) >= 1);
  });

  it('planted bug stale-read: the deposed leader answers at once with a stale index', () => {
    const net = new TestNetwork(['a', 'b', 'c'], { bugs: ['stale-read'] });
    net.elect('a');
    net.isolate('a');
    net.elect('b');
    const { index } = net.propose('b', 'y');
    net.raft('a').readIndex(ctx('stale'));
    net.stabilize();
    assert.deepEqual(contexts(net, 'a'), ['stale']);
    assert.ok(net.node('a').readStates[0].index < index, 'the read misses the acknowledged write y');
  });

  it('a follower forwards its reads to the leader in one message and gets the index back', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.propose('a', 'x');
    net.raft('b').readIndex(ctx('f1'));
    net.raft('b').readIndex(ctx('f2'));
    const before = net.sent.length;
    net.stabilize();
    const forwards = net.sent.slice(before).filter((m) => m.type === 'readIndex');
    assert.equal(forwards.length, 1);
    assert.deepEqual(contexts(net, 'b'), ['f1', 'f2']);
    for (const s of net.node('b').readStates) assert.equal(s.index, 2);
    assert.deepEqual(contexts(net, 'a'), [], 'the leader does not surface a follower’s reads');
  });

  it('a follower without a leader refuses reads', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    assert.throws(() => net.raft('b').readIndex(ctx('r')), NotLeaderError);
  });

  it('a single voter answers at once', () => {
    const net = new TestNetwork(['a']);
    net.elect('a');
    net.raft('a').readIndex(ctx('r'));
    net.stabilize();
    assert.deepEqual(contexts(net, 'a'), ['r']);
  });

  describe('lease reads (thesis §6.4.1)', () => {
    it('require CheckQuorum', () => {
      assert.throws(
        () => new TestNetwork(['a'], { leaseRead: true, checkQuorum: false }),
        /leaseRead requires checkQuorum/,
      );
    });

    it('within the lease the leader answers without a heartbeat round', () => {
      const net = new TestNetwork(['a', 'b', 'c'], { leaseRead: true, checkQuorum: true });
      const l = electByTimeout(net);
      net.tick(l, 1); // a confirmed heartbeat round starts the lease
      const before = net.sent.length;
      net.raft(l).readIndex(ctx('leased'));
      const rd = net.raft(l).ready();
      assert.deepEqual(
        rd.readStates.map((r) => r.context.toString()),
        ['leased'],
      );
      assert.ok(!rd.messages.some((m) => m.type === 'heartbeat'));
      net.raft(l).advance(rd);
      assert.equal(net.sent.length, before);
    });

    it('after the lease (minus the drift bound) expires, reads need a round again', () => {
      const net = new TestNetwork(['a', 'b', 'c'], {
        leaseRead: true,
        checkQuorum: true,
        leaseDriftTicks: 2,
      });
      const l = electByTimeout(net);
      net.tick(l, 1);
      net.isolate(l);
      // lease = electionTick 10 - drift 2 = 8 ticks after the confirmed round was sent
      net.tick(l, 7);
      net.raft(l).readIndex(ctx('in-lease'));
      net.stabilize();
      assert.deepEqual(contexts(net, l), ['in-lease']);
      net.tick(l, 1);
      assert.equal(net.raft(l).status().role, 'leader');
      net.raft(l).readIndex(ctx('late'));
      net.stabilize();
      assert.deepEqual(
        contexts(net, l),
        ['in-lease'],
        'the late read waits for a round that cannot complete',
      );
    });

    it('no lease reads while transferring leadership', () => {
      const net = new TestNetwork(['a', 'b', 'c'], { leaseRead: true, checkQuorum: true });
      const l = electByTimeout(net);
      const target = l === 'a' ? 'b' : 'a';
      net.tick(l, 1);
      net.cutLink(l, target); // the transfer cannot complete
      net.propose(l, 'x');
      net.raft(l).transferLeadership(target);
      net.raft(l).readIndex(ctx('during-transfer'));
      const rd = net.raft(l).ready();
      assert.equal(rd.readStates.length, 0);
      net.raft(l).advance(rd);
    });

    it('after a restart a node refuses votes for an election timeout (it may have granted a lease)', () => {
      const net = new TestNetwork(['a', 'b', 'c'], { leaseRead: true, checkQuorum: true });
      net.raft('a').campaign();
      net.stabilize();
      assert.notEqual(net.raft('a').status().role, 'leader');
      assert.ok((net.raft('b').status().dropped['vote-in-lease'] ?? 0) > 0);
      assert.ok(net.leaders().length === 0);
      electByTimeout(net);
    });
  });
});
