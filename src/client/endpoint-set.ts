/**
 * The servers a client talks to: one keep-alive undici Pool per endpoint, the endpoint currently
 * preferred for reads, the leader (preferred for writes) once known, and one HTTP attempt with a
 * timeout whose failure is classified by whether the request can have reached the server.
 */
import { Pool } from 'undici';

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface HttpRequest {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
}

/**
 * What became of one attempt: an answer, a failure before anything was sent (safe to repeat
 * anywhere), or a failure after the request may have been received (outcome unknown).
 */
export type AttemptOutcome =
  | { kind: 'reply'; reply: HttpReply }
  | { kind: 'not_sent'; reason: string }
  | { kind: 'lost'; reason: string; timedOut: boolean };

/** Errors raised before any byte of the request left (connection refused, unresolvable host). */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

export interface EndpointSetOptions {
  connectionsPerEndpoint: number;
  connectTimeoutMs: number;
  /** Largest response accepted. */
  maxResponseBytes: number;
  /** Endpoints learned from leader hints, at most. */
  maxLearnedEndpoints: number;
}

export function normalizeEndpoint(text: string): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new Error(`endpoint ${JSON.stringify(text)} is not a URL such as http://127.0.0.1:8081`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`endpoint ${JSON.stringify(text)} must be http:// or https://`);
  }
  if (url.pathname !== '/' || url.search || url.hash) {
    throw new Error(`endpoint ${JSON.stringify(text)} must not have a path or query`);
  }
  return url.origin;
}

export class EndpointSet {
  private readonly endpoints: string[];
  private readonly pools = new Map<string, Pool>();
  private current = 0;
  private learned = 0;
  /** The leader's endpoint, when known. */
  leader: string | undefined;
  private closed = false;

  constructor(
    endpoints: string[],
    private readonly options: EndpointSetOptions,
  ) {
    if (endpoints.length === 0) throw new Error('connect: at least one endpoint is required');
    this.endpoints = [...new Set(endpoints.map(normalizeEndpoint))];
  }

  get list(): readonly string[] {
    return this.endpoints;
  }

  /** Where reads go: the current endpoint. */
  forRead(): string {
    return this.endpoints[this.current]!;
  }

  /** Where writes go: the leader when known (no forwarding hop), else the current endpoint. */
  forWrite(): string {
    return this.leader ?? this.forRead();
  }

  /** Moves away from an endpoint that failed (and forgets it as leader). */
  failed(endpoint: string): void {
    if (this.leader === endpoint) this.leader = undefined;
    if (this.endpoints[this.current] === endpoint) this.current = (this.current + 1) % this.endpoints.length;
  }

  /** Records the leader's client URL (from a not_leader hint or the cluster status). */
  setLeader(url: string | undefined): void {
    if (!url) {
      this.leader = undefined;
      return;
    }
    let endpoint: string;
    try {
      endpoint = normalizeEndpoint(url);
    } catch {
      return; // a hint we cannot use is no hint
    }
    if (!this.endpoints.includes(endpoint)) {
      if (this.learned >= this.options.maxLearnedEndpoints) return;
      this.learned++;
      this.endpoints.push(endpoint);
    }
    this.leader = endpoint;
  }

  private pool(endpoint: string): Pool {
    let pool = this.pools.get(endpoint);
    if (!pool) {
      pool = new Pool(endpoint, {
        connections: this.options.connectionsPerEndpoint,
        connectTimeout: this.options.connectTimeoutMs,
        keepAliveTimeout: 4000,
        maxResponseSize: this.options.maxResponseBytes,
      });
      this.pools.set(endpoint, pool);
    }
    return pool;
  }

  /** One HTTP request with a timeout; never throws. */
  async attempt(endpoint: string, request: HttpRequest, timeoutMs: number): Promise<AttemptOutcome> {
    if (this.closed) return { kind: 'not_sent', reason: 'client closed' };
    // A plain object, not an Error: this runs per request and a stack trace is not free.
    const timeout = { timedOut: true };
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(timeout), timeoutMs);
    try {
      const response = await this.pool(endpoint).request({
        method: request.method,
        path: request.path,
        headers: request.headers ?? {},
        body: request.body ?? null,
        signal: controller.signal,
      });
      const body = Buffer.from(await response.body.arrayBuffer());
      return { kind: 'reply', reply: { status: response.statusCode, headers: response.headers, body } };
    } catch (error) {
      if (error === timeout)
        return { kind: 'lost', reason: `no answer from ${endpoint} within ${timeoutMs} ms`, timedOut: true };
      const code = (error as { code?: string }).code ?? '';
      const reason = `${endpoint}: ${code || (error as Error).name}: ${(error as Error).message}`;
      if (NOT_SENT_CODES.has(code)) return { kind: 'not_sent', reason };
      return { kind: 'lost', reason, timedOut: false };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pools.values()].map((pool) => pool.close().catch(() => pool.destroy())));
    this.pools.clear();
  }
}
