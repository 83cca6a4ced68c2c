/**
 * An HTTP/1.1 server on a plain `net` server: keep-alive, pipelining, chunked request bodies,
 * Expect: 100-continue, HEAD, and every limit of Http1RequestParser, with the timeouts node:http
 * has (request head, request body, idle keep-alive) checked by one sweep for all connections
 * instead of a timer per connection. Why not node:http: see http1-request-parser.ts.
 */
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { type ConnectionOwner, Http1Connection } from './http1-connection.js';
import type { Http1ParserLimits, Http1ProtocolError, Http1Request } from './http1-request-parser.js';
import type { Http1Response } from './http1-response.js';

export interface Http1ServerOptions extends Http1ParserLimits {
  /** Open connections at most; past it a new connection is closed at once (onConnectionDropped). */
  maxConnections: number;
  /** A request head must arrive within this long of its first byte. */
  headersTimeoutMs: number;
  /** A request (head and body) must arrive within this long of its first byte. */
  bodyTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** A closing connection whose client does not read its last answers is cut after this long (default 10 s). */
  closeLingerMs?: number;
  onRequest(request: Http1Request, response: Http1Response): void;
  onProtocolError(error: Http1ProtocolError, response: Http1Response): void;
  onConnectionDropped(): void;
}

const DEFAULT_CLOSE_LINGER_MS = 10_000;
/** How often the timeout sweep runs; timeouts fire up to this much late. */
const SWEEP_INTERVAL_MS = 500;

export class Http1Server implements ConnectionOwner {
  private readonly server: Server;
  private readonly connections = new Set<Http1Connection>();
  private readonly parserLimits: Http1ParserLimits;
  private sweepTimer: NodeJS.Timeout | undefined;
  readonly keepAliveSeconds: number;
  readonly closeLingerMs: number;

  constructor(private readonly options: Http1ServerOptions) {
    for (const name of [
      'maxConnections',
      'headersTimeoutMs',
      'bodyTimeoutMs',
      'keepAliveTimeoutMs',
    ] as const) {
      const value = options[name];
      if (!Number.isSafeInteger(value) || value < 1)
        throw new Error(`Http1Server: ${name} must be a positive integer`);
    }
    const { maxHeadBytes, maxHeaderCount, maxBodyBytes, drainBytes } = options;
    this.parserLimits = { maxHeadBytes, maxHeaderCount, maxBodyBytes, drainBytes };
    this.closeLingerMs = options.closeLingerMs ?? DEFAULT_CLOSE_LINGER_MS;
    if (!Number.isSafeInteger(this.closeLingerMs) || this.closeLingerMs < 1) {
      throw new Error('Http1Server: closeLingerMs must be a positive integer');
    }
    this.keepAliveSeconds = Math.max(1, Math.floor(options.keepAliveTimeoutMs / 1000));
    // allowHalfOpen: a client that ends its side after a request still gets the answer.
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    this.server.maxConnections = options.maxConnections;
    this.server.on('drop', () => options.onConnectionDropped());
  }

  /** Starts listening; resolves with the bound address. */
  async listen(port: number, host: string, backlog: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, backlog, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    return this.server.address() as AddressInfo;
  }

  address(): AddressInfo | null {
    return this.server.address() as AddressInfo | null;
  }

  /** Client connections open now. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stops accepting connections; resolves once every open one has closed. */
  close(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.server.close(() => {
        clearInterval(this.sweepTimer);
        resolve();
      });
    });
  }

  /** Closes the connections with nothing in progress (after finishing what they were writing). */
  closeIdleConnections(): void {
    for (const connection of this.connections) connection.closeIfIdle();
  }

  /** Cuts every connection now. */
  closeAllConnections(): void {
    for (const connection of this.connections) connection.destroy();
  }

  onRequest(request: Http1Request, response: Http1Response): void {
    this.options.onRequest(request, response);
  }

  onProtocolError(error: Http1ProtocolError, response: Http1Response): void {
    this.options.onProtocolError(error, response);
  }

  connectionClosed(connection: Http1Connection): void {
    this.connections.delete(connection);
  }

  private accept(socket: Socket): void {
    this.connections.add(new Http1Connection(socket, this, this.parserLimits));
  }

  private sweep(): void {
    const now = performance.now();
    const { headersTimeoutMs, bodyTimeoutMs, keepAliveTimeoutMs } = this.options;
    for (const connection of this.connections) {
      connection.checkTimeouts(now, headersTimeoutMs, bodyTimeoutMs, keepAliveTimeoutMs);
    }
  }
}
