/**
 * What a route handler works with: the parsed request, the node, the limits, and helpers that
 * answer, read the body within its limit, and bound every call into the node by a deadline.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClientSession, KvService } from '../../node/kv-service.js';
import { ApiError, invalidRequest } from './api-error.js';
import { readBody } from './request-body.js';
import { HEADER_CLIENT_ID, HEADER_SEQ } from './wire.js';
import { QueryParams } from './wire-codec.js';

export interface HttpApiLimits {
  maxKeySize: number;
  maxValueSize: number;
  /** Largest request body; reading stops past it. */
  maxRequestSize: number;
  maxTxnOps: number;
  /** Most keys one range request returns. */
  maxScanLimit: number;
  /** Range responses stop adding entries past this many key and value bytes. */
  maxResponseBytes: number;
  /** The node's request timeout; the API gives up a little after it (REQUEST_DEADLINE_GRACE_MS). */
  requestTimeoutMs: number;
  /** Open client connections at most. */
  maxConnections: number;
}

export const DEFAULT_HTTP_API_LIMITS: HttpApiLimits = {
  maxKeySize: 4096,
  maxValueSize: 1024 * 1024,
  maxRequestSize: 2 * 1024 * 1024,
  maxTxnOps: 128,
  maxScanLimit: 10_000,
  maxResponseBytes: 32 * 1024 * 1024,
  requestTimeoutMs: 5000,
  maxConnections: 1024,
};

/** The node answers within requestTimeoutMs itself; the API deadline is a backstop against a hang. */
export const REQUEST_DEADLINE_GRACE_MS = 1000;

const CLIENT_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

export class ApiContext {
  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly service: KvService,
    readonly limits: HttpApiLimits,
    readonly params: Record<string, string>,
    private readonly rawQuery: string,
  ) {}

  /** Query parameters; any parameter not in `allowed` is a 400. */
  query(allowed: readonly string[]): QueryParams {
    return new QueryParams(this.rawQuery, allowed);
  }

  header(name: string): string | undefined {
    const value = this.req.headers[name];
    if (Array.isArray(value)) throw invalidRequest(`header ${name} given more than once`);
    return value;
  }

  /** The request body, at most maxRequestSize bytes. */
  body(): Promise<Buffer> {
    return readBody(this.req, {
      maxBytes: this.limits.maxRequestSize,
      limitName: 'max-request-size',
      drainBytes: Math.max(4 * this.limits.maxRequestSize, 8 * 1024 * 1024),
      timeoutMs: Math.max(this.limits.requestTimeoutMs * 2, 30_000),
    });
  }

  /** The exactly-once session from X-Atlas-Client-Id and X-Atlas-Seq (both or neither). */
  session(): ClientSession | undefined {
    const clientId = this.header(HEADER_CLIENT_ID);
    const seqText = this.header(HEADER_SEQ);
    if (clientId === undefined && seqText === undefined) return undefined;
    if (clientId === undefined || seqText === undefined) {
      throw invalidRequest('X-Atlas-Client-Id and X-Atlas-Seq must be given together');
    }
    if (!CLIENT_ID_PATTERN.test(clientId)) {
      throw invalidRequest('X-Atlas-Client-Id must be 1 to 128 characters of A-Z a-z 0-9 . _ : -');
    }
    const seq = /^[0-9]{1,16}$/.test(seqText) ? Number(seqText) : Number.NaN;
    if (!Number.isSafeInteger(seq) || seq < 1) {
      throw invalidRequest(`X-Atlas-Seq must be a positive integer, got ${JSON.stringify(seqText)}`);
    }
    return { clientId, seq };
  }

  /** Awaits a read; past the deadline the client gets 504 timeout (a read changes nothing). */
  read<T>(promise: Promise<T>): Promise<T> {
    return this.deadline(promise, () => new ApiError(504, 'timeout', this.deadlineMessage('read')));
  }

  /** Awaits a write; past the deadline its outcome is unknown (it may still commit). */
  write<T>(promise: Promise<T>): Promise<T> {
    return this.deadline(promise, () => new ApiError(504, 'outcome_unknown', this.deadlineMessage('write')));
  }

  private deadlineMessage(kind: string): string {
    return `${kind} did not finish within ${this.limits.requestTimeoutMs + REQUEST_DEADLINE_GRACE_MS} ms`;
  }

  private deadline<T>(promise: Promise<T>, onTimeout: () => ApiError): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(onTimeout()),
        this.limits.requestTimeoutMs + REQUEST_DEADLINE_GRACE_MS,
      );
      promise.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  json(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.send(status, Buffer.from(JSON.stringify(body), 'utf8'), {
      'content-type': 'application/json; charset=utf-8',
      ...headers,
    });
  }

  send(status: number, body: Buffer, headers: Record<string, string>): void {
    this.res.writeHead(status, { ...headers, 'content-length': String(body.length) });
    this.res.end(body);
  }
}
