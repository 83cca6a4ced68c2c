/**
 * Evaluates a read-only transaction (compares and gets) against the local store at one point, with
 * the compare semantics the store documents (src/kv/state-store.ts, as in etcd): on a missing key
 * version/createRevision/modRevision read as 0 and a value comparison is false.
 */
import type {
  Compare,
  CompareOp,
  KeyValue,
  ResponseOp,
  StateStore,
  Txn,
  TxnResult,
} from '../kv/state-store.js';

function holds(op: CompareOp, order: number): boolean {
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

export function compareHolds(c: Compare, kv: KeyValue | null): boolean {
  switch (c.target) {
    case 'exists':
      return (kv !== null) === c.exists;
    case 'value':
      return kv !== null && holds(c.op, Buffer.compare(kv.value, c.value));
    case 'version':
      return holds(c.op, Math.sign((kv?.version ?? 0) - c.value));
    case 'createRevision':
      return holds(c.op, Math.sign((kv?.createRevision ?? 0) - c.value));
    case 'modRevision':
      return holds(c.op, Math.sign((kv?.modRevision ?? 0) - c.value));
  }
}

/** Runs a txn whose ops are all gets; the caller checked isReadOnly. */
export function evaluateReadTxn(store: StateStore, txn: Txn): TxnResult {
  let succeeded = true;
  for (const c of txn.compare) {
    if (!compareHolds(c, store.get(c.key))) {
      succeeded = false;
      break;
    }
  }
  const ops = succeeded ? txn.success : txn.failure;
  const responses: ResponseOp[] = [];
  for (const op of ops) {
    if (op.type !== 'get') throw new Error(`evaluateReadTxn: ${op.type} in a read-only transaction`);
    responses.push({ type: 'get', kv: store.get(op.key) });
  }
  return { succeeded, revision: store.revision(), responses };
}
