import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Message, VoteRequest } from '../../src/raft/types.js';
import { preload, TestNetwork } from './network.js';
import { drain, newGroup, voteRequest } from './util.js';

describe('leader election (Raft §5.2)', () => {
  it('elects a leader, which commits a no-op of its term everywhere (Raft §8)', () => {
    const net = new TestNetwork(['a', 'b', 'c']);
    net.elect('a');
    for (const id of ['a', 'b', 'c']) {
      const s = net.raft(id).status();
      assert.equal(s.leader, 'a');
      assert.equal(s.term, 1);
      assert.equal(s.commit, 1);
      assert.deepEqual(net.node(id).applied, [{ index: 1, term: 1, data: '' }]);
    }
  });

  it('elects exactly one leader from timeouts alone, for many seeds (randomized timeouts)', () => {
    for (let seed = 0; seed < 20; seed++) {
      const opts = { preVote: seed % 2 === 0, checkQuorum: true };
      const net = new TestNetwork(['a', 'b', 'c', 'd', 'e'], opts, [], seed * 10);
      for (let t = 0; t < 200 && net.leaders().length === 0; t++) net.tickAll();
      assert.equal(net.leaders().length, 1, `seed ${seed}`);
      const leader = net.leaders()[0];
      for (const id of net.nodes.keys()) assert.equal(net.raft(id).status().leader, leader);
    }
  });

  it('times out in [electionTick, 2*electionTick) ticks', () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 50; seed++) {
      const r = newGroup('a', ['a', 'b', 'c'], { electionTick: 10 }, seed);
      let ticks = 0;
      while (r.status().role === 'follower') {
        r.tick();
        ticks++;
        assert.ok(ticks < 20, `seed ${seed}: no campaign after ${ticks} ticks`);
      }
      assert.ok(ticks >= 10, `seed ${seed}: campaigned after ${ticks} ticks`);
      seen.add(ticks);
    }
    assert.ok(seen.size > 3, 'timeouts are randomized');
  });

  it('a single voter elects itself at once', () => {
    const net = new TestNetwork(['a']);
    net.elect('a');
    net.propose('a', 'x');
    assert.deepEqual(net.node('a').appliedData(), ['x']);
  });

  describe('vote granting', () => {
    // Voter log: terms [1, 1, 2] (last index 3, last term 2), current term 2.
    const cases: Array<{ name: string; term: number; lastIndex: number; lastTerm: number; grant: boolean }> =
      [
        { name: 'higher last term', term: 3, lastIndex: 1, lastTerm: 3, grant: true },
        { name: 'same last term, longer log', term: 3, lastIndex: 4, lastTerm: 2, grant: true },
        { name: 'same last term, same length', term: 3, lastIndex: 3, lastTerm: 2, grant: true },
        { name: 'same last term, shorter log', term: 3, lastIndex: 2, lastTerm: 2, grant: false },
        { name: 'lower last term, longer log', term: 3, lastIndex: 9, lastTerm: 1, grant: false },
        { name: 'stale term', term: 1, lastIndex: 9, lastTerm: 1, grant: false },
      ];
    for (const c of cases) {
      it(`${c.grant ? 'grants' : 'rejects'}: ${c.name}`, () => {
        const r = newGroup('a', ['a', 'b', 'c'], {}, 1, { terms: [1, 1, 2], term: 2 });
        r.step(voteRequest('vote', 'b', 'a', c.term, c.lastIndex, c.lastTerm));
        const resp = drain(r).find((m) => m.type === 'voteResp');
        assert.ok(resp !== undefined && resp.type === 'voteResp');
        assert.equal(resp.reject, !c.grant);
        assert.equal(r.status().vote, c.grant ? 'b' : '');
        assert.equal(r.status().term, Math.max(2, c.term));
      });
    }

    it('votes once per term, and repeats its vote to the same candidate', () => {
      const r = newGroup('a', ['a', 'b', 'c'], {}, 1);
      r.step(voteRequest('vote', 'b', 'a', 1, 0, 0));
      r.step(voteRequest('vote', 'c', 'a', 1, 0, 0));
      r.step(voteRequest('vote', 'b', 'a', 1, 0, 0));
      const resps = drain(r).filter((m) => m.type === 'voteResp');
      assert.deepEqual(
        resps.map((m) => (m.type === 'voteResp' ? [m.to, m.reject] : [])),
        [
          ['b', false],
          ['c', true],
          ['b', false],
        ],
      );
    });

    it('persists the vote before the grant leaves (both in the same Ready)', () => {
      const r = newGroup('a', ['a', 'b', 'c'], {}, 1);
      r.step(voteRequest('vote', 'b', 'a', 5, 0, 0));
      const rd = r.ready();
      assert.deepEqual(rd.hardState, { term: 5, vote: 'b', commit: 0 });
      assert.ok(rd.messages.some((m) => m.type === 'voteResp' && !m.reject));
      r.advance(rd);
    });

    it('a candidate with a stale log cannot win (election restriction, Raft §5.4.1)', () => {
      const net = new TestNetwork(['a', 'b', 'c']);
      preload(net.node('a'), [1], 1);
      preload(net.node('b'), [1, 1], 1);
      preload(net.node('c'), [1, 1], 1);
      net.raft('a').campaign();
      net.stabilize();
      assert.notEqual(net.raft('a').status().role, 'leader');
      net.elect('b');
      assert.equal(net.raft('a').status().leader, 'b');
    });
  });

  describe('PreVote (thesis §9.6)', () => {
    it('an isolated node does not inflate its term; on rejoin the leader stays', () => {
      const net = new TestNetwork(['a', 'b', 'c'], { preVote: true });
      net.elect('a');
      net.isolate('c');
      net.tick('c', 100);
      assert.equal(net.raft('c').status().term, 1, 'pre-candidate keeps its term');
      assert.equal(net.raft('c').status().role, 'preCandidate');
      net.heal();
      net.tick('a', 1);
      assert.equal(net.raft('a').status().role, 'leader');
      assert.equal(net.raft('c').status().leader, 'a');
      assert.equal(net.raft('a').status().term, 1);
    });

    it('without PreVote the same isolated node deposes the leader on rejoin (why PreVote exists)', () => {
      const net = new TestNetwork(['a', 'b', 'c'], { preVote: false });
      net.elect('a');
      net.isolate('c');
      net.tick('c', 100);
      assert.ok(net.raft('c').status().term > 1);
      net.heal();
      net.tick('c', 30);
      assert.ok(net.raft('a').status().term > 1, 'the rejoining node forced a new term on the leader');
    });

    it('a pre-vote does not change the voter’s term or vote', () => {
      const r = newGroup('a', ['a', 'b', 'c'], { preVote: true }, 1, { terms: [1], term: 1 });
      r.step(voteRequest('preVote', 'b', 'a', 2, 1, 1));
      const resp = drain(r).find((m) => m.type === 'preVoteResp');
      assert.ok(resp?.type === 'preVoteResp' && !resp.reject && resp.term === 2);
      assert.equal(r.status().term, 1);
      assert.equal(r.status().vote, '');
    });

    it('a pre-vote is rejected for a stale log, with the voter’s term', () => {
      const r = newGroup('a', ['a', 'b', 'c'], { preVote: true }, 1, { terms: [1, 2], term: 2 });
      r.step(voteRequest('preVote', 'b', 'a', 3, 1, 1));
      const resp = drain(r).find((m) => m.type === 'preVoteResp');
      assert.ok(resp?.type === 'preVoteResp' && resp.reject && resp.term === 2);
    });

    it('a pre-candidate that wins the pre-vote runs a real election', () => {
      const net = new TestNetwork(['a', 'b', 'c'], { preVote: true });
      net.elect('b');
      assert.equal(net.raft('b').status().term, 1);
      const types = net.sent.map((m) => m.type);
      assert.ok(types.indexOf('preVote') < types.indexOf('vote'));
    });
  });

  describe('CheckQuorum (thesis §6.2, §4.2.3)', () => {
    it('followers that heard from the leader recently ignore (pre)votes', () => {
      for (const preVote of [false, true]) {
        const net = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, preVote });
        net.elect('a');
        // c campaigns (e.g. it lost a heartbeat); b heard from a within the election timeout.
        net.raft('c').campaign();
        net.stabilize();
        assert.equal(net.raft('a').status().role, 'leader', `preVote=${preVote}`);
        assert.equal(net.raft('b').status().leader, 'a');
        assert.ok((net.raft('b').status().dropped['vote-in-lease'] ?? 0) > 0);
      }
    });

    it('after an election timeout without the leader, followers grant votes again', () => {
      const net = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true });
      net.elect('a');
      net.crash('a');
      net.tick(['b'], 10);
      net.elect('c');
    });

    it('a leader that cannot hear a quorum for an election timeout steps down', () => {
      const net = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true });
      net.elect('a');
      net.isolate('a');
      net.tick('a', 9);
      assert.equal(net.raft('a').status().role, 'leader');
      net.tick('a', 12);
      assert.equal(net.raft('a').status().role, 'follower');
      assert.equal(net.raft('a').status().dropped['check-quorum-step-down'], 1);
    });

    it('a leader hearing a quorum stays', () => {
      const net = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true });
      net.elect('a');
      net.isolate('c');
      net.tick(['a', 'b'], 50);
      assert.equal(net.raft('a').status().role, 'leader');
    });

    it('a stale leader learns the new term from the responses to its appends', () => {
      const net = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, preVote: true });
      net.elect('a');
      net.isolate('a');
      net.tick(['b', 'c'], 30);
      const leader = net.leaders().find((id) => id !== 'a');
      assert.ok(leader !== undefined);
      net.heal();
      net.tick('a', 1);
      assert.equal(net.raft('a').status().role, 'follower');
      assert.equal(net.raft('a').status().term, net.raft(leader).status().term);
      net.tick(leader, 1);
      assert.equal(net.raft('a').status().leader, leader);
    });
  });

  it('ignores the lease for a transfer campaign (TimeoutNow)', () => {
    const r = newGroup('a', ['a', 'b', 'c'], { checkQuorum: true }, 1, { terms: [1], term: 1 });
    r.step({ type: 'heartbeat', group: 1, from: 'b', to: 'a', term: 1, commit: 0, readRound: 1 });
    drain(r);
    const req: VoteRequest = { ...voteRequest('vote', 'c', 'a', 2, 1, 1), transfer: true };
    r.step(req);
    const resp = drain(r).find((m: Message) => m.type === 'voteResp');
    assert.ok(resp?.type === 'voteResp' && !resp.reject);
  });

  it('rejects initial state whose log runs ahead of its term', () => {
    assert.throws(() => newGroup('a', ['a'], {}, 1, { terms: [3], term: 2 }), /log term/);
  });
});
