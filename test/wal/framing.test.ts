import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import {
  alignUp,
  decodeRecord,
  encodeEntry,
  encodeHardState,
  encodeSegmentHeader,
  encodeSnapshot,
  encodeTruncate,
  entryFrameBytes,
  endOfNonZero,
  findValidFrame,
  type FrameRead,
  isAllZero,
  RecordType,
  readFrame,
} from '../../src/wal/record-codec.js';

function record(frame: FrameRead): Extract<FrameRead, { kind: 'record' }> {
  assert.equal(frame.kind, 'record', `expected a record, got ${JSON.stringify(frame)}`);
  return frame as Extract<FrameRead, { kind: 'record' }>;
}

describe('WAL record framing', () => {
  it('frames an entry as length, CRC32C of type + payload, type, payload, zero padding to 8 bytes', () => {
    const buf = Buffer.alloc(256, 0xee);
    const data = Buffer.from('hello, raft');
    const next = encodeEntry(buf, 0, 7, 3, 42, 1, data);
    assert.equal(next, entryFrameBytes(data.length));
    assert.equal(next % 8, 0);
    const length = buf.readUInt32LE(0);
    assert.equal(length, 1 + 21 + data.length);
    assert.equal(buf.readUInt32LE(4), crc32c(buf.subarray(8, 8 + length)));
    assert.equal(buf[8], RecordType.Entry);
    for (let i = 8 + length; i < next; i++) assert.equal(buf[i], 0, `padding byte ${i}`);
    const decoded = decodeRecord(buf, record(readFrame(buf, 0, buf.length)));
    assert.ok(typeof decoded !== 'string' && decoded.type === RecordType.Entry);
    assert.deepEqual(
      { group: decoded.group, term: decoded.term, index: decoded.index, entryType: decoded.entryType },
      { group: 7, term: 3, index: 42, entryType: 1 },
    );
    assert.deepEqual(buf.subarray(decoded.dataStart, decoded.dataEnd), data);
  });

  it('round-trips integers above 32 bits and the largest group id', () => {
    const buf = Buffer.alloc(128);
    const big = Number.MAX_SAFE_INTEGER;
    encodeEntry(buf, 0, 0xffff_ffff, 2 ** 40 + 5, big, 255, Buffer.alloc(0));
    const decoded = decodeRecord(buf, record(readFrame(buf, 0, buf.length)));
    assert.ok(typeof decoded !== 'string' && decoded.type === RecordType.Entry);
    assert.equal(decoded.group, 0xffff_ffff);
    assert.equal(decoded.term, 2 ** 40 + 5);
    assert.equal(decoded.index, big);
    assert.equal(decoded.entryType, 255);
  });

  it('round-trips hard states (UTF-8 votes), snapshot markers and truncations', () => {
    const buf = Buffer.alloc(512);
    let at = encodeHardState(buf, 0, 1, 9, 100, 'nöde-β');
    at = encodeHardState(buf, at, 2, 0, 0, '');
    at = encodeSnapshot(buf, at, 3, 77, 4);
    encodeTruncate(buf, at, 4, 12);
    const seen: unknown[] = [];
    for (let p = 0; ; ) {
      const frame = readFrame(buf, p, buf.length);
      if (frame.kind === 'end') break;
      const r = decodeRecord(buf, record(frame));
      assert.ok(typeof r !== 'string');
      seen.push(r);
      p = record(frame).next;
    }
    assert.deepEqual(seen, [
      { type: RecordType.HardState, group: 1, term: 9, commit: 100, vote: 'nöde-β' },
      { type: RecordType.HardState, group: 2, term: 0, commit: 0, vote: '' },
      { type: RecordType.Snapshot, group: 3, index: 77, term: 4 },
      { type: RecordType.Truncate, group: 4, fromIndex: 12 },
    ]);
  });

  it('round-trips a segment header with every group state', () => {
    const buf = Buffer.alloc(1024);
    const states = [
      { group: 1, hardState: { term: 2, vote: 'a', commit: 5 }, snapshot: { index: 4, term: 2 } },
      { group: 9, hardState: null, snapshot: { index: 10, term: 1 } },
      { group: 3, hardState: { term: 1, vote: '', commit: 0 }, snapshot: null },
    ];
    encodeSegmentHeader(buf, 0, 17, 65536, states);
    const r = decodeRecord(buf, record(readFrame(buf, 0, buf.length)));
    assert.ok(typeof r !== 'string' && r.type === RecordType.SegmentHeader);
    assert.equal(r.seq, 17);
    assert.equal(r.segmentSize, 65536);
    const byGroup = new Map(r.states.map((s) => [s.group, s]));
    for (const s of states) assert.deepEqual(byGroup.get(s.group), s);
    assert.equal(r.states.length, 3);
  });

  it('reads zeros as the end of the records, and reports every damaged frame as bad', () => {
    const buf = Buffer.alloc(128);
    assert.deepEqual(readFrame(buf, 0, buf.length), { kind: 'end' });
    const next = encodeEntry(buf, 0, 1, 1, 1, 0, Buffer.from('x'));
    assert.deepEqual(readFrame(buf, next, buf.length), { kind: 'end' });
    for (let i = 0; i < next; i++) {
      if (i >= 8 + buf.readUInt32LE(0)) continue; // padding is not covered
      const damaged = Buffer.from(buf);
      damaged[i]! ^= 0x40;
      const frame = readFrame(damaged, 0, damaged.length);
      assert.equal(frame.kind, 'bad', `flip at byte ${i} must be detected`);
    }
    // A record cut short by the end of the segment is bad, not an end.
    const cut = readFrame(buf, 0, next - 8);
    assert.equal(cut.kind, 'bad');
    assert.match((cut as { reason: string }).reason, /runs past/);
  });

  it('refuses malformed payloads that carry a valid checksum', () => {
    const buf = Buffer.alloc(64);
    buf[8] = 99; // unknown type
    buf.writeUInt32LE(1, 0);
    buf.writeUInt32LE(crc32c(buf.subarray(8, 9)), 4);
    assert.match(String(decodeRecord(buf, record(readFrame(buf, 0, buf.length)))), /unknown record type 99/);
    const short = Buffer.alloc(64);
    short[8] = RecordType.Snapshot;
    short.writeUInt32LE(5, 0);
    short.writeUInt32LE(crc32c(short.subarray(8, 13)), 4);
    assert.match(String(decodeRecord(short, record(readFrame(short, 0, short.length)))), /wrong size/);
  });

  it('finds a valid frame after damage, and none in zeros or garbage', () => {
    const buf = Buffer.alloc(4096);
    const first = encodeEntry(buf, 0, 1, 1, 1, 0, Buffer.from('first'));
    const second = encodeEntry(buf, first, 1, 1, 2, 0, Buffer.from('second'));
    buf[12]! ^= 1; // damage the first record's checksum
    assert.equal(findValidFrame(buf, 0, buf.length), first);
    buf.fill(0, first, second);
    assert.equal(findValidFrame(buf, 0, buf.length), -1);
    buf.fill(0x37, 1000, 1100);
    assert.equal(findValidFrame(buf, 0, buf.length), -1);
  });

  it('zero helpers', () => {
    const buf = Buffer.alloc(200_000);
    assert.ok(isAllZero(buf, 0, buf.length));
    buf[150_001] = 1;
    assert.ok(!isAllZero(buf, 0, buf.length));
    assert.ok(isAllZero(buf, 150_002, buf.length));
    assert.equal(endOfNonZero(buf, 0, buf.length), 150_002);
    assert.equal(endOfNonZero(buf, 150_002, buf.length), 150_002);
    assert.equal(alignUp(9), 16);
    assert.equal(alignUp(16), 16);
  });
});
