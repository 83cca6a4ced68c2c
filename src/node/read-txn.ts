/**
 * Evaluates a read-only transaction (compares and gets) against the local store at one point, with
 * the store's own compare semantics (src/kv/txn-engine.ts, as in etcd).
 */
import type { ResponseOp, StateStore, Txn, TxnResult } from '../kv/state-store.js';
import { type TxnStateView, evaluateCompare } from '../kv/txn-engine.js';

/** A read-only view of the store for compare evaluation; a write through it is a bug. */
function readOnlyView(store: StateStore): TxnStateView {
  return {
    readVersion: (key) => store.get(key),
    readKeyValue: (key) => store.get(key),
    write: () => {
      throw new Error('evaluateReadTxn: a write through a read-only view');
    },
    remove: () => {
      throw new Error('evaluateReadTxn: a delete through a read-only view');
    },
  };
}

/** Runs a txn whose ops are all gets; the caller checked isReadOnly. */
export function evaluateReadTxn(store: StateStore, txn: Txn): TxnResult {
  const view = readOnlyView(store);
  const succeeded = txn.compare.every((c) => evaluateCompare(view, c));
  const ops = succeeded ? txn.success : txn.failure;
  const responses: ResponseOp[] = [];
  for (const op of ops) {
    if (op.type !== 'get') throw new Error(`evaluateReadTxn: ${op.type} in a read-only transaction`);
    responses.push({ type: 'get', kv: store.get(op.key) });
  }
  return { succeeded, revision: store.revision(), responses };
}
