/**
 * The requests one HTTP server is serving: counted (for /metrics and graceful close) and held to
 * their deadlines by one sweep timer per server rather than a timer (and a promise wrapper) per
 * request, which on a read-heavy node was a timer insert and cancel per request.
 *
 * A request past its deadline is answered by the sweep within `sweepEveryMs` of it; the deadline
 * is a backstop (the node answers its own timeouts first), and its grace is ten sweeps long.
 */

/** What the sweep needs of a request. */
export interface DeadlineBound {
  /** performance.now() past which the request is expired; 0 = no deadline running. */
  readonly deadlineAt: number;
  /** Answers the request with its deadline error (does nothing if it was answered). */
  expire(): void;
}

/**
 * Requests tracked at most. Connections are limited, but HTTP/1.1 pipelining lets one connection
 * have many requests in flight, so the server refuses a request past this with 503 overloaded.
 */
export const MAX_TRACKED_REQUESTS = 1_000_000;

export class InFlightRequests<R extends DeadlineBound> {
  private readonly active = new Set<R>();
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly sweepEveryMs: number) {
    if (!(Number.isSafeInteger(sweepEveryMs) && sweepEveryMs >= 1)) {
      throw new Error(`InFlightRequests: sweepEveryMs must be a positive integer, got ${sweepEveryMs}`);
    }
  }

  get size(): number {
    return this.active.size;
  }

  /** Tracks a request; false (nothing tracked) when MAX_TRACKED_REQUESTS are in flight already. */
  tryAdd(request: R): boolean {
    if (this.active.size >= MAX_TRACKED_REQUESTS) return false;
    this.active.add(request);
    return true;
  }

  /** The request is done; it must have been added (a double removal is a bug and throws). */
  remove(request: R): void {
    if (!this.active.delete(request)) throw new Error('InFlightRequests: a request was removed twice');
    if (this.active.size === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves once no request is in flight (at once if none is). */
  whenIdle(): Promise<void> {
    if (this.active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Starts the deadline sweep (idempotent); the timer never keeps the process alive. */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.sweep(performance.now()), this.sweepEveryMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Expires every request whose deadline is at or before `now` (exposed for tests). */
  sweep(now: number): void {
    // Expiring answers the request, which removes it from the set: deleting while iterating a Set
    // is well-defined (the entry is simply not visited again).
    for (const request of this.active) {
      const at = request.deadlineAt;
      if (at !== 0 && at <= now) request.expire();
    }
  }
}
