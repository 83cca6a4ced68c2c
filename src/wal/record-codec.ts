/**
 * Binary framing of WAL records (no JSON anywhere on this path).
 *
 * Frame, little-endian, aligned to 8 bytes:
 *
 *   u32 length   bytes of type + payload (>= 1; 0 marks "no record here": pre-allocated zeros)
 *   u32 crc      CRC32C (Castagnoli) of type + payload
 *   u8  type     RecordType
 *   ... payload
 *   ... zero padding up to the next multiple of 8
 *
 * Alignment lets recovery look for a surviving record after a bad one by probing only every
 * 8th offset. Integers above 32 bits are stored as two u32 (low, high) and must be safe integers.
 */
import { crc32c } from '@node-rs/crc32';

export const FRAME_HEADER_BYTES = 8;
export const RECORD_ALIGNMENT = 8;

export const RecordType = {
  SegmentHeader: 1,
  Entry: 2,
  HardState: 3,
  Snapshot: 4,
  Truncate: 5,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** Fixed payload parts (after the type byte). */
export const ENTRY_FIXED_BYTES = 4 + 8 + 8 + 1; // group, term, index, entryType
export const HARD_STATE_FIXED_BYTES = 4 + 8 + 8 + 1; // group, term, commit, vote length
export const SNAPSHOT_PAYLOAD_BYTES = 4 + 8 + 8; // group, index, term
export const TRUNCATE_PAYLOAD_BYTES = 4 + 8; // group, fromIndex

export const SEGMENT_MAGIC = Buffer.from('ATLASWAL', 'latin1');
export const SEGMENT_FORMAT_VERSION = 1;
/** magic, version u16, reserved u16, segmentSize u32, seq u64, hard-state count u32, snapshot count u32. */
export const SEGMENT_HEADER_FIXED_BYTES = 8 + 2 + 2 + 4 + 8 + 4 + 4;

const TWO_32 = 2 ** 32;
const MAX_HIGH_WORD = 2 ** 21; // high word of a safe integer is < 2^21

export function alignUp(n: number): number {
  return (n + RECORD_ALIGNMENT - 1) & ~(RECORD_ALIGNMENT - 1);
}

/** Bytes on disk of a record whose payload (without the type byte) is `payloadBytes` long. */
export function frameBytes(payloadBytes: number): number {
  return alignUp(FRAME_HEADER_BYTES + 1 + payloadBytes);
}

export function entryFrameBytes(dataBytes: number): number {
  return frameBytes(ENTRY_FIXED_BYTES + dataBytes);
}

export function hardStatePayloadBytes(voteBytes: number): number {
  return HARD_STATE_FIXED_BYTES + voteBytes;
}

/**
 * Little-endian u32 by plain byte stores. The encoders write into batch buffers whose room was
 * reserved beforehand, so Buffer.writeUInt32LE's argument and bounds checks are pure overhead on
 * the append path (callers pass integers in range: validateAppend checked them).
 */
function putU32(buf: Buffer, off: number, value: number): void {
  buf[off] = value;
  buf[off + 1] = value >>> 8;
  buf[off + 2] = value >>> 16;
  buf[off + 3] = value >>> 24;
}

function writeU64(buf: Buffer, off: number, value: number): void {
  if (value < TWO_32) {
    putU32(buf, off, value);
    putU32(buf, off + 4, 0);
  } else {
    putU32(buf, off, value % TWO_32);
    putU32(buf, off + 4, Math.floor(value / TWO_32));
  }
}

/** Returns -1 when the stored value is not a safe integer (cannot have been written by us). */
function readU64(buf: Buffer, off: number): number {
  const high = buf.readUInt32LE(off + 4);
  if (high >= MAX_HIGH_WORD) return -1;
  return high * TWO_32 + buf.readUInt32LE(off);
}

/** Writes length, CRC and padding around a type + payload already placed at `start + 8`. */
function sealFrame(buf: Buffer, start: number, typeAndPayloadBytes: number): number {
  const body = start + FRAME_HEADER_BYTES;
  const end = body + typeAndPayloadBytes;
  putU32(buf, start, typeAndPayloadBytes);
  // A plain Uint8Array view is cheaper to make than Buffer.subarray's, and all crc32c needs.
  putU32(buf, start + 4, crc32c(new Uint8Array(buf.buffer, buf.byteOffset + body, typeAndPayloadBytes)));
  const next = start + alignUp(FRAME_HEADER_BYTES + typeAndPayloadBytes);
  // At most 7 bytes of padding: a loop is far cheaper than Buffer.fill's argument handling.
  for (let i = end; i < next; i++) buf[i] = 0;
  return next;
}

/** Encodes an entry frame at `start`; returns the offset after it (padding included). */
export function encodeEntry(
  buf: Buffer,
  start: number,
  group: number,
  term: number,
  index: number,
  entryType: number,
  data: Uint8Array,
): number {
  const p = start + FRAME_HEADER_BYTES;
  buf[p] = RecordType.Entry;
  putU32(buf, p + 1, group);
  writeU64(buf, p + 5, term);
  writeU64(buf, p + 13, index);
  buf[p + 21] = entryType;
  if (Buffer.isBuffer(data)) data.copy(buf, p + 22);
  else buf.set(data, p + 22);
  return sealFrame(buf, start, 1 + ENTRY_FIXED_BYTES + data.length);
}

function writeHardStatePayload(
  buf: Buffer,
  p: number,
  group: number,
  term: number,
  commit: number,
  vote: string,
): number {
  putU32(buf, p, group);
  writeU64(buf, p + 4, term);
  writeU64(buf, p + 12, commit);
  const voteBytes = buf.write(vote, p + 21, 'utf8');
  buf[p + 20] = voteBytes;
  return p + HARD_STATE_FIXED_BYTES + voteBytes;
}

export function encodeHardState(
  buf: Buffer,
  start: number,
  group: number,
  term: number,
  commit: number,
  vote: string,
): number {
  const p = start + FRAME_HEADER_BYTES;
  buf[p] = RecordType.HardState;
  const end = writeHardStatePayload(buf, p + 1, group, term, commit, vote);
  return sealFrame(buf, start, end - p);
}

function writeSnapshotPayload(buf: Buffer, p: number, group: number, index: number, term: number): number {
  putU32(buf, p, group);
  writeU64(buf, p + 4, index);
  writeU64(buf, p + 12, term);
  return p + SNAPSHOT_PAYLOAD_BYTES;
}

export function encodeSnapshot(
  buf: Buffer,
  start: number,
  group: number,
  index: number,
  term: number,
): number {
  const p = start + FRAME_HEADER_BYTES;
  buf[p] = RecordType.Snapshot;
  writeSnapshotPayload(buf, p + 1, group, index, term);
  return sealFrame(buf, start, 1 + SNAPSHOT_PAYLOAD_BYTES);
}

export function encodeTruncate(buf: Buffer, start: number, group: number, fromIndex: number): number {
  const p = start + FRAME_HEADER_BYTES;
  buf[p] = RecordType.Truncate;
  putU32(buf, p + 1, group);
  writeU64(buf, p + 5, fromIndex);
  return sealFrame(buf, start, 1 + TRUNCATE_PAYLOAD_BYTES);
}

/** One group's state as repeated in every segment header. */
export interface GroupStateCopy {
  group: number;
  hardState: { term: number; vote: string; commit: number } | null;
  snapshot: { index: number; term: number } | null;
}

/** Frame bytes of a segment header whose hard states take `hardStatePayloadTotal` bytes, plus `snapshots` markers. */
export function segmentHeaderFrameBytes(hardStatePayloadTotal: number, snapshots: number): number {
  return frameBytes(SEGMENT_HEADER_FIXED_BYTES + hardStatePayloadTotal + snapshots * SNAPSHOT_PAYLOAD_BYTES);
}

/** Frame bytes of the segment header that repeats `states`. */
export function segmentHeaderFrameBytesOf(states: readonly GroupStateCopy[]): number {
  let hardStateBytes = 0;
  let snapshots = 0;
  for (const s of states) {
    if (s.hardState !== null)
      hardStateBytes += hardStatePayloadBytes(Buffer.byteLength(s.hardState.vote, 'utf8'));
    if (s.snapshot !== null) snapshots++;
  }
  return segmentHeaderFrameBytes(hardStateBytes, snapshots);
}

/**
 * The first record of every segment: identity of the file plus a copy of every group's latest
 * hard state and snapshot marker, so that deleting older segments never loses them (etcd does the
 * same when it cuts a segment).
 */
export function encodeSegmentHeader(
  buf: Buffer,
  start: number,
  seq: number,
  segmentSize: number,
  states: readonly GroupStateCopy[],
): number {
  const p = start + FRAME_HEADER_BYTES;
  buf[p] = RecordType.SegmentHeader;
  SEGMENT_MAGIC.copy(buf, p + 1);
  buf.writeUInt16LE(SEGMENT_FORMAT_VERSION, p + 9);
  buf.writeUInt16LE(0, p + 11);
  putU32(buf, p + 13, segmentSize);
  writeU64(buf, p + 17, seq);
  let hardStates = 0;
  let snapshots = 0;
  for (const s of states) {
    if (s.hardState !== null) hardStates++;
    if (s.snapshot !== null) snapshots++;
  }
  putU32(buf, p + 25, hardStates);
  putU32(buf, p + 29, snapshots);
  let q = p + 1 + SEGMENT_HEADER_FIXED_BYTES;
  for (const s of states) {
    if (s.hardState !== null) {
      q = writeHardStatePayload(buf, q, s.group, s.hardState.term, s.hardState.commit, s.hardState.vote);
    }
  }
  for (const s of states) {
    if (s.snapshot !== null) q = writeSnapshotPayload(buf, q, s.group, s.snapshot.index, s.snapshot.term);
  }
  return sealFrame(buf, start, q - p);
}

/** Result of reading the frame at one offset. */
export type FrameRead =
  | { kind: 'record'; type: number; payloadStart: number; payloadEnd: number; next: number }
  | { kind: 'end' } // zero length: pre-allocated space, no record here
  | { kind: 'bad'; reason: string };

const END: FrameRead = { kind: 'end' };

/** Reads and verifies (length bounds, CRC32C) the frame at `start`; `limit` is the end of valid bytes. */
export function readFrame(buf: Buffer, start: number, limit: number): FrameRead {
  if (start + FRAME_HEADER_BYTES > limit) {
    return isAllZero(buf, start, limit) ? END : { kind: 'bad', reason: 'incomplete record header' };
  }
  const length = buf.readUInt32LE(start);
  const crc = buf.readUInt32LE(start + 4);
  if (length === 0) {
    return crc === 0 ? END : { kind: 'bad', reason: 'record of length 0 with a non-zero checksum' };
  }
  const body = start + FRAME_HEADER_BYTES;
  if (length > limit - body) {
    return { kind: 'bad', reason: `record length ${length} runs past the end of the segment` };
  }
  const actual = crc32c(new Uint8Array(buf.buffer, buf.byteOffset + body, length));
  if (actual !== crc) {
    return { kind: 'bad', reason: `checksum mismatch (stored ${hex(crc)}, computed ${hex(actual)})` };
  }
  return {
    kind: 'record',
    type: buf[body]!,
    payloadStart: body + 1,
    payloadEnd: body + length,
    next: start + alignUp(FRAME_HEADER_BYTES + length),
  };
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

const ZERO_BLOCK = Buffer.alloc(64 * 1024);

/** True when buf[start, end) holds only zero bytes. */
export function isAllZero(buf: Buffer, start: number, end: number): boolean {
  let p = start;
  while (p < end) {
    const n = Math.min(ZERO_BLOCK.length, end - p);
    if (buf.compare(ZERO_BLOCK, 0, n, p, p + n) !== 0) return false;
    p += n;
  }
  return true;
}

/** Offset just past the last non-zero byte of buf[start, end), or `start` if all are zero. */
export function endOfNonZero(buf: Buffer, start: number, end: number): number {
  let p = end;
  while (p > start) {
    const n = Math.min(ZERO_BLOCK.length, p - start);
    if (buf.compare(ZERO_BLOCK, 0, n, p - n, p) !== 0) {
      for (let i = p - 1; i >= p - n; i--) if (buf[i] !== 0) return i + 1;
    }
    p -= n;
  }
  return start;
}

/**
 * The first aligned offset in (after, limit) where a complete record with a valid checksum starts,
 * or -1. Used to tell a torn tail (nothing valid follows) from corruption (something valid does).
 */
export function findValidFrame(buf: Buffer, after: number, limit: number): number {
  let p = alignUp(after + 1);
  while (p + FRAME_HEADER_BYTES <= limit) {
    // Skip zero runs a block at a time: the common case is a mostly empty pre-allocated segment.
    if (buf.readUInt32LE(p) === 0) {
      const blockEnd = Math.min(limit, p + ZERO_BLOCK.length);
      if (isAllZero(buf, p, blockEnd)) {
        p = alignUp(blockEnd);
        continue;
      }
    }
    const frame = readFrame(buf, p, limit);
    if (frame.kind === 'record') return p;
    p += RECORD_ALIGNMENT;
  }
  return -1;
}

/** A decoded record as it is in the file (entries without copying their data). */
export type DecodedRecord =
  | {
      type: typeof RecordType.Entry;
      group: number;
      term: number;
      index: number;
      entryType: number;
      dataStart: number;
      dataEnd: number;
    }
  | { type: typeof RecordType.HardState; group: number; term: number; commit: number; vote: string }
  | { type: typeof RecordType.Snapshot; group: number; index: number; term: number }
  | { type: typeof RecordType.Truncate; group: number; fromIndex: number }
  | {
      type: typeof RecordType.SegmentHeader;
      version: number;
      segmentSize: number;
      seq: number;
      states: GroupStateCopy[];
    };

/**
 * Decodes a verified frame's payload. A frame with a valid checksum but a malformed payload was
 * not torn by a crash: it returns a reason string, which recovery reports as corruption.
 */
export function decodeRecord(
  buf: Buffer,
  frame: Extract<FrameRead, { kind: 'record' }>,
): DecodedRecord | string {
  const p = frame.payloadStart;
  const n = frame.payloadEnd - p;
  switch (frame.type) {
    case RecordType.Entry: {
      if (n < ENTRY_FIXED_BYTES) return `entry record too short (${n} bytes)`;
      const term = readU64(buf, p + 4);
      const index = readU64(buf, p + 12);
      if (term < 0 || index < 1) return 'entry record with an out-of-range term or index';
      return {
        type: RecordType.Entry,
        group: buf.readUInt32LE(p),
        term,
        index,
        entryType: buf[p + 20]!,
        dataStart: p + ENTRY_FIXED_BYTES,
        dataEnd: frame.payloadEnd,
      };
    }
    case RecordType.HardState: {
      const hs = readHardStatePayload(buf, p, frame.payloadEnd);
      if (typeof hs === 'string') return hs;
      if (hs.next !== frame.payloadEnd) return 'hard state record has trailing bytes';
      return { type: RecordType.HardState, group: hs.group, term: hs.term, commit: hs.commit, vote: hs.vote };
    }
    case RecordType.Snapshot: {
      if (n !== SNAPSHOT_PAYLOAD_BYTES) return `snapshot record of wrong size (${n} bytes)`;
      const s = readSnapshotPayload(buf, p);
      if (typeof s === 'string') return s;
      return { type: RecordType.Snapshot, group: s.group, index: s.index, term: s.term };
    }
    case RecordType.Truncate: {
      if (n !== TRUNCATE_PAYLOAD_BYTES) return `truncate record of wrong size (${n} bytes)`;
      const fromIndex = readU64(buf, p + 4);
      if (fromIndex < 1) return 'truncate record with an out-of-range index';
      return { type: RecordType.Truncate, group: buf.readUInt32LE(p), fromIndex };
    }
    case RecordType.SegmentHeader:
      return decodeSegmentHeader(buf, p, frame.payloadEnd);
    default:
      return `unknown record type ${frame.type}`;
  }
}

function readHardStatePayload(
  buf: Buffer,
  p: number,
  end: number,
): { group: number; term: number; commit: number; vote: string; next: number } | string {
  if (end - p < HARD_STATE_FIXED_BYTES) return 'hard state record too short';
  const voteBytes = buf[p + 20]!;
  const next = p + HARD_STATE_FIXED_BYTES + voteBytes;
  if (next > end) return 'hard state vote runs past the record';
  const term = readU64(buf, p + 4);
  const commit = readU64(buf, p + 12);
  if (term < 0 || commit < 0) return 'hard state with an out-of-range term or commit';
  return { group: buf.readUInt32LE(p), term, commit, vote: buf.toString('utf8', p + 21, next), next };
}

function readSnapshotPayload(
  buf: Buffer,
  p: number,
): { group: number; index: number; term: number } | string {
  const index = readU64(buf, p + 4);
  const term = readU64(buf, p + 12);
  if (index < 0 || term < 0) return 'snapshot marker with an out-of-range index or term';
  return { group: buf.readUInt32LE(p), index, term };
}

function decodeSegmentHeader(buf: Buffer, p: number, end: number): DecodedRecord | string {
  if (end - p < SEGMENT_HEADER_FIXED_BYTES) return 'segment header too short';
  if (!buf.subarray(p, p + 8).equals(SEGMENT_MAGIC)) return 'segment header without the ATLASWAL magic';
  const version = buf.readUInt16LE(p + 8);
  if (version !== SEGMENT_FORMAT_VERSION) return `unsupported segment format version ${version}`;
  const segmentSize = buf.readUInt32LE(p + 12);
  const seq = readU64(buf, p + 16);
  const hardStates = buf.readUInt32LE(p + 24);
  const snapshots = buf.readUInt32LE(p + 28);
  const byGroup = new Map<number, GroupStateCopy>();
  const stateOf = (group: number): GroupStateCopy => {
    let s = byGroup.get(group);
    if (s === undefined) {
      s = { group, hardState: null, snapshot: null };
      byGroup.set(group, s);
    }
    return s;
  };
  let q = p + SEGMENT_HEADER_FIXED_BYTES;
  for (let i = 0; i < hardStates; i++) {
    const hs = readHardStatePayload(buf, q, end);
    if (typeof hs === 'string') return `segment header: ${hs}`;
    const s = stateOf(hs.group);
    if (s.hardState !== null) return `segment header repeats the hard state of group ${hs.group}`;
    s.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
    q = hs.next;
  }
  for (let i = 0; i < snapshots; i++) {
    if (q + SNAPSHOT_PAYLOAD_BYTES > end) return 'segment header: snapshot markers run past the record';
    const m = readSnapshotPayload(buf, q);
    if (typeof m === 'string') return `segment header: ${m}`;
    const s = stateOf(m.group);
    if (s.snapshot !== null) return `segment header repeats the snapshot marker of group ${m.group}`;
    s.snapshot = { index: m.index, term: m.term };
    q += SNAPSHOT_PAYLOAD_BYTES;
  }
  if (q !== end) return 'segment header has trailing bytes';
  return { type: RecordType.SegmentHeader, version, segmentSize, seq, states: [...byGroup.values()] };
}
