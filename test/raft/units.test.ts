import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  applyConfChangeTo,
  decodeConfChange,
  encodeConfChange,
  InvalidConfChangeError,
} from '../../src/raft/conf-change.js';
import { Inflights, Progress } from '../../src/raft/progress.js';
import { JointQuorum } from '../../src/raft/quorum.js';
import { RaftLog } from '../../src/raft/raft-log.js';
import type { ConfChange } from '../../src/raft/types.js';
import { entry } from './network.js';
import { conf } from './util.js';

describe('JointQuorum', () => {
  const match = (m: Record<string, number>) => (id: string) => m[id] ?? 0;

  it('commit index is the value a majority has reached', () => {
    const q = new JointQuorum(['a', 'b', 'c'], []);
    assert.equal(q.committedIndex(match({ a: 5, b: 3, c: 1 })), 3);
    assert.equal(
      new JointQuorum(['a', 'b', 'c', 'd'], []).committedIndex(match({ a: 5, b: 4, c: 3, d: 1 })),
      3,
    );
  });

  it('a joint configuration takes the smaller of both halves', () => {
    const q = new JointQuorum(['a', 'd', 'e'], ['a', 'b', 'c']);
    assert.equal(q.committedIndex(match({ a: 9, d: 9, e: 9, b: 2, c: 1 })), 2);
    assert.equal(q.committedIndex(match({ a: 9, d: 1, e: 1, b: 9, c: 9 })), 1);
  });

  it('votes need both majorities; one lost half loses', () => {
    const q = new JointQuorum(['a', 'd', 'e'], ['a', 'b', 'c']);
    const v = (o: Record<string, boolean>) => q.voteResult(new Map(Object.entries(o)));
    assert.equal(v({ a: true, d: true }), 'pending');
    assert.equal(v({ a: true, d: true, b: true }), 'won');
    assert.equal(v({ a: true, d: false, e: false }), 'lost');
    assert.equal(v({ b: false, c: false }), 'lost');
  });
});

describe('configuration changes', () => {
  const base = conf(['a', 'b', 'c'], ['l']);

  it('adding a learner is a simple change', () => {
    const c = applyConfChangeTo(base, { changes: [{ type: 'addLearner', node: 'm' }] });
    assert.deepEqual(c.votersOutgoing, []);
    assert.deepEqual(c.learners, ['l', 'm']);
  });

  it('promoting a learner enters a joint configuration', () => {
    const c = applyConfChangeTo(base, { changes: [{ type: 'addVoter', node: 'l' }] });
    assert.deepEqual(c.voters, ['a', 'b', 'c', 'l']);
    assert.deepEqual(c.votersOutgoing, ['a', 'b', 'c']);
    assert.deepEqual(c.learners, []);
    assert.equal(c.autoLeave, true);
    const left = applyConfChangeTo(c, { changes: [] });
    assert.deepEqual(left.votersOutgoing, []);
    assert.equal(left.autoLeave, false);
  });

  it('a demoted voter is a next learner until the joint configuration is left', () => {
    const c = applyConfChangeTo(base, { changes: [{ type: 'addLearner', node: 'c' }] });
    assert.deepEqual(c.learnersNext, ['c']);
    assert.deepEqual(c.votersOutgoing, ['a', 'b', 'c']);
    const left = applyConfChangeTo(c, { changes: [] });
    assert.deepEqual(left.learners, ['l', 'c']);
    assert.deepEqual(left.learnersNext, []);
  });

  it('refuses another change while joint, leaving when not joint, and removing every voter', () => {
    const joint = applyConfChangeTo(base, { changes: [{ type: 'remove', node: 'a' }] });
    assert.throws(
      () => applyConfChangeTo(joint, { changes: [{ type: 'addLearner', node: 'x' }] }),
      InvalidConfChangeError,
    );
    assert.throws(() => applyConfChangeTo(base, { changes: [] }), InvalidConfChangeError);
    const all: ConfChange = { changes: ['a', 'b', 'c'].map((node) => ({ type: 'remove' as const, node })) };
    assert.throws(() => applyConfChangeTo(base, all), InvalidConfChangeError);
  });

  it('encodes and decodes every change losslessly', () => {
    const node = fc.string({ minLength: 1, maxLength: 20 });
    const cc = fc.record(
      {
        changes: fc.uniqueArray(
          fc.record({
            type: fc.constantFrom('addVoter' as const, 'addLearner' as const, 'remove' as const),
            node,
          }),
          { selector: (c) => c.node, maxLength: 8 },
        ),
        autoLeave: fc.boolean(),
        context: fc.uint8Array({ minLength: 1, maxLength: 32 }).map((a) => Buffer.from(a)),
      },
      { requiredKeys: ['changes'] },
    );
    fc.assert(
      fc.property(cc, (c) => {
        const d = decodeConfChange(encodeConfChange(c));
        assert.deepEqual(
          d.changes,
          c.changes.map((ch) => ({ type: ch.type, node: ch.node })),
        );
        assert.equal(d.autoLeave, c.autoLeave);
        assert.deepEqual(d.context, c.context);
      }),
    );
  });

  it('rejects corrupt encodings with a reason', () => {
    const good = encodeConfChange({ changes: [{ type: 'addVoter', node: 'n1' }] });
    assert.throws(() => decodeConfChange(good.subarray(0, good.length - 1)), /bad confChange encoding/);
    const badType = Buffer.from(good);
    badType[4] = 9;
    assert.throws(() => decodeConfChange(badType), /unknown change type/);
    assert.throws(() => decodeConfChange(Buffer.alloc(3)), /too short/);
  });
});

describe('flow control bookkeeping', () => {
  it('Inflights is a bounded FIFO of last indexes', () => {
    const f = new Inflights(3);
    f.add(5);
    f.add(7);
    f.add(9);
    assert.ok(f.full());
    assert.throws(() => f.add(10));
    f.freeLE(7);
    assert.equal(f.count, 1);
    f.add(11);
    f.add(12);
    assert.ok(f.full());
    f.freeFirstOne();
    assert.equal(f.count, 2);
  });

  it('Progress ignores stale rejections and backs off to the hint', () => {
    const p = new Progress(11, 4, false);
    assert.equal(p.maybeDecrTo(9, 5), false, 'not the latest probe');
    assert.equal(p.maybeDecrTo(10, 5), true);
    assert.equal(p.next, 6);
    p.maybeUpdate(6);
    p.becomeReplicate();
    p.sentEntries(3, 9);
    assert.equal(p.next, 10);
    assert.equal(p.maybeDecrTo(6, 0), false, 'at or below match: stale');
    assert.equal(p.maybeDecrTo(8, 0), true);
    assert.equal(p.next, 7);
  });
});

describe('RaftLog', () => {
  it('findConflictByTerm walks back past higher terms', () => {
    const log = new RaftLog(
      null,
      [1, 1, 2, 4, 4, 5].map((t, i) => entry(i + 1, t)),
      0,
      0,
    );
    assert.deepEqual(log.findConflictByTerm(6, 3), { index: 3, term: 2 });
    assert.deepEqual(log.findConflictByTerm(6, 0), { index: 0, term: 0 });
    assert.deepEqual(log.findConflictByTerm(9, 5), { index: 6, term: 5 });
  });

  it('never truncates committed entries', () => {
    const log = new RaftLog(
      null,
      [1, 1, 1].map((t, i) => entry(i + 1, t)),
      2,
      0,
    );
    assert.throws(() => log.appendReplacing([entry(2, 2)]), /truncating committed entry/);
    log.appendReplacing([entry(3, 2)]);
    assert.equal(log.term(3), 2);
    assert.equal(log.stableIndex, 2, 'the replaced entry must be persisted again');
  });

  it('refuses initial state with commit beyond the log', () => {
    assert.throws(() => new RaftLog(null, [entry(1, 1)], 2, 0), /beyond the last log index/);
  });

  it('slices within a byte budget, always at least one entry', () => {
    const big = { ...entry(1, 1), data: Buffer.alloc(100) };
    const log = new RaftLog(null, [big, { ...big, index: 2 }, { ...big, index: 3 }], 0, 0);
    assert.equal(log.slice(1, 4, 10)?.length, 1);
    assert.equal(log.slice(1, 4, 300)?.length, 2);
  });
});
