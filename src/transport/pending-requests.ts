/**
 * Requests awaiting a peer's response: correlation ids, timeouts, and settling each request exactly
 * once (response, error response, timeout, drop, peer restart or close, whichever comes first).
 */
import { TransportError, type TransportErrorCode } from './errors.js';

export interface PendingRequest<Res> {
  readonly id: number;
  readonly peer: string;
  /** Incarnation of the peer the request was written to; undefined while it is still queued. */
  writtenTo: string | undefined;
  resolve(response: Res): void;
  reject(error: TransportError): void;
}

interface Entry<Res> extends PendingRequest<Res> {
  timer: NodeJS.Timeout;
}

export class PendingRequests<Res> {
  private readonly entries = new Map<number, Entry<Res>>();
  private nextId = 1;
  /** Requests that got no answer in time. */
  timeouts = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Registers a request to `peer` with a fresh correlation id. The promise settles exactly once.
   * Throws (synchronously) an 'overloaded' TransportError when `max` requests are already pending.
   */
  open(peer: string, timeoutMs: number): { request: PendingRequest<Res>; response: Promise<Res> } {
    if (this.entries.size >= this.max) {
      throw new TransportError('overloaded', `${this.max} peer requests already pending`, peer);
    }
    const id = this.nextId++;
    let request!: Entry<Res>;
    const response = new Promise<Res>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.entries.delete(id)) return;
        this.timeouts++;
        reject(new TransportError('timeout', `no response from ${peer} within ${timeoutMs} ms`, peer));
      }, timeoutMs);
      request = { id, peer, writtenTo: undefined, resolve, reject, timer };
    });
    this.entries.set(id, request);
    return { request, response };
  }

  /** The pending request `id` if it was sent to `peer` (a response from another peer is ignored). */
  get(id: number, peer: string): PendingRequest<Res> | undefined {
    const entry = this.entries.get(id);
    return entry?.peer === peer ? entry : undefined;
  }

  resolve(id: number, response: Res): void {
    this.take(id)?.resolve(response);
  }

  reject(id: number, error: TransportError): void {
    this.take(id)?.reject(error);
  }

  /** Fails every pending request that matches. */
  failWhere(
    match: (request: PendingRequest<Res>) => boolean,
    code: TransportErrorCode,
    message: string,
  ): void {
    for (const entry of [...this.entries.values()]) {
      if (match(entry)) this.reject(entry.id, new TransportError(code, message, entry.peer));
    }
  }

  private take(id: number): Entry<Res> | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    this.entries.delete(id);
    clearTimeout(entry.timer);
    return entry;
  }
}
