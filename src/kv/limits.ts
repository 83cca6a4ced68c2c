/**
 * The store's explicit limits (DESIGN.md §1.5, §10 "Size limits"). Every resource a request can grow
 * is bounded here; exceeding one throws StoreLimitError naming the limit, before anything is applied.
 */
import { InvalidStoreRequestError } from './errors.js';

/** Largest key, in bytes (4 KiB). */
export const MAX_KEY_BYTES = 4096;
/** Largest value, in bytes (1 MiB). */
export const MAX_VALUE_BYTES = 1024 * 1024;
/** Most key-values one range/prefix call returns; a range without `limit` holding more is an error. */
export const MAX_RANGE_LIMIT = 10_000;
/** Most operations in one list of a transaction (its compares, its success ops, its failure ops). */
export const MAX_TXN_OPS = 10_000;
/** Most transactions in one apply batch. */
export const MAX_BATCH_TXNS = 100_000;
/** Most meta writes in one apply batch. */
export const MAX_META_WRITES = 10_000;
/** Largest meta key, in UTF-8 bytes. */
export const MAX_META_KEY_BYTES = 512;
/** Largest meta value, in bytes (16 MiB: client session tables live here). */
export const MAX_META_VALUE_BYTES = 16 * 1024 * 1024;
/** Largest opaque snapshot metadata blob (Raft term and membership), in bytes. */
export const MAX_SNAPSHOT_METADATA_BYTES = 1024 * 1024;
/** Most snapshot exports one store serves at a time (each pins a consistent view). */
export const MAX_CONCURRENT_EXPORTS = 16;

export interface StoreLimits {
  maxKeyBytes: number;
  maxValueBytes: number;
  maxRangeLimit: number;
  maxTxnOps: number;
  maxBatchTxns: number;
  maxMetaWrites: number;
  maxMetaKeyBytes: number;
  maxMetaValueBytes: number;
}

export const DEFAULT_STORE_LIMITS: Readonly<StoreLimits> = Object.freeze({
  maxKeyBytes: MAX_KEY_BYTES,
  maxValueBytes: MAX_VALUE_BYTES,
  maxRangeLimit: MAX_RANGE_LIMIT,
  maxTxnOps: MAX_TXN_OPS,
  maxBatchTxns: MAX_BATCH_TXNS,
  maxMetaWrites: MAX_META_WRITES,
  maxMetaKeyBytes: MAX_META_KEY_BYTES,
  maxMetaValueBytes: MAX_META_VALUE_BYTES,
});

/** Ceiling for any configured limit: buffers above 2 GiB are not supported by the encodings. */
const LIMIT_CEILING = 0x7fff_ffff;

/** The defaults with `overrides` applied; each override must be a positive integer. */
export function resolveStoreLimits(overrides?: Partial<StoreLimits>): StoreLimits {
  const limits: StoreLimits = { ...DEFAULT_STORE_LIMITS };
  if (overrides === undefined) return limits;
  for (const name of Object.keys(DEFAULT_STORE_LIMITS) as (keyof StoreLimits)[]) {
    const value = overrides[name];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 1 || value > LIMIT_CEILING) {
      throw new InvalidStoreRequestError(
        `store limit ${name} must be an integer in [1, ${LIMIT_CEILING}], got ${String(value)}`,
      );
    }
    limits[name] = value;
  }
  return limits;
}
