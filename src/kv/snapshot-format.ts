/**
 * The snapshot stream format, shared by every StateStore backend (a MemoryStore snapshot imports into
 * an LmdbStore and vice versa). DESIGN.md §4: snapshots stream in checksummed chunks, and a receiver
 * must detect corruption, reordering, splicing and truncation before it swaps anything in.
 *
 * Every chunk (integers little-endian):
 *
 *   0   u32  magic 'ASNP'
 *   4   u8   format version (1)
 *   5   u8   kind: 1 header, 2 data, 3 trailer
 *   6   u16  reserved, 0
 *   8   u32  sequence number: 0 for the header, then 1, 2, ... with no gaps
 *   12  u32  stream id: CRC32C of the header's payload, the same in every chunk of one stream
 *   16  u32  payload length
 *   20  ...  payload
 *   end u32  CRC32C of every byte before it
 *
 * Header payload: u64 appliedIndex, u64 revision, u64 keyCount, u32 metadata length, metadata.
 * Data payload: records back to back, meta records (strictly increasing by UTF-8 key bytes) before
 * key-value records (strictly increasing by key bytes):
 *   meta: u8 1, u32 key length, key (UTF-8), u32 value length, value
 *   kv:   u8 2, u32 key length, key, u32 value length, value, u64 createRevision, u64 modRevision, u64 version
 * Trailer payload: u32 chunk count (header and trailer included), u64 key-value count, u64 meta count.
 *
 * A data chunk closes as soon as its payload reaches SNAPSHOT_CHUNK_TARGET_BYTES, so its payload is
 * smaller than the target plus one record; a reader refuses anything larger before checksumming it.
 */
import { crc32c } from '@node-rs/crc32';
import { SnapshotCorruptionError, StoreLimitError } from './errors.js';
import { MAX_SNAPSHOT_METADATA_BYTES, type StoreLimits } from './limits.js';
import type { SnapshotHeader } from './state-store.js';
import { readUint64LE, writeUint64LE } from './uint64.js';

/** 'ASNP' read as a little-endian u32. */
const MAGIC = 0x504e5341;
const FORMAT_VERSION = 1;
const KIND_HEADER = 1;
const KIND_DATA = 2;
const KIND_TRAILER = 3;
const RECORD_META = 1;
const RECORD_KV = 2;

const CHUNK_PREFIX_BYTES = 20;
const CHUNK_CRC_BYTES = 4;
const CHUNK_OVERHEAD_BYTES = CHUNK_PREFIX_BYTES + CHUNK_CRC_BYTES;
const HEADER_FIXED_BYTES = 8 + 8 + 8 + 4;
const TRAILER_PAYLOAD_BYTES = 4 + 8 + 8;
const META_RECORD_OVERHEAD = 1 + 4 + 4;
const KV_RECORD_OVERHEAD = 1 + 4 + 4 + 24;

/** Target payload size of a data chunk (~1 MiB). */
export const SNAPSHOT_CHUNK_TARGET_BYTES = 1024 * 1024;

/** One key-value of a snapshot, with its revision metadata. */
export interface SnapshotKeyValue {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
}

/** One meta entry of a snapshot; the key as UTF-8 bytes (the order the stream uses). */
export interface SnapshotMetaEntry {
  key: Buffer;
  value: Buffer;
}

function seal(chunk: Buffer, kind: number, sequence: number, streamId: number, payloadBytes: number): Buffer {
  chunk.writeUInt32LE(MAGIC, 0);
  chunk.writeUInt8(FORMAT_VERSION, 4);
  chunk.writeUInt8(kind, 5);
  chunk.writeUInt16LE(0, 6);
  chunk.writeUInt32LE(sequence, 8);
  chunk.writeUInt32LE(streamId, 12);
  chunk.writeUInt32LE(payloadBytes, 16);
  const end = CHUNK_PREFIX_BYTES + payloadBytes;
  chunk.writeUInt32LE(crc32c(chunk.subarray(0, end)), end);
  return chunk.subarray(0, end + CHUNK_CRC_BYTES);
}

/**
 * Turns a consistent view into chunks: call header() first, then addMeta() for every meta entry
 * and addKeyValue() for every key-value in order, then finish(). addMeta/addKeyValue return a chunk
 * whenever one fills up (null otherwise).
 */
export class SnapshotChunkWriter {
  private readonly targetBytes: number;
  private streamId = 0;
  private sequence = 0;
  private buffer: Buffer;
  private used = CHUNK_PREFIX_BYTES;
  private kvCount = 0;
  private metaCount = 0;
  private state: 'new' | 'records' | 'finished' = 'new';

  constructor(targetBytes: number = SNAPSHOT_CHUNK_TARGET_BYTES) {
    if (!Number.isSafeInteger(targetBytes) || targetBytes < 1)
      throw new RangeError('chunk target must be positive');
    this.targetBytes = targetBytes;
    this.buffer = Buffer.allocUnsafe(targetBytes + 64 * 1024);
  }

  header(header: SnapshotHeader): Buffer {
    if (this.state !== 'new') throw new Error('snapshot header written twice');
    if (header.metadata.length > MAX_SNAPSHOT_METADATA_BYTES) {
      throw new StoreLimitError(
        'maxSnapshotMetadataBytes',
        MAX_SNAPSHOT_METADATA_BYTES,
        header.metadata.length,
        'snapshot metadata size in bytes',
      );
    }
    const payloadBytes = HEADER_FIXED_BYTES + header.metadata.length;
    const chunk = Buffer.allocUnsafe(CHUNK_OVERHEAD_BYTES + payloadBytes);
    let at = CHUNK_PREFIX_BYTES;
    writeUint64LE(chunk, at, header.appliedIndex);
    writeUint64LE(chunk, at + 8, header.revision);
    writeUint64LE(chunk, at + 16, header.keyCount);
    chunk.writeUInt32LE(header.metadata.length, at + 24);
    at += HEADER_FIXED_BYTES;
    header.metadata.copy(chunk, at);
    this.streamId = crc32c(chunk.subarray(CHUNK_PREFIX_BYTES, CHUNK_PREFIX_BYTES + payloadBytes));
    this.state = 'records';
    return seal(chunk, KIND_HEADER, this.sequence++, this.streamId, payloadBytes);
  }

  addMeta(key: Buffer, value: Buffer): Buffer | null {
    this.expectRecords();
    if (this.kvCount > 0) throw new Error('snapshot meta entries must precede key-values');
    const at = this.reserve(META_RECORD_OVERHEAD + key.length + value.length);
    const b = this.buffer;
    b[at] = RECORD_META;
    b.writeUInt32LE(key.length, at + 1);
    key.copy(b, at + 5);
    const v = at + 5 + key.length;
    b.writeUInt32LE(value.length, v);
    value.copy(b, v + 4);
    this.metaCount++;
    return this.closeIfFull();
  }

  addKeyValue(kv: SnapshotKeyValue): Buffer | null {
    this.expectRecords();
    const at = this.reserve(KV_RECORD_OVERHEAD + kv.key.length + kv.value.length);
    const b = this.buffer;
    b[at] = RECORD_KV;
    b.writeUInt32LE(kv.key.length, at + 1);
    kv.key.copy(b, at + 5);
    let v = at + 5 + kv.key.length;
    b.writeUInt32LE(kv.value.length, v);
    kv.value.copy(b, v + 4);
    v += 4 + kv.value.length;
    writeUint64LE(b, v, kv.createRevision);
    writeUint64LE(b, v + 8, kv.modRevision);
    writeUint64LE(b, v + 16, kv.version);
    this.kvCount++;
    return this.closeIfFull();
  }

  /** The last data chunk (if any records are pending) and the trailer. */
  finish(): Buffer[] {
    this.expectRecords();
    const chunks: Buffer[] = [];
    if (this.used > CHUNK_PREFIX_BYTES) chunks.push(this.closeData());
    const trailer = Buffer.allocUnsafe(CHUNK_OVERHEAD_BYTES + TRAILER_PAYLOAD_BYTES);
    trailer.writeUInt32LE(this.sequence + 1, CHUNK_PREFIX_BYTES);
    writeUint64LE(trailer, CHUNK_PREFIX_BYTES + 4, this.kvCount);
    writeUint64LE(trailer, CHUNK_PREFIX_BYTES + 12, this.metaCount);
    chunks.push(seal(trailer, KIND_TRAILER, this.sequence++, this.streamId, TRAILER_PAYLOAD_BYTES));
    this.state = 'finished';
    return chunks;
  }

  private expectRecords(): void {
    if (this.state !== 'records') {
      throw new Error(this.state === 'new' ? 'snapshot header not written yet' : 'snapshot already finished');
    }
  }

  /** Makes room for a record of `bytes` at the end of the current chunk; returns its offset. */
  private reserve(bytes: number): number {
    const needed = this.used + bytes + CHUNK_CRC_BYTES;
    if (needed > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.buffer.length * 2));
      this.buffer.copy(grown, 0, 0, this.used);
      this.buffer = grown;
    }
    const at = this.used;
    this.used += bytes;
    return at;
  }

  private closeIfFull(): Buffer | null {
    return this.used - CHUNK_PREFIX_BYTES >= this.targetBytes ? this.closeData() : null;
  }

  private closeData(): Buffer {
    const chunk = seal(
      this.buffer,
      KIND_DATA,
      this.sequence++,
      this.streamId,
      this.used - CHUNK_PREFIX_BYTES,
    );
    // The sealed chunk keeps this buffer; the next chunk gets a fresh one.
    this.buffer = Buffer.allocUnsafe(this.targetBytes + 64 * 1024);
    this.used = CHUNK_PREFIX_BYTES;
    return chunk;
  }
}

/** What one verified chunk held. Record buffers are views into the chunk. */
export type SnapshotPiece =
  | { kind: 'header'; header: SnapshotHeader }
  | { kind: 'data'; meta: SnapshotMetaEntry[]; keyValues: SnapshotKeyValue[] }
  | { kind: 'trailer' };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Verifies a snapshot stream chunk by chunk: framing, checksum, sequence, stream id, record
 * encoding, key order, revision invariants, the importing store's limits, and (at the trailer) the
 * counts. Any failure throws SnapshotCorruptionError naming the chunk; limit violations throw
 * StoreLimitError. Call end() after the last chunk: it throws if the trailer never came.
 */
export class SnapshotChunkReader {
  private readonly limits: StoreLimits;
  private readonly maxChunkBytes: number;
  private sequence = 0;
  private streamId = 0;
  private header: SnapshotHeader | null = null;
  private trailerSeen = false;
  private lastMetaKey: Buffer | null = null;
  private lastKey: Buffer | null = null;
  private kvCount = 0;
  private metaCount = 0;

  constructor(limits: StoreLimits) {
    this.limits = limits;
    const largestRecord = Math.max(
      KV_RECORD_OVERHEAD + limits.maxKeyBytes + limits.maxValueBytes,
      META_RECORD_OVERHEAD + limits.maxMetaKeyBytes + limits.maxMetaValueBytes,
    );
    this.maxChunkBytes =
      CHUNK_OVERHEAD_BYTES +
      Math.max(SNAPSHOT_CHUNK_TARGET_BYTES + largestRecord, HEADER_FIXED_BYTES + MAX_SNAPSHOT_METADATA_BYTES);
  }

  /** The header, once chunk 0 has been read. */
  snapshotHeader(): SnapshotHeader | null {
    return this.header;
  }

  read(chunk: unknown): SnapshotPiece {
    const n = this.sequence;
    const fail: (reason: string) => never = (reason) => {
      throw new SnapshotCorruptionError(n, reason);
    };
    if (this.trailerSeen) fail('found after the trailer (the stream must end at its trailer)');
    if (!(chunk instanceof Uint8Array)) fail('is not a Buffer');
    const bytes = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (bytes.length < CHUNK_OVERHEAD_BYTES)
      fail(`is ${bytes.length} bytes, shorter than the ${CHUNK_OVERHEAD_BYTES}-byte framing`);
    if (bytes.length > this.maxChunkBytes)
      fail(`is ${bytes.length} bytes, larger than the largest valid chunk (${this.maxChunkBytes})`);
    if (bytes.readUInt32LE(0) !== MAGIC) fail('bad magic (not a snapshot chunk)');
    const payloadBytes = bytes.readUInt32LE(16);
    if (payloadBytes !== bytes.length - CHUNK_OVERHEAD_BYTES) {
      fail(
        `payload length field says ${payloadBytes} bytes but the chunk carries ${bytes.length - CHUNK_OVERHEAD_BYTES} (truncated or padded)`,
      );
    }
    const crcAt = CHUNK_PREFIX_BYTES + payloadBytes;
    const stored = bytes.readUInt32LE(crcAt);
    const computed = crc32c(bytes.subarray(0, crcAt));
    if (stored !== computed) {
      fail(`checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)})`);
    }
    const version = bytes[4]!;
    if (version !== FORMAT_VERSION)
      fail(`unsupported snapshot format version ${version} (this build reads ${FORMAT_VERSION})`);
    const sequence = bytes.readUInt32LE(8);
    if (sequence !== n)
      fail(`has sequence number ${sequence}, expected ${n} (chunks reordered, duplicated or missing)`);
    const kind = bytes[5]!;
    const payload = bytes.subarray(CHUNK_PREFIX_BYTES, crcAt);
    const streamId = bytes.readUInt32LE(12);
    let piece: SnapshotPiece;
    if (n === 0) {
      if (kind !== KIND_HEADER) fail(`is of kind ${kind}, but a stream must start with its header`);
      const expectedId = crc32c(payload);
      if (streamId !== expectedId) fail('header stream id does not match its payload');
      this.streamId = streamId;
      piece = { kind: 'header', header: this.decodeHeader(payload, fail) };
    } else {
      if (streamId !== this.streamId) fail('belongs to a different snapshot stream (stream id mismatch)');
      if (kind === KIND_DATA) piece = this.decodeData(payload, fail);
      else if (kind === KIND_TRAILER) piece = this.decodeTrailer(payload, fail);
      else piece = fail(`has unknown or misplaced kind ${kind}`);
    }
    this.sequence++;
    return piece;
  }

  /** Confirms the stream was complete. */
  end(): SnapshotHeader {
    if (this.header === null) throw new SnapshotCorruptionError(0, 'stream is empty (no header)');
    if (!this.trailerSeen) {
      throw new SnapshotCorruptionError(this.sequence, 'stream ended before its trailer (truncated)');
    }
    return this.header;
  }

  private decodeHeader(payload: Buffer, fail: (reason: string) => never): SnapshotHeader {
    if (payload.length < HEADER_FIXED_BYTES) fail('header payload too short');
    const appliedIndex = readUint64LE(payload, 0);
    const revision = readUint64LE(payload, 8);
    const keyCount = readUint64LE(payload, 16);
    const metadataBytes = payload.readUInt32LE(24);
    for (const [name, value] of [
      ['appliedIndex', appliedIndex],
      ['revision', revision],
      ['keyCount', keyCount],
    ] as const) {
      if (!Number.isSafeInteger(value)) fail(`header ${name} is not a safe integer`);
    }
    if (HEADER_FIXED_BYTES + metadataBytes !== payload.length)
      fail('header metadata length does not match the payload');
    if (metadataBytes > MAX_SNAPSHOT_METADATA_BYTES)
      fail(`header metadata is ${metadataBytes} bytes, over ${MAX_SNAPSHOT_METADATA_BYTES}`);
    const metadata = Buffer.from(payload.subarray(HEADER_FIXED_BYTES));
    this.header = { appliedIndex, revision, keyCount, metadata };
    return this.header;
  }

  private decodeData(payload: Buffer, fail: (reason: string) => never): SnapshotPiece {
    const header = this.header!;
    if (payload.length === 0) fail('data chunk is empty');
    const limits = this.limits;
    const meta: SnapshotMetaEntry[] = [];
    const keyValues: SnapshotKeyValue[] = [];
    let at = 0;
    let record = 0;
    /**
     * Reads the `u32 key length, key, u32 value length, value` part of the record at `at` (after its
     * type byte), with `trailing` fixed bytes after the value, and checks the sizes against limits.
     */
    const readPair = (
      trailing: number,
      keyLimit: 'maxKeyBytes' | 'maxMetaKeyBytes',
      valueLimit: 'maxValueBytes' | 'maxMetaValueBytes',
    ): { key: Buffer; value: Buffer; end: number } => {
      const need = (bytes: number): void => {
        if (at + bytes > payload.length) fail(`record ${record} runs past the end of the payload`);
      };
      need(1 + 4 + 4 + trailing);
      const keyBytes = payload.readUInt32LE(at + 1);
      need(1 + 4 + keyBytes + 4 + trailing);
      const valueBytes = payload.readUInt32LE(at + 5 + keyBytes);
      need(1 + 4 + keyBytes + 4 + valueBytes + trailing);
      if (keyBytes === 0) fail(`record ${record}: empty key`);
      if (keyBytes > limits[keyLimit]) {
        throw new StoreLimitError(keyLimit, limits[keyLimit], keyBytes, 'snapshot key size in bytes');
      }
      if (valueBytes > limits[valueLimit]) {
        throw new StoreLimitError(valueLimit, limits[valueLimit], valueBytes, 'snapshot value size in bytes');
      }
      const valueAt = at + 5 + keyBytes + 4;
      return {
        key: payload.subarray(at + 5, at + 5 + keyBytes),
        value: payload.subarray(valueAt, valueAt + valueBytes),
        end: valueAt + valueBytes,
      };
    };
    while (at < payload.length) {
      const type = payload[at]!;
      if (type === RECORD_META) {
        if (this.kvCount > 0) fail(`record ${record}: meta entry after key-values`);
        const { key, value, end } = readPair(0, 'maxMetaKeyBytes', 'maxMetaValueBytes');
        try {
          utf8.decode(key);
        } catch {
          fail(`record ${record}: meta key is not valid UTF-8`);
        }
        if (this.lastMetaKey !== null && Buffer.compare(this.lastMetaKey, key) >= 0) {
          fail(`record ${record}: meta keys out of order or duplicated`);
        }
        this.lastMetaKey = key;
        meta.push({ key, value });
        this.metaCount++;
        at = end;
      } else if (type === RECORD_KV) {
        const { key, value, end } = readPair(24, 'maxKeyBytes', 'maxValueBytes');
        const createRevision = readUint64LE(payload, end);
        const modRevision = readUint64LE(payload, end + 8);
        const version = readUint64LE(payload, end + 16);
        if (this.lastKey !== null && Buffer.compare(this.lastKey, key) >= 0) {
          fail(`record ${record}: keys out of order or duplicated`);
        }
        if (
          !Number.isSafeInteger(createRevision) ||
          !Number.isSafeInteger(modRevision) ||
          !Number.isSafeInteger(version) ||
          createRevision < 1 ||
          modRevision < createRevision ||
          modRevision > header.revision ||
          version < 1
        ) {
          fail(
            `record ${record}: impossible revisions (create ${createRevision}, mod ${modRevision}, version ${version}, snapshot revision ${header.revision})`,
          );
        }
        this.lastKey = key;
        keyValues.push({ key, value, createRevision, modRevision, version });
        this.kvCount++;
        if (this.kvCount > header.keyCount)
          fail(`more key-values than the header's keyCount ${header.keyCount}`);
        at = end + 24;
      } else {
        fail(`record ${record}: unknown record type ${type}`);
      }
      record++;
    }
    return { kind: 'data', meta, keyValues };
  }

  private decodeTrailer(payload: Buffer, fail: (reason: string) => never): SnapshotPiece {
    if (payload.length !== TRAILER_PAYLOAD_BYTES)
      fail(`trailer payload is ${payload.length} bytes, expected ${TRAILER_PAYLOAD_BYTES}`);
    const chunkCount = payload.readUInt32LE(0);
    const kvCount = readUint64LE(payload, 4);
    const metaCount = readUint64LE(payload, 12);
    if (chunkCount !== this.sequence + 1) {
      fail(
        `trailer says the stream has ${chunkCount} chunks, but it is chunk ${this.sequence} (chunks missing)`,
      );
    }
    if (kvCount !== this.kvCount || kvCount !== this.header!.keyCount) {
      fail(
        `trailer counts ${kvCount} key-values, header says ${this.header!.keyCount}, stream carried ${this.kvCount}`,
      );
    }
    if (metaCount !== this.metaCount)
      fail(`trailer counts ${metaCount} meta entries, stream carried ${this.metaCount}`);
    this.trailerSeen = true;
    return { kind: 'trailer' };
  }
}
