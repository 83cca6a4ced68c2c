/**
 * One client connection of an Http1Server: bytes in go to the parser, each complete request goes
 * to the owner with its response, and responses go out in request order (pipelining). The
 * connection stops reading while too many answers are outstanding or the client does not read
 * what was written, so one client cannot make the server buffer without bound.
 */
import type { Socket } from 'node:net';
import {
  type Http1ParserLimits,
  Http1ProtocolError,
  type Http1Request,
  Http1RequestParser,
} from './http1-request-parser.js';
import { Http1Response, type ResponseSink } from './http1-response.js';

/** Requests parsed ahead of their answers on one connection at most; past it reading pauses. */
export const MAX_PIPELINED_REQUESTS = 32;

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
/** Binary bodies up to this size are copied into one buffer with their head (cheaper than writev). */
const MAX_COPIED_BODY_BYTES = 16 * 1024;

export interface ConnectionOwner {
  onRequest(request: Http1Request, response: Http1Response): void;
  /** A request that could not be parsed: answer it on `response` (the connection closes after). */
  onProtocolError(error: Http1ProtocolError, response: Http1Response): void;
  connectionClosed(connection: Http1Connection): void;
  readonly keepAliveSeconds: number;
  /**
   * A connection being closed gets this long to hand its last answers to a client that does not
   * read them, then it is cut (it would otherwise keep its buffered bytes and its descriptor).
   */
  readonly closeLingerMs: number;
}

export class Http1Connection implements ResponseSink {
  private readonly parser: Http1RequestParser;
  /** Answers not written yet, in request order. */
  private readonly queue: Http1Response[] = [];
  /** performance.now() when the first byte of the request being received arrived. */
  private requestStartedMs = 0;
  /** performance.now() when the connection last had nothing to do. */
  private idleSinceMs: number;
  /** The client ended its side: no more requests; close once the answers are out. */
  private readEnded = false;
  /** Nothing more is written after the answers queued (a closing answer went out, or the owner closes). */
  private ending = false;
  private continueSent = false;
  private paused = false;
  private closed = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** parseAvailable is running (an answer written from within onRequest must not re-enter it). */
  private parsing = false;

  constructor(
    private readonly socket: Socket,
    private readonly owner: ConnectionOwner,
    limits: Http1ParserLimits,
  ) {
    this.parser = new Http1RequestParser(limits);
    this.idleSinceMs = performance.now();
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.received(chunk));
    socket.on('end', () => this.readSideEnded());
    socket.on('drain', () => this.updateFlow());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.socketClosed());
  }

  get keepAliveSeconds(): number {
    return this.owner.keepAliveSeconds;
  }

  /** No answer outstanding and no request begun: the connection only waits. */
  get isIdle(): boolean {
    return this.queue.length === 0 && !this.parser.isReadingBody;
  }

  /**
   * The timeout checks, run by the server's sweep: a request head not complete within
   * `headersTimeoutMs` of its first byte or a body not within `bodyTimeoutMs` is answered 408 and
   * the connection closed; an idle connection is closed after `keepAliveTimeoutMs`.
   */
  checkTimeouts(
    nowMs: number,
    headersTimeoutMs: number,
    bodyTimeoutMs: number,
    keepAliveTimeoutMs: number,
  ): void {
    if (this.closed || this.ending) return;
    if (this.parser.isMidRequest) {
      const limit = this.parser.isReadingBody ? bodyTimeoutMs : headersTimeoutMs;
      if (nowMs - this.requestStartedMs > limit) {
        const what = this.parser.isReadingBody ? 'request body' : 'request head';
        this.parser.stop();
        this.protocolError(new Http1ProtocolError(408, `${what} not received within ${limit} ms`));
      }
      return;
    }
    if (this.queue.length === 0 && nowMs - this.idleSinceMs > keepAliveTimeoutMs) this.end();
  }

  /** Closes the connection if it is idle (a partial request head counts as idle). */
  closeIfIdle(): void {
    if (this.isIdle) this.end();
  }

  /** ResponseSink: cuts the connection now. */
  destroy(): void {
    this.socket.destroy();
  }

  /** ResponseSink: an answer has its bytes; write it and any ready ones after it, in order. */
  responseEnded(response: Http1Response): void {
    if (this.closed || this.queue[0] !== response) return;
    this.writeReady();
  }

  private received(chunk: Buffer): void {
    if (this.closed || this.ending) return;
    if (!this.parser.isMidRequest) this.requestStartedMs = performance.now();
    this.parser.push(chunk);
    this.parseAvailable();
  }

  /** Hands out every complete request received, while the connection may take more. */
  private parseAvailable(): void {
    if (this.parsing) return;
    this.parsing = true;
    try {
      this.parseLoop();
    } finally {
      this.parsing = false;
    }
    this.updateFlow();
  }

  private parseLoop(): void {
    while (!this.paused && !this.ending && !this.closed && this.queue.length < MAX_PIPELINED_REQUESTS) {
      let request: Http1Request | undefined;
      try {
        request = this.parser.next();
      } catch (error) {
        if (!(error instanceof Http1ProtocolError)) throw error;
        this.protocolError(error);
        return;
      }
      if (request === undefined) {
        this.maybeSendContinue();
        break;
      }
      this.continueSent = false;
      if (this.parser.isMidRequest) this.requestStartedMs = performance.now();
      const response = new Http1Response(this, request.method === 'HEAD', request.keepAlive);
      this.queue.push(response);
      this.owner.onRequest(request, response);
      if (this.parser.isDone) break;
    }
  }

  /**
   * Expect: 100-continue (RFC 9110 §10.1.1): the client waits for a go-ahead before sending the
   * body. Sent only when no earlier answer is outstanding, since it must not overtake one; a
   * client that gets none sends the body after its own wait.
   */
  private maybeSendContinue(): void {
    if (this.continueSent || this.queue.length > 0 || !this.parser.isReadingBody) return;
    const head = this.parser.pendingHead;
    if (head === undefined || !head.expectContinue || head.versionMinor !== 1) return;
    this.continueSent = true;
    this.socket.write(CONTINUE, 'latin1');
  }

  private protocolError(error: Http1ProtocolError): void {
    const response = new Http1Response(this, false, false);
    this.queue.push(response);
    this.owner.onProtocolError(error, response);
  }

  private writeReady(): void {
    const socket = this.socket;
    const queue = this.queue;
    // Several answers ready at once go out in one writev; a single one in one write.
    const corked = queue.length > 1 && queue[1]!.isEnded;
    if (corked) socket.cork();
    while (queue.length > 0 && queue[0]!.isEnded) {
      const response = queue.shift()!;
      this.writeResponse(response);
      if (response.closeAfter) {
        // Answers to requests pipelined after this one are never written (RFC 9112 §9.6).
        queue.length = 0;
        this.end();
        break;
      }
    }
    if (corked) socket.uncork();
    if (queue.length === 0) {
      this.idleSinceMs = performance.now();
      if (this.readEnded && !this.ending) this.end();
    }
    this.updateFlow();
    // Requests buffered while reading was paused can go on now.
    if (!this.paused && this.parser.isMidRequest) this.parseAvailable();
  }

  /** Head and body in one write: a small binary body is copied behind the head rather than sent with writev. */
  private writeResponse(response: Http1Response): void {
    const socket = this.socket;
    const body = response.body;
    const head = response.head!;
    if (body === undefined) socket.write(head, 'latin1');
    else if (typeof body === 'string') socket.write(head + body, 'utf8');
    else if (body.length <= MAX_COPIED_BODY_BYTES) {
      const bytes = Buffer.allocUnsafe(head.length + body.length);
      bytes.write(head, 0, 'latin1');
      body.copy(bytes, head.length);
      socket.write(bytes);
    } else {
      socket.cork();
      socket.write(head, 'latin1');
      socket.write(body);
      socket.uncork();
    }
  }

  /** Pauses reading while too many answers are outstanding or written bytes wait for the client. */
  private updateFlow(): void {
    if (this.closed) return;
    const pause = this.queue.length >= MAX_PIPELINED_REQUESTS || this.socket.writableNeedDrain;
    if (pause && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!pause && this.paused) {
      this.paused = false;
      this.socket.resume();
      this.parseAvailable();
    }
  }

  private readSideEnded(): void {
    this.readEnded = true;
    if (this.queue.length > 0) return; // writeReady ends the connection once they are out
    // Requests complete but not handed out yet are answered; a request cut short by the end
    // never completes.
    this.parseAvailable();
    if (this.queue.length === 0) this.end();
  }

  /** Writes nothing more: finishes what was written, then closes. */
  private end(): void {
    if (this.ending || this.closed) return;
    this.ending = true;
    this.parser.stop();
    const socket = this.socket;
    socket.end(() => socket.destroy());
    this.lingerTimer = setTimeout(() => socket.destroy(), this.owner.closeLingerMs);
    this.lingerTimer.unref();
  }

  private socketClosed(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.lingerTimer);
    this.parser.stop();
    this.queue.length = 0;
    this.owner.connectionClosed(this);
  }
}
