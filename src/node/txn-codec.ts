/**
 * Binary encodings (msgpackr, compact arrays: no field names on the wire or in the log) of the
 * store's Txn and TxnResult, and validation of a Txn that arrived from an untrusted peer.
 */
import { Packr } from 'msgpackr';
import type {
  Compare,
  CompareOp,
  KeyValue,
  RequestOp,
  ResponseOp,
  Txn,
  TxnResult,
} from '../kv/state-store.js';
import { NodeError } from './errors.js';

/** One shared packer: records off, so the encoding is plain MessagePack any reader can decode. */
export const packr = new Packr({ useRecords: false, moreTypes: false });

const OPS: readonly CompareOp[] = ['=', '!=', '<', '>'];
const TARGETS = ['value', 'version', 'createRevision', 'modRevision', 'exists'] as const;

type EncodedCompare = [Buffer, number, number, Buffer | number | boolean];
type EncodedOp = [number, Buffer, Buffer?];

export function compareToWire(c: Compare): EncodedCompare {
  if (c.target === 'exists') return [c.key, 4, 0, c.exists];
  return [c.key, TARGETS.indexOf(c.target), OPS.indexOf(c.op), c.value];
}

function opToWire(op: RequestOp): EncodedOp {
  switch (op.type) {
    case 'put':
      return [0, op.key, op.value];
    case 'delete':
      return [1, op.key];
    case 'get':
      return [2, op.key];
  }
}

export function txnToWire(txn: Txn): unknown[] {
  return [txn.compare.map(compareToWire), txn.success.map(opToWire), txn.failure.map(opToWire)];
}

/** Decodes the array form of a Txn; throws a specific Error on a malformed one. */
export function txnFromWire(w: unknown): Txn {
  if (!Array.isArray(w) || w.length !== 3) throw new Error('txn: expected [compare, success, failure]');
  return {
    compare: list(w[0], 'compare').map(compareFromWire),
    success: list(w[1], 'success').map(opFromWire),
    failure: list(w[2], 'failure').map(opFromWire),
  };
}

function compareFromWire(w: unknown): Compare {
  if (!Array.isArray(w) || w.length !== 4) throw new Error('txn compare: expected [key, target, op, value]');
  const key = buffer(w[0], 'compare key');
  const target = TARGETS[w[1] as number];
  if (target === undefined) throw new Error(`txn compare: unknown target ${String(w[1])}`);
  if (target === 'exists') {
    if (typeof w[3] !== 'boolean') throw new Error('txn compare exists: expected a boolean');
    return { key, target, exists: w[3] };
  }
  const op = OPS[w[2] as number];
  if (op === undefined) throw new Error(`txn compare: unknown op ${String(w[2])}`);
  if (target === 'value') return { key, target, op, value: buffer(w[3], 'compare value') };
  if (typeof w[3] !== 'number' || !Number.isSafeInteger(w[3]))
    throw new Error(`txn compare ${target}: expected an integer`);
  return { key, target, op, value: w[3] };
}

function opFromWire(w: unknown): RequestOp {
  if (!Array.isArray(w) || w.length < 2) throw new Error('txn op: expected [type, key, value?]');
  const key = buffer(w[1], 'op key');
  switch (w[0]) {
    case 0:
      return { type: 'put', key, value: buffer(w[2], 'put value') };
    case 1:
      return { type: 'delete', key };
    case 2:
      return { type: 'get', key };
    default:
      throw new Error(`txn op: unknown type ${String(w[0])}`);
  }
}

export function txnResultToWire(r: TxnResult): unknown[] {
  return [r.succeeded, r.revision, r.responses.map(responseToWire)];
}

function responseToWire(r: ResponseOp): unknown[] {
  switch (r.type) {
    case 'put':
      return [0, r.revision];
    case 'delete':
      return [1, r.deleted, r.revision];
    case 'get':
      return [2, r.kv === null ? null : kvToWire(r.kv)];
  }
}

export function kvToWire(kv: KeyValue): unknown[] {
  return [kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version];
}

export function txnResultFromWire(w: unknown): TxnResult {
  if (!Array.isArray(w) || w.length !== 3 || typeof w[0] !== 'boolean' || typeof w[1] !== 'number') {
    throw new Error('txn result: expected [succeeded, revision, responses]');
  }
  return { succeeded: w[0], revision: w[1], responses: list(w[2], 'responses').map(responseFromWire) };
}

function responseFromWire(w: unknown): ResponseOp {
  if (!Array.isArray(w)) throw new Error('txn response: expected an array');
  switch (w[0]) {
    case 0:
      return { type: 'put', revision: integer(w[1], 'put revision') };
    case 1: {
      const deleted = w[1];
      if (deleted !== 0 && deleted !== 1) throw new Error('txn response delete: deleted must be 0 or 1');
      return { type: 'delete', deleted, revision: integer(w[2], 'delete revision') };
    }
    case 2:
      return { type: 'get', kv: w[1] === null ? null : kvFromWire(w[1]) };
    default:
      throw new Error(`txn response: unknown type ${String(w[0])}`);
  }
}

export function kvFromWire(w: unknown): KeyValue {
  if (!Array.isArray(w) || w.length !== 5)
    throw new Error('key-value: expected [key, value, create, mod, version]');
  return {
    key: buffer(w[0], 'kv key'),
    value: buffer(w[1], 'kv value'),
    createRevision: integer(w[2], 'createRevision'),
    modRevision: integer(w[3], 'modRevision'),
    version: integer(w[4], 'version'),
  };
}

function list(w: unknown, what: string): unknown[] {
  if (!Array.isArray(w)) throw new Error(`txn ${what}: expected an array`);
  return w;
}

function buffer(w: unknown, what: string): Buffer {
  if (Buffer.isBuffer(w)) return w;
  if (w instanceof Uint8Array) return Buffer.from(w.buffer, w.byteOffset, w.byteLength);
  throw new Error(`${what}: expected binary data`);
}

function integer(w: unknown, what: string): number {
  if (typeof w !== 'number' || !Number.isSafeInteger(w)) throw new Error(`${what}: expected an integer`);
  return w;
}

/** Size limits of one transaction, enforced identically wherever a Txn enters (DESIGN.md §10 "Size limits"). */
export interface TxnLimits {
  maxKeyBytes: number;
  maxValueBytes: number;
  /** compare + success + failure. */
  maxOpsPerTxn: number;
  /** Sum of every key and value byte in one transaction (its log entry must fit raft's maxMsgBytes). */
  maxTxnBytes: number;
}

export const DEFAULT_TXN_LIMITS: TxnLimits = {
  maxKeyBytes: 4096,
  maxValueBytes: 1024 * 1024,
  maxOpsPerTxn: 128,
  maxTxnBytes: 1024 * 1024 + 64 * 1024,
};

/**
 * Checks a Txn's shape and limits (a peer's forwarded request, or a client's before proposing).
 * Throws NodeError 'invalid_request' or 'limit_exceeded', naming the limit.
 */
export function validateTxn(txn: unknown, limits: TxnLimits): Txn {
  if (typeof txn !== 'object' || txn === null)
    throw new NodeError('invalid_request', 'txn: expected an object');
  const t = txn as Partial<Record<keyof Txn, unknown>>;
  if (!Array.isArray(t.compare) || !Array.isArray(t.success) || !Array.isArray(t.failure)) {
    throw new NodeError('invalid_request', 'txn: compare, success and failure must be arrays');
  }
  const ops = t.compare.length + t.success.length + t.failure.length;
  if (ops > limits.maxOpsPerTxn) {
    throw new NodeError(
      'limit_exceeded',
      `txn has ${ops} operations; the limit maxOpsPerTxn is ${limits.maxOpsPerTxn}`,
    );
  }
  const put = unverifiedPlainPut(t.compare, t.success, t.failure);
  if (put !== null) {
    // The commonest write (every unconditional PUT, forwarded ones included): a fresh Txn of its
    // checked key and value, without the round trip below (2-3% of the leader's allocations).
    checkKey(put.key, limits);
    checkValue(put.value, limits);
    checkTxnBytes(put.key.length + put.value.length, limits);
    return { compare: [], success: [{ type: 'put', key: put.key, value: put.value }], failure: [] };
  }
  try {
    // Round-trip through the wire form: the decoder checks every field's type.
    const checked = txnFromWire(txnToWireUnchecked(t.compare, t.success, t.failure));
    let bytes = 0;
    for (const c of checked.compare) {
      checkKey(c.key, limits);
      bytes += c.key.length;
      if (c.target === 'value') {
        checkValue(c.value, limits);
        bytes += c.value.length;
      }
    }
    for (const op of [...checked.success, ...checked.failure]) {
      checkKey(op.key, limits);
      bytes += op.key.length;
      if (op.type === 'put') {
        checkValue(op.value, limits);
        bytes += op.value.length;
      }
    }
    checkTxnBytes(bytes, limits);
    return checked;
  } catch (e) {
    if (e instanceof NodeError) throw e;
    throw new NodeError('invalid_request', (e as Error).message);
  }
}

function txnToWireUnchecked(compare: unknown[], success: unknown[], failure: unknown[]): unknown[] {
  const c = compare.map((x) => {
    const v = x as Record<string, unknown>;
    if (typeof v !== 'object' || v === null) throw new Error('txn compare: expected an object');
    if (v['target'] === 'exists') return [v['key'], 4, 0, v['exists']];
    return [
      v['key'],
      TARGETS.indexOf(v['target'] as (typeof TARGETS)[number]),
      OPS.indexOf(v['op'] as CompareOp),
      v['value'],
    ];
  });
  const op = (x: unknown): unknown[] => {
    const v = x as Record<string, unknown>;
    if (typeof v !== 'object' || v === null) throw new Error('txn op: expected an object');
    const code = v['type'] === 'put' ? 0 : v['type'] === 'delete' ? 1 : v['type'] === 'get' ? 2 : -1;
    return code === 0 ? [code, v['key'], v['value']] : [code, v['key']];
  };
  return [c, success.map(op), failure.map(op)];
}

/** The key and value of an unchecked txn that is one put of Buffers and nothing else, or null. */
function unverifiedPlainPut(
  compare: unknown[],
  success: unknown[],
  failure: unknown[],
): { key: Buffer; value: Buffer } | null {
  if (compare.length !== 0 || failure.length !== 0 || success.length !== 1) return null;
  const op = success[0];
  if (typeof op !== 'object' || op === null) return null;
  const { type, key, value } = op as Record<string, unknown>;
  return type === 'put' && Buffer.isBuffer(key) && Buffer.isBuffer(value) ? { key, value } : null;
}

function checkTxnBytes(bytes: number, limits: TxnLimits): void {
  if (bytes > limits.maxTxnBytes) {
    throw new NodeError(
      'limit_exceeded',
      `txn holds ${bytes} key/value bytes; the limit maxTxnBytes is ${limits.maxTxnBytes}`,
    );
  }
}

function checkKey(key: Buffer, limits: TxnLimits): void {
  if (key.length === 0) throw new NodeError('invalid_request', 'txn: empty key');
  if (key.length > limits.maxKeyBytes) {
    throw new NodeError(
      'limit_exceeded',
      `key of ${key.length} bytes; the limit maxKeyBytes is ${limits.maxKeyBytes}`,
    );
  }
}

function checkValue(value: Buffer, limits: TxnLimits): void {
  if (value.length > limits.maxValueBytes) {
    throw new NodeError(
      'limit_exceeded',
      `value of ${value.length} bytes; the limit maxValueBytes is ${limits.maxValueBytes}`,
    );
  }
}

/** True when the txn only reads (compares and gets): it may be served without going through the log. */
export function isReadOnly(txn: Txn): boolean {
  for (const op of txn.success) if (op.type !== 'get') return false;
  for (const op of txn.failure) if (op.type !== 'get') return false;
  return true;
}
