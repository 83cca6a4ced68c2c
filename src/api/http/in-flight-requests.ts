/**
 * The requests one HTTP server is serving: counted (for /metrics and graceful close) and held to
 * their deadlines by one sweep timer per server rather than a timer (and a promise wrapper) per
 * request, which on a read-heavy node was a timer insert and cancel per request.
 *
 * A request past its deadline is answered by the sweep within `sweepEveryMs` of it; the deadline
 * is a backstop (the node answers its own timeouts first), and its grace is ten sweeps long.
 *
 * The requests are kept in an array, each knowing its slot (removal swaps the last one into it):
 * a Set's add and delete per request allocated 8% of a serializable read's bytes (sampling heap
 * profile of a leader at 64 connections; the Set's table is rebuilt as it churns).
 */

/** What the sweep needs of a request. */
export interface DeadlineBound {
  /** performance.now() past which the request is expired; 0 = no deadline running. */
  readonly deadlineAt: number;
  /** Answers the request with its deadline error (does nothing if it was answered). */
  expire(): void;
  /** Its index among the tracked requests, -1 while untracked (owned by InFlightRequests). */
  inFlightSlot: number;
}

/**
 * Requests tracked at most. Connections are limited, but HTTP/1.1 pipelining lets one connection
 * have many requests in flight, so the server refuses a request past this with 503 overloaded.
 */
export const MAX_TRACKED_REQUESTS = 1_000_000;

export class InFlightRequests<R extends DeadlineBound> {
  private readonly active: R[] = [];
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly sweepEveryMs: number) {
    if (!(Number.isSafeInteger(sweepEveryMs) && sweepEveryMs >= 1)) {
      throw new Error(`InFlightRequests: sweepEveryMs must be a positive integer, got ${sweepEveryMs}`);
    }
  }

  get size(): number {
    return this.active.length;
  }

  /** Tracks a request; false (nothing tracked) when MAX_TRACKED_REQUESTS are in flight already. */
  tryAdd(request: R): boolean {
    if (this.active.length >= MAX_TRACKED_REQUESTS) return false;
    if (request.inFlightSlot !== -1) throw new Error('InFlightRequests: a request was added twice');
    request.inFlightSlot = this.active.length;
    this.active.push(request);
    return true;
  }

  /** The request is done; it must have been added (a double removal is a bug and throws). */
  remove(request: R): void {
    const active = this.active;
    const slot = request.inFlightSlot;
    if (slot < 0 || active[slot] !== request)
      throw new Error('InFlightRequests: a request was removed twice');
    const last = active.pop()!;
    if (last !== request) {
      active[slot] = last;
      last.inFlightSlot = slot;
    }
    request.inFlightSlot = -1;
    if (active.length === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves once no request is in flight (at once if none is). */
  whenIdle(): Promise<void> {
    if (this.active.length === 0) return Promise.resolve();
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
    // Expiring answers the request, which removes it: the last request moves into its slot. Going
    // from the end, that one was already checked, so every request is checked once.
    const active = this.active;
    for (let i = active.length - 1; i >= 0; i--) {
      const request = active[i];
      if (request === undefined) continue; // removed meanwhile (the array shrank past i)
      const at = request.deadlineAt;
      if (at !== 0 && at <= now) request.expire();
    }
  }
}
