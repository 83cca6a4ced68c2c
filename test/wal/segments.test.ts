import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type WalRecord, WalLimitError, WriteAheadLog } from '../../src/wal/index.js';
import { entries, entry, hardState, snapshot, tempDir } from './helpers.js';

const SEGMENT = 4096;

function segmentNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.wal'))
    .sort();
}

describe('WriteAheadLog segments: rolling, pre-allocation, release', () => {
  let dir: string;
  let cleanup: () => void;
  let wal: WriteAheadLog;

  beforeEach(async () => {
    ({ dir, cleanup } = tempDir());
    wal = await WriteAheadLog.open(dir, { segmentSize: SEGMENT });
  });
  afterEach(async () => {
    await wal.close();
    cleanup();
  });

  async function reopen(): Promise<void> {
    await wal.close();
    wal = await WriteAheadLog.open(dir, { segmentSize: SEGMENT });
  }

  it('rolls to new fixed-size segments, also in the middle of one append', async () => {
    const big: WalRecord[] = [];
    for (let i = 1; i <= 60; i++) big.push(entry(1, i, 1, Buffer.alloc(150, i)));
    await wal.append(big); // ~10 KiB: spans three segments
    const names = segmentNames(dir);
    assert.ok(names.length >= 3, `segments: ${names.join(', ')}`);
    for (const name of names) assert.equal(statSync(join(dir, name)).size, SEGMENT);
    assert.deepEqual(
      wal.segmentFiles(),
      names.map((n) => join(dir, n)),
    );
    const check = () => {
      const read = wal.entries(1, 1, 61);
      assert.equal(read.length, 60);
      for (const [k, e] of read.entries()) assert.deepEqual(e.data, Buffer.alloc(150, k + 1));
    };
    check();
    await reopen();
    check();
  });

  it('serves reads of a batch that rolls segments before it is written', async () => {
    const big: WalRecord[] = [];
    for (let i = 1; i <= 60; i++) big.push(entry(1, i, 1, Buffer.alloc(150, i)));
    const appended = wal.append(big);
    const read = wal.entries(1, 1, 61);
    assert.equal(read.length, 60);
    for (const [k, e] of read.entries()) assert.deepEqual(e.data, Buffer.alloc(150, k + 1));
    await appended;
  });

  it('prepares the next segment in the background', async () => {
    await wal.append([entry(1, 1)]);
    const next = join(dir, 'next-segment.tmp');
    for (let i = 0; i < 200 && !(existsSync(next) && statSync(next).size === SEGMENT); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(statSync(next).size, SEGMENT);
  });

  it('repeats every hard state and snapshot marker at the start of each segment, so release loses none', async () => {
    await wal.append([hardState(1, 3, 'a', 0), hardState(2, 7, 'b', 0), snapshot(2, 10, 7)]);
    for (let i = 1; i <= 100; i++) await wal.append([entry(1, i, 3, Buffer.alloc(60))]);
    await wal.append([hardState(1, 3, 'a', 90), snapshot(1, 90, 3)]);
    const before = segmentNames(dir).length;
    const released = await wal.release();
    assert.ok(released > 0, 'segments whose entries are all covered are released');
    assert.equal(segmentNames(dir).length, before - released);
    await reopen();
    assert.deepEqual(wal.hardState(1), { term: 3, vote: 'a', commit: 90 });
    assert.deepEqual(wal.hardState(2), { term: 7, vote: 'b', commit: 0 });
    assert.deepEqual(wal.snapshot(2), { index: 10, term: 7 });
    assert.deepEqual(wal.snapshot(1), { index: 90, term: 3 });
    assert.equal(wal.firstIndex(1), 91);
    assert.equal(wal.lastIndex(1), 100);
    assert.equal(wal.entries(1, 91, 101).length, 10);
  });

  it('keeps every segment that holds an entry not covered by a snapshot marker', async () => {
    await wal.append(entries(2, 1, 2)); // group 2 never snapshots: pins the first segment
    for (let i = 1; i <= 100; i++) await wal.append([entry(1, i, 1, Buffer.alloc(60))]);
    await wal.append([snapshot(1, 100)]);
    assert.equal(await wal.release(), 0);
    await wal.append([snapshot(2, 2)]);
    assert.ok((await wal.release()) > 0);
    await reopen();
    assert.equal(wal.firstIndex(1), 101);
    assert.equal(wal.firstIndex(2), 3);
  });

  it('never releases the segment being written, and releases nothing twice', async () => {
    await wal.append(entries(1, 1, 3));
    await wal.append([snapshot(1, 3)]);
    assert.equal(await wal.release(), 0);
    assert.equal(segmentNames(dir).length, 1);
    for (let i = 4; i <= 120; i++) await wal.append([entry(1, i, 1, Buffer.alloc(60))]);
    await wal.append([snapshot(1, 120)]);
    const [a, b] = await Promise.all([wal.release(), wal.release()]);
    assert.ok(a + b > 0);
    assert.equal(segmentNames(dir).length >= 1, true);
    await reopen();
    assert.equal(wal.firstIndex(1), 121);
    assert.equal(wal.lastIndex(1), 120);
  });

  it('keeps a segment whose entries were replaced but lie above the snapshot marker, until covered', async () => {
    for (let i = 1; i <= 40; i++) await wal.append([entry(1, i, 1, Buffer.alloc(80))]);
    await wal.append([entry(1, 5, 2, 'replaced')]); // entries 6..40 are gone, 5 is new
    for (let i = 6; i <= 60; i++) await wal.append([entry(1, i, 2, Buffer.alloc(80))]);
    await wal.append([snapshot(1, 30, 2)]);
    await wal.release();
    await reopen();
    assert.equal(wal.firstIndex(1), 31);
    assert.equal(wal.lastIndex(1), 60);
    for (const e of wal.entries(1, 31, 61)) assert.equal(e.term, 2);
    await wal.append([snapshot(1, 60, 2)]);
    await wal.release();
    await reopen();
    assert.equal(segmentNames(dir).length <= 2, true);
    assert.equal(wal.firstIndex(1), 61);
  });

  it('limits the states repeated in segment headers to half a segment', async () => {
    const records: WalRecord[] = [];
    for (let g = 0; g < 30; g++) records.push(hardState(g, 1, 'v'.repeat(50), 0));
    await assert.rejects(wal.append(records), (err: Error) => {
      assert.ok(err instanceof WalLimitError);
      assert.match(err.message, /each segment header; the limit is 2048 bytes/);
      return true;
    });
    assert.deepEqual(wal.groups(), []);
  });

  it('limits the bytes waiting for the disk (maxPendingBytes)', async () => {
    const other = tempDir();
    const log = await WriteAheadLog.open(other.dir, {
      segmentSize: 4 * 1024 * 1024,
      maxPendingBytes: 1024 * 1024,
    });
    try {
      const first = log.append([entry(1, 1, 1, Buffer.alloc(600 * 1024))]);
      await assert.rejects(log.append([entry(1, 2, 1, Buffer.alloc(600 * 1024))]), /write queue is full/);
      await first;
      await log.append([entry(1, 2, 1, Buffer.alloc(600 * 1024))]);
      assert.equal(log.lastIndex(1), 2);
    } finally {
      await log.close();
      other.cleanup();
    }
  });
});
