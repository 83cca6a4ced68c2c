/**
 * etcd-style transaction semantics, shared by every StateStore backend so that they agree exactly.
 *
 * A transaction evaluates its compares against the state as left by the earlier transactions of
 * the same batch, then runs its success or failure ops in order; a later op sees the writes of an
 * earlier one. Every write of the transaction carries revision + 1; a transaction that writes
 * nothing (only gets, or deletes of missing keys) leaves the revision as it was. A missing key reads
 * as version/createRevision/modRevision 0, and any `value` compare on it is false (etcd's rule).
 */
import { StoreInvariantError } from './errors.js';
import type { Compare, CompareOp, KeyValue, RequestOp, ResponseOp, Txn, TxnResult } from './state-store.js';

/** A key's revision metadata without its value. */
export interface EntryVersion {
  createRevision: number;
  modRevision: number;
  version: number;
}

/** The batch-local state a transaction reads and writes (a backend's open write transaction). */
export interface TxnStateView {
  /** The key's metadata as left by earlier writes of this batch, or null if it does not exist. */
  readVersion(key: Buffer): EntryVersion | null;
  /** The key's full entry with caller-owned buffers, or null if it does not exist. */
  readKeyValue(key: Buffer): KeyValue | null;
  /** Writes the key; `created` says it did not exist before (for key counting). */
  write(key: Buffer, value: Buffer, version: EntryVersion, created: boolean): void;
  /** Deletes a key that exists. */
  remove(key: Buffer): void;
}

function compareNumbers(actual: number, op: CompareOp, expected: number): boolean {
  switch (op) {
    case '=':
      return actual === expected;
    case '!=':
      return actual !== expected;
    case '<':
      return actual < expected;
    case '>':
      return actual > expected;
  }
}

function compareOrder(order: number, op: CompareOp): boolean {
  switch (op) {
    case '=':
      return order === 0;
    case '!=':
      return order !== 0;
    case '<':
      return order < 0;
    case '>':
      return order > 0;
  }
}

/** Evaluates one compare: "the key's <target> <op> <given value>". */
export function evaluateCompare(view: TxnStateView, compare: Compare): boolean {
  switch (compare.target) {
    case 'exists':
      return (view.readVersion(compare.key) !== null) === compare.exists;
    case 'value': {
      const kv = view.readKeyValue(compare.key);
      if (kv === null) return false;
      return compareOrder(Buffer.compare(kv.value, compare.value), compare.op);
    }
    case 'version':
    case 'createRevision':
    case 'modRevision': {
      const entry = view.readVersion(compare.key);
      const actual = entry === null ? 0 : entry[compare.target];
      return compareNumbers(actual, compare.op, compare.value);
    }
  }
}

/** Runs one validated transaction against `view` at store revision `revision`. */
export function executeTxn(view: TxnStateView, txn: Txn, revision: number): TxnResult {
  let succeeded = true;
  for (let i = 0; i < txn.compare.length; i++) {
    if (!evaluateCompare(view, txn.compare[i] as Compare)) {
      succeeded = false;
      break;
    }
  }
  const ops = succeeded ? txn.success : txn.failure;
  const writeRevision = revision + 1;
  if (!Number.isSafeInteger(writeRevision)) {
    throw new StoreInvariantError(
      `revision ${revision} cannot be advanced: it would leave the safe integer range`,
    );
  }
  let wrote = false;
  let hasDelete = false;
  const responses: ResponseOp[] = new Array(ops.length);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as RequestOp;
    switch (op.type) {
      case 'put': {
        const existing = view.readVersion(op.key);
        if (existing === null) {
          view.write(
            op.key,
            op.value,
            { createRevision: writeRevision, modRevision: writeRevision, version: 1 },
            true,
          );
        } else {
          view.write(
            op.key,
            op.value,
            {
              createRevision: existing.createRevision,
              modRevision: writeRevision,
              version: existing.version + 1,
            },
            false,
          );
        }
        wrote = true;
        responses[i] = { type: 'put', revision: writeRevision };
        break;
      }
      case 'delete': {
        hasDelete = true;
        if (view.readVersion(op.key) === null) {
          responses[i] = { type: 'delete', deleted: 0, revision };
        } else {
          view.remove(op.key);
          wrote = true;
          responses[i] = { type: 'delete', deleted: 1, revision };
        }
        break;
      }
      case 'get':
        responses[i] = { type: 'get', kv: view.readKeyValue(op.key) };
        break;
    }
  }
  const finalRevision = wrote ? writeRevision : revision;
  // A delete reports the transaction's revision, known only once every op has run.
  if (hasDelete && wrote) {
    for (const response of responses) if (response.type === 'delete') response.revision = finalRevision;
  }
  return { succeeded, revision: finalRevision, responses };
}
