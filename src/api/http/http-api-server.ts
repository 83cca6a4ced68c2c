/**
 * The HTTP API server on node:http (docs/api.md). It calls only KvService (DESIGN.md §2), maps
 * every failure to a JSON error with a stable code, keeps connections alive, bounds connections,
 * headers, bodies and time, and closes gracefully: stop accepting, finish what is in flight.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
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

export class HttpApiServer implements RequestOwner {
  readonly limits: HttpApiLimits;
  private readonly server: Server;
  private readonly router: Router<Handler>;
  private readonly logger: ApiLogger;
  private readonly requests = new InFlightRequests<ApiContext>(DEADLINE_SWEEP_MS);
  readonly responses: ResponseBatch;
  private readonly stopCountingInFlight: () => void;
  private readonly stopCountingConnections: () => void;
  private closing: Promise<void> | undefined;
  private openConnections = 0;
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
    this.stopCountingConnections = options.metrics?.countConnections(() => this.openConnections) ?? (() => {});
    this.server = createServer(
      {
        // A key may be percent-encoded (3 characters per byte) in the request line.
        maxHeaderSize: Math.max(16 * 1024, 3 * this.limits.maxKeySize + 8 * 1024),
        requestTimeout: Math.max(this.limits.requestTimeoutMs * 2, 30_000),
        headersTimeout: 10_000,
        keepAliveTimeout: 10_000,
      },
      (req, res) => this.handle(req, res),
    );
    this.server.maxConnections = this.limits.maxConnections;
    this.server.on('connection', (socket: Socket) => {
      this.openConnections++;
      socket.once('close', () => {
        this.openConnections--;
      });
    });
    // Past maxConnections node closes a new connection at once: count it and say so in the log.
    this.server.on('drop', () => this.connectionDropped());
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      // Malformed HTTP (bad request line, oversize headers): answer 400/431 if the socket still can.
      if (!socket.writable) return socket.destroy();
      const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      const body = JSON.stringify({
        error: { code: 'invalid_request', message: `malformed HTTP request: ${error.code ?? error.message}` },
      });
      socket.end(
        `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
          `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
  }

  /** Starts listening; resolves with the bound address (the real port when 0 was asked for). */
  async listen(address: HostPort): Promise<HostPort> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      const backlog = Math.min(Math.max(this.limits.maxConnections, MIN_LISTEN_BACKLOG), MAX_LISTEN_BACKLOG);
      this.server.listen(address.port, address.host, backlog, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.requests.start();
    const bound = this.server.address() as AddressInfo;
    return { host: bound.address, port: bound.port };
  }

  /** http://host:port of the listener (after listen). */
  get url(): string {
    const bound = this.server.address() as AddressInfo | null;
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
    return this.openConnections;
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
      const closed = new Promise<void>((done) => this.server.close(() => done()));
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
  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ctx = new ApiContext(req, res, this.options.service, this.limits, this, performance.now());
    if (!this.requests.tryAdd(ctx)) {
      ctx.tracked = false;
      this.sendError(
        ctx,
        new ApiError(503, 'overloaded', `more than ${MAX_TRACKED_REQUESTS} requests in flight`, {}, {
          'retry-after': '1',
        }),
      );
      return;
    }
    try {
      const url = req.url ?? '/';
      if (url.charCodeAt(0) !== 47 /* / */) {
        throw new ApiError(400, 'invalid_request', 'request target must be a path');
      }
      const queryAt = url.indexOf('?');
      const match = this.router.match(req.method ?? 'GET', queryAt < 0 ? url : url.slice(0, queryAt));
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
      metrics.observeHttpRequest(ctx.route, ctx.req.method ?? 'GET', status, (performance.now() - ctx.startedMs) / 1000);
    }
    if (!ctx.tracked) return;
    const res = ctx.res;
    if (this.closing !== undefined && !res.closed) {
      // Shutting down: the request counts as in flight until its answer is flushed, so the idle
      // connection cut that follows the drain cannot drop an answer still being written.
      res.once('close', () => this.requests.remove(ctx));
    } else {
      this.requests.remove(ctx);
    }
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
    const res = ctx.res;
    if (res.headersSent) {
      // Too late for a status: cut the response so the client cannot take it as complete.
      ctx.abort();
      return;
    }
    const headers: string[] = [];
    for (const [name, value] of Object.entries(apiError.headers)) headers.push(name, value);
    if (apiError.closeConnection) {
      const socket = ctx.req.socket;
      res.on('finish', () => socket.destroy());
    }
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
