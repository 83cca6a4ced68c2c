import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/kv/memory-store.js';
import type { MetaWrite, Txn, TxnResult } from '../../src/kv/state-store.js';
import { decodeCommand, encodeCommand } from '../../src/node/command.js';
import { NodeError } from '../../src/node/errors.js';
import { SessionTable } from '../../src/node/sessions.js';
import {
  DEFAULT_TXN_LIMITS,
  txnResultFromWire,
  txnResultToWire,
  validateTxn,
} from '../../src/node/txn-codec.js';

const txn: Txn = {
  compare: [
    { key: Buffer.from('a'), target: 'value', op: '!=', value: Buffer.from([0, 255]) },
    { key: Buffer.from('b'), target: 'modRevision', op: '<', value: 7 },
    { key: Buffer.from('c'), target: 'exists', exists: false },
  ],
  success: [
    { type: 'put', key: Buffer.from('a'), value: Buffer.from([1, 2, 3]) },
    { type: 'delete', key: Buffer.from('b') },
  ],
  failure: [{ type: 'get', key: Buffer.from('c') }],
};

describe('command encoding', () => {
  it('round-trips a txn with a session and a time, keeping bytes binary', () => {
    const data = encodeCommand({ txn, session: { clientId: 'c1', seq: 42 }, time: 1_700_000_000_123 });
    const back = decodeCommand(data);
    assert.deepEqual(back, { txn, session: { clientId: 'c1', seq: 42 }, time: 1_700_000_000_123 });
    assert.deepEqual(decodeCommand(encodeCommand({ txn, session: null, time: 5 })).session, null);
  });

  it('encodes a plain put in its own compact form, and reads both forms back', () => {
    const put: Txn = {
      compare: [],
      success: [{ type: 'put', key: Buffer.from('kéy'), value: Buffer.from([0, 1, 255]) }],
      failure: [],
    };
    for (const session of [
      null,
      { clientId: 'client-ü', seq: Number.MAX_SAFE_INTEGER },
      { clientId: '', seq: 1 },
    ]) {
      const data = encodeCommand({ txn: put, session, time: 1_700_000_000_123.5 });
      assert.equal(data[0], 0xc1, 'plain-put mark');
      assert.deepEqual(decodeCommand(data), { txn: put, session, time: 1_700_000_000_123.5 });
    }
    const emptyValue: Txn = {
      ...put,
      success: [{ type: 'put', key: Buffer.from('k'), value: Buffer.alloc(0) }],
    };
    assert.deepEqual(
      decodeCommand(encodeCommand({ txn: emptyValue, session: null, time: 1 })).txn,
      emptyValue,
    );
    // Anything else keeps the MessagePack form (a 6-element array), which is read as before.
    const conditional: Txn = {
      ...put,
      compare: [{ key: Buffer.from('k'), target: 'version', op: '=', value: 0 }],
    };
    const twoOps: Txn = { ...put, success: [...put.success, { type: 'delete', key: Buffer.from('x') }] };
    const del: Txn = { compare: [], success: [{ type: 'delete', key: Buffer.from('k') }], failure: [] };
    for (const other of [conditional, twoOps, del, txn]) {
      const data = encodeCommand({ txn: other, session: null, time: 2 });
      assert.equal(data[0], 0x96);
      assert.deepEqual(decodeCommand(data).txn, other);
    }
  });

  it('rejects every truncation of a plain put, and bad fields, with a specific error', () => {
    const put: Txn = {
      compare: [],
      success: [{ type: 'put', key: Buffer.from('key'), value: Buffer.from('v') }],
      failure: [],
    };
    const data = encodeCommand({ txn: put, session: { clientId: 'c1', seq: 3 }, time: 9 });
    // Every cut before the value's bytes leaves a field short (a cut inside the value is a shorter value).
    const valueStart = data.length - 1;
    for (let n = 1; n < valueStart; n++) {
      assert.throws(
        () => decodeCommand(data.subarray(0, n)),
        /plain put command: truncated at byte/,
        `prefix of ${n}`,
      );
    }
    assert.throws(
      () => decodeCommand(data.subarray(0, 11)),
      /truncated at byte 10: client id length needs 2 bytes, 1 left/,
    );
    const badFlag = Buffer.from(data);
    badFlag[9] = 2;
    assert.throws(() => decodeCommand(badFlag), /has-session is 2/);
    const badSeq = Buffer.from(data);
    badSeq.writeDoubleLE(0, 1 + 8 + 1 + 2 + 2);
    assert.throws(() => decodeCommand(badSeq), /bad session/);
    const badTime = Buffer.from(data);
    badTime.writeDoubleLE(Number.NaN, 1);
    assert.throws(() => decodeCommand(badTime), /bad time/);
  });

  it('rejects malformed payloads with a specific error', () => {
    assert.throws(() => decodeCommand(Buffer.from([0x91, 0x01])), /6-element array/);
    const wrongFormat = encodeCommand({ txn, session: null, time: 1 });
    wrongFormat[1] = 9; // first array element: the format byte
    assert.throws(() => decodeCommand(wrongFormat), /unknown format/);
  });

  it('round-trips txn results', () => {
    const r: TxnResult = {
      succeeded: true,
      revision: 9,
      responses: [
        { type: 'put', revision: 9 },
        { type: 'delete', deleted: 1, revision: 9 },
        {
          type: 'get',
          kv: {
            key: Buffer.from('k'),
            value: Buffer.from('v'),
            createRevision: 2,
            modRevision: 8,
            version: 3,
          },
        },
        { type: 'get', kv: null },
      ],
    };
    assert.deepEqual(txnResultFromWire(txnResultToWire(r)), r);
  });
});

describe('validateTxn', () => {
  const limits = {
    ...DEFAULT_TXN_LIMITS,
    maxKeyBytes: 4,
    maxValueBytes: 4,
    maxOpsPerTxn: 3,
    maxTxnBytes: 10,
  };
  const err = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof NodeError);
      return `${e.code}: ${e.message}`;
    }
    assert.fail('expected a NodeError');
  };
  it('names the limit that was exceeded', () => {
    const put = (k: string, v: string) => ({ type: 'put', key: Buffer.from(k), value: Buffer.from(v) });
    assert.match(
      err(() => validateTxn({ compare: [], success: [put('long-key', 'v')], failure: [] }, limits)),
      /limit_exceeded.*maxKeyBytes/,
    );
    assert.match(
      err(() => validateTxn({ compare: [], success: [put('k', 'value')], failure: [] }, limits)),
      /maxValueBytes/,
    );
    assert.match(
      err(() =>
        validateTxn(
          { compare: [], success: [put('a', 'b'), put('c', 'd'), put('e', 'f'), put('g', 'h')], failure: [] },
          limits,
        ),
      ),
      /maxOpsPerTxn/,
    );
    assert.match(
      err(() =>
        validateTxn({ compare: [], success: [put('ab', 'cdef'), put('gh', 'ijkl')], failure: [] }, limits),
      ),
      /maxTxnBytes/,
    );
  });
  it('rejects malformed shapes as invalid_request', () => {
    assert.match(
      err(() => validateTxn(null, limits)),
      /invalid_request/,
    );
    assert.match(
      err(() =>
        validateTxn({ compare: [], success: [{ type: 'put', key: 'k', value: 'v' }], failure: [] }, limits),
      ),
      /invalid_request.*binary/,
    );
    assert.match(
      err(() =>
        validateTxn(
          {
            compare: [{ key: Buffer.from('k'), target: 'nope', op: '=', value: 1 }],
            success: [],
            failure: [],
          },
          limits,
        ),
      ),
      /invalid_request/,
    );
  });
  it('accepts and normalizes a valid txn', () => {
    assert.deepEqual(validateTxn(txn, DEFAULT_TXN_LIMITS), txn);
  });
});

/** Applies the table's writes to a store the way the node does, batch by batch. */
function persist(store: MemoryStore, index: number, writes: MetaWrite[]): void {
  store.apply({ appliedIndex: index, txns: [], meta: writes });
}

describe('SessionTable', () => {
  const result = (revision: number): TxnResult => ({
    succeeded: true,
    revision,
    responses: [{ type: 'put', revision }],
  });

  it('deduplicates: a retry gets the first result; an older seq is stale; a new client starts anywhere', () => {
    const t = new SessionTable({ maxSessions: 10, sessionTtlMs: 1000, maxClientIdBytes: 16 });
    assert.deepEqual(t.check({ clientId: 'a', seq: 5 }), { kind: 'apply' });
    t.begin({ clientId: 'a', seq: 5 });
    assert.deepEqual(t.check({ clientId: 'a', seq: 5 }), { kind: 'duplicate', result: null });
    t.setResult({ clientId: 'a', seq: 5 }, result(3));
    assert.deepEqual(t.check({ clientId: 'a', seq: 5 }), { kind: 'duplicate', result: result(3) });
    assert.deepEqual(t.check({ clientId: 'a', seq: 4 }), { kind: 'stale', lastSeq: 5 });
    assert.deepEqual(t.check({ clientId: 'a', seq: 6 }), { kind: 'apply' });
    assert.equal(
      t.validate({ clientId: 'x'.repeat(17), seq: 1 }),
      'session clientId exceeds maxClientIdBytes (16)',
    );
    assert.match(t.validate({ clientId: 'x', seq: 0 }) ?? '', /seq/);
  });

  it('expires idle sessions by log time into tombstones that refuse the client, then forgets them', () => {
    const t = new SessionTable({ maxSessions: 10, sessionTtlMs: 1000, maxClientIdBytes: 16 });
    t.advanceTime(10_000);
    t.begin({ clientId: 'old', seq: 1 });
    t.advanceTime(10_500);
    t.begin({ clientId: 'young', seq: 1 });
    t.advanceTime(11_200); // 'old' idle 1200 ms > TTL
    assert.deepEqual(t.check({ clientId: 'old', seq: 2 }), { kind: 'unknown' });
    assert.deepEqual(t.check({ clientId: 'young', seq: 1 }), { kind: 'duplicate', result: null });
    t.advanceTime(11_000); // time never runs backwards: nothing revives
    assert.deepEqual(t.check({ clientId: 'old', seq: 2 }), { kind: 'unknown' });
    t.advanceTime(12_300); // the tombstone is older than another TTL: forgotten, the id may start again
    assert.deepEqual(t.check({ clientId: 'old', seq: 2 }), { kind: 'apply' });
  });

  it('evicts the least recently used session beyond maxSessions', () => {
    const t = new SessionTable({ maxSessions: 2, sessionTtlMs: 1e9, maxClientIdBytes: 16 });
    t.begin({ clientId: 'a', seq: 1 });
    t.begin({ clientId: 'b', seq: 1 });
    t.begin({ clientId: 'a', seq: 2 }); // 'a' used again: 'b' is now the least recently used
    t.begin({ clientId: 'c', seq: 1 });
    assert.deepEqual(t.check({ clientId: 'b', seq: 2 }), { kind: 'unknown' });
    assert.deepEqual(t.check({ clientId: 'a', seq: 2 }), { kind: 'duplicate', result: null });
    assert.equal(t.size, 2);
    assert.equal(t.tombstoneCount, 1);
  });

  it('reloads from the meta space to exactly the same table (order included)', () => {
    const limits = { maxSessions: 3, sessionTtlMs: 1000, maxClientIdBytes: 16 };
    const t = new SessionTable(limits);
    const store = new MemoryStore();
    let index = 0;
    const step = (f: () => void) => {
      f();
      persist(store, ++index, t.drainWrites());
    };
    step(() => t.advanceTime(100));
    for (const id of ['a', 'b', 'c', 'd']) step(() => t.begin({ clientId: id, seq: 1 }));
    step(() => t.setResult({ clientId: 'd', seq: 1 }, result(7)));
    const u = new SessionTable(limits);
    u.load((k) => store.getMeta(k));
    for (const id of ['a', 'b', 'c', 'd', 'e'])
      assert.deepEqual(u.check({ clientId: id, seq: 1 }), t.check({ clientId: id, seq: 1 }));
    // Both evict the same next victim.
    for (const x of [t, u]) x.begin({ clientId: 'e', seq: 1 });
    for (const id of ['b', 'c'])
      assert.deepEqual(u.check({ clientId: id, seq: 1 }), t.check({ clientId: id, seq: 1 }));
    assert.deepEqual(u.check({ clientId: 'b', seq: 1 }), { kind: 'unknown' });
  });
});
