import assert from 'node:assert/strict';
import { readFileSync, renameSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { WalCorruptionError, WriteAheadLog } from '../../src/wal/index.js';
import { encodeEntry, isAllZero, readFrame } from '../../src/wal/record-codec.js';
import { entries, entry, hardState, tempDir } from './helpers.js';

const SEGMENT = 8192;

/** Offsets of the records of a segment file, and where its records end. */
function frames(path: string): { offsets: number[]; end: number } {
  const buf = readFileSync(path);
  const offsets: number[] = [];
  let p = 0;
  for (;;) {
    const frame = readFrame(buf, p, buf.length);
    if (frame.kind !== 'record') return { offsets, end: p };
    offsets.push(p);
    p = frame.next;
  }
}

function patch(path: string, offset: number, bytes: Buffer): void {
  const buf = readFileSync(path);
  bytes.copy(buf, offset);
  writeFileSync(path, buf);
}

function corruption(file: string, offset: number): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof WalCorruptionError, `expected WalCorruptionError, got ${String(err)}`);
    assert.equal(err.file, file);
    assert.equal(err.offset, offset);
    assert.ok(err.message.includes(file) && err.message.includes(`offset ${offset}`), err.message);
    return true;
  };
}

describe('WriteAheadLog recovery', () => {
  let dir: string;
  let cleanup: () => void;
  let segments: string[];

  /** Writes entries 1..n of group 1 (one append each, with a hard state), then closes. */
  async function writeLog(n: number, padding = 0): Promise<void> {
    const wal = await WriteAheadLog.open(dir, { segmentSize: SEGMENT });
    for (let i = 1; i <= n; i++) {
      await wal.append([entry(1, i, 1, `e1.${i}${'-'.repeat(padding)}`), hardState(1, 1, 'n1', i - 1)]);
    }
    segments = wal.segmentFiles();
    await wal.close();
  }

  async function reopen(): Promise<WriteAheadLog> {
    return WriteAheadLog.open(dir, { segmentSize: SEGMENT });
  }

  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
  });
  afterEach(() => cleanup());

  it('cuts a record torn at the tail of the last segment, zeroes it, and appends after it', async () => {
    await writeLog(10);
    const last = segments[segments.length - 1]!;
    const { offsets, end } = frames(last);
    const tornAt = offsets[offsets.length - 2]!; // entry 10 (the last record is its hard state)
    const buf = readFileSync(last);
    buf.fill(0, tornAt + 12, end); // the second part of the write never reached the disk
    writeFileSync(last, buf);
    let wal = await reopen();
    assert.equal(wal.lastIndex(1), 9);
    assert.deepEqual(wal.hardState(1), { term: 1, vote: 'n1', commit: 8 });
    assert.ok(isAllZero(readFileSync(last), tornAt, SEGMENT), 'the torn bytes are zeroed');
    await wal.append(entries(1, 10, 11));
    await wal.close();
    wal = await reopen();
    assert.equal(wal.lastIndex(1), 11);
    assert.equal(wal.entries(1, 10, 11)[0]!.data.toString(), 'e1.10');
    await wal.close();
  });

  it('cuts garbage after the last record when no valid record follows it', async () => {
    await writeLog(5);
    const last = segments[segments.length - 1]!;
    const { end } = frames(last);
    patch(last, end + 40, Buffer.from('this is not a record, just noise from a torn write'));
    const wal = await reopen();
    assert.equal(wal.lastIndex(1), 5);
    await wal.close();
    assert.ok(isAllZero(readFileSync(last), end, SEGMENT));
  });

  it('treats a last segment cut short as torn and fills it up again', async () => {
    await writeLog(5);
    const last = segments[segments.length - 1]!;
    const { offsets } = frames(last);
    truncateSync(last, offsets[offsets.length - 1]! + 5);
    const wal = await reopen();
    assert.equal(wal.lastIndex(1), 5);
    assert.equal(wal.hardState(1)!.commit, 3, 'the last hard state was cut');
    await wal.close();
    assert.equal(statSync(last).size, SEGMENT);
  });

  it('reports a bad record followed by valid ones with file and offset, and returns nothing', async () => {
    await writeLog(10);
    const last = segments[segments.length - 1]!;
    const { offsets } = frames(last);
    const victim = offsets[3]!;
    const buf = readFileSync(last);
    buf[victim + 10]! ^= 0xff;
    writeFileSync(last, buf);
    await assert.rejects(reopen(), corruption(last, victim));
    // The directory is not taken over by the failed open.
    await assert.rejects(reopen(), WalCorruptionError);
  });

  it('reports a record zeroed in the middle (a valid record follows)', async () => {
    await writeLog(10);
    const last = segments[segments.length - 1]!;
    const { offsets } = frames(last);
    const buf = readFileSync(last);
    buf.fill(0, offsets[2]!, offsets[3]!);
    writeFileSync(last, buf);
    await assert.rejects(reopen(), corruption(last, offsets[2]!));
  });

  it('reports a torn record in a segment that is not the last', async () => {
    await writeLog(200, 100);
    assert.ok(segments.length >= 3, `expected rolling, got ${segments.length} segments`);
    const middle = segments[1]!;
    const { offsets } = frames(middle);
    const victim = offsets[offsets.length - 1]!;
    const buf = readFileSync(middle);
    buf[victim + 9]! ^= 1;
    writeFileSync(middle, buf);
    await assert.rejects(reopen(), corruption(middle, victim));
  });

  it('reports non-zero bytes after the end of a segment that is not the last', async () => {
    await writeLog(200, 100);
    const first = segments[0]!;
    const { end } = frames(first);
    patch(first, SEGMENT - 16, Buffer.from([1]));
    await assert.rejects(reopen(), corruption(first, end));
  });

  it('reports a record with a valid checksum that breaks the log (an index gap)', async () => {
    await writeLog(3);
    const last = segments[segments.length - 1]!;
    const { end } = frames(last);
    const buf = readFileSync(last);
    encodeEntry(buf, end, 1, 1, 20, 0, Buffer.from('out of nowhere'));
    writeFileSync(last, buf);
    await assert.rejects(reopen(), (err) => corruption(last, end)(err) && /leaves a gap/.test(String(err)));
  });

  it('recreates the last segment when its header was torn, with the state of the segments before', async () => {
    await writeLog(200, 100);
    const last = segments[segments.length - 1]!;
    const previous = segments[segments.length - 2]!;
    writeFileSync(last, Buffer.alloc(SEGMENT)); // a crash right after the rename: nothing written yet
    const wal = await reopen();
    const lastInPrevious = frames(previous).offsets.length;
    assert.ok(lastInPrevious > 0);
    assert.ok(wal.lastIndex(1) < 200 && wal.lastIndex(1) > 0);
    assert.equal(wal.hardState(1)!.commit, wal.lastIndex(1) - 1, 'hard state from the previous segment');
    await wal.append(entries(1, wal.lastIndex(1) + 1, wal.lastIndex(1) + 3));
    const lastIndex = wal.lastIndex(1);
    await wal.close();
    const again = await reopen();
    assert.equal(again.lastIndex(1), lastIndex);
    await again.close();
  });

  it('reports a missing segment in the middle', async () => {
    await writeLog(200, 100);
    unlinkSync(segments[1]!);
    await assert.rejects(reopen(), corruption(segments[1]!, 0));
  });

  it('reports a segment renamed out of order (header names another segment)', async () => {
    await writeLog(200, 100);
    const last = segments[segments.length - 1]!;
    renameSync(last, `${last}.bak`);
    renameSync(segments[segments.length - 2]!, last);
    renameSync(`${last}.bak`, segments[segments.length - 2]!);
    await assert.rejects(
      reopen(),
      (err) => err instanceof WalCorruptionError && /names segment/.test(err.message),
    );
  });

  it('removes a leftover pre-allocated file', async () => {
    await writeLog(2);
    writeFileSync(`${dir}/next-segment.tmp`, Buffer.alloc(100, 1));
    const wal = await reopen();
    assert.equal(wal.lastIndex(1), 2);
    await wal.close();
  });
});
