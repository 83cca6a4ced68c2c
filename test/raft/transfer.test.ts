import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProposalDroppedError } from '../../src/raft/errors.js';
import { TestNetwork } from './network.js';

const dropped = (reason: string) => (e: unknown) => e instanceof ProposalDroppedError && e.reason === reason;

describe('leadership transfer (thesis §3.10)', () => {
  for (const opts of [{}, { checkQuorum: true, preVote: true }]) {
    it(`hands leadership to an up-to-date voter ${JSON.stringify(opts)}`, () => {
      const net = new TestNetwork(['a', 'b', 'c'], opts);
      net.elect('a');
      net.propose('a', 'x');
      net.raft('a').transferLeadership('b');
      net.stabilize();
      assert.equal(net.raft('b').status().role, 'leader');
      assert.equal(net.raft('b').status().term, 2);
      assert.equal(net.raft('a').status().leader, 'b');
      net.propose('b', 'y');
      for (const id of ['a', 'b', 'c']) assert.deepEqual(net.node(id).appliedData(), ['x', 'y']);
    });
  }

  it('brings a lagging target up to date before sending TimeoutNow', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.isolate('c');
    for (let i = 0; i < 5; i++) net.propose('a', `p${i}`);
    net.heal();
    const before = net.sent.length;
    net.raft('a').transferLeadership('c');
    net.stabilize();
    const sent = net.sent.slice(before);
    const timeoutNow = sent.findIndex((m) => m.type === 'timeoutNow');
    const lastAppend = sent.findLastIndex((m) => m.type === 'append' && m.to === 'c' && m.entries.length > 0);
    assert.ok(lastAppend >= 0 && timeoutNow > lastAppend, 'append first, then TimeoutNow');
    assert.equal(net.raft('c').status().role, 'leader');
    assert.equal(net.node('c').appliedData().length, 5);
  });

  it('drops proposals while transferring, and aborts after an election timeout', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.isolate('c');
    net.propose('a', 'x'); // c now lags and cannot catch up
    net.raft('a').transferLeadership('c');
    net.stabilize();
    assert.equal(net.raft('a').status().transferee, 'c');
    assert.throws(() => net.raft('a').propose(Buffer.from('y')), dropped('leadership-transfer'));
    assert.throws(
      () => net.raft('a').proposeConfChange({ changes: [{ type: 'remove', node: 'b' }] }),
      dropped('leadership-transfer'),
    );
    net.tick('a', 10);
    const s = net.raft('a').status();
    assert.equal(s.role, 'leader');
    assert.equal(s.transferee, undefined, 'aborted');
    assert.equal(s.dropped['transfer-timeout'], 1);
    net.propose('a', 'y');
    assert.deepEqual(net.node('b').appliedData(), ['x', 'y']);
  });

  it('refuses a target that is not a voter', () => {
    const net = new TestNetwork(['a', 'b'], {}, ['l']);
    net.elect('a');
    assert.throws(() => net.raft('a').transferLeadership('l'), dropped('invalid-transfer-target'));
    assert.throws(() => net.raft('a').transferLeadership('nobody'), dropped('invalid-transfer-target'));
  });

  it('a transfer requested on a follower is forwarded to the leader', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.raft('c').transferLeadership('b');
    net.stabilize();
    assert.equal(net.raft('b').status().role, 'leader');
  });

  it('a transfer to itself cancels a transfer in progress', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.isolate('c');
    net.propose('a', 'x');
    net.raft('a').transferLeadership('c');
    net.raft('a').transferLeadership('a');
    assert.equal(net.raft('a').status().transferee, undefined);
    net.propose('a', 'y');
  });
});
