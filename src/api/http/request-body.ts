/**
 * The body of a request, within max-request-size. The connection reads a body before the request
 * is routed (Http1RequestParser): past the limit it stops keeping it and discards what the client
 * still sends, up to a bounded amount, so that the client, usually still writing, receives the 413
 * rather than a connection reset; a body that keeps coming past that bound is not read at all and
 * the answer closes the connection. The body's time limit is the connection's (408, Http1Server).
 */
import type { Http1Request } from '../../http1/http1-request-parser.js';
import { limitExceeded } from './api-error.js';

/** Bytes past the body limit discarded before the connection is given up (see above). */
export function bodyDrainBytes(maxRequestSize: number): number {
  return Math.max(4 * maxRequestSize, 8 * 1024 * 1024);
}

/** The request's body, or a 413 limit_exceeded naming `limitName` when it was longer than `maxBytes`. */
export function requestBody(request: Http1Request, maxBytes: number, limitName: string): Buffer {
  if (request.overflow === 'none') return request.body;
  const chunked = request.headers['transfer-encoding'] !== undefined;
  const error = limitExceeded(
    limitName,
    maxBytes,
    `request body of ${chunked ? `more than ${maxBytes}` : request.bodyLength} bytes`,
  );
  error.closeConnection = request.overflow === 'abandoned';
  throw error;
}
