/**
 * One keep-alive HTTP/1.1 connection of the load generator, on a raw TCP socket: a request goes out
 * as prebuilt bytes in one write, and the answer is parsed only as far as the generator needs it:
 * its status and its framing (Content-Length, chunked, or until the connection closes), so the next
 * request can follow on the same connection. One request at a time (no pipelining).
 *
 * Why not undici: the generator shares the machine's cores with the servers it measures. Against a
 * trivial server on the 2-core development machine, undici's Pool cost about 38 us of generator
 * CPU per request and topped out at 17-21k req/s with 64 connections, not far above what the
 * servers were measured at (12-15k); every microsecond the generator spends is one the servers
 * under test do not get. Both systems meet the same client either way.
 *
 * Limits: a response head over MAX_HEAD_BYTES or a malformed status line, header or chunk size
 * fails the request with a `bad_response` error and closes the connection.
 */
import { type Socket, connect } from 'node:net';

/** Longest response head (status line and headers) accepted. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Longest chunk-size line accepted (hex digits and extensions). */
const MAX_CHUNK_LINE_BYTES = 1024;

const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

/** A request that failed: `code` is what the generator counts it as (`timeout`, `ECONNREFUSED`, ...). */
export class BenchRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'BenchRequestError';
  }
}

type ParseState = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'trailers' | 'until-close';

interface InFlight {
  resolve: (status: number) => void;
  reject: (error: BenchRequestError) => void;
  /** performance.now() past which the request fails as `timeout`. */
  deadline: number;
}

export class BenchHttpConnection {
  private socket: Socket | null = null;
  private open = false;
  private inFlight: InFlight | null = null;
  private queuedBytes: Buffer | null = null;
  /** Received bytes not parsed yet (a partial head or chunk line). */
  private buffered: Buffer | null = null;
  private state: ParseState = 'head';
  private status = 0;
  /** Body bytes still to skip ('length', 'chunk-data': including the chunk's CRLF). */
  private remaining = 0;
  private closeAfter = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly timeoutMs: number,
  ) {}

  /** Sends `bytes` (one whole request) and resolves with the answer's status once it is read. */
  send(bytes: Buffer): Promise<number> {
    if (this.inFlight !== null) throw new Error('BenchHttpConnection: one request at a time');
    return new Promise<number>((resolve, reject) => {
      this.inFlight = { resolve, reject, deadline: performance.now() + this.timeoutMs };
      this.state = 'head';
      this.status = 0;
      this.closeAfter = false;
      if (this.open) this.socket!.write(bytes);
      else {
        this.queuedBytes = bytes;
        if (this.socket === null) this.dial();
      }
    });
  }

  /** Fails the request in flight as `timeout` if its deadline is past (called by a shared sweep). */
  expireIfPast(now: number): void {
    if (this.inFlight !== null && now > this.inFlight.deadline) {
      this.fail(new BenchRequestError('timeout', `no complete answer within ${this.timeoutMs} ms`));
    }
  }

  close(): void {
    this.fail(new BenchRequestError('closed', 'connection closed by the generator'));
  }

  private dial(): void {
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    socket.on('connect', () => {
      if (this.socket !== socket) return;
      this.open = true;
      const bytes = this.queuedBytes;
      this.queuedBytes = null;
      if (bytes !== null) socket.write(bytes);
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) this.onData(chunk);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (this.socket === socket) this.fail(new BenchRequestError(e.code ?? 'socket_error', e.message));
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      if (this.inFlight !== null && this.state === 'until-close' && this.buffered === null) {
        const done = this.inFlight;
        this.reset();
        done.resolve(this.status);
        return;
      }
      this.fail(new BenchRequestError('connection_closed', 'the server closed the connection mid-answer'));
    });
  }

  /** Drops the connection (the next send dials again) and fails the request in flight, if any. */
  private fail(error: BenchRequestError): void {
    const failed = this.inFlight;
    this.reset();
    failed?.reject(error);
  }

  private reset(): void {
    const socket = this.socket;
    this.socket = null;
    this.open = false;
    this.inFlight = null;
    this.queuedBytes = null;
    this.buffered = null;
    socket?.destroy();
  }

  private onData(chunk: Buffer): void {
    const buf = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    this.buffered = null;
    let at = 0;
    while (at < buf.length) {
      if (this.inFlight === null) {
        // No pipelining: nothing may follow an answer before the next request.
        this.malformed('bytes arrived with no request in flight');
        return;
      }
      switch (this.state) {
        case 'head': {
          const end = buf.indexOf(HEAD_END, at);
          if (end < 0) {
            this.keep(buf, at, MAX_HEAD_BYTES, `response head over ${MAX_HEAD_BYTES} bytes`);
            return;
          }
          if (!this.parseHead(buf, at, end)) return;
          at = end + HEAD_END.length;
          break;
        }
        case 'length':
        case 'chunk-data': {
          const take = Math.min(this.remaining, buf.length - at);
          this.remaining -= take;
          at += take;
          if (this.remaining > 0) break;
          if (this.state === 'length') this.complete();
          else this.state = 'chunk-size';
          break;
        }
        case 'chunk-size': {
          const end = buf.indexOf(CRLF, at);
          if (end < 0) {
            this.keep(buf, at, MAX_CHUNK_LINE_BYTES, 'chunk-size line too long');
            return;
          }
          const line = buf.toString('latin1', at, end);
          const hex = line.split(';', 1)[0]!.trim();
          if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) {
            this.malformed(`bad chunk size ${JSON.stringify(line)}`);
            return;
          }
          const size = Number.parseInt(hex, 16);
          at = end + CRLF.length;
          if (size === 0) this.state = 'trailers';
          else {
            this.remaining = size + CRLF.length; // the chunk's data and its CRLF
            this.state = 'chunk-data';
          }
          break;
        }
        case 'trailers': {
          // Trailer lines, then an empty line.
          const end = buf.indexOf(CRLF, at);
          if (end < 0) {
            this.keep(buf, at, MAX_HEAD_BYTES, 'trailers too long');
            return;
          }
          const empty = end === at;
          at = end + CRLF.length;
          if (empty) this.complete();
          break;
        }
        case 'until-close':
          // The body ends when the server closes the connection; its bytes are dropped.
          at = buf.length;
          break;
      }
    }
  }

  /** Keeps the unparsed rest of `buf` for the next read, unless it is already over `limit`. */
  private keep(buf: Buffer, at: number, limit: number, tooLong: string): void {
    if (buf.length - at > limit) {
      this.malformed(tooLong);
      return;
    }
    this.buffered = buf.subarray(at);
  }

  /**
   * Parses the response head in `buf[start, end)` (without its final CRLF CRLF); false (the request
   * failed) when it is malformed. Read as bytes, not as a string split into lines: only the status
   * and the three framing fields are needed, and this runs once per request on the generator's
   * thread (string parsing cost about 2.5 us of the generator's ~30 us per request).
   */
  private parseHead(buf: Buffer, start: number, end: number): boolean {
    // "HTTP/1.x SSS" then a space or the end of the line.
    const lineEnd = lineEndAt(buf, start, end);
    if (
      lineEnd - start < 12 ||
      !bytesAre(buf, start, 'HTTP/1.') ||
      (buf[start + 7] !== 0x30 && buf[start + 7] !== 0x31) ||
      buf[start + 8] !== 0x20 ||
      !isDigit(buf[start + 9]!) ||
      buf[start + 9] === 0x30 ||
      !isDigit(buf[start + 10]!) ||
      !isDigit(buf[start + 11]!) ||
      (lineEnd > start + 12 && buf[start + 12] !== 0x20)
    ) {
      this.malformed(
        `bad status line ${JSON.stringify(buf.toString('latin1', start, Math.min(lineEnd, start + 80)))}`,
      );
      return false;
    }
    this.status = (buf[start + 9]! - 0x30) * 100 + (buf[start + 10]! - 0x30) * 10 + (buf[start + 11]! - 0x30);
    let length = -1;
    let chunked = false;
    let at = lineEnd + 2;
    while (at < end) {
      const next = lineEndAt(buf, at, end);
      const colon = buf.indexOf(0x3a, at);
      if (colon <= at || colon >= next) {
        this.malformed(
          `bad header line ${JSON.stringify(buf.toString('latin1', at, Math.min(next, at + 80)))}`,
        );
        return false;
      }
      // Only the framing fields are read; a name is matched by length first, then case-insensitively.
      const nameLength = trimmedEnd(buf, at, colon) - at;
      if (nameLength === 14 && namedAs(buf, at, 'content-length')) {
        length = decimalField(buf, colon + 1, next);
        if (length < 0) {
          this.malformed(`bad content-length ${JSON.stringify(fieldValue(buf, colon + 1, next))}`);
          return false;
        }
      } else if (nameLength === 17 && namedAs(buf, at, 'transfer-encoding')) {
        chunked = fieldValue(buf, colon + 1, next)
          .toLowerCase()
          .split(',')
          .map((s) => s.trim())
          .includes('chunked');
      } else if (nameLength === 10 && namedAs(buf, at, 'connection')) {
        if (
          fieldValue(buf, colon + 1, next)
            .toLowerCase()
            .includes('close')
        )
          this.closeAfter = true;
      }
      at = next + 2;
    }
    if (this.status < 200) {
      // An interim answer (100 Continue): the real one follows.
      this.state = 'head';
      return true;
    }
    if (this.status === 204 || this.status === 304) {
      this.remaining = 0;
      this.state = 'length';
    } else if (chunked) {
      this.state = 'chunk-size';
    } else if (length >= 0) {
      this.remaining = length;
      this.state = 'length';
    } else {
      this.state = 'until-close';
      this.closeAfter = true;
    }
    if (this.state === 'length' && this.remaining === 0) this.complete();
    return true;
  }

  private complete(): void {
    const done = this.inFlight!;
    this.inFlight = null;
    this.state = 'head';
    if (this.closeAfter) {
      const socket = this.socket;
      this.socket = null;
      this.open = false;
      this.buffered = null;
      socket?.destroy();
    }
    done.resolve(this.status);
  }

  private malformed(why: string): void {
    this.fail(new BenchRequestError('bad_response', why));
  }
}

/**
 * Where the line starting at `from` ends (the CR of its CRLF), or `end` for the head's last line.
 * A bare CR stays inside its line, as when the head was split on CRLF. (A byte loop: lines are
 * short, and Buffer.indexOf's native call cost more than the scan.)
 */
function lineEndAt(buf: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) if (buf[i] === 0x0d && buf[i + 1] === 0x0a) return i;
  return end;
}

/** A field value of 1-15 decimal digits (spaces and tabs around it allowed), or -1. */
function decimalField(buf: Buffer, from: number, end: number): number {
  while (from < end && (buf[from] === 0x20 || buf[from] === 0x09)) from++;
  end = trimmedEnd(buf, from, end);
  if (end === from || end - from > 15) return -1;
  let n = 0;
  for (let i = from; i < end; i++) {
    const byte = buf[i]!;
    if (!isDigit(byte)) return -1;
    n = n * 10 + (byte - 0x30);
  }
  return n;
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

/** `buf` holds the ASCII text `text` at `at`. */
function bytesAre(buf: Buffer, at: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (buf[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** `buf` holds `lowerName` at `at`, in any letter case. */
function namedAs(buf: Buffer, at: number, lowerName: string): boolean {
  for (let i = 0; i < lowerName.length; i++) {
    const byte = buf[at + i]!;
    const lower = byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte;
    if (lower !== lowerName.charCodeAt(i)) return false;
  }
  return true;
}

/** The end of `buf[from, end)` without trailing spaces and tabs. */
function trimmedEnd(buf: Buffer, from: number, end: number): number {
  while (end > from && (buf[end - 1] === 0x20 || buf[end - 1] === 0x09)) end--;
  return end;
}

/** A field's value: `buf[from, end)` without leading and trailing spaces and tabs. */
function fieldValue(buf: Buffer, from: number, end: number): string {
  while (from < end && (buf[from] === 0x20 || buf[from] === 0x09)) from++;
  return buf.toString('latin1', from, trimmedEnd(buf, from, end));
}
