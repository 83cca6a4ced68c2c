/**
 * JSON bodies of POST /txn and POST /batch: validated (untrusted input), decoded to the store's
 * binary Txn, and results encoded back. Shapes in ./wire.ts and docs/api.md.
 */
import { isUtf8 } from 'node:buffer';
import { z } from 'zod';
import type { Compare, RequestOp, Txn, TxnResult } from '../../kv/state-store.js';
import type { ReadConsistency } from '../../node/kv-service.js';
import { ApiError, invalidRequest, limitExceeded } from './api-error.js';
import type { WireBatchResult, WireEncoding, WireTxnResult } from './wire.js';
import { decodeWireBytes, parseConsistency, parseEncoding, toWireKeyValue } from './wire-codec.js';

export interface TxnLimits {
  maxKeySize: number;
  maxValueSize: number;
  maxTxnOps: number;
}

const compareOp = z.enum(['=', '!=', '<', '>']);
const compareSchema = z.discriminatedUnion('target', [
  z.strictObject({ key: z.string(), target: z.literal('value'), op: compareOp, value: z.string() }),
  z.strictObject({
    key: z.string(),
    target: z.enum(['version', 'createRevision', 'modRevision']),
    op: compareOp,
    value: z.number().int().min(0),
  }),
  z.strictObject({ key: z.string(), target: z.literal('exists'), exists: z.boolean() }),
]);
const putSchema = z.strictObject({ type: z.literal('put'), key: z.string(), value: z.string() });
const deleteSchema = z.strictObject({ type: z.literal('delete'), key: z.string() });
const getSchema = z.strictObject({ type: z.literal('get'), key: z.string() });
const requestOpSchema = z.discriminatedUnion('type', [putSchema, deleteSchema, getSchema]);
const encodingSchema = z.enum(['utf8', 'base64']).optional();

const txnSchema = z.strictObject({
  encoding: encodingSchema,
  consistency: z.enum(['linearizable', 'serializable']).optional(),
  compare: z.array(compareSchema).optional(),
  success: z.array(requestOpSchema).optional(),
  failure: z.array(requestOpSchema).optional(),
});
const batchSchema = z.strictObject({
  encoding: encodingSchema,
  ops: z.array(z.discriminatedUnion('type', [putSchema, deleteSchema])),
});

/** Parses a JSON body; 400 naming the problem when it is not UTF-8 JSON. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) throw invalidRequest('request body is empty; expected JSON');
  if (!isUtf8(body)) throw invalidRequest('request body is not valid UTF-8');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw invalidRequest(`request body is not valid JSON: ${(error as Error).message}`);
  }
}

function formatPath(path: PropertyKey[]): string {
  let out = '';
  for (const part of path)
    out += typeof part === 'number' ? `[${part}]` : out ? `.${String(part)}` : String(part);
  return out || 'body';
}

function validate<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const more = result.error.issues.length > 1 ? ` (and ${result.error.issues.length - 1} more problems)` : '';
  throw invalidRequest(`${formatPath(issue.path)}: ${issue.message}${more}`);
}

/** Checks list lengths before validating entries, so an oversize list costs nothing and says 413. */
function checkListLengths(value: unknown, lists: string[], limits: TxnLimits): void {
  if (value === null || typeof value !== 'object') return;
  for (const list of lists) {
    const items = (value as Record<string, unknown>)[list];
    if (Array.isArray(items) && items.length > limits.maxTxnOps) {
      throw limitExceeded(
        'max-txn-ops',
        limits.maxTxnOps,
        `${list} with ${items.length} operations`,
        'operations',
      );
    }
  }
}

export class KeyDecoder {
  constructor(
    private readonly encoding: WireEncoding,
    private readonly limits: TxnLimits,
  ) {}

  key(text: string, where: string): Buffer {
    const key = decodeWireBytes(text, this.encoding, `${where}.key`);
    checkKey(key, this.limits, `${where}.key`);
    return key;
  }

  value(text: string, where: string): Buffer {
    const value = decodeWireBytes(text, this.encoding, `${where}.value`);
    if (value.length > this.limits.maxValueSize) {
      throw limitExceeded(
        'max-value-size',
        this.limits.maxValueSize,
        `${where}.value of ${value.length} bytes`,
      );
    }
    return value;
  }
}

export function checkKey(key: Buffer, limits: { maxKeySize: number }, what: string): void {
  if (key.length === 0) throw invalidRequest(`${what} is empty`);
  if (key.length > limits.maxKeySize) {
    throw limitExceeded('max-key-size', limits.maxKeySize, `${what} of ${key.length} bytes`);
  }
}

function decodeOp(op: z.output<typeof requestOpSchema>, where: string, decoder: KeyDecoder): RequestOp {
  const key = decoder.key(op.key, where);
  if (op.type === 'put') return { type: 'put', key, value: decoder.value(op.value, where) };
  return { type: op.type, key };
}

function decodeCompare(c: z.output<typeof compareSchema>, where: string, decoder: KeyDecoder): Compare {
  const key = decoder.key(c.key, where);
  if (c.target === 'exists') return { key, target: 'exists', exists: c.exists };
  if (c.target === 'value') return { key, target: 'value', op: c.op, value: decoder.value(c.value, where) };
  return { key, target: c.target, op: c.op, value: c.value };
}

export interface ParsedTxn {
  txn: Txn;
  encoding: WireEncoding;
  consistency: ReadConsistency;
  readOnly: boolean;
}

export function parseTxnBody(value: unknown, limits: TxnLimits): ParsedTxn {
  checkListLengths(value, ['compare', 'success', 'failure'], limits);
  const body = validate(txnSchema, value);
  const encoding = parseEncoding(body.encoding, 'encoding');
  const decoder = new KeyDecoder(encoding, limits);
  const txn: Txn = {
    compare: (body.compare ?? []).map((c, i) => decodeCompare(c, `compare[${i}]`, decoder)),
    success: (body.success ?? []).map((op, i) => decodeOp(op, `success[${i}]`, decoder)),
    failure: (body.failure ?? []).map((op, i) => decodeOp(op, `failure[${i}]`, decoder)),
  };
  const readOnly = [...txn.success, ...txn.failure].every((op) => op.type === 'get');
  return { txn, encoding, consistency: parseConsistency(body.consistency, 'consistency'), readOnly };
}

export function parseBatchBody(value: unknown, limits: TxnLimits): { txn: Txn; encoding: WireEncoding } {
  checkListLengths(value, ['ops'], limits);
  const body = validate(batchSchema, value);
  if (body.ops.length === 0) throw invalidRequest('ops: a batch needs at least one operation');
  const encoding = parseEncoding(body.encoding, 'encoding');
  const decoder = new KeyDecoder(encoding, limits);
  return {
    txn: { compare: [], success: body.ops.map((op, i) => decodeOp(op, `ops[${i}]`, decoder)), failure: [] },
    encoding,
  };
}

/**
 * Encodes a transaction result. With `fallbackToBase64` (write transactions, which have already
 * happened) a result that cannot be UTF-8 text is sent in base64 instead of failing with 406;
 * `encoding` in the result always says which was used.
 */
export function toWireTxnResult(
  result: TxnResult,
  encoding: WireEncoding,
  options: { fallbackToBase64?: boolean } = {},
): WireTxnResult {
  const encode = (as: WireEncoding): WireTxnResult => ({
    succeeded: result.succeeded,
    revision: result.revision,
    encoding: as,
    responses: result.responses.map((r) =>
      r.type === 'get' ? { type: 'get', kv: r.kv ? toWireKeyValue(r.kv, as) : null } : r,
    ),
  });
  try {
    return encode(encoding);
  } catch (error) {
    if (options.fallbackToBase64 && error instanceof ApiError && error.code === 'not_utf8')
      return encode('base64');
    throw error;
  }
}

export function toWireBatchResult(result: TxnResult): WireBatchResult {
  const responses: WireBatchResult['responses'] = [];
  for (const r of result.responses) {
    if (r.type === 'get') throw new Error('batch result holds a get response');
    responses.push(
      r.type === 'put'
        ? { type: 'put', revision: r.revision }
        : { type: 'delete', deleted: r.deleted, revision: r.revision },
    );
  }
  return { revision: result.revision, responses };
}

/** Used where a response must carry a key in a message: readable when possible. */
export function describeKey(key: Buffer): string {
  return isUtf8(key) ? JSON.stringify(key.toString('utf8')) : `0x${key.toString('hex')}`;
}
