import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { RaftGroup } from '../../src/raft/raft-group.js';
import type { Message } from '../../src/raft/types.js';
import { MAX_ENTRIES_PER_MESSAGE } from '../../src/raft/validate-message.js';
import { entry } from './network.js';
import { conf, drain, newGroup } from './util.js';

function follower(): RaftGroup {
  const r = newGroup('b', ['a', 'b', 'c'], {}, 1, { terms: [1, 1], term: 1, commit: 1 });
  drain(r);
  return r;
}

const validAppend = {
  type: 'append',
  group: 1,
  from: 'a',
  to: 'b',
  term: 2,
  prevLogIndex: 2,
  prevLogTerm: 1,
  entries: [entry(3, 2)],
  commit: 2,
};

/** A peer message is untrusted input: malformed ones are dropped with a counted reason, never thrown. */
describe('peer message validation', () => {
  const cases: Array<[string, unknown, string]> = [
    ['null', null, 'not-an-object'],
    ['a string', 'append', 'not-an-object'],
    ['unknown type', { ...validAppend, type: 'appendEntries' }, 'unknown-type'],
    ['wrong group', { ...validAppend, group: 2 }, 'wrong-group'],
    ['wrong recipient', { ...validAppend, to: 'c' }, 'wrong-recipient'],
    ['from itself', { ...validAppend, from: 'b' }, 'from-self'],
    ['empty sender', { ...validAppend, from: '' }, 'bad-sender'],
    ['sender not a string', { ...validAppend, from: 7 }, 'bad-sender'],
    ['term 0', { ...validAppend, term: 0 }, 'bad-term'],
    ['negative term', { ...validAppend, term: -1 }, 'bad-term'],
    ['fractional term', { ...validAppend, term: 2.5 }, 'bad-term'],
    ['NaN term', { ...validAppend, term: Number.NaN }, 'bad-term'],
    ['term as string', { ...validAppend, term: '2' }, 'bad-term'],
    ['unsafe integer term', { ...validAppend, term: 2 ** 60 }, 'bad-term'],
    ['missing commit', { ...validAppend, commit: undefined }, 'bad-append-fields'],
    ['entries not an array', { ...validAppend, entries: {} }, 'bad-append-fields'],
    ['entry index gap', { ...validAppend, entries: [entry(4, 2)] }, 'entry-index-gap'],
    ['entry term above message term', { ...validAppend, entries: [entry(3, 3)] }, 'bad-entry-term'],
    [
      'entry term below prevLogTerm',
      { ...validAppend, prevLogTerm: 2, entries: [entry(3, 1)] },
      'bad-entry-term',
    ],
    ['entry data not bytes', { ...validAppend, entries: [{ ...entry(3, 2), data: 'x' }] }, 'bad-entry-data'],
    ['entry type unknown', { ...validAppend, entries: [{ ...entry(3, 2), type: 'noop' }] }, 'bad-entry-type'],
    ['null entry', { ...validAppend, entries: [null] }, 'bad-entry'],
    ['prevLogTerm above term', { ...validAppend, prevLogTerm: 3 }, 'log-term-above-term'],
    [
      'too many entries',
      { ...validAppend, entries: { length: MAX_ENTRIES_PER_MESSAGE + 1 } },
      'bad-append-fields',
    ],
    [
      'vote without transfer flag',
      { type: 'vote', group: 1, from: 'a', to: 'b', term: 3, lastLogIndex: 1, lastLogTerm: 1 },
      'bad-vote-fields',
    ],
    [
      'vote with last term above its term',
      {
        type: 'vote',
        group: 1,
        from: 'a',
        to: 'b',
        term: 3,
        lastLogIndex: 1,
        lastLogTerm: 4,
        transfer: false,
      },
      'log-term-above-term',
    ],
    [
      'append response with negative index',
      {
        type: 'appendResp',
        group: 1,
        from: 'a',
        to: 'b',
        term: 1,
        reject: false,
        index: -1,
        hintIndex: 0,
        hintTerm: 0,
      },
      'bad-append-response',
    ],
    [
      'snapshot without voters',
      {
        type: 'snapshot',
        group: 1,
        from: 'a',
        to: 'b',
        term: 2,
        snapshot: { index: 9, term: 2, conf: conf([]) },
      },
      'bad-snapshot-conf',
    ],
    [
      'snapshot with a duplicate voter',
      {
        type: 'snapshot',
        group: 1,
        from: 'a',
        to: 'b',
        term: 2,
        snapshot: { index: 9, term: 2, conf: conf(['a', 'a']) },
      },
      'bad-snapshot-conf',
    ],
    [
      'snapshot term above message term',
      {
        type: 'snapshot',
        group: 1,
        from: 'a',
        to: 'b',
        term: 2,
        snapshot: { index: 9, term: 3, conf: conf(['a']) },
      },
      'bad-snapshot',
    ],
    [
      'read index without contexts',
      { type: 'readIndex', group: 1, from: 'a', to: 'b', term: 1, contexts: [] },
      'bad-read-contexts',
    ],
    [
      'read index context not bytes',
      { type: 'readIndex', group: 1, from: 'a', to: 'b', term: 1, contexts: ['x'] },
      'bad-read-contexts',
    ],
    [
      'heartbeat without round',
      { type: 'heartbeat', group: 1, from: 'a', to: 'b', term: 1, commit: 1 },
      'bad-heartbeat',
    ],
    [
      'transfer to nobody',
      { type: 'transferLeader', group: 1, from: 'a', to: 'b', term: 1, target: '' },
      'bad-transfer-target',
    ],
  ];
  for (const [name, m, reason] of cases) {
    it(`drops ${name} (${reason})`, () => {
      const r = follower();
      const before = r.status();
      r.step(m as Message);
      const after = r.status();
      assert.equal(after.dropped[reason], 1, JSON.stringify(after.dropped));
      assert.equal(after.term, before.term);
      assert.equal(after.lastIndex, before.lastIndex);
      assert.equal(r.hasReady(), false, 'no state change, no answer');
    });
  }

  it('accepts the valid message the cases are derived from', () => {
    const r = follower();
    r.step(validAppend as Message);
    assert.deepEqual(r.status().dropped, {});
    assert.equal(r.status().lastIndex, 3);
  });

  it('accepts Uint8Array payloads (as a decoder may produce) and copies them into Buffers', () => {
    const r = follower();
    const raw = new Uint8Array([1, 2, 3]);
    r.step({ ...validAppend, entries: [{ ...entry(3, 2), data: raw }] } as unknown as Message);
    const rd = r.ready();
    assert.ok(Buffer.isBuffer(rd.entries[0].data));
    assert.deepEqual([...rd.entries[0].data], [1, 2, 3]);
    r.advance(rd);
  });

  it('never throws on any field of a valid message replaced by junk', () => {
    const junk = fc.oneof(
      fc.constant(null),
      fc.constant(undefined),
      fc.string(),
      fc.double(),
      fc.integer({ min: -5, max: -1 }),
      fc.boolean(),
      fc.array(fc.anything(), { maxLength: 3 }),
      fc.object(),
    );
    const fields = Object.keys(validAppend) as Array<keyof typeof validAppend>;
    fc.assert(
      fc.property(fc.constantFrom(...fields), junk, (field, value) => {
        const r = follower();
        r.step({ ...validAppend, [field]: value } as unknown as Message);
        // Either dropped with a reason, or (when the junk happens to be valid) processed normally.
        const s = r.status();
        const droppedOnce = Object.values(s.dropped).reduce((a, b) => a + b, 0) === 1;
        assert.ok(droppedOnce || (Object.keys(s.dropped).length === 0 && s.term === 2));
      }),
      { numRuns: 500 },
    );
  });
});
