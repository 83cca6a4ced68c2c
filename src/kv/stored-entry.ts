/**
 * How LmdbStore lays out one key's entry in one LMDB value: a header (create revision, mod
 * revision, version) followed by the value bytes, so a point get is one LMDB lookup and one copy.
 *
 * Two header formats, chosen per store by its format record (lmdb-store.ts):
 *
 *   fixed   (store format 1)   u64 LE createRevision, u64 LE modRevision, u64 LE version: 24 bytes
 *   compact (store format 2)   LEB128 varints: modRevision, modRevision - createRevision, version
 *
 * Why compact: with 100-byte values the fixed header was 16% of each LMDB node, and the B+tree's
 * pages are what a node keeps resident (bench:scale at 1,000,000 keys: 54,800 leaf pages). A key
 * written once at revision r < 2^21 takes 3 + 1 + 1 = 5 bytes. Stores created before keep format 1.
 */
import { StoreCorruptionError } from './errors.js';
import type { EntryVersion } from './txn-engine.js';
import { readUint64LE, writeUint64LE } from './uint64.js';

export type EntryFormat = 'fixed' | 'compact';

export interface DecodedEntry extends EntryVersion {
  /** Where the value starts in the raw entry. */
  valueOffset: number;
}

const FIXED_HEADER_BYTES = 24;
/** Three varints of at most 8 bytes each (7 bits per byte covers 2^53). */
const MAX_COMPACT_HEADER_BYTES = 24;
const MAX_VARINT_BYTES = 8;
const TWO_POW_31 = 0x8000_0000;

function corrupt(key: Uint8Array, reason: string): never {
  throw new StoreCorruptionError(
    `stored entry of key 0x${Buffer.from(key).toString('hex').slice(0, 64)}: ${reason}`,
  );
}

/** Writes `value` (a safe non-negative integer) as a LEB128 varint at `at`; returns the next offset. */
function writeVarint(out: Buffer, at: number, value: number): number {
  let n = value;
  while (n >= TWO_POW_31) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[at++] = n;
  return at;
}

/** Bytes writeVarint takes for `value`. */
function varintBytes(value: number): number {
  let n = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 128)) n++;
  return n;
}

/**
 * Encodes and decodes entries of one format. encode() writes into one reusable scratch buffer: the
 * returned view is valid until the next encode() (LMDB copies it during the put, in the same
 * synchronous write transaction); encodeOwned() returns a fresh buffer (for long-key buckets).
 */
export class StoredEntryCodec {
  private scratch = Buffer.allocUnsafeSlow(64 * 1024);

  constructor(readonly format: EntryFormat) {}

  encode(value: Uint8Array, version: EntryVersion): Buffer {
    const most = MAX_COMPACT_HEADER_BYTES + value.length;
    if (most > this.scratch.length) this.scratch = Buffer.allocUnsafeSlow(Math.max(most, this.scratch.length * 2));
    return this.encodeInto(this.scratch, value, version);
  }

  encodeOwned(value: Uint8Array, version: EntryVersion): Buffer {
    const header =
      this.format === 'fixed'
        ? FIXED_HEADER_BYTES
        : varintBytes(version.modRevision) + varintBytes(version.modRevision - version.createRevision) + varintBytes(version.version);
    return this.encodeInto(Buffer.allocUnsafe(header + value.length), value, version);
  }

  /** The header of a raw entry; `length` is its byte length (lmdb-js's reusable buffers can be longer). */
  decode(raw: Uint8Array, length: number, key: Uint8Array): DecodedEntry {
    return this.format === 'fixed' ? decodeFixed(raw, length, key) : decodeCompact(raw, length, key);
  }

  private encodeInto(out: Buffer, value: Uint8Array, version: EntryVersion): Buffer {
    const { createRevision, modRevision } = version;
    if (!isPossibleVersion(createRevision, modRevision, version.version)) {
      throw new RangeError(`impossible entry version (create ${createRevision}, mod ${modRevision}, version ${version.version})`);
    }
    let at: number;
    if (this.format === 'fixed') {
      writeUint64LE(out, 0, createRevision);
      writeUint64LE(out, 8, modRevision);
      writeUint64LE(out, 16, version.version);
      at = FIXED_HEADER_BYTES;
    } else {
      at = writeVarint(out, 0, modRevision);
      at = writeVarint(out, at, modRevision - createRevision);
      at = writeVarint(out, at, version.version);
    }
    out.set(value, at);
    return out.subarray(0, at + value.length);
  }
}

/** 1 <= create <= mod, version >= 1, all safe integers: the only versions an entry can carry. */
function isPossibleVersion(createRevision: number, modRevision: number, version: number): boolean {
  return (
    Number.isSafeInteger(createRevision) &&
    Number.isSafeInteger(modRevision) &&
    Number.isSafeInteger(version) &&
    createRevision >= 1 &&
    modRevision >= createRevision &&
    version >= 1
  );
}

function checked(key: Uint8Array, createRevision: number, modRevision: number, version: number): void {
  if (!isPossibleVersion(createRevision, modRevision, version)) {
    corrupt(key, `impossible header (create ${createRevision}, mod ${modRevision}, version ${version})`);
  }
}

function decodeFixed(raw: Uint8Array, length: number, key: Uint8Array): DecodedEntry {
  if (length < FIXED_HEADER_BYTES)
    corrupt(key, `${length} bytes, shorter than its ${FIXED_HEADER_BYTES}-byte header`);
  const createRevision = readUint64LE(raw, 0);
  const modRevision = readUint64LE(raw, 8);
  const version = readUint64LE(raw, 16);
  checked(key, createRevision, modRevision, version);
  return { createRevision, modRevision, version, valueOffset: FIXED_HEADER_BYTES };
}

function decodeCompact(raw: Uint8Array, length: number, key: Uint8Array): DecodedEntry {
  let at = 0;
  const varint = (what: string): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (at >= length) corrupt(key, `${length} bytes, its header ends inside the ${what}`);
      const byte = raw[at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (byte === 0 && i > 0) corrupt(key, `overlong encoding of the ${what}`);
        return value;
      }
      scale *= 128;
    }
    return corrupt(key, `the ${what} is longer than ${MAX_VARINT_BYTES} bytes`);
  };
  const modRevision = varint('mod revision');
  const age = varint('create revision');
  const version = varint('version');
  checked(key, modRevision - age, modRevision, version);
  return { createRevision: modRevision - age, modRevision, version, valueOffset: at };
}
