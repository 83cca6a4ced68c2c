/**
 * The HTTP API server on our HTTP/1.1 server (src/http1, docs/api.md). It calls only KvService (DESIGN.md §2), maps
 * every failure to a JSON error with a stable code, keeps connections alive, bounds connections,
 * headers, bodies and time, and closes gracefully: stop accepting, finish what is in flight.
 */
import type { Http1ProtocolError, Http1Request } from '../../http1/http1-request-parser.js';
import type { Http1Response } from '../../http1/http1-response.js';
import { Http1Server } from '../../http1/http1-server.js';
import type { KvService } from '../../node/kv-service.js';
import type { HostPort } from '../../transport/address.js';
import {
  ApiContext,
  DEFAULT_HTTP_API_LIMITS,
  type HttpApiLimits,
  REQUEST_DEADLINE_GRACE_MS,
  type RequestOwner,
} from './api-context.js';
import { ApiError, fromNodeError, isNodeError } from './api-error.js';
import type { AtlasMetrics } from './api-metrics.js';
import {
  addMember,
  getClusterStatus,
  getHealth,
  getMembers,
  promoteMember,
  removeMember,
  transferLeader,
} from './cluster-routes.js';
import { InFlightRequests, MAX_TRACKED_REQUESTS } from './in-flight-requests.js';
import { bodyDrainBytes } from './request-body.js';
import { ResponseBatch } from './response-batch.js';
import { deleteKey, getKey, postBatch, postTxn, putKey, rangeKeys } from './kv-routes.js';
import { type Route, Router } from './router.js';

export interface ApiLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

const silentLogger: ApiLogger = { info() {}, warn() {}, error() {} };

export interface HttpApiServerOptions {
  service: KvService;
  /** Request latencies are recorded here and /metrics serves its registry; without it /metrics is 404. */
  metrics?: AtlasMetrics;
  limits?: Partial<HttpApiLimits>;
  logger?: ApiLogger;
  /** How long close() waits for in-flight requests before cutting connections (default 10 s). */
  shutdownGraceMs?: number;
}

type Handler = (ctx: ApiContext) => Promise<void>;

/** Route patterns; the same set is served under /api/v1. */
function routes(server: HttpApiServer): Route<Handler>[] {
  return [
    { pattern: '/health', methods: { GET: getHealth } },
    { pattern: '/metrics', methods: { GET: (ctx) => server.serveMetrics(ctx) } },
    { pattern: '/kv', methods: { GET: rangeKeys } },
    { pattern: '/kv/{key+}', methods: { GET: getKey, PUT: putKey, DELETE: deleteKey } },
    { pattern: '/txn', methods: { POST: postTxn } },
    { pattern: '/batch', methods: { POST: postBatch } },
    { pattern: '/cluster/status', methods: { GET: getClusterStatus } },
    { pattern: '/cluster/members', methods: { GET: getMembers, POST: addMember } },
    { pattern: '/cluster/members/{id}', methods: { DELETE: removeMember } },
    { pattern: '/cluster/members/{id}/promote', methods: { POST: promoteMember } },
    { pattern: '/cluster/leader', methods: { POST: transferLeader } },
  ];
}

/** How often the deadline sweep runs: a tenth of the grace the API deadline adds to the node's own. */
const DEADLINE_SWEEP_MS = REQUEST_DEADLINE_GRACE_MS / 10;
/**
 * Listen backlog bounds: as many pending connections as the server may hold open (so a burst of
 * clients connecting at once is not left to SYN retransmits, a second or more each), at least
 * Node's default; the kernel caps it further at net.core.somaxconn.
 */
const MIN_LISTEN_BACKLOG = 511;
const MAX_LISTEN_BACKLOG = 65_535;
/** Connections refused at max-client-connections are logged at most this often (with their count). */
const DROP_LOG_EVERY_MS = 10_000;
/** Header fields in one request at most (a client of this API sends a handful). */
const MAX_HEADER_COUNT = 100;
/** A request head must arrive within this of its first byte; an idle connection is closed after it. */
const HEADERS_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 10_000;

export class HttpApiServer implements RequestOwner {
  readonly limits: HttpApiLimits;
  private readonly server: Http1Server;
  private readonly router: Router<Handler>;
  private readonly logger: ApiLogger;
  private readonly requests = new InFlightRequests<ApiContext>(DEADLINE_SWEEP_MS);
  readonly responses: ResponseBatch;
  private readonly stopCountingInFlight: () => void;
  private readonly stopCountingConnections: () => void;
  private closing: Promise<void> | undefined;
  private droppedSinceLog = 0;
  private lastDropLogMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: HttpApiServerOptions) {
    this.limits = { ...DEFAULT_HTTP_API_LIMITS, ...options.limits };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(value) || value < 1)
        throw new Error(`HttpApiServer: limit ${name} must be a positive integer`);
    }
    if (this.limits.maxValueSize > this.limits.maxRequestSize) {
      throw new Error('HttpApiServer: maxValueSize cannot exceed maxRequestSize');
    }
    this.logger = options.logger ?? silentLogger;
    this.responses = new ResponseBatch(this.logger);
    this.router = new Router(routes(this));
    this.stopCountingInFlight = options.metrics?.countInFlight(() => this.requests.size) ?? (() => {});
    this.stopCountingConnections =
      options.metrics?.countConnections(() => this.server.connectionCount) ?? (() => {});
    this.server = new Http1Server({
      // A key may be percent-encoded (3 characters per byte) in the request line.
      maxHeadBytes: Math.max(16 * 1024, 3 * this.limits.maxKeySize + 8 * 1024),
      maxHeaderCount: MAX_HEADER_COUNT,
      maxBodyBytes: this.limits.maxRequestSize,
      drainBytes: bodyDrainBytes(this.limits.maxRequestSize),
      maxConnections: this.limits.maxConnections,
      headersTimeoutMs: HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: Math.max(this.limits.requestTimeoutMs * 2, 30_000),
      keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
      onRequest: (request, response) => void this.handle(request, response),
      onProtocolError: (error, response) => this.answerProtocolError(error, response),
      // Past maxConnections a new connection is closed at once: count it and say so in the log.
      onConnectionDropped: () => this.connectionDropped(),
    });
  }

  /** Starts listening; resolves with the bound address (the real port when 0 was asked for). */
  async listen(address: HostPort): Promise<HostPort> {
    const backlog = Math.min(Math.max(this.limits.maxConnections, MIN_LISTEN_BACKLOG), MAX_LISTEN_BACKLOG);
    const bound = await this.server.listen(address.port, address.host, backlog);
    this.requests.start();
    return { host: bound.address, port: bound.port };
  }

  /** http://host:port of the listener (after listen). */
  get url(): string {
    const bound = this.server.address();
    if (!bound) throw new Error('HttpApiServer: not listening');
    const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
    return `http://${host}:${bound.port}`;
  }

  /** Requests being served now. */
  get requestsInFlight(): number {
    return this.requests.size;
  }

  get isClosing(): boolean {
    return this.closing !== undefined;
  }

  /** Client connections open now. */
  get connectionsOpen(): number {
    return this.server.connectionCount;
  }

  private connectionDropped(): void {
    this.options.metrics?.connectionDropped();
    this.droppedSinceLog++;
    const now = performance.now();
    if (now - this.lastDropLogMs < DROP_LOG_EVERY_MS) return;
    this.logger.warn(
      { dropped: this.droppedSinceLog, maxConnections: this.limits.maxConnections },
      'client connections refused: max-client-connections are open',
    );
    this.droppedSinceLog = 0;
    this.lastDropLogMs = now;
  }

  /**
   * Graceful close: stops accepting connections, answers requests in flight (with Connection: close),
   * closes idle keep-alive connections, and after the grace period cuts whatever is left.
   */
  close(graceMs = this.options.shutdownGraceMs ?? 10_000): Promise<void> {
    if (this.closing) return this.closing;
    // Answers given before the close began go out now, without the Connection: close of later ones.
    this.responses.flush();
    this.closing = new Promise<void>((resolve) => {
      const closed = this.server.close();
      this.server.closeIdleConnections();
      const timer = setTimeout(() => {
        this.logger.warn(
          { inFlight: this.requests.size },
          'closing HTTP connections with requests still in flight',
        );
        this.server.closeAllConnections();
      }, graceMs);
      this.requests
        .whenIdle()
        .then(() => this.server.closeIdleConnections())
        .then(() => closed)
        .then(() => {
          clearTimeout(timer);
          this.requests.stop();
          this.stopCountingInFlight();
          this.stopCountingConnections();
          resolve();
        });
    });
    return this.closing;
  }

  async serveMetrics(ctx: ApiContext): Promise<void> {
    ctx.query([]);
    const metrics = this.options.metrics;
    if (!metrics) throw new ApiError(404, 'not_found', 'metrics are not enabled on this server');
    metrics.observeStatus(this.options.service.status());
    const { contentType, body } = await metrics.render();
    ctx.send(200, contentType, body);
  }

  /**
   * One request: route it, run its handler, answer errors. The hot path allocates the context and
   * nothing per request beyond what the handler needs: no timer (the sweep holds deadlines), no
   * listener (the answer reports itself through answered()), no metrics label objects.
   */
  private async handle(request: Http1Request, response: Http1Response): Promise<void> {
    const ctx = new ApiContext(request, response, this.options.service, this.limits, this, performance.now());
    if (!this.requests.tryAdd(ctx)) {
      ctx.tracked = false;
      this.sendError(
        ctx,
        new ApiError(
          503,
          'overloaded',
          `more than ${MAX_TRACKED_REQUESTS} requests in flight`,
          {},
          {
            'retry-after': '1',
          },
        ),
      );
      return;
    }
    try {
      const url = request.target;
      if (url.charCodeAt(0) !== 47 /* / */) {
        throw new ApiError(400, 'invalid_request', 'request target must be a path');
      }
      const queryAt = url.indexOf('?');
      const match = this.router.match(request.method, queryAt < 0 ? url : url.slice(0, queryAt));
      ctx.route = match.pattern;
      ctx.params = match.params;
      if (queryAt >= 0) ctx.rawQuery = url.slice(queryAt + 1);
      await match.handler(ctx);
      if (!ctx.isAnswered) throw new Error(`handler of ${ctx.route} returned without answering`);
    } catch (error) {
      this.sendError(ctx, error);
    }
  }

  /** RequestOwner: a request was answered (ApiContext.send). */
  answered(ctx: ApiContext, status: number): void {
    const metrics = this.options.metrics;
    if (metrics) {
      metrics.observeHttpRequest(
        ctx.route,
        methodLabel(ctx.request.method),
        status,
        (performance.now() - ctx.startedMs) / 1000,
      );
    }
    // The answer may still wait in the ResponseBatch; its connection is not idle until it went
    // out, so closing idle connections after the drain cannot drop it.
    if (ctx.tracked) this.requests.remove(ctx);
  }

  /** A request the connection could not parse: a JSON error; the connection closes after it. */
  private answerProtocolError(error: Http1ProtocolError, response: Http1Response): void {
    const timedOut = error.status === 408;
    const body = JSON.stringify({
      error: {
        code: timedOut ? 'request_timeout' : 'invalid_request',
        message: timedOut ? error.message : `malformed HTTP request: ${error.message}`,
      },
    });
    response.writeHead(error.status, [
      'content-type',
      'application/json; charset=utf-8',
      'content-length',
      String(Buffer.byteLength(body)),
    ]);
    response.end(body);
  }

  /** RequestOwner: the sweep found a request past its deadline. */
  expired(ctx: ApiContext, error: ApiError): void {
    this.sendError(ctx, error);
  }

  private toApiError(error: unknown): ApiError {
    if (error instanceof ApiError) return error;
    if (isNodeError(error)) {
      return fromNodeError(error, (id) => {
        try {
          return this.options.service.members().find((m) => m.id === id)?.clientUrl || undefined;
        } catch {
          return undefined;
        }
      });
    }
    this.logger.error(
      {
        err: error instanceof Error ? error.message : String(error),
        stack: error instanceof Error ? error.stack : undefined,
      },
      'unexpected error serving an HTTP request',
    );
    return new ApiError(500, 'internal', 'internal error; see the server log');
  }

  private sendError(ctx: ApiContext, error: unknown): void {
    if (ctx.isAnswered) {
      // Answered already (by the deadline sweep): this late failure has no one to go to.
      return;
    }
    const apiError = this.toApiError(error);
    if (ctx.response.headersSent) {
      // Too late for a status: cut the response so the client cannot take it as complete.
      ctx.abort();
      return;
    }
    const headers: string[] = [];
    for (const [name, value] of Object.entries(apiError.headers)) headers.push(name, value);
    try {
      ctx.json(apiError.status, apiError.toJSON(), headers, apiError.closeConnection);
    } catch (failure) {
      // Not even the error could be written (a header the parser refuses): cut the connection.
      this.logger.error(
        { err: failure instanceof Error ? failure.message : String(failure), status: apiError.status },
        'could not write an HTTP error answer',
      );
      ctx.abort();
    }
  }
}

const LABELLED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE']);

/** The metrics label of a request method: any method token parses, so the others share one label. */
function methodLabel(method: string): string {
  return LABELLED_METHODS.has(method) ? method : 'other';
}

/** The API limits from a node's configuration. */
export function httpApiLimitsFromConfig(config: {
  maxKeySize: number;
  maxValueSize: number;
  maxRequestSize: number;
  maxTxnOps: number;
  requestTimeoutMs: number;
  maxClientConnections: number;
}): Partial<HttpApiLimits> {
  return {
    maxKeySize: config.maxKeySize,
    maxValueSize: config.maxValueSize,
    maxRequestSize: config.maxRequestSize,
    maxTxnOps: config.maxTxnOps,
    requestTimeoutMs: config.requestTimeoutMs,
    maxConnections: config.maxClientConnections,
  };
}
