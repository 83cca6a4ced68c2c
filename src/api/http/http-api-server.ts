/**
 * The HTTP API server on node:http (docs/api.md). It calls only KvService (DESIGN.md §2), maps
 * every failure to a JSON error with a stable code, keeps connections alive, bounds connections,
 * headers, bodies and time, and closes gracefully: stop accepting, finish what is in flight.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KvService } from '../../node/kv-service.js';
import type { HostPort } from '../../transport/address.js';
import { ApiContext, DEFAULT_HTTP_API_LIMITS, type HttpApiLimits } from './api-context.js';
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

export class HttpApiServer {
  readonly limits: HttpApiLimits;
  private readonly server: Server;
  private readonly router: Router<Handler>;
  private readonly logger: ApiLogger;
  private inFlight = 0;
  private closing: Promise<void> | undefined;
  private onIdle: (() => void) | undefined;

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
    this.router = new Router(routes(this));
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
      this.server.listen(address.port, address.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
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
    return this.inFlight;
  }

  /**
   * Graceful close: stops accepting connections, answers requests in flight (with Connection: close),
   * closes idle keep-alive connections, and after the grace period cuts whatever is left.
   */
  close(graceMs = this.options.shutdownGraceMs ?? 10_000): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      const closed = new Promise<void>((done) => this.server.close(() => done()));
      this.server.closeIdleConnections();
      const drained = new Promise<void>((done) => {
        if (this.inFlight === 0) done();
        else this.onIdle = done;
      });
      const timer = setTimeout(() => {
        this.logger.warn(
          { inFlight: this.inFlight },
          'closing HTTP connections with requests still in flight',
        );
        this.server.closeAllConnections();
      }, graceMs);
      drained
        .then(() => this.server.closeIdleConnections())
        .then(() => closed)
        .then(() => {
          clearTimeout(timer);
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
    ctx.send(200, Buffer.from(body, 'utf8'), { 'content-type': contentType });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const method = req.method ?? 'GET';
    let route = 'unmatched';
    this.inFlight++;
    this.options.metrics?.httpInFlight.inc();
    if (this.closing) res.setHeader('connection', 'close');
    res.on('close', () => {
      this.inFlight--;
      const metrics = this.options.metrics;
      if (metrics) {
        metrics.httpInFlight.dec();
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        metrics.observeHttpRequest(route, method, res.statusCode, seconds);
      }
      if (this.inFlight === 0 && this.onIdle) {
        const idle = this.onIdle;
        this.onIdle = undefined;
        idle();
      }
    });
    try {
      const url = req.url ?? '/';
      if (!url.startsWith('/')) throw new ApiError(400, 'invalid_request', 'request target must be a path');
      const queryAt = url.indexOf('?');
      const path = queryAt < 0 ? url : url.slice(0, queryAt);
      const match = this.router.match(method, path);
      route = match.pattern;
      const ctx = new ApiContext(
        req,
        res,
        this.options.service,
        this.limits,
        match.params,
        queryAt < 0 ? '' : url.slice(queryAt + 1),
      );
      await match.handler(ctx);
    } catch (error) {
      this.sendError(req, res, error);
    }
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

  private sendError(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    const apiError = this.toApiError(error);
    if (res.headersSent) {
      // Too late for a status: cut the response so the client cannot take it as complete.
      res.destroy();
      return;
    }
    const body = Buffer.from(JSON.stringify(apiError.toJSON()), 'utf8');
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(body.length),
      ...apiError.headers,
    };
    if (apiError.closeConnection) {
      headers['connection'] = 'close';
      res.on('finish', () => req.socket.destroy());
    }
    res.writeHead(apiError.status, headers);
    res.end(body);
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
