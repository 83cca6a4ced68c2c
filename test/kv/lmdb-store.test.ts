import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { open } from 'lmdb';
import { StoreClosedError, StoreLimitError } from '../../src/kv/errors.js';
import { MAX_CONCURRENT_EXPORTS, MAX_KEY_BYTES } from '../../src/kv/limits.js';
import {
  LmdbStore,
  type LmdbStoreOptions,
  MAX_HELD_BATCHES,
  MAX_COMMIT_WRITES,
} from '../../src/kv/lmdb-store.js';
import { MemoryStore } from '../../src/kv/memory-store.js';
import type { StateStore } from '../../src/kv/state-store.js';
import { lmdbBackend, memoryBackend } from './backends.js';
import { bytes, collect, deleteOp, dump, plain, putOp, removeDir, tempDir, text } from './helpers.js';
import { runStateStoreContract } from './state-store-contract.js';

const backends = [
  memoryBackend,
  () => lmdbBackend(),
  () => lmdbBackend({ inlineKeyMaxBytes: 2 }),
  () => lmdbBackend({ formatVersion: 1 }),
];

runStateStoreContract(() => lmdbBackend(), backends);
// Every key longer than 2 bytes goes through the long-key bucket path.
runStateStoreContract(() => lmdbBackend({ inlineKeyMaxBytes: 2 }), backends);
// Stores created before compact entry headers (format 1), in both key paths.
runStateStoreContract(() => lmdbBackend({ formatVersion: 1 }), backends);
runStateStoreContract(() => lmdbBackend({ formatVersion: 1, inlineKeyMaxBytes: 2 }), backends);
// Deferred batches held back to share commits.
runStateStoreContract(() => lmdbBackend({ commitDelayMs: 5 }), backends);

describe('LmdbStore', () => {
  let dir: string;
  const opened: LmdbStore[] = [];
  const openStore = (name: string, options: LmdbStoreOptions = {}): LmdbStore => {
    const store = LmdbStore.open(join(dir, name), options);
    opened.push(store);
    return store;
  };
  beforeEach(() => {
    dir = tempDir('kv-lmdb');
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    removeDir(dir);
  });

  it('stores keys up to the 4 KiB limit, beyond what LMDB indexes, in bytewise order', async () => {
    let store = openStore('long');
    const inline = store.inlineKeyMaxBytes;
    assert.ok(inline >= 511 && inline < MAX_KEY_BYTES, `inline key limit ${inline}`);
    const base = Buffer.alloc(inline, 0x61);
    const keys = [
      base.subarray(0, inline - 1),
      base,
      Buffer.concat([base, bytes(0x00)]),
      Buffer.concat([base, bytes(0x00, 0x00)]),
      Buffer.concat([base, bytes(0x01)]),
      Buffer.concat([base, Buffer.alloc(MAX_KEY_BYTES - inline, 0xff)]),
      Buffer.concat([base.subarray(0, inline - 1), bytes(0x62)]),
      Buffer.concat([base.subarray(0, inline - 1), bytes(0x62), Buffer.alloc(600, 0x10)]),
      Buffer.alloc(MAX_KEY_BYTES, 0x7a),
    ];
    const sorted = [...keys].sort(Buffer.compare).map((k) => k.toString('hex'));
    store.apply({
      appliedIndex: 1,
      txns: [...keys].reverse().map((key, i) => plain(putOp(key, Buffer.from(`v${i}`)))),
    });
    const hex = (list: { key: Buffer }[]) => list.map((kv) => kv.key.toString('hex'));
    const check = (s: StateStore) => {
      assert.deepEqual(hex(s.range({})), sorted);
      assert.deepEqual(hex(s.range({ reverse: true })), [...sorted].reverse());
      assert.deepEqual(hex(s.prefix(base)), sorted.slice(1, 6));
      assert.deepEqual(hex(s.prefix(base, { reverse: true, limit: 2 })), sorted.slice(4, 6).reverse());
      assert.deepEqual(
        hex(s.range({ start: keys[3], end: keys[5] })),
        [keys[3]!, keys[4]!].map((k) => k.toString('hex')),
      );
      assert.deepEqual(
        hex(s.range({ start: keys[3], end: keys[5], reverse: true })),
        [keys[4]!, keys[3]!].map((k) => k.toString('hex')),
      );
      assert.equal(s.count({ start: keys[2], end: keys[6] }), 4);
      assert.equal(s.count(), keys.length);
      for (const key of keys) assert.equal(s.get(key)!.key, key);
      assert.equal(s.get(Buffer.concat([base, bytes(0x02)])), null);
    };
    check(store);
    const [result] = store.apply({
      appliedIndex: 2,
      txns: [
        {
          compare: [{ key: keys[5]!, target: 'version', op: '=', value: 1 }],
          success: [putOp(keys[5]!, text('again')), deleteOp(keys[3]!)],
          failure: [],
        },
      ],
    });
    assert.equal(result!.succeeded, true);
    assert.equal(store.get(keys[5]!)!.version, 2);
    assert.equal(store.get(keys[3]!), null);
    store.apply({ appliedIndex: 3, txns: [plain(putOp(keys[3]!, text('back')))] });
    check(store);
    const expected = dump(store);
    await store.close();
    store = openStore('long');
    assert.deepEqual(dump(store), expected);
    const memory = new MemoryStore();
    await memory.importSnapshot(await collect(store.exportSnapshot(Buffer.alloc(0))));
    assert.deepEqual(dump(memory), expected);
    const again = openStore('long-again');
    await again.importSnapshot(await collect(memory.exportSnapshot(Buffer.alloc(0))));
    check(again);
    assert.deepEqual(dump(again), expected);
  });

  it('reads through held batches exactly as a store that applied them (ranges, reverse, limits, counts, long keys)', async () => {
    // A differential test with a fixed seed: held batches (the overlay in front of LMDB) against a
    // MemoryStore that applied the same batches, before and after they land.
    let seed = 0x5eed;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const keyOf = (): Buffer => Buffer.from(Array.from({ length: 1 + random(4) }, () => 0x61 + random(3)));
    for (const inlineKeyMaxBytes of [2, undefined]) {
      const store = openStore(`overlay-${inlineKeyMaxBytes ?? 'default'}`, {
        commitDelayMs: 1000,
        ...(inlineKeyMaxBytes === undefined ? {} : { inlineKeyMaxBytes }),
      });
      const model = new MemoryStore();
      const compare = (when: string): void => {
        for (let i = 0; i < 40; i++) {
          const key = keyOf();
          assert.deepEqual(store.get(key), model.get(key), `${when}: get ${key}`);
          const options = {
            ...(random(3) > 0 ? { start: keyOf() } : {}),
            ...(random(3) > 0 ? { end: keyOf() } : {}),
            reverse: random(2) === 1,
            limit: 1 + random(12),
          };
          assert.deepEqual(
            store.range(options),
            model.range(options),
            `${when}: range ${JSON.stringify(options)}`,
          );
          const prefix = keyOf().subarray(0, 1 + random(2));
          assert.deepEqual(
            store.prefix(prefix, { reverse: options.reverse }),
            model.prefix(prefix, { reverse: options.reverse }),
          );
          const span = { start: options.start, end: options.end };
          assert.equal(store.count(span), model.count(span), `${when}: count ${JSON.stringify(span)}`);
        }
        assert.equal(store.count(), model.count());
        assert.equal(store.revision(), model.revision());
      };
      const landed: Promise<unknown>[] = [];
      for (let index = 1; index <= 60; index++) {
        const ops = Array.from({ length: 1 + random(4) }, () =>
          random(3) === 0 ? deleteOp(keyOf()) : putOp(keyOf(), Buffer.from(`v${index}-${random(100)}`)),
        );
        const batch = { appliedIndex: index, txns: ops.map((op) => plain(op)) };
        model.apply(batch);
        landed.push(store.applyDeferred(batch));
        if (index % 20 === 0) compare(`held through ${index}`);
        if (index === 40) {
          store.commitPending();
          await Promise.all(landed);
          assert.equal(store.appliedIndex(), 40);
          compare('landed through 40');
        }
      }
      assert.equal(store.appliedIndex(), 40, 'batches 41-60 are still held');
      store.commitPending();
      await Promise.all(landed);
      assert.equal(store.appliedIndex(), 60);
      compare('all landed');
    }
  });

  it('holds deferred batches for commitDelayMs and commits them together, or at once on commitPending()', async () => {
    const store = openStore('held', { commitDelayMs: 1000 });
    const landed: number[] = [];
    const computed: number[] = [];
    const t0 = performance.now();
    const first = store.applyDeferred({ appliedIndex: 1, txns: [plain(putOp(text('a'), text('1')))] }, () =>
      computed.push(1),
    );
    const second = store.applyDeferred(
      { appliedIndex: 2, txns: [plain(putOp(text('a'), text('2')))] },
      (r) => {
        computed.push(2);
        assert.equal(r[0]?.revision, 2, 'computed against the held first batch');
      },
    );
    void first.then(() => landed.push(1));
    void second.then(() => landed.push(2));
    assert.deepEqual(computed, [1, 2], 'results are known at once');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(landed, [], 'held: not landed yet');
    assert.equal(store.appliedIndex(), 0);
    assert.equal(store.get(text('a'))?.value.toString(), '2', 'reads see held batches');
    store.commitPending();
    await second;
    assert.ok(performance.now() - t0 < 900, 'committed on commitPending(), not by the 1 s timer');
    assert.deepEqual(landed, [1, 2]);
    assert.equal(store.appliedIndex(), 2);
    assert.equal(store.get(text('a'))?.value.toString(), '2');
    // The timer commits too; and MAX_HELD_BATCHES held batches, or MAX_COMMIT_WRITES held writes,
    // commit without waiting for it.
    const timed = store.applyDeferred({ appliedIndex: 3, txns: [plain(putOp(text('b'), text('3')))] });
    await timed;
    assert.equal(store.appliedIndex(), 3);
    const t1 = performance.now();
    const many = Array.from({ length: MAX_HELD_BATCHES }, (_, i) =>
      store.applyDeferred({ appliedIndex: 4 + i, txns: [plain(putOp(text('c'), text(`${i}`)))] }),
    );
    await Promise.all(many);
    assert.ok(performance.now() - t1 < 900, `${MAX_HELD_BATCHES} held batches commit without the timer`);
    let index = 4 + MAX_HELD_BATCHES;
    const t2 = performance.now();
    const txnsPerBatch = 512;
    const big = Array.from({ length: Math.ceil(MAX_COMMIT_WRITES / txnsPerBatch) }, (_, b) =>
      store.applyDeferred({
        appliedIndex: index++,
        txns: Array.from({ length: txnsPerBatch }, (_, i) => plain(putOp(text(`w${b}-${i}`), text('x')))),
      }),
    );
    assert.ok(big.length < MAX_HELD_BATCHES);
    await Promise.all(big);
    assert.ok(performance.now() - t2 < 900, `${MAX_COMMIT_WRITES} held writes commit without the timer`);
    // sync() and close() commit what is held; the reopened store has it.
    const last = index;
    void store.applyDeferred({ appliedIndex: last, txns: [plain(putOp(text('d'), text('8')))] });
    await store.close();
    opened.pop();
    const again = openStore('held');
    assert.equal(again.appliedIndex(), last);
    assert.equal(again.get(text('d'))?.value.toString(), '8');
    assert.throws(
      () => LmdbStore.open(join(dir, 'bad-delay'), { commitDelayMs: 1001 }),
      /commitDelayMs must be an integer in \[0, 1000\]/,
    );
  });

  it('sync() makes what was applied before it durable without waiting for batches applied meanwhile', async () => {
    // A busy node applies a batch every few milliseconds; its compaction calls sync() and must not
    // wait for the writes to stop (it once chased every newer batch: the log grew for seconds).
    const store = openStore('sync-busy', { commitDelayMs: 20 });
    const limit = 2000;
    let index = 0;
    let stopped = false;
    // Each batch that lands applies the next, so one is always pending, as on a loaded node.
    const applyNext = (): void => {
      if (stopped || index >= limit) return;
      index++;
      void store
        .applyDeferred({ appliedIndex: index, txns: [plain(putOp(text(`k${index}`), text(`${index}`)))] })
        .then(applyNext);
    };
    for (let i = 0; i < 4; i++) applyNext();
    const before = index;
    await store.sync();
    const appliedAtSync = index;
    const storeAtSync = store.appliedIndex();
    stopped = true;
    await store.sync();
    assert.ok(
      appliedAtSync < limit,
      `sync() resolved only after ${appliedAtSync} batches, when the writes stopped`,
    );
    assert.ok(storeAtSync >= before, `sync() returned with the store at ${storeAtSync} < ${before}`);
    await store.close();
    opened.pop();
    // Durable: a reopened store has at least every batch applied before the sync.
    const again = openStore('sync-busy');
    assert.ok(again.appliedIndex() >= before);
    assert.equal(again.get(text(`k${before}`))?.value.toString(), `${before}`);
  });

  it('commits held batches one LMDB transaction at a time, each of at most MAX_COMMIT_WRITES writes', async () => {
    const store = openStore('chunked', { commitDelayMs: 1000 });
    const batchOf = (index: number, writes: number) => ({
      appliedIndex: index,
      txns: Array.from({ length: writes }, (_, i) => plain(putOp(text(`k${index}-${i}`), text(`${index}`)))),
    });
    // Three batches of 3/4 of the cap: no two fit one commit, so each lands on its own, in order
    // (lmdb-js would merge transactions queued behind a running one into one commit).
    const size = (MAX_COMMIT_WRITES * 3) / 4;
    const lmdbTxnId = () =>
      (store as unknown as { root: { getStats(): { lastTxnId: number } } }).root.getStats().lastTxnId;
    const txnBefore = lmdbTxnId();
    const landed: number[] = [];
    const t0 = performance.now();
    const landings = [1, 2, 3].map((index) =>
      store.applyDeferred(batchOf(index, size)).then(() => landed.push(index)),
    );
    // One batch larger than the cap commits whole, alone.
    const whole = store.applyDeferred(batchOf(4, MAX_COMMIT_WRITES + 100)).then(() => {
      landed.push(4);
    });
    await Promise.all([...landings, whole]);
    assert.ok(performance.now() - t0 < 900, 'writes over the cap commit without the timer');
    assert.deepEqual(landed, [1, 2, 3, 4], 'the batches landed in order');
    assert.equal(lmdbTxnId() - txnBefore, 4, 'each batch in an LMDB transaction of its own');
    assert.equal(store.get(text(`k4-${MAX_COMMIT_WRITES + 99}`))?.value.toString(), '4');
    assert.equal(store.count(), 3 * size + MAX_COMMIT_WRITES + 100);
    // A stream of batches over half the cap, applied as fast as they come: the next commit is
    // queued while the previous one is still in its transaction, and lmdb-js sometimes runs it
    // there (bench: 10 of 293 commits); such a one is put back, so every batch still commits alone.
    const stream = 60;
    const txnBeforeStream = lmdbTxnId();
    const streamed: number[] = [];
    const all: Promise<void>[] = [];
    for (let i = 0; i < stream; i++) {
      const index = 5 + i;
      all.push(
        store.applyDeferred(batchOf(index, MAX_COMMIT_WRITES / 2 + 1)).then(() => void streamed.push(index)),
      );
      if (i % 4 === 3) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    assert.deepEqual(
      streamed,
      Array.from({ length: stream }, (_, i) => 5 + i),
      'landed in order',
    );
    assert.equal(lmdbTxnId() - txnBeforeStream, stream, 'one LMDB transaction per commit');
    assert.equal(store.appliedIndex(), 4 + stream);
  });

  it('opens a store created with fixed entry headers (format 1) and keeps writing that format', async () => {
    const path = join(dir, 'format1');
    const old = LmdbStore.open(path, { formatVersion: 1 });
    old.apply({ appliedIndex: 1, txns: [plain(putOp(text('a'), text('old')))] });
    await old.close();
    const store = openStore('format1');
    assert.equal(store.get(text('a'))?.value.toString(), 'old');
    store.apply({
      appliedIndex: 2,
      txns: [plain(putOp(text('b'), text('new'))), plain(putOp(text('a'), text('again')))],
    });
    assert.deepEqual(
      store
        .range({})
        .map((kv) => [kv.key.toString(), kv.value.toString(), kv.createRevision, kv.modRevision, kv.version]),
      [
        ['a', 'again', 1, 3, 2],
        ['b', 'new', 2, 2, 1],
      ],
    );
    await store.close();
    opened.pop();
    const raw = open<Buffer, Buffer>({ path, maxDbs: 8, keyEncoding: 'binary', encoding: 'binary' });
    const kv = raw.openDB<Buffer, Buffer>('kv/0', { keyEncoding: 'binary', encoding: 'binary' });
    assert.equal(kv.getBinary(text('b'))?.length, 24 + 3, 'a fixed 24-byte header');
    await raw.close();
    assert.throws(() => LmdbStore.open(path, { formatVersion: 2 }), /has store format 1, not 2/);
    const fresh = openStore('format2');
    fresh.apply({ appliedIndex: 1, txns: [plain(putOp(text('b'), text('new')))] });
    await fresh.close();
    opened.pop();
    const raw2 = open<Buffer, Buffer>({
      path: join(dir, 'format2'),
      maxDbs: 8,
      keyEncoding: 'binary',
      encoding: 'binary',
    });
    assert.equal(
      raw2.openDB<Buffer, Buffer>('kv/0', { keyEncoding: 'binary', encoding: 'binary' }).getBinary(text('b'))
        ?.length,
      3 + 3,
      'a new store: compact header (revision 1, age 0, version 1)',
    );
    await raw2.close();
  });

  it('clears the leftovers of an import cut short by a crash when it opens', async () => {
    const source = new MemoryStore();
    source.apply({
      appliedIndex: 9,
      txns: Array.from({ length: 8 }, (_, i) => plain(putOp(text(`s${i}`), Buffer.alloc(400 * 1024, i)))),
    });
    const chunks = await collect(source.exportSnapshot(Buffer.alloc(0)));
    assert.ok(chunks.length >= 4);
    const path = join(dir, 'crash');
    const store = LmdbStore.open(path);
    store.apply({ appliedIndex: 1, txns: [plain(putOp(text('mine'), text('1')))] });
    const expected = dump(store);
    // Close the store (as a crash would stop the process) after two data chunks were written.
    let closing: Promise<void> | undefined;
    async function* interrupted() {
      yield chunks[0]!;
      yield chunks[1]!;
      yield chunks[2]!;
      closing = store.close();
      yield chunks[3]!;
    }
    await assert.rejects(store.importSnapshot(interrupted()), StoreClosedError);
    await closing;
    const raw = open<Buffer, Buffer>({ path, maxDbs: 8, keyEncoding: 'binary', encoding: 'binary' });
    const inactive = raw.openDB<Buffer, Buffer>('kv/1', { keyEncoding: 'binary', encoding: 'binary' });
    assert.ok(inactive.getCount() > 0, 'the interrupted import left data in the inactive slot');
    await raw.close();
    const reopened = openStore('crash');
    assert.deepEqual(dump(reopened), expected);
    await reopened.close();
    opened.pop();
    const check = open<Buffer, Buffer>({ path, maxDbs: 8, keyEncoding: 'binary', encoding: 'binary' });
    assert.equal(
      check.openDB<Buffer, Buffer>('kv/1', { keyEncoding: 'binary', encoding: 'binary' }).getCount(),
      0,
    );
    await check.close();
    const last = openStore('crash');
    await last.importSnapshot(chunks);
    assert.deepEqual(dump(last), dump(source));
  });

  it('keeps an export on its read transaction while an import swaps the state', async () => {
    const store = openStore('swap');
    store.apply({
      appliedIndex: 3,
      txns: Array.from({ length: 6 }, (_, i) => plain(putOp(text(`old${i}`), Buffer.alloc(300 * 1024, i)))),
    });
    const expected = dump(store);
    const exporting = store.exportSnapshot(text('before'));
    const first = await exporting.next();
    const replacement = new MemoryStore();
    replacement.apply({ appliedIndex: 50, txns: [plain(putOp(text('new'), text('n')))] });
    await store.importSnapshot(await collect(replacement.exportSnapshot(Buffer.alloc(0))));
    assert.deepEqual(dump(store), dump(replacement));
    store.apply({ appliedIndex: 51, txns: [plain(putOp(text('newer'), text('n')))] });
    const chunks = [first.value as Buffer, ...(await collect(exporting))];
    const target = new MemoryStore();
    await target.importSnapshot(chunks);
    assert.deepEqual(dump(target), expected);
  });

  it('bounds concurrent exports and releases one returned before it started', async () => {
    const store = openStore('exports');
    store.apply({ appliedIndex: 1, txns: [plain(putOp(text('a'), text('1')))] });
    const streams = Array.from({ length: MAX_CONCURRENT_EXPORTS }, () =>
      store.exportSnapshot(Buffer.alloc(0)),
    );
    assert.throws(
      () => store.exportSnapshot(Buffer.alloc(0)),
      (e: unknown) => e instanceof StoreLimitError && e.limit === 'maxConcurrentExports',
    );
    await streams[0]!.return(undefined);
    await collect(streams[1]!);
    const more = [store.exportSnapshot(Buffer.alloc(0)), store.exportSnapshot(Buffer.alloc(0))];
    assert.throws(() => store.exportSnapshot(Buffer.alloc(0)), StoreLimitError);
    // close() ends the exports still open; their streams then report done.
    await store.close();
    opened.pop();
    assert.deepEqual(await streams[2]!.next(), { done: true, value: undefined });
    assert.deepEqual(await more[0]!.next(), { done: true, value: undefined });
  });

  it('refuses a second open of the same path and a different inline key size', async () => {
    openStore('twice', { inlineKeyMaxBytes: 100 });
    assert.throws(() => LmdbStore.open(join(dir, 'twice')), /already open/);
    await opened.pop()!.close();
    assert.throws(
      () => LmdbStore.open(join(dir, 'twice'), { inlineKeyMaxBytes: 50 }),
      /inlineKeyMaxBytes 100/,
    );
    const store = openStore('twice');
    assert.equal(store.inlineKeyMaxBytes, 100);
  });
});
