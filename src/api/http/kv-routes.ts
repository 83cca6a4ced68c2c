/**
 * Key-value routes: GET/PUT/DELETE /kv/{key}, GET /kv (range), POST /txn, POST /batch.
 * Each turns the request into one KvService call.
 */
import type { Compare, KeyValue, RangeOptions, Txn, TxnResult } from '../../kv/state-store.js';
import type { ApiContext } from './api-context.js';
import { ApiError, invalidRequest, limitExceeded } from './api-error.js';
import {
  checkKey,
  describeKey,
  parseBatchBody,
  parseJsonBody,
  parseTxnBody,
  toWireBatchResult,
  toWireTxnResult,
} from './txn-json.js';
import {
  HEADER_CREATE_REVISION,
  HEADER_MORE,
  HEADER_REVISION,
  HEADER_VERSION,
  type WireDeleteResult,
  type WireEncoding,
  type WireKeyValue,
  type WirePutResult,
} from './wire.js';
import { decodeWireBytes, percentDecode, prefixEnd, toWireKeyValue } from './wire-codec.js';

/** The key of /kv/{key}: the rest of the path, percent-decoded to bytes. */
function pathKey(ctx: ApiContext): Buffer {
  const key = percentDecode(ctx.params['key'] ?? '', 'key');
  checkKey(key, ctx.limits, 'key');
  return key;
}

interface Conditions {
  compare: Compare[];
}

/** If-Match: <mod revision> | * and If-None-Match: * as transaction compares. */
function conditions(ctx: ApiContext, key: Buffer): Conditions {
  const ifMatch = ctx.header('if-match');
  const ifNoneMatch = ctx.header('if-none-match');
  if (ifMatch !== undefined && ifNoneMatch !== undefined) {
    throw invalidRequest('If-Match and If-None-Match cannot be combined');
  }
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== '*')
      throw invalidRequest('If-None-Match supports only * (create only if absent)');
    return { compare: [{ key, target: 'exists', exists: false }] };
  }
  if (ifMatch !== undefined) {
    const text = ifMatch.trim();
    if (text === '*') return { compare: [{ key, target: 'exists', exists: true }] };
    const unquoted = /^"[0-9]+"$/.test(text) ? text.slice(1, -1) : text;
    const revision = /^[0-9]{1,16}$/.test(unquoted) ? Number(unquoted) : Number.NaN;
    if (!Number.isSafeInteger(revision) || revision < 1) {
      throw invalidRequest(`If-Match must be a positive mod revision or *, got ${JSON.stringify(ifMatch)}`);
    }
    return { compare: [{ key, target: 'modRevision', op: '=', value: revision }] };
  }
  return { compare: [] };
}

/** 412 with the key's current mod revision (0 when absent), from the failure branch's get. */
function preconditionFailed(key: Buffer, result: TxnResult): ApiError {
  const got = result.responses.find((r) => r.type === 'get');
  const modRevision = got?.type === 'get' && got.kv ? got.kv.modRevision : 0;
  return new ApiError(
    412,
    'precondition_failed',
    `precondition failed for key ${describeKey(key)}: its mod revision is ${modRevision}${modRevision === 0 ? ' (absent)' : ''}`,
    { modRevision },
    { [HEADER_REVISION]: String(modRevision) },
  );
}

function writeTxn(key: Buffer, compare: Compare[], op: Txn['success'][number]): Txn {
  return { compare, success: [op], failure: compare.length > 0 ? [{ type: 'get', key }] : [] };
}

/** The JSON of a put's answer, written by hand (a revision is a safe integer: no escaping). */
function putResultJson(r: WirePutResult): string {
  return `{"revision":${checkedRevision(r.revision)}}`;
}

function deleteResultJson(r: WireDeleteResult): string {
  return `{"deleted":${r.deleted},"revision":${checkedRevision(r.revision)}}`;
}

function checkedRevision(revision: number): number {
  if (!Number.isSafeInteger(revision) || revision < 0) {
    throw new Error(`the node answered with revision ${revision}, not a non-negative safe integer`);
  }
  return revision;
}

const GET_PARAMS = ['consistency'] as const;

export async function getKey(ctx: ApiContext): Promise<void> {
  const key = pathKey(ctx);
  const consistency = ctx.query(GET_PARAMS).consistency();
  const kv = await ctx.read(ctx.service.get(key, consistency), consistency);
  if (!kv) throw new ApiError(404, 'key_not_found', `key ${describeKey(key)} not found`);
  ctx.send(200, 'application/octet-stream', kv.value, [
    HEADER_REVISION,
    String(kv.modRevision),
    HEADER_VERSION,
    String(kv.version),
    HEADER_CREATE_REVISION,
    String(kv.createRevision),
  ]);
}

export async function putKey(ctx: ApiContext): Promise<void> {
  const key = pathKey(ctx);
  ctx.query([]);
  const { compare } = conditions(ctx, key);
  const session = ctx.session();
  const value = await ctx.body();
  if (value.length > ctx.limits.maxValueSize) {
    throw limitExceeded('max-value-size', ctx.limits.maxValueSize, `value of ${value.length} bytes`);
  }
  const result = await ctx.write(
    ctx.service.write(writeTxn(key, compare, { type: 'put', key, value }), session),
  );
  if (!result.succeeded) throw preconditionFailed(key, result);
  const put = result.responses[0];
  if (put?.type !== 'put') throw new Error('put transaction answered without a put response');
  ctx.jsonText(200, putResultJson({ revision: put.revision }));
}

export async function deleteKey(ctx: ApiContext): Promise<void> {
  const key = pathKey(ctx);
  ctx.query([]);
  const { compare } = conditions(ctx, key);
  if (compare.some((c) => c.target === 'exists' && !c.exists)) {
    throw invalidRequest('If-None-Match: * cannot apply to a delete');
  }
  const session = ctx.session();
  const result = await ctx.write(ctx.service.write(writeTxn(key, compare, { type: 'delete', key }), session));
  if (!result.succeeded) throw preconditionFailed(key, result);
  const deleted = result.responses[0];
  if (deleted?.type !== 'delete') throw new Error('delete transaction answered without a delete response');
  if (deleted.deleted === 0) throw new ApiError(404, 'key_not_found', `key ${describeKey(key)} not found`);
  ctx.jsonText(200, deleteResultJson({ deleted: 1, revision: deleted.revision }));
}

const RANGE_PARAMS = [
  'prefix',
  'start',
  'end',
  'limit',
  'reverse',
  'keysOnly',
  'encoding',
  'consistency',
] as const;

/** Rough JSON size of an entry, for the response byte budget. */
function entrySize(kv: KeyValue, keysOnly: boolean): number {
  return Math.ceil(((kv.key.length + (keysOnly ? 0 : kv.value.length)) * 4) / 3) + 96;
}

export async function rangeKeys(ctx: ApiContext): Promise<void> {
  const query = ctx.query(RANGE_PARAMS);
  const encoding: WireEncoding = query.encoding();
  const param = (name: 'prefix' | 'start' | 'end'): Buffer | undefined => {
    const raw = query.bytes(name);
    if (raw === undefined) return undefined;
    const bytes = encoding === 'base64' ? decodeWireBytes(raw.toString('latin1'), 'base64', name) : raw;
    if (bytes.length > ctx.limits.maxKeySize) {
      throw limitExceeded('max-key-size', ctx.limits.maxKeySize, `${name} of ${bytes.length} bytes`);
    }
    return bytes;
  };
  const prefix = param('prefix');
  let start = param('start');
  let end = param('end');
  if (prefix && prefix.length > 0) {
    if (!start || Buffer.compare(start, prefix) < 0) start = prefix;
    const upper = prefixEnd(prefix);
    if (upper && (!end || end.length === 0 || Buffer.compare(end, upper) > 0)) end = upper;
  }
  if (end && end.length === 0) end = undefined;
  const limit = query.integer('limit', 1, ctx.limits.maxScanLimit) ?? ctx.limits.maxScanLimit;
  const reverse = query.boolean('reverse');
  const keysOnly = query.boolean('keysOnly');
  const consistency = query.consistency();

  let entries: KeyValue[] = [];
  if (!(start && end && Buffer.compare(start, end) >= 0)) {
    // One more than asked tells whether the range holds more, unless that would pass the cap.
    const fetch = Math.min(limit + 1, ctx.limits.maxScanLimit);
    const options: RangeOptions = { limit: fetch, reverse };
    if (start) options.start = start;
    if (end) options.end = end;
    entries = await ctx.read(ctx.service.range(options, consistency), consistency);
  }
  let more = entries.length > limit || (entries.length === limit && limit === ctx.limits.maxScanLimit);
  const out: WireKeyValue[] = [];
  let bytes = 0;
  for (const kv of entries.slice(0, limit)) {
    bytes += entrySize(kv, keysOnly);
    if (out.length > 0 && bytes > ctx.limits.maxResponseBytes) {
      more = true;
      break;
    }
    out.push(toWireKeyValue(kv, encoding, keysOnly));
  }
  ctx.json(200, out, [HEADER_MORE, String(more)]);
}

export async function postTxn(ctx: ApiContext): Promise<void> {
  ctx.query([]);
  const session = ctx.session();
  const parsed = parseTxnBody(parseJsonBody(await ctx.body()), ctx.limits);
  if (parsed.readOnly) {
    const result = await ctx.read(ctx.service.readTxn(parsed.txn, parsed.consistency), parsed.consistency);
    ctx.json(200, toWireTxnResult(result, parsed.encoding));
    return;
  }
  const result = await ctx.write(ctx.service.write(parsed.txn, session));
  // The write has happened: never answer it with an error because a value read back is not UTF-8.
  ctx.json(200, toWireTxnResult(result, parsed.encoding, { fallbackToBase64: true }));
}

export async function postBatch(ctx: ApiContext): Promise<void> {
  ctx.query([]);
  const session = ctx.session();
  const { txn } = parseBatchBody(parseJsonBody(await ctx.body()), ctx.limits);
  const result = await ctx.write(ctx.service.write(txn, session));
  ctx.json(200, toWireBatchResult(result));
}
