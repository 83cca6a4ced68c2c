import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseSyncMode, WalError, type WalSyncStats, WriteAheadLog } from '../../src/wal/index.js';
import { entries, entry, tempDir } from './helpers.js';

describe('parseSyncMode', () => {
  it('parses "always" and "interval:<ms>"', () => {
    assert.deepEqual(parseSyncMode('always'), { kind: 'always' });
    assert.deepEqual(parseSyncMode('interval:10'), { kind: 'interval', intervalMs: 10 });
    assert.deepEqual(parseSyncMode('interval:60000'), { kind: 'interval', intervalMs: 60000 });
    assert.deepEqual(parseSyncMode({ kind: 'interval', intervalMs: 5 }), { kind: 'interval', intervalMs: 5 });
  });

  for (const bad of [
    '',
    'never',
    'Always',
    'interval',
    'interval:',
    'interval:0',
    'interval:-1',
    'interval:1.5',
    'interval:60001',
    'interval:10ms',
    ' always',
  ]) {
    it(`refuses ${JSON.stringify(bad)} with a message that quotes it`, () => {
      assert.throws(
        () => parseSyncMode(bad),
        (err: Error) => err instanceof WalError && err.message.includes(JSON.stringify(bad)),
      );
    });
  }

  it('refuses a structured mode with a bad interval', () => {
    assert.throws(() => parseSyncMode({ kind: 'interval', intervalMs: 0 }), /whole number of milliseconds/);
  });
});

describe('WriteAheadLog sync modes', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
  });
  afterEach(() => cleanup());

  it('always: appends of one event-loop turn share one fdatasync (group commit)', async () => {
    const syncs: WalSyncStats[] = [];
    const wal = await WriteAheadLog.open(dir, { segmentSize: 1024 * 1024, onSync: (s) => syncs.push(s) });
    try {
      await Promise.all(Array.from({ length: 50 }, (_, g) => wal.append([entry(g, 1)])));
      assert.equal(syncs.length, 1);
      assert.equal(syncs[0]!.records, 50);
      assert.ok(syncs[0]!.bytes >= 50 * 32);
      assert.ok(syncs[0]!.latencyMs >= 0);
    } finally {
      await wal.close();
    }
  });

  it('always: appends made while an fdatasync is in flight accumulate into the next batch', async () => {
    const syncs: WalSyncStats[] = [];
    let wal: WriteAheadLog;
    const later: Array<Promise<void>> = [];
    let firstAcked = false;
    wal = await WriteAheadLog.open(dir, {
      segmentSize: 1024 * 1024,
      onSync: (s) => {
        syncs.push(s);
        if (syncs.length === 1) {
          // The first batch is synced but not yet acknowledged: still in flight.
          assert.equal(firstAcked, false);
          later.push(wal.append([entry(2, 1)]));
          setImmediate(() => later.push(wal.append([entry(3, 1)])));
        }
      },
    });
    try {
      await wal.append([entry(1, 1)]);
      firstAcked = true;
      await new Promise((r) => setImmediate(r));
      await Promise.all(later);
      assert.equal(later.length, 2);
      assert.deepEqual(
        syncs.map((s) => s.records),
        [1, 2],
        'the two appends of two different turns share the second fdatasync',
      );
    } finally {
      await wal.close();
    }
  });

  it('interval: acknowledges before any fdatasync, then syncs on the timer', async () => {
    const syncs: WalSyncStats[] = [];
    const wal = await WriteAheadLog.open(dir, {
      segmentSize: 64 * 1024,
      syncMode: 'interval:20',
      onSync: (s) => syncs.push(s),
    });
    try {
      await wal.append(entries(1, 1, 10));
      assert.equal(syncs.length, 0, 'acknowledged without waiting for fdatasync');
      for (let i = 0; i < 500 && syncs.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(syncs.length, 1);
      assert.equal(syncs[0]!.records, 10);
      await new Promise((r) => setTimeout(r, 60));
      assert.equal(syncs.length, 1, 'no fdatasync when nothing was written');
      await wal.append(entries(1, 11, 12));
    } finally {
      await wal.close();
    }
    assert.equal(syncs.length, 2, 'close syncs what the timer has not');
    const reopened = await WriteAheadLog.open(dir, { segmentSize: 64 * 1024, syncMode: 'interval:20' });
    assert.equal(reopened.lastIndex(1), 12);
    await reopened.close();
  });

  it('interval: release first makes the snapshot markers durable', async () => {
    const wal = await WriteAheadLog.open(dir, { segmentSize: 4096, syncMode: 'interval:60000' });
    try {
      for (let i = 1; i <= 100; i++) await wal.append([entry(1, i, 1, Buffer.alloc(60))]);
      await wal.append([{ kind: 'snapshot', group: 1, index: 100, term: 1 }]);
      assert.ok((await wal.release()) > 0);
    } finally {
      await wal.close();
    }
  });

  it('a throwing onSync callback becomes a warning and the log goes on', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const wal = await WriteAheadLog.open(dir, {
      segmentSize: 64 * 1024,
      onSync: () => {
        throw new Error('metrics broke');
      },
    });
    try {
      await wal.append([entry(1, 1)]);
      await wal.append([entry(1, 2)]);
      assert.equal(wal.lastIndex(1), 2);
      await new Promise((r) => setImmediate(r));
      assert.ok(warnings.some((w) => w.includes('metrics broke')));
    } finally {
      process.off('warning', onWarning);
      await wal.close();
    }
  });
});
