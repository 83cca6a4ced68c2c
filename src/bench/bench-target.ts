/**
 * How one benchmark request looks on each target's wire. AtlasDB: `PUT /kv/{key}` with the raw
 * value, `GET /kv/{key}` (`?consistency=serializable` for stale reads; docs/api.md). etcd: its v3
 * HTTP/JSON gateway, `POST /v3/kv/put` and `POST /v3/kv/range` with base64 keys and values, and
 * `"serializable": true` for stale reads. Keys are `bench/<index>` zero-padded, the same bytes on
 * both systems, so both stores hold the same data.
 */
import type { Pool } from 'undici';
import type { BenchTarget, ReadConsistency } from './bench-options.js';

export interface WireRequest {
  method: 'GET' | 'PUT' | 'POST';
  path: string;
  headers: Record<string, string> | undefined;
  body: Buffer | string | undefined;
}

/** How an answer's status is classified: ok, a read of an absent key (still a success), or an error. */
export type AnswerKind = 'ok' | 'not_found' | 'error';

const JSON_HEADERS = { 'content-type': 'application/json' };
const OCTET_HEADERS = { 'content-type': 'application/octet-stream' };

function keyText(index: number, keys: number): string {
  return `bench/${String(index).padStart(String(keys - 1).length, '0')}`;
}

/** Builds requests for one target; keys and bodies are precomputed so a request costs no encoding. */
export class BenchRequestFactory {
  private readonly writes: WireRequest[];
  private readonly reads: WireRequest[];

  constructor(
    readonly target: BenchTarget,
    keys: number,
    valueSize: number,
    consistency: ReadConsistency,
  ) {
    // A fixed pseudo-random value (not all one byte, so nothing compresses it away).
    const value = Buffer.alloc(valueSize);
    for (let i = 0; i < valueSize; i++) value[i] = 97 + ((i * 7919) % 26);
    const valueB64 = value.toString('base64');
    this.writes = new Array<WireRequest>(keys);
    this.reads = new Array<WireRequest>(keys);
    for (let i = 0; i < keys; i++) {
      const key = keyText(i, keys);
      if (target === 'atlas') {
        const path = `/kv/${key}`;
        this.writes[i] = { method: 'PUT', path, headers: OCTET_HEADERS, body: value };
        this.reads[i] = {
          method: 'GET',
          path: consistency === 'serializable' ? `${path}?consistency=serializable` : path,
          headers: undefined,
          body: undefined,
        };
      } else {
        const keyB64 = Buffer.from(key).toString('base64');
        this.writes[i] = {
          method: 'POST',
          path: '/v3/kv/put',
          headers: JSON_HEADERS,
          body: `{"key":"${keyB64}","value":"${valueB64}"}`,
        };
        this.reads[i] = {
          method: 'POST',
          path: '/v3/kv/range',
          headers: JSON_HEADERS,
          body:
            consistency === 'serializable'
              ? `{"key":"${keyB64}","serializable":true}`
              : `{"key":"${keyB64}"}`,
        };
      }
    }
  }

  write(index: number): WireRequest {
    return this.writes[index] as WireRequest;
  }

  read(index: number): WireRequest {
    return this.reads[index] as WireRequest;
  }

  /** AtlasDB answers a read of an absent key with 404 key_not_found; etcd with 200 and no kvs. */
  classify(isRead: boolean, status: number): AnswerKind {
    if (status === 200) return 'ok';
    if (isRead && status === 404 && this.target === 'atlas') return 'not_found';
    return 'error';
  }
}

/**
 * The bytes of `req` as one HTTP/1.1 keep-alive request to `host` (`127.0.0.1:2379`), for
 * BenchHttpConnection: encoded once per key and endpoint, so sending costs one socket write.
 */
export function encodeWireRequest(req: WireRequest, host: string): Buffer {
  const body =
    req.body === undefined ? EMPTY : typeof req.body === 'string' ? Buffer.from(req.body) : req.body;
  let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${host}\r\n`;
  if (req.headers !== undefined)
    for (const [name, value] of Object.entries(req.headers)) head += `${name}: ${value}\r\n`;
  if (req.method !== 'GET' || body.length > 0) head += `content-length: ${body.length}\r\n`;
  head += '\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

const EMPTY = Buffer.alloc(0);

/**
 * Sends one request on the pool and reads its whole answer; resolves with the HTTP status. Uses
 * undici's dispatch with a handler that drops the body bytes as they arrive, rather than
 * `pool.request`, which wraps every answer in a Readable stream: the generator shares the CPU with
 * the servers it measures, so every microsecond it spends is one they do not get.
 */
export function sendWireRequest(pool: Pool, req: WireRequest): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    pool.dispatch(
      { method: req.method, path: req.path, headers: req.headers, body: req.body },
      {
        // The handler form undici's Pool validates (onConnect ... onComplete).
        onConnect() {},
        onHeaders(statusCode) {
          status = statusCode;
          return true;
        },
        onData() {
          return true;
        },
        onComplete() {
          resolve(status);
        },
        onError(error) {
          reject(error);
        },
      },
    );
  });
}
