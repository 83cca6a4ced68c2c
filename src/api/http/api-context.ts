/**
 * What a route handler works with: the parsed request, the node, the limits, and helpers that
 * answer, read the body within its limit, and bound every call into the node by a deadline.
 */
import type { Http1Request } from '../../http1/http1-request-parser.js';
import type { Http1Response } from '../../http1/http1-response.js';
import type { ClientSession, KvService, ReadConsistency } from '../../node/kv-service.js';
import { ApiError, invalidRequest } from './api-error.js';
import { requestBody } from './request-body.js';
import type { ResponseBatch } from './response-batch.js';
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
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

/** The server side of a request: where its answer is reported. */
export interface RequestOwner {
  /** True once the server is shutting down: answers then carry `Connection: close`. */
  readonly isClosing: boolean;
  /** The answer was written (exactly once per request). */
  answered(ctx: ApiContext, status: number): void;
  /** The request's deadline passed before it was answered: answer it with this error. */
  expired(ctx: ApiContext, error: ApiError): void;
  /** Where answers are finished, together, at the end of the event-loop turn. */
  readonly responses: ResponseBatch;
}

/**
 * One request being served. Every answer goes through send(), exactly once: an answer that comes
 * after another (a handler finishing past its deadline) is dropped.
 */
export class ApiContext {
  /** Raw (percent-encoded) route parameters. */
  params: Readonly<Record<string, string>> = NO_PARAMS;
  /** The route pattern (metrics label); `unmatched` until routed. */
  route = 'unmatched';
  /** The query string without `?` ('' when none). */
  rawQuery = '';
  /**
   * performance.now() past which the server answers 504 (set by read() and write()); 0 while no
   * call into the node is awaited. One sweep timer per server checks it (InFlightRequests).
   */
  deadlineAt = 0;
  /** False when the server could not track the request (too many in flight): it is only refused. */
  tracked = true;
  /** InFlightRequests' slot for it. */
  inFlightSlot = -1;
  private deadlineIsWrite = false;
  /** The answer waited for the node (a write, a linearizable read): it goes out at once (ResponseBatch). */
  private waitedForNode = false;
  private done = false;

  constructor(
    readonly request: Http1Request,
    readonly response: Http1Response,
    readonly service: KvService,
    readonly limits: HttpApiLimits,
    private readonly owner: RequestOwner,
    /** performance.now() when the request arrived. */
    readonly startedMs: number,
  ) {}

  /** True once the request was answered. */
  get isAnswered(): boolean {
    return this.done;
  }

  /** Query parameters; any parameter not in `allowed` is a 400. */
  query(allowed: readonly string[]): QueryParams {
    return QueryParams.parse(this.rawQuery, allowed);
  }

  header(name: string): string | undefined {
    const value = this.request.headers[name];
    if (value !== undefined && typeof value !== 'string')
      throw invalidRequest(`header ${name} given more than once`);
    return value;
  }

  /** The request body, at most maxRequestSize bytes (the connection read it before routing). */
  async body(): Promise<Buffer> {
    return requestBody(this.request, this.limits.maxRequestSize, 'max-request-size');
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

  /**
   * Awaits a read; past the deadline the client gets 504 timeout (a read changes nothing). The
   * promise is returned as it is (no wrapper, no timer): the server's sweep answers a late request.
   */
  read<T>(promise: Promise<T>, consistency: ReadConsistency): Promise<T> {
    this.deadlineIsWrite = false;
    this.waitedForNode = consistency === 'linearizable';
    this.deadlineAt = performance.now() + this.limits.requestTimeoutMs + REQUEST_DEADLINE_GRACE_MS;
    return promise;
  }

  /** Awaits a write; past the deadline its outcome is unknown (it may still commit). */
  write<T>(promise: Promise<T>): Promise<T> {
    this.deadlineIsWrite = true;
    this.waitedForNode = true;
    this.deadlineAt = performance.now() + this.limits.requestTimeoutMs + REQUEST_DEADLINE_GRACE_MS;
    return promise;
  }

  /** Called by the server's sweep once deadlineAt has passed. */
  expire(): void {
    if (this.done) return;
    const kind = this.deadlineIsWrite ? 'write' : 'read';
    const message = `${kind} did not finish within ${this.limits.requestTimeoutMs + REQUEST_DEADLINE_GRACE_MS} ms`;
    this.owner.expired(
      this,
      this.deadlineIsWrite
        ? new ApiError(504, 'outcome_unknown', message)
        : new ApiError(504, 'timeout', message),
    );
  }

  /** A JSON answer: `text` is the encoded JSON (see json() for a value). */
  jsonText(status: number, text: string, headers?: readonly string[]): void {
    this.send(status, JSON_CONTENT_TYPE, text, headers);
  }

  json(status: number, body: unknown, headers?: readonly string[], closeConnection = false): void {
    this.send(status, JSON_CONTENT_TYPE, JSON.stringify(body), headers, closeConnection);
  }

  /**
   * Answers once: status, content type, body (a string is UTF-8 text) and extra headers as flat
   * name/value pairs (`['x-atlas-more', 'true']`); `closeConnection` adds `Connection: close`, as
   * does a closing server. Later calls do nothing. The headers are set now; the body goes out with
   * the other answers of this event-loop turn, or at once for one that waited for the node (ResponseBatch).
   */
  send(
    status: number,
    contentType: string,
    body: Buffer | string,
    headers?: readonly string[],
    closeConnection = false,
  ): void {
    if (this.done) return;
    const isText = typeof body === 'string';
    const length = isText ? Buffer.byteLength(body, 'utf8') : body.length;
    // A flat header list: writeHead takes it as it is (no header object to build and walk).
    const list: string[] = ['content-type', contentType, 'content-length', String(length)];
    if (headers !== undefined) for (let i = 0; i < headers.length; i++) list.push(headers[i] as string);
    if (closeConnection || this.owner.isClosing) list.push('connection', 'close');
    const response = this.response;
    // writeHead validates the headers; if it throws, nothing went out and the caller's error path answers.
    response.writeHead(status, list);
    this.done = true;
    this.deadlineAt = 0;
    this.owner.responses.end(response, body, this.waitedForNode);
    this.owner.answered(this, status);
  }

  /** Cuts the response (its headers went out, so no error status can follow) and counts it answered. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.deadlineAt = 0;
    this.response.destroy();
    this.owner.answered(this, this.response.statusCode);
  }
}
