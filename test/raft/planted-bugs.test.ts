/**
 * Each planted bug (config.bugs, test-only) must change behaviour observably, or the simulator's
 * checks that rely on them would prove nothing. commit-old-term is shown by the Figure 8 scenario
 * (replication.test.ts) and stale-read by the deposed-leader read (read-index.test.ts); the other
 * two are here, each next to the same scenario without the bug.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { preload, TestNetwork } from './network.js';

describe('planted bugs', () => {
  /** x is committed on a and b; c missed it. a crashes, c campaigns. */
  function staleCandidate(bugs: Array<'vote-any-log'>): TestNetwork {
    const net = new TestNetwork(['a', 'b', 'c'], { bugs });
    net.elect('a');
    net.isolate('c');
    net.propose('a', 'x');
    assert.equal(net.raft('b').status().commit, 2);
    net.crash('a');
    net.heal();
    net.raft('c').campaign();
    net.stabilize();
    return net;
  }

  it('vote-any-log: a candidate missing a committed entry is elected and commits over it', () => {
    const ok = staleCandidate([]);
    assert.notEqual(ok.raft('c').status().role, 'leader', 'correct: b refuses c (Raft §5.4.1)');

    const buggy = staleCandidate(['vote-any-log']);
    assert.ok(
      buggy.sent.some((m) => m.type === 'voteResp' && m.from === 'b' && m.to === 'c' && !m.reject),
      'b voted for the stale candidate',
    );
    assert.equal(buggy.raft('c').status().role, 'leader');
    // c commits its own no-op at index 2, where a and b applied the committed x.
    const onB = buggy.node('b').applied.find((e) => e.index === 2);
    const onC = buggy.node('c').applied.find((e) => e.index === 2);
    assert.equal(onB?.data, 'x');
    assert.equal(onC?.term, 2);
    assert.notEqual(onC?.data, 'x', 'state machine safety is broken');
  });

  function divergentFollower(bugs: Array<'keep-conflict'>): TestNetwork {
    const net = new TestNetwork(['a', 'b', 'c'], { bugs });
    preload(net.node('a'), [1, 1, 3], 3);
    preload(net.node('b'), [1, 1, 2, 2, 2], 2);
    net.crash('c'); // a's commitment rests on b's acknowledgements
    net.elect('a');
    net.tick('a', 1); // the heartbeat carries the commit index
    return net;
  }

  it('keep-conflict: a follower keeps a conflicting suffix, acknowledges, and applies other entries', () => {
    const ok = divergentFollower([]);
    assert.deepEqual(
      ok.node('b').applied.map((e) => [e.index, e.term]),
      ok.node('a').applied.map((e) => [e.index, e.term]),
    );

    const buggy = divergentFollower(['keep-conflict']);
    const onA = buggy.node('a').applied.find((e) => e.index === 3);
    const onB = buggy.node('b').applied.find((e) => e.index === 3);
    assert.equal(onA?.term, 3);
    assert.equal(onB?.term, 2, 'b applied a different entry at index 3: state machine safety is broken');
  });
});
