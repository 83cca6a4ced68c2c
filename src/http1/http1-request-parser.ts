/**
 * An incremental HTTP/1.1 request parser (RFC 9112) for bytes from an untrusted client: it is fed
 * whatever the socket delivers, split anywhere, and hands out one complete request at a time,
 * head and whole body, or throws an Http1ProtocolError that names what was wrong.
 *
 * Why our own and not node:http: measured on the 2-core development machine, node:http costs
 * 47.3 us of CPU per request against 19.7 us for a plain `net` responder (docs/benchmarks.md,
 * fourth round), which is a third of a linearizable read's cost on the leader. Its objects
 * (IncomingMessage, ServerResponse, their streams and events) are most of that.
 *
 * Strict where leniency has been exploited (request smuggling): lines end in CRLF, no bare CR or
 * LF, no obsolete line folding, no whitespace before a header's colon, Content-Length is digits
 * and agrees with any repeat, Content-Length with Transfer-Encoding is refused, the only transfer
 * coding is `chunked`. Bounded everywhere: head bytes, header count, chunk-size lines, trailers,
 * body bytes buffered, body bytes discarded past the limit.
 */
import { isFieldValue, isToken } from './field-syntax.js';

/** What a request may hold; every one is enforced. */
export interface Http1ParserLimits {
  /** Request line and header fields together, CRLFs included. */
  maxHeadBytes: number;
  /** Header fields in one request (and in its trailers). */
  maxHeaderCount: number;
  /** Body bytes kept; a longer body is discarded and the request marked `overflow`. */
  maxBodyBytes: number;
  /** Body bytes past maxBodyBytes read and dropped (so the client sees the answer) before giving up on the connection. */
  drainBytes: number;
}

/** A request the connection could not parse: answer `status` and close. */
export class Http1ProtocolError extends Error {
  constructor(
    readonly status: 400 | 408 | 417 | 431 | 501 | 505,
    message: string,
  ) {
    super(message);
    this.name = 'Http1ProtocolError';
  }
}

/**
 * How the body fared against maxBodyBytes: `none`, `discarded` (longer than the limit, read to its
 * end and dropped: the connection can go on), `abandoned` (longer than the limit plus drainBytes:
 * not read; the connection must close after the answer).
 */
export type BodyOverflow = 'none' | 'discarded' | 'abandoned';

/** Header field values by lower-case name; a field given more than once holds every value, in order. */
export type Http1Headers = Readonly<Record<string, string | readonly string[]>>;

export interface Http1Request {
  readonly method: string;
  /** The request-target as sent (latin1 characters for its bytes, as node:http gives it). */
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly versionMinor: 0 | 1;
  readonly headers: Http1Headers;
  /** The connection may carry another request after this one's answer. */
  readonly keepAlive: boolean;
  /** The client sent `Expect: 100-continue`. */
  readonly expectContinue: boolean;
  /** The body (empty when none); empty as well when it overflowed. */
  readonly body: Buffer;
  /** Body bytes declared (Content-Length) or received (chunked), overflowed ones included. */
  readonly bodyLength: number;
  readonly overflow: BodyOverflow;
}

/** The head of a request whose body is still being read (see Http1RequestParser.pendingHead). */
export interface Http1RequestHead {
  readonly method: string;
  readonly versionMinor: 0 | 1;
  readonly expectContinue: boolean;
  /** Declared Content-Length, or -1 for a chunked body. */
  readonly contentLength: number;
}

/** Longest chunk-size line (size, extensions, CRLF) accepted. */
export const MAX_CHUNK_LINE_BYTES = 1024;
/** Longest Content-Length accepted, in digits (past it the number is not a safe integer). */
const MAX_LENGTH_DIGITS = 15;
/** Longest chunk size accepted, in hex digits (4 GiB; any real limit is far below). */
const MAX_CHUNK_SIZE_DIGITS = 8;

const EMPTY = Buffer.alloc(0);
const CR = 13;
const LF = 10;

/** A request-target: no controls and no whitespace; bytes past 0x7f pass as node:http passes them. */
function isTarget(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return false;
  }
  return true;
}

function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/** Removes leading and trailing optional whitespace (SP and HTAB). */
function trimOws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text.charCodeAt(start) === 32 || text.charCodeAt(start) === 9)) start++;
  while (end > start && (text.charCodeAt(end - 1) === 32 || text.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

enum State {
  /** Waiting for a request line (leading empty lines are skipped, RFC 9112 §2.2). */
  Head = 0,
  /** A body of known length. */
  Length = 1,
  /** A chunk-size line. */
  ChunkSize = 2,
  /** Chunk data; then its CRLF. */
  ChunkData = 3,
  ChunkDataEnd = 4,
  /** Trailer fields after the last chunk, until an empty line. */
  Trailers = 5,
  /** Nothing more is parsed on this connection (an error, an abandoned body, Connection: close). */
  Done = 6,
}

interface ParsedHead {
  method: string;
  target: string;
  versionMinor: 0 | 1;
  headers: Record<string, string | string[]>;
  keepAlive: boolean;
  expectContinue: boolean;
  contentLength: number;
  chunked: boolean;
}

export class Http1RequestParser {
  private state = State.Head;
  /** Bytes received and not consumed yet start at `at`. */
  private buffer: Buffer = EMPTY;
  private at = 0;
  /** Where the search for the end of a head or line resumes (bytes before it were searched). */
  private scanFrom = 0;
  private head: ParsedHead | undefined;
  private bodyChunks: Buffer[] = [];
  /** Body bytes counted so far (kept or discarded). */
  private bodyReceived = 0;
  private overflow: BodyOverflow = 'none';
  /** Bytes left of a Length body or of the current chunk. */
  private remaining = 0;
  private trailerBytes = 0;
  private trailerCount = 0;

  constructor(private readonly limits: Http1ParserLimits) {
    for (const name of ['maxHeadBytes', 'maxHeaderCount', 'maxBodyBytes', 'drainBytes'] as const) {
      const value = limits[name];
      if (!Number.isSafeInteger(value) || value < 0)
        throw new Error(`Http1RequestParser: ${name} must be a non-negative integer`);
    }
  }

  /** Appends received bytes; next() parses them. */
  push(chunk: Buffer): void {
    if (this.state === State.Done || chunk.length === 0) return;
    if (this.at >= this.buffer.length) {
      this.buffer = chunk;
      this.scanFrom = 0;
    } else {
      // Only a partial head or line is ever left over (body bytes are taken as they come), so
      // this copy is bounded by maxHeadBytes or MAX_CHUNK_LINE_BYTES.
      this.buffer = Buffer.concat([this.buffer.subarray(this.at), chunk]);
      this.scanFrom -= this.at;
    }
    this.at = 0;
  }

  /** True when bytes of a request that is not complete yet have been received. */
  get isMidRequest(): boolean {
    return this.state !== State.Head ? this.state !== State.Done : this.at < this.buffer.length;
  }

  /** True once the head of the request in progress was read and its body is being read. */
  get isReadingBody(): boolean {
    return this.head !== undefined && this.state !== State.Done;
  }

  /** True once nothing more will be parsed (an error, an abandoned body, a request that closes). */
  get isDone(): boolean {
    return this.state === State.Done;
  }

  /** The head of the request whose body is being read, if any (for Expect: 100-continue). */
  get pendingHead(): Http1RequestHead | undefined {
    const head = this.head;
    if (head === undefined) return undefined;
    return {
      method: head.method,
      versionMinor: head.versionMinor,
      expectContinue: head.expectContinue,
      contentLength: head.chunked ? -1 : head.contentLength,
    };
  }

  /** Stops parsing: later bytes are ignored. */
  stop(): void {
    this.state = State.Done;
    this.release();
  }

  /**
   * The next complete request in the bytes pushed so far, or undefined when more bytes are needed
   * (or parsing stopped). Throws Http1ProtocolError for a malformed request; parsing is then done.
   */
  next(): Http1Request | undefined {
    try {
      return this.parse();
    } catch (error) {
      this.stop();
      throw error;
    }
  }

  private parse(): Http1Request | undefined {
    for (;;) {
      switch (this.state) {
        case State.Head: {
          if (!this.parseHead()) return undefined;
          const head = this.head!;
          if (head.chunked) {
            this.state = State.ChunkSize;
            continue;
          }
          if (head.contentLength === 0) return this.complete();
          this.startBody(head.contentLength);
          if (this.overflow === 'abandoned') return this.complete();
          this.remaining = head.contentLength;
          this.state = State.Length;
          continue;
        }
        case State.Length: {
          this.takeBody();
          if (this.remaining > 0) return undefined;
          return this.complete();
        }
        case State.ChunkSize: {
          const line = this.line(MAX_CHUNK_LINE_BYTES, 'chunk-size line', 400);
          if (line === undefined) return undefined;
          const size = parseChunkSize(line);
          if (size === 0) {
            this.trailerBytes = 0;
            this.trailerCount = 0;
            this.state = State.Trailers;
            continue;
          }
          this.startBody(this.bodyReceived + size);
          if (this.overflow === 'abandoned') return this.complete();
          this.remaining = size;
          this.state = State.ChunkData;
          continue;
        }
        case State.ChunkData: {
          this.takeBody();
          if (this.remaining > 0) return undefined;
          this.state = State.ChunkDataEnd;
          continue;
        }
        case State.ChunkDataEnd: {
          if (this.buffer.length - this.at < 2) return undefined;
          if (this.buffer[this.at] !== CR || this.buffer[this.at + 1] !== LF) {
            throw new Http1ProtocolError(400, 'chunk data is not followed by CRLF');
          }
          this.at += 2;
          this.state = State.ChunkSize;
          continue;
        }
        case State.Trailers: {
          const line = this.line(this.limits.maxHeadBytes, 'trailer field', 431);
          if (line === undefined) return undefined;
          if (line.length === 0) return this.complete();
          this.trailerBytes += line.length + 2;
          this.trailerCount++;
          if (
            this.trailerBytes > this.limits.maxHeadBytes ||
            this.trailerCount > this.limits.maxHeaderCount
          ) {
            throw new Http1ProtocolError(
              431,
              `trailer fields exceed ${this.limits.maxHeadBytes} bytes or ${this.limits.maxHeaderCount} fields`,
            );
          }
          // Trailers are read and ignored (RFC 9110 §6.5.1 lets a recipient discard them), but
          // they must still be well-formed fields.
          const colon = line.indexOf(':');
          if (colon <= 0 || !isToken(line.slice(0, colon)) || !isFieldValue(line.slice(colon + 1))) {
            throw new Http1ProtocolError(400, 'malformed trailer field');
          }
          continue;
        }
        case State.Done:
          return undefined;
      }
    }
  }

  /**
   * Finds the end of the head and parses it into this.head; false when the head is not complete.
   */
  private parseHead(): boolean {
    const buffer = this.buffer;
    // Empty lines before a request line are ignored (RFC 9112 §2.2): some clients send a CRLF
    // after a body.
    while (this.at + 1 < buffer.length && buffer[this.at] === CR && buffer[this.at + 1] === LF) {
      this.at += 2;
    }
    if (this.at >= buffer.length) return false;
    const from = Math.max(this.at, this.scanFrom);
    const end = buffer.indexOf('\r\n\r\n', from, 'latin1');
    if (end < 0) {
      if (buffer.length - this.at > this.limits.maxHeadBytes) {
        throw new Http1ProtocolError(431, `request head larger than ${this.limits.maxHeadBytes} bytes`);
      }
      this.scanFrom = Math.max(this.at, buffer.length - 3);
      return false;
    }
    if (end + 4 - this.at > this.limits.maxHeadBytes) {
      throw new Http1ProtocolError(431, `request head larger than ${this.limits.maxHeadBytes} bytes`);
    }
    const text = buffer.toString('latin1', this.at, end);
    this.at = end + 4;
    this.scanFrom = this.at;
    this.head = this.parseHeadText(text);
    this.bodyReceived = 0;
    this.overflow = 'none';
    return true;
  }

  private parseHeadText(text: string): ParsedHead {
    let lineEnd = text.indexOf('\r\n');
    if (lineEnd < 0) lineEnd = text.length;
    const requestLine = text.slice(0, lineEnd);
    const sp1 = requestLine.indexOf(' ');
    const sp2 = sp1 < 0 ? -1 : requestLine.indexOf(' ', sp1 + 1);
    if (sp1 <= 0 || sp2 < 0 || requestLine.indexOf(' ', sp2 + 1) >= 0) {
      throw new Http1ProtocolError(400, 'malformed request line: expected METHOD SP target SP HTTP/1.x');
    }
    const method = requestLine.slice(0, sp1);
    if (!isToken(method)) throw new Http1ProtocolError(400, 'malformed request line: invalid method');
    const target = requestLine.slice(sp1 + 1, sp2);
    if (!isTarget(target))
      throw new Http1ProtocolError(400, 'malformed request line: invalid request target');
    const version = requestLine.slice(sp2 + 1);
    let versionMinor: 0 | 1;
    if (version === 'HTTP/1.1') versionMinor = 1;
    else if (version === 'HTTP/1.0') versionMinor = 0;
    else if (/^HTTP\/[0-9]\.[0-9]$/.test(version)) {
      throw new Http1ProtocolError(505, `HTTP version ${version.slice(5)} is not supported; use HTTP/1.1`);
    } else throw new Http1ProtocolError(400, 'malformed request line: invalid HTTP version');

    const headers: Record<string, string | string[]> = Object.create(null) as Record<
      string,
      string | string[]
    >;
    let count = 0;
    let at = lineEnd + 2;
    while (at < text.length) {
      let end = text.indexOf('\r\n', at);
      if (end < 0) end = text.length;
      if (++count > this.limits.maxHeaderCount) {
        throw new Http1ProtocolError(431, `more than ${this.limits.maxHeaderCount} header fields`);
      }
      // Name and value are cut from the head by index (no string per line: fewer allocations).
      const colon = text.indexOf(':', at);
      // A line starting with whitespace (obsolete folding, RFC 9112 §5.2) or with whitespace
      // before the colon (§5.1) fails the token check.
      if (colon <= at || colon >= end) throw new Http1ProtocolError(400, 'malformed header field: no name');
      const rawName = text.slice(at, colon);
      if (!isToken(rawName))
        throw new Http1ProtocolError(
          400,
          `malformed header field name ${JSON.stringify(rawName.slice(0, 64))}`,
        );
      let valueStart = colon + 1;
      let valueEnd = end;
      while (valueStart < valueEnd && isOws(text.charCodeAt(valueStart))) valueStart++;
      while (valueEnd > valueStart && isOws(text.charCodeAt(valueEnd - 1))) valueEnd--;
      const value = text.slice(valueStart, valueEnd);
      if (!isFieldValue(value)) {
        throw new Http1ProtocolError(
          400,
          `header ${rawName.toLowerCase().slice(0, 64)} holds a control character`,
        );
      }
      at = end + 2;
      const name = rawName.toLowerCase();
      const previous = headers[name];
      if (previous === undefined) headers[name] = value;
      else if (typeof previous === 'string') headers[name] = [previous, value];
      else previous.push(value);
    }
    return interpretHead(method, target, versionMinor, headers);
  }

  /** Accounts a body (or the body so far, chunked) of `total` bytes against the limits. */
  private startBody(total: number): void {
    if (this.overflow === 'none' && total > this.limits.maxBodyBytes) {
      this.overflow = 'discarded';
      this.bodyChunks = [];
    }
    if (total > this.limits.maxBodyBytes + this.limits.drainBytes) {
      this.overflow = 'abandoned';
      this.bodyReceived = total;
    }
  }

  /** Takes up to `remaining` body bytes from the buffer, keeping them unless the body overflowed. */
  private takeBody(): void {
    const available = this.buffer.length - this.at;
    const n = available < this.remaining ? available : this.remaining;
    if (n === 0) return;
    if (this.overflow === 'none') this.bodyChunks.push(this.buffer.subarray(this.at, this.at + n));
    this.at += n;
    this.remaining -= n;
    this.bodyReceived += n;
    if (this.at >= this.buffer.length) this.release();
  }

  /** One CRLF-terminated line (without the CRLF), undefined until it is complete. */
  private line(maxBytes: number, what: string, tooLongStatus: 400 | 431): string | undefined {
    const buffer = this.buffer;
    const from = Math.max(this.at, this.scanFrom);
    const end = buffer.indexOf('\r\n', from, 'latin1');
    if (end < 0) {
      if (buffer.length - this.at > maxBytes)
        throw new Http1ProtocolError(tooLongStatus, `${what} longer than ${maxBytes} bytes`);
      this.scanFrom = Math.max(this.at, buffer.length - 1);
      return undefined;
    }
    if (end + 2 - this.at > maxBytes)
      throw new Http1ProtocolError(tooLongStatus, `${what} longer than ${maxBytes} bytes`);
    const text = buffer.toString('latin1', this.at, end);
    if (text.indexOf('\r') >= 0 || text.indexOf('\n') >= 0)
      throw new Http1ProtocolError(400, `bare CR or LF in a ${what}`);
    this.at = end + 2;
    this.scanFrom = this.at;
    return text;
  }

  private complete(): Http1Request {
    const head = this.head!;
    const chunks = this.bodyChunks;
    const body =
      this.overflow !== 'none' || chunks.length === 0
        ? EMPTY
        : chunks.length === 1
          ? chunks[0]!
          : Buffer.concat(chunks, this.bodyReceived);
    const request: Http1Request = {
      method: head.method,
      target: head.target,
      versionMinor: head.versionMinor,
      headers: head.headers,
      keepAlive: head.keepAlive && this.overflow !== 'abandoned',
      expectContinue: head.expectContinue,
      body,
      bodyLength: head.chunked ? this.bodyReceived : head.contentLength,
      overflow: this.overflow,
    };
    this.head = undefined;
    chunks.length = 0; // the body was copied out of it, or is its only element
    this.bodyReceived = 0;
    this.overflow = 'none';
    this.state = request.keepAlive ? State.Head : State.Done;
    if (this.state === State.Done || this.at >= this.buffer.length) this.release();
    return request;
  }

  /** Drops the buffer once it is consumed, so an idle connection holds no received bytes. */
  private release(): void {
    this.buffer = EMPTY;
    this.at = 0;
    this.scanFrom = 0;
  }
}

/** The framing and connection semantics of a parsed head (RFC 9112 §6, §9.3; RFC 9110 §10.1.1). */
function interpretHead(
  method: string,
  target: string,
  versionMinor: 0 | 1,
  headers: Record<string, string | string[]>,
): ParsedHead {
  const host = headers['host'];
  if (versionMinor === 1 && (host === undefined || typeof host !== 'string')) {
    throw new Http1ProtocolError(
      400,
      host === undefined ? 'HTTP/1.1 request without a Host header' : 'more than one Host header',
    );
  }
  const connection = listValues(headers['connection']);
  const keepAlive = connection.includes('close')
    ? false
    : versionMinor === 1 || connection.includes('keep-alive');

  let expectContinue = false;
  const expect = headers['expect'];
  if (expect !== undefined) {
    if (typeof expect !== 'string' || expect.toLowerCase() !== '100-continue') {
      throw new Http1ProtocolError(417, 'the only expectation supported is Expect: 100-continue');
    }
    expectContinue = true;
  }

  const transferEncoding = headers['transfer-encoding'];
  const contentLength = headers['content-length'];
  let chunked = false;
  let length = 0;
  if (transferEncoding !== undefined) {
    if (contentLength !== undefined) {
      throw new Http1ProtocolError(400, 'Content-Length and Transfer-Encoding cannot be combined');
    }
    if (versionMinor === 0) throw new Http1ProtocolError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    const codings = listValues(transferEncoding);
    if (codings.length !== 1 || codings[0] !== 'chunked') {
      throw new Http1ProtocolError(
        501,
        `unsupported Transfer-Encoding ${JSON.stringify(codings.join(', ').slice(0, 64))}; only chunked is`,
      );
    }
    chunked = true;
  } else if (contentLength !== undefined) {
    const values = typeof contentLength === 'string' ? [contentLength] : contentLength;
    const first = values[0]!;
    if (!/^[0-9]+$/.test(first) || first.length > MAX_LENGTH_DIGITS) {
      throw new Http1ProtocolError(400, `invalid Content-Length ${JSON.stringify(first.slice(0, 32))}`);
    }
    for (const v of values) {
      if (v !== first) throw new Http1ProtocolError(400, 'conflicting Content-Length headers');
    }
    length = Number(first);
  }
  return { method, target, versionMinor, headers, keepAlive, expectContinue, contentLength: length, chunked };
}

/** A comma-separated list header's elements, lower case, empty elements dropped. */
const NO_VALUES: readonly string[] = Object.freeze([]);

function listValues(value: string | readonly string[] | undefined): readonly string[] {
  if (value === undefined) return NO_VALUES;
  const joined = typeof value === 'string' ? value : value.join(',');
  const out: string[] = [];
  for (const part of joined.split(',')) {
    const item = trimOws(part).toLowerCase();
    if (item.length > 0) out.push(item);
  }
  return out;
}

/** chunk-size [ chunk-ext ] (RFC 9112 §7.1); extensions are ignored. */
function parseChunkSize(line: string): number {
  let end = line.indexOf(';');
  if (end < 0) end = line.length;
  const digits = trimOws(line.slice(0, end));
  if (digits.length === 0 || digits.length > MAX_CHUNK_SIZE_DIGITS || !/^[0-9A-Fa-f]+$/.test(digits)) {
    throw new Http1ProtocolError(400, `invalid chunk size ${JSON.stringify(digits.slice(0, 32))}`);
  }
  if (!isFieldValue(line)) throw new Http1ProtocolError(400, 'control character in a chunk extension');
  return Number.parseInt(digits, 16);
}
