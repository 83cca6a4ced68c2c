/**
 * How LmdbStore lays out one key's entry in one LMDB value: a fixed 24-byte binary header followed
 * by the value bytes, so a point get is one LMDB lookup and one copy of the value.
 *
 *   0   u64 LE  createRevision
 *   8   u64 LE  modRevision
 *   16  u64 LE  version
 *   24  ...     value
 */
import { StoreCorruptionError } from './errors.js';
import type { EntryVersion } from './txn-engine.js';
import { readUint64LE, writeUint64LE } from './uint64.js';

export const ENTRY_HEADER_BYTES = 24;

const copySlice = Uint8Array.prototype.slice;

/**
 * Encodes entries into one reusable scratch buffer. The returned view is valid until the next
 * encode(): LMDB copies it during the put, inside the same synchronous write transaction.
 */
export class StoredEntryEncoder {
  private scratch = Buffer.allocUnsafeSlow(64 * 1024);

  encode(value: Uint8Array, version: EntryVersion): Buffer {
    const bytes = ENTRY_HEADER_BYTES + value.length;
    if (bytes > this.scratch.length)
      this.scratch = Buffer.allocUnsafeSlow(Math.max(bytes, this.scratch.length * 2));
    const out = this.scratch;
    writeUint64LE(out, 0, version.createRevision);
    writeUint64LE(out, 8, version.modRevision);
    writeUint64LE(out, 16, version.version);
    out.set(value, ENTRY_HEADER_BYTES);
    return out.subarray(0, bytes);
  }
}

/** Encodes one entry into a fresh buffer (for long-key buckets, which hold several). */
export function encodeStoredEntry(value: Uint8Array, version: EntryVersion): Buffer {
  const out = Buffer.allocUnsafe(ENTRY_HEADER_BYTES + value.length);
  writeUint64LE(out, 0, version.createRevision);
  writeUint64LE(out, 8, version.modRevision);
  writeUint64LE(out, 16, version.version);
  out.set(value, ENTRY_HEADER_BYTES);
  return out;
}

function corrupt(key: Uint8Array, reason: string): never {
  throw new StoreCorruptionError(
    `stored entry of key 0x${Buffer.from(key).toString('hex').slice(0, 64)}: ${reason}`,
  );
}

/**
 * Reads the header of a stored entry; `length` is the entry's byte length (lmdb-js's reusable
 * buffers can be longer than the value they hold).
 */
export function decodeEntryVersion(raw: Uint8Array, length: number, key: Uint8Array): EntryVersion {
  if (length < ENTRY_HEADER_BYTES)
    corrupt(key, `${length} bytes, shorter than its ${ENTRY_HEADER_BYTES}-byte header`);
  const createRevision = readUint64LE(raw, 0);
  const modRevision = readUint64LE(raw, 8);
  const version = readUint64LE(raw, 16);
  if (
    !Number.isSafeInteger(modRevision) ||
    !Number.isSafeInteger(version) ||
    createRevision < 1 ||
    modRevision < createRevision ||
    version < 1
  ) {
    corrupt(key, `impossible header (create ${createRevision}, mod ${modRevision}, version ${version})`);
  }
  return { createRevision, modRevision, version };
}

/** Copies the value out of a stored entry into a caller-owned Buffer. */
export function copyEntryValue(raw: Buffer, length: number): Buffer {
  return copySlice.call(raw, ENTRY_HEADER_BYTES, length) as Buffer;
}
