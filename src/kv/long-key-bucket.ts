/**
 * Keys longer than LMDB can index. lmdb-js caps LMDB keys at 1978 bytes with 4 KiB pages (4026 at
 * most), below the store's 4 KiB key limit. So LmdbStore stores a key of at most `inlineMax` bytes
 * as itself, and every longer key in a *bucket*: one LMDB entry under the bucket key
 * `key[0, inlineMax) ++ 0x00`, holding all long keys that share those first `inlineMax` bytes.
 *
 * Why the order stays bytewise: every inline key is at most `inlineMax` bytes long, so no inline key
 * lies strictly between prefix P and the long keys starting with P; the bucket key P ++ 0x00 sorts
 * right after P and before any other inline key greater than P. Iterating LMDB in order and expanding
 * each bucket in suffix order therefore yields user keys in bytewise order. A stored key of length
 * `inlineMax + 1` is always a bucket (inline keys are shorter).
 *
 * Bucket value: u32 member count, then per member (strictly increasing by suffix, suffix non-empty):
 *   u32 suffix length, suffix, u32 entry length, entry (the stored-entry layout of stored-entry.ts).
 */
import { StoreCorruptionError } from './errors.js';
import { searchSorted } from './sorted-search.js';

export interface BucketMember {
  /** The key's bytes after the bucket's `inlineMax`-byte prefix. */
  suffix: Buffer;
  /** The member's stored entry (24-byte header + value). */
  entry: Buffer;
}

export function bucketKeyOf(key: Uint8Array, inlineMax: number): Buffer {
  const bucketKey = Buffer.allocUnsafe(inlineMax + 1);
  bucketKey.set(key.subarray(0, inlineMax), 0);
  bucketKey[inlineMax] = 0;
  return bucketKey;
}

/** The full user key of a bucket member. */
export function memberKey(bucketKey: Uint8Array, suffix: Uint8Array, inlineMax: number): Buffer {
  const key = Buffer.allocUnsafe(inlineMax + suffix.length);
  key.set(bucketKey.subarray(0, inlineMax), 0);
  key.set(suffix, inlineMax);
  return key;
}

function corrupt(bucketKey: Uint8Array, reason: string): never {
  throw new StoreCorruptionError(
    `long-key bucket 0x${Buffer.from(bucketKey).toString('hex').slice(0, 64)}...: ${reason}`,
  );
}

/** Decodes a bucket; members are copies (the input may be lmdb-js's reusable read buffer). */
export function decodeBucket(raw: Uint8Array, length: number, bucketKey: Uint8Array): BucketMember[] {
  const bytes = Buffer.from(raw.subarray(0, length));
  if (length < 4) corrupt(bucketKey, `${length} bytes, too short`);
  const count = bytes.readUInt32LE(0);
  if (count === 0) corrupt(bucketKey, 'empty bucket');
  const members: BucketMember[] = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + 4 > length) corrupt(bucketKey, `member ${i} runs past the end`);
    const suffixBytes = bytes.readUInt32LE(at);
    if (suffixBytes === 0 || at + 4 + suffixBytes + 4 > length)
      corrupt(bucketKey, `member ${i} has a bad suffix length`);
    const suffix = bytes.subarray(at + 4, at + 4 + suffixBytes);
    at += 4 + suffixBytes;
    const entryBytes = bytes.readUInt32LE(at);
    if (at + 4 + entryBytes > length) corrupt(bucketKey, `member ${i} has a bad entry length`);
    const entry = bytes.subarray(at + 4, at + 4 + entryBytes);
    at += 4 + entryBytes;
    const previous = members[members.length - 1];
    if (previous !== undefined && Buffer.compare(previous.suffix, suffix) >= 0) {
      corrupt(bucketKey, `member ${i} is out of order`);
    }
    members.push({ suffix, entry });
  }
  if (at !== length) corrupt(bucketKey, `${length - at} trailing bytes`);
  return members;
}

export function encodeBucket(members: readonly BucketMember[]): Buffer {
  let bytes = 4;
  for (const member of members) bytes += 8 + member.suffix.length + member.entry.length;
  const out = Buffer.allocUnsafe(bytes);
  out.writeUInt32LE(members.length, 0);
  let at = 4;
  for (const member of members) {
    out.writeUInt32LE(member.suffix.length, at);
    member.suffix.copy(out, at + 4);
    at += 4 + member.suffix.length;
    out.writeUInt32LE(member.entry.length, at);
    member.entry.copy(out, at + 4);
    at += 4 + member.entry.length;
  }
  return out;
}

const suffixOf = (member: BucketMember): Buffer => member.suffix;

/** Index of `suffix` among the members, or -(insertion point) - 1 when absent. */
export function findMember(members: readonly BucketMember[], suffix: Uint8Array): number {
  return searchSorted(members, suffix, suffixOf);
}
