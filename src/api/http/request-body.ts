/**
 * Reads a request body into memory, never more than the limit. Past the limit the server stops
 * buffering; it discards what the client is still sending (up to a bounded amount and time) before
 * answering, so that the client, which is usually still writing, actually receives the 413 rather
 * than a connection reset. A body that keeps coming past that bound is answered at once with
 * `closeConnection` set: the server replies with Connection: close and drops the connection.
 */
import type { IncomingMessage } from 'node:http';
import { ApiError, limitExceeded } from './api-error.js';

export interface BodyLimits {
  maxBytes: number;
  /** The setting's name for the error message, e.g. max-request-size. */
  limitName: string;
  /** Extra bytes discarded past the limit before the connection is closed instead. */
  drainBytes: number;
  /** How long the whole body may take to arrive. */
  timeoutMs: number;
}

export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const declared = req.headers['content-length'];
    const declaredLength = declared === undefined ? undefined : Number(declared);
    const chunks: Buffer[] = [];
    let received = 0;
    let overflow = false;
    let settled = false;
    const tooLarge = (closeConnection: boolean) => {
      const error = limitExceeded(
        limits.limitName,
        limits.maxBytes,
        `request body of ${declaredLength ?? `more than ${limits.maxBytes}`} bytes`,
      );
      error.closeConnection = closeConnection;
      return error;
    };

    const finish = (error: ApiError | undefined, body?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (error) reject(error);
      else resolve(body!);
    };
    /** Gives up on the connection: it is sending more than we are willing to discard. */
    const abandon = () => {
      req.pause();
      finish(tooLarge(true));
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (!overflow && received <= limits.maxBytes) {
        chunks.push(chunk);
        return;
      }
      if (!overflow) {
        overflow = true;
        chunks.length = 0; // stop buffering; keep discarding
      }
      if (received > limits.maxBytes + limits.drainBytes) abandon();
    };
    const onEnd = () => {
      if (overflow) finish(tooLarge(false));
      else finish(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
    };
    const onError = () => finish(new ApiError(400, 'invalid_request', 'request body could not be read'));
    const onAborted = () => finish(new ApiError(400, 'invalid_request', 'request aborted by the client'));
    const timer = setTimeout(() => {
      const error = new ApiError(
        408,
        'request_timeout',
        `request body not received within ${limits.timeoutMs} ms`,
      );
      error.closeConnection = true;
      req.pause();
      finish(error);
    }, limits.timeoutMs);

    if (declaredLength !== undefined && declaredLength > limits.maxBytes) {
      overflow = true;
      if (declaredLength > limits.maxBytes + limits.drainBytes) {
        // Not worth reading: answer at once and close.
        req.pause();
        finish(tooLarge(true));
        return;
      }
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
