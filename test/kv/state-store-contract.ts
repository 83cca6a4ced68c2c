/**
 * The StateStore contract: one suite that every backend must pass (run by memory-store.test.ts and
 * lmdb-store.test.ts). It covers every operation, etcd compare semantics (table-driven), binary
 * keys, scans, limits and batch atomicity, snapshots across backends, corrupt snapshot streams, and
 * reopening where the backend persists.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  InvalidStoreRequestError,
  SnapshotCorruptionError,
  StoreClosedError,
  StoreInvariantError,
  StoreLimitError,
} from '../../src/kv/errors.js';
import { SNAPSHOT_CHUNK_TARGET_BYTES } from '../../src/kv/snapshot-format.js';
import type { Compare, StateStore, Txn } from '../../src/kv/state-store.js';
import type { StoreLimits } from '../../src/kv/limits.js';
import { bytes, collect, deleteOp, dump, getOp, picture, plain, putOp, streamOf, text } from './helpers.js';

export interface StoreBackend {
  name: string;
  /** A fresh, empty store. */
  create(options?: { limits?: Partial<StoreLimits> }): Promise<StateStore>;
  /** Closes `store` and opens what it persisted again; null when the backend does not persist. */
  reopen: ((store: StateStore) => Promise<StateStore>) | null;
  /** Closes every store this backend created and removes their files. */
  cleanup(): Promise<void>;
}

const META_KEYS = ['conf', 'sessions', 'ünïcode'];

/** A compare without its key (distributes over the union, unlike a plain Omit). */
type Unkeyed<T> = T extends unknown ? Omit<T, 'key'> : never;
type UnkeyedCompare = Unkeyed<Compare>;

/** Applies one batch at the next applied index. */
function applyNext(store: StateStore, txns: Txn[], meta?: { key: string; value: Buffer | null }[]) {
  return store.apply({
    appliedIndex: store.appliedIndex() + 1,
    txns,
    ...(meta === undefined ? {} : { meta }),
  });
}

function expectSnapshotError(chunk: number, reason: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(
      error instanceof SnapshotCorruptionError,
      `expected SnapshotCorruptionError, got ${String(error)}`,
    );
    assert.equal(error.chunk, chunk, `wrong chunk in: ${error.message}`);
    assert.match(error.message, reason);
    assert.match(error.message, new RegExp(`snapshot chunk ${chunk}:`));
    return true;
  };
}

/** A store with a few keys, meta entries and several data chunks' worth of values. */
async function populated(backend: StoreBackend, seed: string, bigValues: number): Promise<StateStore> {
  const store = await backend.create();
  applyNext(
    store,
    [
      plain(
        putOp(text(`${seed}-a`), text('1')),
        putOp(bytes(0x00), text('zero')),
        putOp(bytes(0xff, 0xff), text('ff')),
      ),
    ],
    [
      { key: 'conf', value: text(`conf-${seed}`) },
      { key: 'sessions', value: Buffer.alloc(3000, 7) },
    ],
  );
  const big: Txn[] = [];
  for (let i = 0; i < bigValues; i++) {
    big.push(plain(putOp(text(`${seed}-big-${String(i).padStart(3, '0')}`), Buffer.alloc(300 * 1024, i))));
  }
  if (big.length > 0) applyNext(store, big);
  applyNext(store, [plain(putOp(text(`${seed}-a`), text('2')), deleteOp(bytes(0xff, 0xff)))]);
  return store;
}

export function runStateStoreContract(
  makeBackend: () => StoreBackend,
  allBackends: (() => StoreBackend)[],
): void {
  const subject = makeBackend().name;
  describe(`StateStore contract: ${subject}`, () => {
    let backend: StoreBackend;
    const peers: StoreBackend[] = [];
    beforeEach(() => {
      backend = makeBackend();
    });
    afterEach(async () => {
      await backend.cleanup();
      for (const peer of peers.splice(0)) await peer.cleanup();
    });

    it('starts empty', async () => {
      const store = await backend.create();
      assert.equal(store.get(text('a')), null);
      assert.deepEqual(store.range({}), []);
      assert.deepEqual(store.prefix(text('')), []);
      assert.equal(store.count(), 0);
      assert.equal(store.appliedIndex(), 0);
      assert.equal(store.revision(), 0);
      assert.equal(store.getMeta('conf'), null);
    });

    it('tracks create/mod revision and version per key, etcd style', async () => {
      const store = await backend.create();
      const [r1] = applyNext(store, [plain(putOp(text('k'), text('v1')), putOp(text('other'), text('o')))]);
      assert.deepEqual(r1, {
        succeeded: true,
        revision: 1,
        responses: [
          { type: 'put', revision: 1 },
          { type: 'put', revision: 1 },
        ],
      });
      assert.deepEqual(picture(store.get(text('k'))!), {
        key: text('k').toString('hex'),
        value: text('v1').toString('hex'),
        createRevision: 1,
        modRevision: 1,
        version: 1,
      });
      applyNext(store, [plain(putOp(text('k'), text('v2')))]);
      let kv = store.get(text('k'))!;
      assert.deepEqual([kv.createRevision, kv.modRevision, kv.version, kv.value.toString()], [1, 2, 2, 'v2']);
      const [del] = applyNext(store, [plain(deleteOp(text('k')))]);
      assert.deepEqual(del!.responses, [{ type: 'delete', deleted: 1, revision: 3 }]);
      assert.equal(store.get(text('k')), null);
      applyNext(store, [plain(putOp(text('k'), text('v3')))]);
      kv = store.get(text('k'))!;
      assert.deepEqual(
        [kv.createRevision, kv.modRevision, kv.version],
        [4, 4, 1],
        'recreated key starts over',
      );
      assert.equal(store.get(text('other'))!.modRevision, 1);
      assert.equal(store.revision(), 4);
      assert.equal(store.appliedIndex(), 4);
    });

    it('bumps the revision once per writing txn, never for read-only or no-op txns', async () => {
      const store = await backend.create();
      const results = applyNext(store, [
        plain(putOp(text('a'), text('1')), putOp(text('b'), text('2')), putOp(text('a'), text('3'))),
        plain(getOp(text('a'))),
        plain(deleteOp(text('missing'))),
        plain(deleteOp(text('missing')), putOp(text('c'), text('4'))),
        plain(),
      ]);
      assert.deepEqual(
        results.map((r) => r.revision),
        [1, 1, 1, 2, 2],
      );
      assert.deepEqual(results[2]!.responses, [{ type: 'delete', deleted: 0, revision: 1 }]);
      assert.deepEqual(results[3]!.responses, [
        { type: 'delete', deleted: 0, revision: 2 },
        { type: 'put', revision: 2 },
      ]);
      const a = store.get(text('a'))!;
      assert.deepEqual(
        [a.value.toString(), a.version, a.modRevision],
        ['3', 2, 1],
        'two puts in one txn: version +2',
      );
      const got = results[1]!.responses[0]!;
      assert.equal(got.type, 'get');
      assert.equal(got.type === 'get' && got.kv?.value.toString(), '3');
      assert.equal(store.revision(), 2);
    });

    it('lets later ops and txns of a batch see earlier writes', async () => {
      const store = await backend.create();
      const results = applyNext(store, [
        plain(putOp(text('x'), text('1')), getOp(text('x')), deleteOp(text('x')), getOp(text('x'))),
        {
          compare: [{ key: text('x'), target: 'exists', exists: false }],
          success: [putOp(text('y'), text('2'))],
          failure: [],
        },
        {
          compare: [{ key: text('y'), target: 'modRevision', op: '=', value: 2 }],
          success: [putOp(text('z'), text('3'))],
          failure: [putOp(text('wrong'), text('!'))],
        },
      ]);
      const [first, second, third] = results;
      assert.equal(first!.responses[1]!.type === 'get' && first!.responses[1]!.kv?.value.toString(), '1');
      assert.equal(first!.responses[3]!.type === 'get' && first!.responses[3]!.kv, null);
      assert.equal(second!.succeeded, true);
      assert.equal(third!.succeeded, true);
      assert.equal(store.get(text('z'))!.value.toString(), '3');
      assert.equal(store.get(text('wrong')), null);
    });

    describe('compare semantics (etcd), table-driven', () => {
      // K: created at revision 1, rewritten at revision 3 -> value 'm', version 2, create 1, mod 3.
      // M: missing -> version/create/mod read as 0 and every value compare is false.
      type Row = { compare: UnkeyedCompare; existing: boolean; missing: boolean };
      const v = (op: '=' | '!=' | '<' | '>', value: Buffer): UnkeyedCompare => ({
        target: 'value',
        op,
        value,
      });
      const n = (
        target: 'version' | 'createRevision' | 'modRevision',
        op: '=' | '!=' | '<' | '>',
        value: number,
      ): UnkeyedCompare => ({ target, op, value });
      const rows: Row[] = [
        { compare: v('=', text('m')), existing: true, missing: false },
        { compare: v('=', text('n')), existing: false, missing: false },
        { compare: v('!=', text('n')), existing: true, missing: false },
        { compare: v('!=', text('m')), existing: false, missing: false },
        { compare: v('<', text('n')), existing: true, missing: false },
        { compare: v('<', text('m')), existing: false, missing: false },
        { compare: v('<', text('m\u0000')), existing: true, missing: false },
        { compare: v('>', text('l')), existing: true, missing: false },
        { compare: v('>', text('m')), existing: false, missing: false },
        { compare: v('>', Buffer.alloc(0)), existing: true, missing: false },
        { compare: v('<', bytes(0xff)), existing: true, missing: false },
        { compare: n('version', '=', 2), existing: true, missing: false },
        { compare: n('version', '=', 0), existing: false, missing: true },
        { compare: n('version', '!=', 2), existing: false, missing: true },
        { compare: n('version', '<', 3), existing: true, missing: true },
        { compare: n('version', '>', 1), existing: true, missing: false },
        { compare: n('version', '>', 2), existing: false, missing: false },
        { compare: n('createRevision', '=', 1), existing: true, missing: false },
        { compare: n('createRevision', '=', 0), existing: false, missing: true },
        { compare: n('createRevision', '<', 1), existing: false, missing: true },
        { compare: n('createRevision', '>', 0), existing: true, missing: false },
        { compare: n('createRevision', '!=', 3), existing: true, missing: true },
        { compare: n('modRevision', '=', 3), existing: true, missing: false },
        { compare: n('modRevision', '<', 3), existing: false, missing: true },
        { compare: n('modRevision', '>', 2), existing: true, missing: false },
        { compare: n('modRevision', '!=', 0), existing: true, missing: false },
        { compare: { target: 'exists', exists: true }, existing: true, missing: false },
        { compare: { target: 'exists', exists: false }, existing: false, missing: true },
      ];
      it(`holds for all ${rows.length * 2} cases`, async () => {
        const store = await backend.create();
        applyNext(store, [plain(putOp(text('K'), text('a')))]);
        applyNext(store, [plain(putOp(text('other'), text('o')))]);
        applyNext(store, [plain(putOp(text('K'), text('m')))]);
        const txns: Txn[] = [];
        const expected: boolean[] = [];
        for (const row of rows) {
          for (const [key, want] of [
            [text('K'), row.existing],
            [text('M'), row.missing],
          ] as const) {
            txns.push({ compare: [{ ...row.compare, key } as Compare], success: [], failure: [] });
            expected.push(want);
          }
        }
        const results = applyNext(store, txns);
        const failures = results
          .map((r, i) => ({ i, got: r.succeeded, want: expected[i] }))
          .filter((x) => x.got !== x.want)
          .map(
            (x) => `${JSON.stringify(rows[x.i >> 1]!.compare)} on ${x.i % 2 === 0 ? 'K' : 'M'}: got ${x.got}`,
          );
        assert.deepEqual(failures, []);
        assert.equal(store.revision(), 3, 'compares alone write nothing');
      });

      it('requires every compare to hold and runs the failure branch otherwise', async () => {
        const store = await backend.create();
        applyNext(store, [plain(putOp(text('K'), text('m')))]);
        const [both, oneFails] = applyNext(store, [
          {
            compare: [
              { key: text('K'), target: 'version', op: '=', value: 1 },
              { key: text('K'), target: 'value', op: '=', value: text('m') },
            ],
            success: [putOp(text('s1'), text('yes'))],
            failure: [putOp(text('f1'), text('no'))],
          },
          {
            compare: [
              { key: text('K'), target: 'version', op: '=', value: 2 },
              { key: text('K'), target: 'value', op: '=', value: text('m') },
            ],
            success: [putOp(text('s2'), text('yes'))],
            failure: [putOp(text('f2'), text('no')), getOp(text('K'))],
          },
        ]);
        assert.equal(both!.succeeded, true);
        assert.equal(oneFails!.succeeded, false);
        assert.equal(oneFails!.responses.length, 2);
        assert.deepEqual(
          store.range({}).map((kv) => kv.key.toString()),
          ['K', 'f2', 's1'],
        );
      });
    });

    it('orders binary keys bytewise (0x00 and 0xff included) in ranges, prefixes and counts', async () => {
      const store = await backend.create();
      const keys = [
        bytes(0x00),
        bytes(0x00, 0x00),
        bytes(0x00, 0x01),
        bytes(0x00, 0xff),
        bytes(0x01),
        bytes(0x7f, 0x80),
        bytes(0x80),
        bytes(0xfe, 0xff, 0xff),
        bytes(0xff),
        bytes(0xff, 0x00),
        bytes(0xff, 0xff),
        bytes(0xff, 0xff, 0xff),
      ];
      const shuffled = [...keys].reverse();
      applyNext(
        store,
        shuffled.map((key) => plain(putOp(key, Buffer.concat([bytes(0xab), key])))),
      );
      const hex = (list: { key: Buffer }[]) => list.map((kv) => kv.key.toString('hex'));
      const sorted = keys.map((k) => k.toString('hex'));
      assert.deepEqual(hex(store.range({})), sorted);
      assert.deepEqual(hex(store.range({ reverse: true })), [...sorted].reverse());
      assert.deepEqual(hex(store.range({ reverse: true, limit: 3 })), [...sorted].reverse().slice(0, 3));
      assert.deepEqual(hex(store.range({ limit: 2 })), sorted.slice(0, 2));
      assert.deepEqual(hex(store.range({ start: bytes(0x00, 0x01), end: bytes(0xff) })), sorted.slice(2, 8));
      assert.deepEqual(
        hex(store.range({ start: bytes(0x00, 0x01), end: bytes(0xff), reverse: true, limit: 4 })),
        sorted.slice(2, 8).reverse().slice(0, 4),
      );
      assert.deepEqual(hex(store.range({ start: bytes(0xff), end: bytes(0xff) })), []);
      assert.deepEqual(hex(store.range({ start: bytes(0xff, 0xff), end: bytes(0x00) })), []);
      assert.deepEqual(hex(store.range({ end: Buffer.alloc(0) })), [], 'empty end: nothing is below it');
      assert.deepEqual(
        hex(store.range({ start: Buffer.alloc(0) })),
        sorted,
        'empty start: from the first key',
      );
      assert.deepEqual(hex(store.prefix(bytes(0x00))), sorted.slice(0, 4));
      assert.deepEqual(hex(store.prefix(bytes(0x00), { reverse: true, limit: 2 })), ['00ff', '0001']);
      assert.deepEqual(hex(store.prefix(bytes(0xff))), sorted.slice(8));
      assert.deepEqual(hex(store.prefix(bytes(0xff, 0xff))), ['ffff', 'ffffff']);
      assert.deepEqual(hex(store.prefix(bytes(0xff, 0xff), { reverse: true })), ['ffffff', 'ffff']);
      assert.deepEqual(hex(store.prefix(Buffer.alloc(0), { limit: 1, reverse: true })), ['ffffff']);
      assert.deepEqual(hex(store.prefix(bytes(0x02))), []);
      assert.equal(store.count(), keys.length);
      assert.equal(store.count({ start: bytes(0x00, 0x00) }), keys.length - 1);
      assert.equal(store.count({ end: bytes(0x01) }), 4);
      assert.equal(store.count({ start: bytes(0x7f), end: bytes(0xff, 0x00) }), 4);
      assert.equal(store.count({ start: bytes(0xff), end: bytes(0x00) }), 0);
      const kv = store.get(bytes(0xff, 0x00))!;
      assert.deepEqual(kv.value, bytes(0xab, 0xff, 0x00));
      assert.deepEqual(store.range({ start: bytes(0x80), limit: 1 })[0]!.value, bytes(0xab, 0x80));
    });

    it('keeps values binary-safe and returns caller-owned buffers', async () => {
      const store = await backend.create();
      const value = Buffer.from([0, 255, 0, 1, 2, 0xfe, 0]);
      const key = bytes(1, 0, 2);
      applyNext(store, [plain(putOp(key, value), putOp(text('empty'), Buffer.alloc(0)))]);
      value.fill(9);
      const got = store.get(bytes(1, 0, 2))!;
      assert.deepEqual(got.value, Buffer.from([0, 255, 0, 1, 2, 0xfe, 0]));
      got.value.fill(7);
      store.range({})[0]!.value.fill(7);
      assert.deepEqual(store.get(bytes(1, 0, 2))!.value, Buffer.from([0, 255, 0, 1, 2, 0xfe, 0]));
      assert.deepEqual(store.get(text('empty'))!.value, Buffer.alloc(0));
    });

    it('keeps the meta space apart from user keys', async () => {
      const store = await backend.create();
      applyNext(
        store,
        [plain(putOp(text('conf'), text('user')))],
        [
          { key: 'conf', value: text('raft-conf') },
          { key: 'ünïcode', value: bytes(0, 1) },
        ],
      );
      assert.equal(store.getMeta('conf')!.toString(), 'raft-conf');
      assert.deepEqual(store.getMeta('ünïcode'), bytes(0, 1));
      assert.equal(store.get(text('conf'))!.value.toString(), 'user');
      assert.equal(store.count(), 1);
      assert.deepEqual(
        store.range({}).map((kv) => kv.key.toString()),
        ['conf'],
      );
      assert.throws(
        () => applyNext(store, [], [{ key: 'x\uD800', value: text('x') }]),
        /well-formed Unicode/,
      );
      applyNext(store, [], [{ key: 'conf', value: null }]);
      assert.equal(store.getMeta('conf'), null);
      assert.equal(store.revision(), 1, 'meta writes do not touch the revision');
      assert.equal(store.appliedIndex(), 2);
    });

    it('applies an empty batch by advancing only the applied index', async () => {
      const store = await backend.create();
      assert.deepEqual(store.apply({ appliedIndex: 7, txns: [] }), []);
      assert.equal(store.appliedIndex(), 7);
      assert.equal(store.revision(), 0);
    });

    it('asserts that the applied index strictly increases', async () => {
      const store = await backend.create();
      store.apply({ appliedIndex: 5, txns: [plain(putOp(text('a'), text('1')))] });
      for (const appliedIndex of [5, 4]) {
        assert.throws(
          () => store.apply({ appliedIndex, txns: [plain(putOp(text('b'), text('2')))] }),
          StoreInvariantError,
        );
      }
      assert.throws(() => store.apply({ appliedIndex: 6.5, txns: [] }), InvalidStoreRequestError);
      assert.equal(store.get(text('b')), null);
      assert.equal(store.appliedIndex(), 5);
    });

    it('enforces key and value limits with errors naming the limit', async () => {
      const store = await backend.create({ limits: { maxKeyBytes: 8, maxValueBytes: 16 } });
      const limitError = (limit: string) => (error: unknown) =>
        error instanceof StoreLimitError && error.limit === limit && error.message.includes(limit);
      assert.throws(
        () => applyNext(store, [plain(putOp(Buffer.alloc(9, 1), text('v')))]),
        limitError('maxKeyBytes'),
      );
      assert.throws(
        () => applyNext(store, [plain(putOp(text('k'), Buffer.alloc(17)))]),
        limitError('maxValueBytes'),
      );
      assert.throws(() => store.get(Buffer.alloc(9, 1)), limitError('maxKeyBytes'));
      assert.throws(
        () => applyNext(store, [plain(putOp(Buffer.alloc(0), text('v')))]),
        InvalidStoreRequestError,
      );
      assert.throws(() => store.get(Buffer.alloc(0)), InvalidStoreRequestError);
      const notBuffer = new Uint8Array([1]) as Buffer;
      assert.throws(() => applyNext(store, [plain(putOp(notBuffer, text('v')))]), InvalidStoreRequestError);
      assert.throws(() => store.range({ start: notBuffer }), InvalidStoreRequestError);
      applyNext(store, [plain(putOp(Buffer.alloc(8, 1), Buffer.alloc(16, 2)))]);
      assert.equal(store.get(Buffer.alloc(8, 1))!.value.length, 16);
    });

    it('rejects a whole batch when any part is invalid, leaving nothing behind', async () => {
      const store = await backend.create({ limits: { maxValueBytes: 16, maxMetaValueBytes: 32 } });
      applyNext(store, [plain(putOp(text('keep'), text('v')))], [{ key: 'conf', value: text('c1') }]);
      const before = dump(store, META_KEYS);
      const bad: Txn[][] = [
        [plain(putOp(text('a'), text('ok'))), plain(putOp(text('b'), Buffer.alloc(17)))],
        // The over-limit value sits in a branch the compare would not select: still rejected.
        [
          plain(deleteOp(text('keep'))),
          {
            compare: [],
            success: [putOp(text('c'), text('ok'))],
            failure: [putOp(text('d'), Buffer.alloc(17))],
          },
        ],
        [
          plain(putOp(text('a'), text('ok'))),
          { compare: [], success: [{ type: 'nope' } as never], failure: [] },
        ],
        [
          plain(putOp(text('a'), text('ok'))),
          { compare: [{ key: text('a'), target: 'value', op: '~' } as never], success: [], failure: [] },
        ],
      ];
      for (const txns of bad) {
        assert.throws(() => applyNext(store, txns, [{ key: 'conf', value: text('c2') }]));
        assert.deepEqual(dump(store, META_KEYS), before);
      }
      assert.throws(
        () =>
          applyNext(store, [plain(putOp(text('a'), text('ok')))], [{ key: 'conf', value: Buffer.alloc(33) }]),
        (error: unknown) => error instanceof StoreLimitError && error.limit === 'maxMetaValueBytes',
      );
      assert.throws(
        () => applyNext(store, [plain(putOp(text('a'), text('ok')))], [{ key: '', value: text('x') }]),
        InvalidStoreRequestError,
      );
      assert.deepEqual(dump(store, META_KEYS), before);
      applyNext(store, [plain(putOp(text('a'), text('ok')))]);
      assert.equal(store.revision(), 2);
    });

    it('bounds range results: an explicit limit within maxRangeLimit, and never a silent cut', async () => {
      const store = await backend.create({ limits: { maxRangeLimit: 5 } });
      applyNext(
        store,
        Array.from({ length: 5 }, (_, i) => plain(putOp(text(`k${i}`), text('v')))),
      );
      assert.equal(store.range({}).length, 5, 'exactly the maximum is fine');
      applyNext(store, [plain(putOp(text('k5'), text('v')))]);
      assert.throws(
        () => store.range({}),
        (e: unknown) => e instanceof StoreLimitError && e.limit === 'maxRangeLimit',
      );
      assert.throws(() => store.prefix(text('k')), StoreLimitError);
      assert.equal(store.range({ limit: 5 }).length, 5);
      assert.equal(store.range({ start: text('k2') }).length, 4);
      assert.throws(() => store.range({ limit: 6 }), StoreLimitError);
      assert.throws(() => store.range({ limit: 0 }), InvalidStoreRequestError);
      assert.throws(() => store.range({ limit: 1.5 }), InvalidStoreRequestError);
      assert.equal(store.count(), 6, 'count has no result limit');
    });

    it('round-trips snapshots into every backend, meta and revisions included', async () => {
      const source = await populated(backend, 'src', 10);
      const expected = dump(source, META_KEYS);
      const chunks = await collect(source.exportSnapshot(text('raft-meta')));
      assert.ok(chunks.length >= 5, `several data chunks expected, got ${chunks.length} chunks`);
      for (const chunk of chunks) assert.ok(chunk.length <= SNAPSHOT_CHUNK_TARGET_BYTES + 310 * 1024);
      for (const make of allBackends) {
        const peer = make();
        peers.push(peer);
        const target = await peer.create();
        applyNext(
          target,
          [plain(putOp(text('stale'), text('x')))],
          [{ key: 'sessions', value: text('old') }],
        );
        const header = await target.importSnapshot(streamOf(chunks));
        assert.deepEqual(header.metadata, text('raft-meta'));
        assert.equal(header.appliedIndex, expected.appliedIndex);
        assert.equal(header.revision, expected.revision);
        assert.equal(header.keyCount, expected.count);
        assert.deepEqual(dump(target, META_KEYS), expected, `into ${peer.name}`);
        // The imported store carries on from the snapshot's revision.
        const [result] = applyNext(target, [plain(putOp(text('after'), text('1')))]);
        assert.equal(result!.revision, expected.revision + 1);
        // And back: the peer's export imports into this backend.
        const back = await backend.create();
        await back.importSnapshot(await collect(target.exportSnapshot(Buffer.alloc(0))));
        assert.deepEqual(dump(back, META_KEYS), dump(target, META_KEYS), `back from ${peer.name}`);
      }
    });

    it('exports the view of the moment it was called while applies continue', async () => {
      const store = await populated(backend, 'v', 3);
      const expected = dump(store, META_KEYS);
      const stream = store.exportSnapshot(text('m'));
      applyNext(
        store,
        [plain(putOp(text('new'), text('1')), deleteOp(text('v-a')))],
        [{ key: 'conf', value: null }],
      );
      const first = await stream.next();
      assert.equal(first.done, false);
      applyNext(store, [plain(putOp(text('v-big-000'), text('changed')))]);
      const chunks = [first.value as Buffer, ...(await collect(stream))];
      applyNext(store, [plain(putOp(text('newer'), text('2')))]);
      const target = await backend.create();
      await target.importSnapshot(chunks);
      assert.deepEqual(dump(target, META_KEYS), expected);
    });

    it('rejects corrupt, reordered, spliced and truncated streams and keeps the old state', async () => {
      const source = await populated(backend, 'src', 10);
      const chunks = await collect(source.exportSnapshot(text('meta-a')));
      const other = await populated(backend, 'oth', 10);
      const otherChunks = await collect(other.exportSnapshot(text('meta-b')));
      const last = chunks.length - 1;
      assert.ok(chunks.length >= 5);
      const target = await backend.create();
      applyNext(
        target,
        [plain(putOp(text('mine'), text('1')), putOp(bytes(0), text('0')))],
        [{ key: 'conf', value: text('target-conf') }],
      );
      const before = dump(target, META_KEYS);
      const flip = (i: number, at: number) =>
        chunks.map((c, j) => {
          if (j !== i) return c;
          const copy = Buffer.from(c);
          copy[at]! ^= 0x10;
          return copy;
        });
      const cases: [string, Buffer[], (e: unknown) => boolean][] = [
        ['byte flip in a data chunk', flip(2, 5000), expectSnapshotError(2, /checksum mismatch/)],
        ['byte flip in the header', flip(0, 22), expectSnapshotError(0, /checksum mismatch/)],
        ['byte flip in the sequence field', flip(1, 8), expectSnapshotError(1, /checksum mismatch/)],
        [
          'byte flip in the trailer',
          flip(last, chunks[last]!.length - 6),
          expectSnapshotError(last, /checksum/),
        ],
        [
          'missing trailer',
          chunks.slice(0, last),
          expectSnapshotError(last, /before its trailer \(truncated\)/),
        ],
        ['truncated stream', chunks.slice(0, 2), expectSnapshotError(2, /truncated/)],
        [
          'truncated chunk',
          chunks.map((c, j) => (j === 1 ? c.subarray(0, c.length - 10) : c)),
          expectSnapshotError(1, /payload length/),
        ],
        [
          'reordered chunks',
          [chunks[0]!, chunks[2]!, chunks[1]!, ...chunks.slice(3)],
          expectSnapshotError(1, /sequence number 2, expected 1/),
        ],
        [
          'duplicated chunk',
          [chunks[0]!, chunks[1]!, chunks[1]!, ...chunks.slice(2)],
          expectSnapshotError(2, /sequence number 1, expected 2/),
        ],
        [
          'missing middle chunk',
          [...chunks.slice(0, 2), ...chunks.slice(3)],
          expectSnapshotError(2, /sequence number 3, expected 2/),
        ],
        [
          'chunk spliced from another stream',
          chunks.map((c, j) => (j === 2 ? otherChunks[2]! : c)),
          expectSnapshotError(2, /different snapshot stream/),
        ],
        [
          'chunk after the trailer',
          [...chunks, chunks[1]!],
          expectSnapshotError(chunks.length, /after the trailer/),
        ],
        ['data before the header', chunks.slice(1), expectSnapshotError(0, /sequence number 1, expected 0/)],
        ['empty stream', [], expectSnapshotError(0, /empty/)],
        ['not a snapshot', [Buffer.alloc(64, 1)], expectSnapshotError(0, /magic/)],
        ['tiny chunk', [Buffer.alloc(3)], expectSnapshotError(0, /shorter than/)],
      ];
      for (const [name, stream, check] of cases) {
        await assert.rejects(target.importSnapshot(streamOf(stream)), check, name);
        assert.deepEqual(dump(target, META_KEYS), before, `state changed after: ${name}`);
      }
      // A transport that fails half-way: its error comes through, and nothing changes.
      async function* failing() {
        yield chunks[0]!;
        yield chunks[1]!;
        throw new Error('peer connection lost');
      }
      await assert.rejects(target.importSnapshot(failing()), /peer connection lost/);
      assert.deepEqual(dump(target, META_KEYS), before);
      // The store still works, and a good stream still imports.
      applyNext(target, [plain(putOp(text('mine'), text('2')))]);
      await target.importSnapshot(chunks);
      assert.deepEqual(dump(target, META_KEYS), dump(source, META_KEYS));
    });

    it('refuses apply during an import and a second concurrent import', async () => {
      const source = await populated(backend, 's', 1);
      const chunks = await collect(source.exportSnapshot(Buffer.alloc(0)));
      const target = await backend.create();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      async function* slow() {
        yield chunks[0]!;
        await gate;
        yield* chunks.slice(1);
      }
      const importing = target.importSnapshot(slow());
      await new Promise((resolve) => setImmediate(resolve));
      assert.throws(() => applyNext(target, [plain(putOp(text('x'), text('1')))]), StoreInvariantError);
      await assert.rejects(target.importSnapshot(chunks), StoreInvariantError);
      assert.equal(target.count(), 0, 'reads see the old state during the import');
      release();
      await importing;
      assert.deepEqual(dump(target, META_KEYS), dump(source, META_KEYS));
    });

    it('syncs, closes, and refuses use after close', async () => {
      const store = await backend.create();
      applyNext(store, [plain(putOp(text('a'), text('1')))]);
      await store.sync();
      await store.close();
      assert.throws(() => store.get(text('a')), StoreClosedError);
      assert.throws(() => applyNext(store, []), StoreClosedError);
      assert.throws(() => store.exportSnapshot(Buffer.alloc(0)), StoreClosedError);
      await store.close();
    });

    it('applyDeferred: the same results and state as apply; reads see it at once, appliedIndex and meta when it lands', async () => {
      const direct = await backend.create();
      const deferred = await backend.create();
      const batches: Array<{ txns: Txn[]; meta?: { key: string; value: Buffer | null }[] }> = [
        {
          txns: [plain(putOp(text('k'), text('v1')), putOp(text('x'), text('1')))],
          meta: [{ key: 'conf', value: text('c1') }],
        },
        {
          txns: [
            {
              compare: [{ key: text('k'), target: 'version', op: '=', value: 1 }],
              success: [putOp(text('k'), text('v2')), deleteOp(text('x'))],
              failure: [getOp(text('k'))],
            },
            plain(getOp(text('k'))),
          ],
          meta: [
            { key: 'conf', value: null },
            { key: 'sessions', value: text('s') },
          ],
        },
      ];
      for (const [i, b] of batches.entries()) {
        const expected = applyNext(direct, b.txns, b.meta);
        const before = dump(deferred, META_KEYS);
        const pending = deferred.applyDeferred({
          appliedIndex: i + 1,
          txns: b.txns,
          ...(b.meta ? { meta: b.meta } : {}),
        });
        // Reads see the batch at once (keys, values, versions, revision, counts); its applied
        // index and meta writes show when it lands. Nothing else may touch the store meanwhile.
        const early = dump(deferred, META_KEYS);
        const after = dump(direct, META_KEYS);
        assert.deepEqual(
          { ...early, appliedIndex: after.appliedIndex, meta: after.meta },
          after,
          'reads see the computed batch',
        );
        assert.equal(early.appliedIndex, before.appliedIndex, 'appliedIndex moves when it lands');
        assert.deepEqual(early.meta, before.meta, 'meta writes show when it lands');
        for (const key of ['k', 'x', 'nope']) {
          assert.deepEqual(deferred.get(text(key)), direct.get(text(key)), `get ${key}`);
        }
        assert.deepEqual(
          deferred.range({ reverse: true, limit: 1 }),
          direct.range({ reverse: true, limit: 1 }),
        );
        assert.equal(
          deferred.count({ start: text('k'), end: text('y') }),
          direct.count({ start: text('k'), end: text('y') }),
        );
        assert.throws(() => applyNext(deferred, []), StoreInvariantError);
        await assert.rejects(deferred.importSnapshot([]), StoreInvariantError);
        assert.deepEqual(await pending, expected);
        assert.deepEqual(dump(deferred, META_KEYS), dump(direct, META_KEYS));
      }
      // A batch refused by validation throws at once and leaves nothing pending.
      assert.throws(() => deferred.applyDeferred({ appliedIndex: 1, txns: [] }), StoreInvariantError);
      applyNext(deferred, [plain(putOp(text('after'), text('a')))]);
      assert.equal(deferred.get(text('after'))!.value.toString(), 'a');
    });

    it('applyDeferred pipelines: each batch reads the results of the ones still committing', async () => {
      const direct = await backend.create();
      const deferred = await backend.create();
      // Each batch bumps a counter key only if its version is what the earlier batches left.
      const bump = (version: number): Txn => ({
        compare: [{ key: text('n'), target: 'version', op: '=', value: version }],
        success: [putOp(text('n'), text(String(version + 1))), putOp(text(`seen-${version}`), text('y'))],
        failure: [deleteOp(text('n'))],
      });
      const rounds = 6;
      const expected: unknown[] = [];
      for (let v = 0; v < rounds; v++) expected.push(applyNext(direct, [bump(v)]));
      const landed: Promise<unknown>[] = [];
      const got: unknown[] = [];
      await new Promise<void>((resolve, reject) => {
        const submit = (v: number): void => {
          try {
            landed.push(
              deferred.applyDeferred({ appliedIndex: v + 1, txns: [bump(v)] }, (results) => {
                got.push(results);
                if (v + 1 < rounds) submit(v + 1);
                else resolve();
              }),
            );
          } catch (e) {
            reject(e);
          }
        };
        submit(0);
      });
      await Promise.all(landed);
      assert.deepEqual(got, expected);
      await deferred.sync();
      assert.deepEqual(dump(deferred, META_KEYS), dump(direct, META_KEYS));
    });

    it('applyDeferred followed by sync() survives a reopen', async (t) => {
      if (backend.reopen === null) {
        t.skip(`${backend.name} does not persist`);
        return;
      }
      let store = await populated(backend, 'd', 0);
      const pending = store.applyDeferred({
        appliedIndex: store.appliedIndex() + 1,
        txns: [plain(putOp(text('d-late'), text('z')))],
        meta: [{ key: 'ünïcode', value: text('u') }],
      });
      await store.sync(); // settles the pending apply first
      await pending;
      const expected = dump(store, META_KEYS);
      assert.equal(store.get(text('d-late'))!.value.toString(), 'z');
      store = await backend.reopen(store);
      assert.deepEqual(dump(store, META_KEYS), expected);
    });

    it('keeps state, applied index, revision and meta across a reopen', async (t) => {
      if (backend.reopen === null) {
        t.skip(`${backend.name} does not persist`);
        return;
      }
      let store = await populated(backend, 'r', 2);
      applyNext(store, [plain(putOp(bytes(0xff), text('last')))], [{ key: 'ünïcode', value: text('u') }]);
      const expected = dump(store, META_KEYS);
      store = await backend.reopen(store);
      assert.deepEqual(dump(store, META_KEYS), expected);
      const [result] = applyNext(store, [plain(putOp(text('r-a'), text('3')))]);
      assert.equal(result!.revision, expected.revision + 1);
      assert.equal(store.get(text('r-a'))!.version, 3);
      // An imported state survives a reopen too.
      const source = await populated(backend, 'imp', 1);
      await store.importSnapshot(await collect(source.exportSnapshot(Buffer.alloc(0))));
      store = await backend.reopen(store);
      assert.deepEqual(dump(store, META_KEYS), dump(source, META_KEYS));
    });
  });
}
