/**
 * Checks every request against the store's limits and shapes before anything is applied, so a bad
 * request fails as a whole with a specific error (DESIGN.md §1.5). Both branches of a transaction
 * are checked, whichever the compares select (as etcd does), so whether a batch is accepted never
 * depends on the data.
 */
import { InvalidStoreRequestError, StoreInvariantError, StoreLimitError } from './errors.js';
import { MAX_SNAPSHOT_METADATA_BYTES, type StoreLimits } from './limits.js';
import type { ApplyBatch, Compare, MetaWrite, RangeOptions, RequestOp, Txn } from './state-store.js';

const COMPARE_OPS: ReadonlySet<string> = new Set(['=', '!=', '<', '>']);

export function checkKey(key: unknown, limits: StoreLimits, where: string): asserts key is Buffer {
  if (!Buffer.isBuffer(key)) throw new InvalidStoreRequestError(`${where}: key must be a Buffer`);
  if (key.length === 0) throw new InvalidStoreRequestError(`${where}: key must not be empty`);
  if (key.length > limits.maxKeyBytes) {
    throw new StoreLimitError('maxKeyBytes', limits.maxKeyBytes, key.length, `${where}: key size in bytes`);
  }
}

function checkValue(value: unknown, limits: StoreLimits, where: string): void {
  if (!Buffer.isBuffer(value)) throw new InvalidStoreRequestError(`${where}: value must be a Buffer`);
  if (value.length > limits.maxValueBytes) {
    throw new StoreLimitError(
      'maxValueBytes',
      limits.maxValueBytes,
      value.length,
      `${where}: value size in bytes`,
    );
  }
}

function checkOpList(list: unknown, limits: StoreLimits, where: string): asserts list is unknown[] {
  if (!Array.isArray(list)) throw new InvalidStoreRequestError(`${where} must be an array`);
  if (list.length > limits.maxTxnOps) {
    throw new StoreLimitError('maxTxnOps', limits.maxTxnOps, list.length, `${where}: number of operations`);
  }
}

function checkCompare(compare: Compare, limits: StoreLimits, where: string): void {
  if (compare === null || typeof compare !== 'object') {
    throw new InvalidStoreRequestError(`${where} must be an object`);
  }
  checkKey(compare.key, limits, where);
  switch (compare.target) {
    case 'value':
      if (!COMPARE_OPS.has(compare.op))
        throw new InvalidStoreRequestError(`${where}: unknown op ${String(compare.op)}`);
      if (!Buffer.isBuffer(compare.value)) {
        throw new InvalidStoreRequestError(`${where}: a value compare needs a Buffer value`);
      }
      return;
    case 'version':
    case 'createRevision':
    case 'modRevision':
      if (!COMPARE_OPS.has(compare.op))
        throw new InvalidStoreRequestError(`${where}: unknown op ${String(compare.op)}`);
      if (!Number.isSafeInteger(compare.value)) {
        throw new InvalidStoreRequestError(`${where}: a ${compare.target} compare needs an integer value`);
      }
      return;
    case 'exists':
      if (typeof compare.exists !== 'boolean') {
        throw new InvalidStoreRequestError(`${where}: an exists compare needs a boolean 'exists'`);
      }
      return;
    default:
      throw new InvalidStoreRequestError(
        `${where}: unknown compare target ${String((compare as { target: unknown }).target)}`,
      );
  }
}

function checkRequestOp(op: RequestOp, limits: StoreLimits, where: string): void {
  if (op === null || typeof op !== 'object') throw new InvalidStoreRequestError(`${where} must be an object`);
  switch (op.type) {
    case 'put':
      checkKey(op.key, limits, where);
      checkValue(op.value, limits, where);
      return;
    case 'delete':
    case 'get':
      checkKey(op.key, limits, where);
      return;
    default:
      throw new InvalidStoreRequestError(
        `${where}: unknown op type ${String((op as { type: unknown }).type)}`,
      );
  }
}

/** True for a txn that is one valid put and nothing else: the commonest, checked without building the strings that name a fault. */
function isValidPlainPut(txn: Txn, limits: StoreLimits): boolean {
  const { compare, success, failure } = txn;
  if (!Array.isArray(compare) || !Array.isArray(success) || !Array.isArray(failure)) return false;
  if (compare.length !== 0 || failure.length !== 0 || success.length !== 1 || limits.maxTxnOps < 1)
    return false;
  const op: unknown = success[0];
  if (op === null || typeof op !== 'object') return false;
  const { type, key, value } = op as Record<string, unknown>;
  return (
    type === 'put' &&
    Buffer.isBuffer(key) &&
    key.length > 0 &&
    key.length <= limits.maxKeyBytes &&
    Buffer.isBuffer(value) &&
    value.length <= limits.maxValueBytes
  );
}

function checkTxn(txn: Txn, limits: StoreLimits, index: number): void {
  if (txn === null || typeof txn !== 'object')
    throw new InvalidStoreRequestError(`apply: txns[${index}] must be an object`);
  if (isValidPlainPut(txn, limits)) return;
  checkTxnFields(txn, limits, `apply: txns[${index}]`);
}

function checkTxnFields(txn: Txn, limits: StoreLimits, where: string): void {
  checkOpList(txn.compare, limits, `${where}.compare`);
  checkOpList(txn.success, limits, `${where}.success`);
  checkOpList(txn.failure, limits, `${where}.failure`);
  for (let i = 0; i < txn.compare.length; i++) checkCompare(txn.compare[i], limits, `${where}.compare[${i}]`);
  for (let i = 0; i < txn.success.length; i++)
    checkRequestOp(txn.success[i], limits, `${where}.success[${i}]`);
  for (let i = 0; i < txn.failure.length; i++)
    checkRequestOp(txn.failure[i], limits, `${where}.failure[${i}]`);
}

export function metaKeyBytes(key: unknown, limits: StoreLimits, where: string): Buffer {
  if (typeof key !== 'string' || key.length === 0) {
    throw new InvalidStoreRequestError(`${where}: meta key must be a non-empty string`);
  }
  const bytes = Buffer.from(key, 'utf8');
  // A lone surrogate would encode as U+FFFD: two different strings, one stored key.
  if (bytes.toString('utf8') !== key) {
    throw new InvalidStoreRequestError(`${where}: meta key must be well-formed Unicode (no lone surrogates)`);
  }
  if (bytes.length > limits.maxMetaKeyBytes) {
    throw new StoreLimitError(
      'maxMetaKeyBytes',
      limits.maxMetaKeyBytes,
      bytes.length,
      `${where}: meta key size in bytes`,
    );
  }
  return bytes;
}

function checkMetaWrite(write: MetaWrite, limits: StoreLimits, where: string): void {
  if (write === null || typeof write !== 'object')
    throw new InvalidStoreRequestError(`${where} must be an object`);
  metaKeyBytes(write.key, limits, where);
  if (write.value === null) return;
  if (!Buffer.isBuffer(write.value)) {
    throw new InvalidStoreRequestError(`${where}: meta value must be a Buffer or null`);
  }
  if (write.value.length > limits.maxMetaValueBytes) {
    throw new StoreLimitError(
      'maxMetaValueBytes',
      limits.maxMetaValueBytes,
      write.value.length,
      `${where}: meta value size in bytes`,
    );
  }
}

/**
 * Validates a whole batch. Throws StoreInvariantError when the applied index does not strictly
 * increase (the driver must never re-apply or skip backwards), and StoreLimitError /
 * InvalidStoreRequestError for bad content.
 */
export function checkApplyBatch(batch: ApplyBatch, limits: StoreLimits, currentAppliedIndex: number): void {
  if (batch === null || typeof batch !== 'object')
    throw new InvalidStoreRequestError('apply: batch must be an object');
  if (!Number.isSafeInteger(batch.appliedIndex) || batch.appliedIndex < 1) {
    throw new InvalidStoreRequestError(
      `apply: appliedIndex must be a positive integer, got ${String(batch.appliedIndex)}`,
    );
  }
  if (batch.appliedIndex <= currentAppliedIndex) {
    throw new StoreInvariantError(
      `apply: appliedIndex must strictly increase: batch has ${batch.appliedIndex}, store is at ${currentAppliedIndex}`,
    );
  }
  if (!Array.isArray(batch.txns)) throw new InvalidStoreRequestError('apply: txns must be an array');
  if (batch.txns.length > limits.maxBatchTxns) {
    throw new StoreLimitError(
      'maxBatchTxns',
      limits.maxBatchTxns,
      batch.txns.length,
      'apply: number of transactions',
    );
  }
  for (let i = 0; i < batch.txns.length; i++) checkTxn(batch.txns[i]!, limits, i);
  if (batch.meta === undefined) return;
  if (!Array.isArray(batch.meta)) throw new InvalidStoreRequestError('apply: meta must be an array');
  if (batch.meta.length > limits.maxMetaWrites) {
    throw new StoreLimitError(
      'maxMetaWrites',
      limits.maxMetaWrites,
      batch.meta.length,
      'apply: number of meta writes',
    );
  }
  for (let i = 0; i < batch.meta.length; i++) checkMetaWrite(batch.meta[i], limits, `apply: meta[${i}]`);
}

/** A range request after validation: bounds as given, the effective limit, and whether one was given. */
export interface CheckedRange {
  start: Buffer | undefined;
  end: Buffer | undefined;
  reverse: boolean;
  limit: number;
  /** False when the caller gave no limit: then more than `limit` results is an error, not a cut. */
  limitGiven: boolean;
  /** True when no key can lie in [start, end). */
  empty: boolean;
}

function checkBound(bound: unknown, where: string): Buffer | undefined {
  if (bound === undefined) return undefined;
  if (!Buffer.isBuffer(bound)) throw new InvalidStoreRequestError(`${where} must be a Buffer`);
  return bound as Buffer;
}

function checkLimit(limit: unknown, limits: StoreLimits, where: string): number | undefined {
  if (limit === undefined) return undefined;
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1) {
    throw new InvalidStoreRequestError(`${where}: limit must be a positive integer, got ${String(limit)}`);
  }
  if (limit > limits.maxRangeLimit) {
    throw new StoreLimitError('maxRangeLimit', limits.maxRangeLimit, limit, `${where}: limit`);
  }
  return limit;
}

/**
 * Normalizes range options. An empty `start` is the same as none (every key is >= the empty string);
 * an empty `end` makes the range empty (no key is below it).
 */
export function checkRange(options: RangeOptions, limits: StoreLimits, where: string): CheckedRange {
  if (options === null || typeof options !== 'object')
    throw new InvalidStoreRequestError(`${where}: options must be an object`);
  let start = checkBound(options.start, `${where}: start`);
  const end = checkBound(options.end, `${where}: end`);
  const limit = checkLimit(options.limit, limits, where);
  if (start !== undefined && start.length === 0) start = undefined;
  const empty =
    end !== undefined && (end.length === 0 || (start !== undefined && Buffer.compare(start, end) >= 0));
  return {
    start,
    end,
    reverse: options.reverse === true,
    limit: limit ?? limits.maxRangeLimit,
    limitGiven: limit !== undefined,
    empty,
  };
}

/** The error for a range without an explicit limit would return more than maxRangeLimit results. */
export function rangeTooLarge(limits: StoreLimits, where: string): StoreLimitError {
  return new StoreLimitError(
    'maxRangeLimit',
    limits.maxRangeLimit,
    limits.maxRangeLimit + 1,
    `${where}: the number of key-values in a range without a limit (at least)`,
    'pass a limit and page through the range',
  );
}

/**
 * The smallest key greater than every key that starts with `prefix`, or undefined when there is none
 * (the prefix is empty or all 0xff bytes).
 */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] !== 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i] += 1;
      return end;
    }
  }
  return undefined;
}

/** The range a prefix scan covers: every key that starts with `prefix` (all keys for an empty one). */
export function prefixRange(
  prefix: unknown,
  options: { limit?: number; reverse?: boolean } | undefined,
  where: string,
): RangeOptions {
  if (!Buffer.isBuffer(prefix)) throw new InvalidStoreRequestError(`${where}: prefix must be a Buffer`);
  return { start: prefix, end: prefixEnd(prefix), limit: options?.limit, reverse: options?.reverse };
}

/** Checks the opaque metadata of an export and returns a copy the export can keep. */
export function checkSnapshotMetadata(metadata: unknown): Buffer {
  if (!Buffer.isBuffer(metadata)) {
    throw new InvalidStoreRequestError('exportSnapshot: metadata must be a Buffer');
  }
  if (metadata.length > MAX_SNAPSHOT_METADATA_BYTES) {
    throw new StoreLimitError(
      'maxSnapshotMetadataBytes',
      MAX_SNAPSHOT_METADATA_BYTES,
      metadata.length,
      'exportSnapshot: metadata size in bytes',
    );
  }
  return Buffer.from(metadata);
}
