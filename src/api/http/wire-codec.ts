/**
 * Bytes on the HTTP wire: keys in URL paths (percent-decoded to bytes, never through a text
 * decoder, so any byte sequence is a key), query parameters as bytes, and keys and values in JSON
 * as UTF-8 text or base64.
 */
import { isUtf8 } from 'node:buffer';
import type { KeyValue } from '../../kv/state-store.js';
import type { ReadConsistency } from '../../node/kv-service.js';
import { ApiError, invalidRequest } from './api-error.js';
import type { WireEncoding, WireKeyValue } from './wire.js';

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/** Index of the first character that percentDecode would change or refuse, or -1 if none. */
function firstEncoded(text: string, plusIsSpace: boolean): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 37 /* % */ || code > 0xff || (code === 43 /* + */ && plusIsSpace)) return i;
  }
  return -1;
}

/**
 * Percent-decodes to bytes. Characters outside %XX are taken as their byte (the HTTP parser hands
 * the request target over as latin1, one character per byte). `plusIsSpace` for query strings.
 */
export function percentDecode(text: string, what: string, plusIsSpace = false): Buffer {
  // Most keys carry no escapes: one latin1 copy, no scratch buffer.
  if (firstEncoded(text, plusIsSpace) < 0) return Buffer.from(text, 'latin1');
  const out = Buffer.allocUnsafe(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 37 /* % */) {
      const hi = hexValue(text.charCodeAt(i + 1));
      const lo = hexValue(text.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) throw invalidRequest(`${what}: malformed percent-encoding at character ${i}`);
      out[n++] = hi * 16 + lo;
      i += 2;
    } else if (code === 43 /* + */ && plusIsSpace) {
      out[n++] = 32;
    } else if (code > 0xff) {
      throw invalidRequest(`${what}: character U+${code.toString(16)} must be percent-encoded`);
    } else {
      out[n++] = code;
    }
  }
  return Buffer.from(out.subarray(0, n));
}

/** percentDecode to a latin1 string (one character per byte); the text itself when it has no escapes. */
function percentDecodeLatin1(text: string, what: string): string {
  if (firstEncoded(text, true) < 0) return text;
  return percentDecode(text, what, true).toString('latin1');
}

/** True when every character is ASCII (so the latin1 bytes are valid UTF-8 and read the same). */
function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * Query parameters as raw bytes; a parameter given twice is an error. Values are held as latin1
 * strings (one character per byte), so a plain `consistency=serializable` costs no Buffer.
 */
export class QueryParams {
  private static readonly EMPTY = new QueryParams('', []);
  /** Flat name/value pairs: a request has a few parameters at most (their names are allowed ones). */
  private readonly values: string[] = [];

  /** The parameters of a query string; an empty one shares one instance. */
  static parse(rawQuery: string, allowed: readonly string[]): QueryParams {
    return rawQuery === '' ? QueryParams.EMPTY : new QueryParams(rawQuery, allowed);
  }

  constructor(rawQuery: string, allowed: readonly string[]) {
    if (rawQuery === '') return;
    let from = 0;
    while (from <= rawQuery.length) {
      let to = rawQuery.indexOf('&', from);
      if (to < 0) to = rawQuery.length;
      if (to > from) this.add(rawQuery.slice(from, to), allowed);
      from = to + 1;
    }
  }

  private add(part: string, allowed: readonly string[]): void {
    const eq = part.indexOf('=');
    const name = percentDecodeLatin1(eq < 0 ? part : part.slice(0, eq), 'query parameter name');
    const value = percentDecodeLatin1(eq < 0 ? '' : part.slice(eq + 1), `query parameter ${name}`);
    if (!allowed.includes(name)) {
      throw invalidRequest(
        `unknown query parameter ${JSON.stringify(name)}${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`,
      );
    }
    if (this.get(name) !== undefined) throw invalidRequest(`query parameter ${name} given more than once`);
    this.values.push(name, value);
  }

  private get(name: string): string | undefined {
    const values = this.values;
    for (let i = 0; i < values.length; i += 2) if (values[i] === name) return values[i + 1];
    return undefined;
  }

  bytes(name: string): Buffer | undefined {
    const value = this.get(name);
    return value === undefined ? undefined : Buffer.from(value, 'latin1');
  }

  text(name: string): string | undefined {
    const value = this.get(name);
    if (value === undefined || isAscii(value)) return value;
    const bytes = Buffer.from(value, 'latin1');
    if (!isUtf8(bytes)) throw invalidRequest(`query parameter ${name} is not valid UTF-8`);
    return bytes.toString('utf8');
  }

  boolean(name: string): boolean {
    const value = this.text(name);
    if (value === undefined) return false;
    if (value === 'true' || value === '1' || value === '') return true;
    if (value === 'false' || value === '0') return false;
    throw invalidRequest(`query parameter ${name} must be true or false, got ${JSON.stringify(value)}`);
  }

  integer(name: string, min: number, max: number): number | undefined {
    const value = this.text(name);
    if (value === undefined) return undefined;
    const n = /^[0-9]{1,15}$/.test(value) ? Number(value) : Number.NaN;
    if (!(n >= min && n <= max)) {
      throw invalidRequest(
        `query parameter ${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
      );
    }
    return n;
  }

  consistency(): ReadConsistency {
    return parseConsistency(this.text('consistency'), 'query parameter consistency');
  }

  encoding(): WireEncoding {
    return parseEncoding(this.text('encoding'), 'query parameter encoding');
  }
}

export function parseConsistency(value: unknown, what: string): ReadConsistency {
  if (value === undefined || value === 'linearizable') return 'linearizable';
  if (value === 'serializable') return 'serializable';
  throw invalidRequest(`${what} must be linearizable or serializable, got ${JSON.stringify(value)}`);
}

export function parseEncoding(value: unknown, what: string): WireEncoding {
  if (value === undefined || value === 'utf8') return 'utf8';
  if (value === 'base64') return 'base64';
  throw invalidRequest(`${what} must be utf8 or base64, got ${JSON.stringify(value)}`);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A key or value from JSON text: UTF-8, or strictly validated base64. */
export function decodeWireBytes(text: string, encoding: WireEncoding, what: string): Buffer {
  if (encoding === 'utf8') return Buffer.from(text, 'utf8');
  if (!BASE64.test(text)) throw invalidRequest(`${what} is not valid base64`);
  return Buffer.from(text, 'base64');
}

/** A key or value for JSON: base64, or UTF-8 text when the bytes are valid UTF-8 (else 406). */
export function encodeWireBytes(bytes: Buffer, encoding: WireEncoding, what: string): string {
  if (encoding === 'base64') return bytes.toString('base64');
  if (!isUtf8(bytes)) {
    throw new ApiError(406, 'not_utf8', `${what} is not valid UTF-8; ask for encoding=base64`);
  }
  return bytes.toString('utf8');
}

export function toWireKeyValue(kv: KeyValue, encoding: WireEncoding, keysOnly = false): WireKeyValue {
  const key = encodeWireBytes(kv.key, encoding, 'a key');
  const out: WireKeyValue = {
    key,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
  };
  if (!keysOnly) out.value = encodeWireBytes(kv.value, encoding, `the value of key ${JSON.stringify(key)}`);
  return out;
}

/** The first key after every key with this prefix (exclusive range end); undefined: no end. */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return undefined;
}
