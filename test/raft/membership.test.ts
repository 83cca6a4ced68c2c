import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProposalDroppedError } from '../../src/raft/errors.js';
import type { ConfChange } from '../../src/raft/types.js';
import { TestNetwork } from './network.js';

const dropped = (reason: string) => (e: unknown) => e instanceof ProposalDroppedError && e.reason === reason;

function change(net: TestNetwork, leader: string, cc: ConfChange): void {
  net.raft(leader).proposeConfChange(cc);
  net.stabilize();
}

/** a leads {a,b,c}, then enters C_old = {a,b,c}, C_new = {a,b,d} and stays joint. */
function jointReplacingCByD(): TestNetwork {
  const net = new TestNetwork(['a', 'b', 'c']);
  net.elect('a');
  net.addNode('d');
  change(net, 'a', {
    changes: [
      { type: 'addVoter', node: 'd' },
      { type: 'remove', node: 'c' },
    ],
    autoLeave: false,
  });
  return net;
}

function sorted(ids: string[]): string[] {
  return [...ids].sort();
}

describe('membership changes (thesis §4.3 joint consensus, learners)', () => {
  it('a new learner catches up from an empty log and never votes', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.propose('a', 'x');
    net.addNode('d');
    change(net, 'a', { changes: [{ type: 'addLearner', node: 'd' }] });
    net.propose('a', 'y');
    assert.deepEqual(net.node('d').appliedData(), ['x', 'y']);
    assert.deepEqual(net.raft('d').status().conf.learners, ['d']);
    const pr = net.raft('a').status().progress?.d;
    assert.ok(pr !== undefined);
    assert.equal(pr.learner, true);
    assert.equal(pr.match, net.raft('a').status().lastIndex, 'match index exposed for promotion decisions');
    // A learner never campaigns, by timeout or by request.
    net.isolate('a');
    net.tick('d', 100);
    assert.equal(net.raft('d').status().role, 'follower');
    assert.equal(net.raft('d').status().term, 1);
  });

  it('learners do not count toward a commit quorum', () => {
    const net = new TestNetwork(['a', 'b', 'c'], {}, ['l1', 'l2']);
    net.elect('a');
    net.partition(['a', 'l1', 'l2'], ['b', 'c']);
    const { index } = net.raft('a').propose(Buffer.from('x'));
    net.stabilize();
    assert.equal(net.raft('a').status().progress?.l1.match, index, 'learners acknowledged');
    assert.ok(net.raft('a').status().commit < index, 'but that is no quorum');
    net.heal();
    net.tick('a', 1);
    assert.ok(net.raft('a').status().commit >= index);
  });

  it('learners do not count toward an election quorum', () => {
    const net = new TestNetwork(['a', 'b', 'c'], {}, ['l1', 'l2']);
    net.partition(['a', 'l1', 'l2'], ['b', 'c']);
    net.raft('a').campaign();
    net.stabilize();
    assert.notEqual(net.raft('a').status().role, 'leader');
  });

  it('promotes a caught-up learner through a joint configuration that it leaves automatically', () => {
    const net = new TestNetwork(['a', 'b', 'c'], {}, ['d']);
    net.elect('a');
    net.propose('a', 'x');
    const seen: string[] = [];
    const original = net.node('b').handleReady.bind(net.node('b'));
    net.node('b').handleReady = (rd) => {
      original(rd);
      const c = net.node('b').conf;
      seen.push(`${sorted(c.voters)}|${sorted(c.votersOutgoing)}`);
    };
    change(net, 'a', { changes: [{ type: 'addVoter', node: 'd' }] });
    assert.ok(seen.includes('a,b,c,d|a,b,c'), 'entered C_old,new');
    for (const id of ['a', 'b', 'c', 'd']) {
      const c = net.raft(id).status().conf;
      assert.deepEqual(sorted(c.voters), ['a', 'b', 'c', 'd']);
      assert.deepEqual(c.votersOutgoing, [], `${id} left the joint configuration`);
      assert.deepEqual(c.learners, []);
    }
    // d now votes: with a and b down, c and d are not a majority of four, but with b back they are.
    net.crash('a');
    net.isolate('b');
    net.raft('d').campaign();
    net.stabilize();
    assert.notEqual(net.raft('d').status().role, 'leader');
    net.heal();
    net.elect('d');
  });

  it('in a joint configuration a decision needs a majority of both halves', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    for (const id of ['d', 'e']) net.addNode(id);
    // Replace b, c by d, e, and stay joint until told (autoLeave false).
    change(net, 'a', {
      changes: [
        { type: 'addVoter', node: 'd' },
        { type: 'addVoter', node: 'e' },
        { type: 'remove', node: 'b' },
        { type: 'remove', node: 'c' },
      ],
      autoLeave: false,
    });
    const conf = net.raft('a').status().conf;
    assert.deepEqual(sorted(conf.voters), ['a', 'd', 'e']);
    assert.deepEqual(sorted(conf.votersOutgoing), ['a', 'b', 'c']);

    // C_new has a majority (a, d, e) but C_old does not (only a): x does not commit.
    net.partition(['a', 'd', 'e'], ['b', 'c']);
    const x = net.raft('a').propose(Buffer.from('x')).index;
    net.tick('a', 2);
    assert.ok(net.raft('a').status().commit < x);
    // Now C_old has a majority (a, b, c) for x and y; C_new's majority (a, d, e) has x only.
    net.heal();
    net.partition(['a', 'b', 'c'], ['d', 'e']);
    const y = net.raft('a').propose(Buffer.from('y')).index;
    net.tick('a', 2);
    assert.equal(net.raft('a').status().commit, x, 'x is on both majorities, y on C_old only');
    net.heal();
    net.tick('a', 1);
    assert.ok(net.raft('a').status().commit >= y);

    // Leave the joint configuration explicitly; then C_new alone decides.
    net.heal();
    change(net, 'a', { changes: [] });
    assert.deepEqual(net.raft('a').status().conf.votersOutgoing, []);
    net.partition(['a', 'd', 'e'], ['b', 'c']);
    const z = net.propose('a', 'z').index;
    assert.ok(net.raft('a').status().commit >= z);
    assert.deepEqual(net.node('e').appliedData(), ['x', 'y', 'z']);
  });

  it('in a joint configuration a read needs a majority of both halves', () => {
    const net = jointReplacingCByD();
    // C_old = {a,b,c}, C_new = {a,b,d}: with d's answer alone, a has a majority of C_new only.
    net.filter = (m) => m.type === 'heartbeatResp' && m.from !== 'd';
    net.raft('a').readIndex(Buffer.from('r'));
    net.tick('a', 2);
    assert.equal(net.node('a').readStates.length, 0);
    net.filter = (m) => m.type === 'heartbeatResp' && m.from !== 'c';
    net.tick('a', 1);
    assert.equal(net.node('a').readStates.length, 1, 'a, c, d: a majority of both halves');
  });

  it('an election in a joint configuration needs both majorities', () => {
    const net = jointReplacingCByD();
    // C_old = {a,b,c}, C_new = {a,b,d}. b with c: majority of C_old, but not of C_new.
    net.crash('a');
    net.partition(['b', 'c'], ['d']);
    net.raft('b').campaign();
    net.stabilize();
    assert.notEqual(net.raft('b').status().role, 'leader');
    net.heal();
    net.partition(['b', 'd'], ['c']);
    net.raft('b').campaign();
    net.stabilize();
    assert.notEqual(net.raft('b').status().role, 'leader', 'b, d: majority of C_new only');
    net.heal();
    net.elect('b');
  });

  it('allows one pending configuration change at a time', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    net.isolate('a');
    net.raft('a').proposeConfChange({ changes: [{ type: 'addLearner', node: 'x' }] });
    assert.throws(
      () => net.raft('a').proposeConfChange({ changes: [{ type: 'addLearner', node: 'y' }] }),
      dropped('conf-change-pending'),
    );
  });

  it('refuses invalid changes', () => {
    const net = new TestNetwork(['a', 'b']);
    net.elect('a');
    const cases: ConfChange[] = [
      { changes: [] }, // not joint: nothing to leave
      {
        changes: [
          { type: 'remove', node: 'a' },
          { type: 'remove', node: 'b' },
        ],
      },
      {
        changes: [
          { type: 'addVoter', node: 'c' },
          { type: 'remove', node: 'c' },
        ],
      },
      { changes: [{ type: 'addVoter', node: '' }] },
    ];
    for (const cc of cases)
      assert.throws(() => net.raft('a').proposeConfChange(cc), dropped('invalid-conf-change'));
  });

  it('a removed leader steps down once C_new is in force, and the rest elect a leader', () => {
    const net = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, preVote: true });
    net.elect('a');
    change(net, 'a', { changes: [{ type: 'remove', node: 'a' }] });
    assert.equal(net.raft('a').status().role, 'follower');
    assert.deepEqual(sorted(net.raft('b').status().conf.voters), ['b', 'c']);
    net.tick(['b', 'c'], 40);
    const leaders = net.leaders();
    assert.equal(leaders.length, 1);
    assert.ok(leaders[0] === 'b' || leaders[0] === 'c');
    net.propose(leaders[0], 'after');
    assert.deepEqual(net.node('c').appliedData(), ['after']);
  });

  it('demotes a voter to a learner through the joint configuration', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    change(net, 'a', { changes: [{ type: 'addLearner', node: 'c' }] });
    const conf = net.raft('b').status().conf;
    assert.deepEqual(sorted(conf.voters), ['a', 'b']);
    assert.deepEqual(conf.learners, ['c']);
    assert.deepEqual(conf.learnersNext, []);
    net.propose('a', 'x');
    assert.deepEqual(net.node('c').appliedData(), ['x']);
  });
});
