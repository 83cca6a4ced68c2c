/**
 * Time as the node sees it (DESIGN.md §3: time enters Raft only through tick()). The server uses
 * the system clock; the simulator a virtual one driven by its event queue, so a run replays
 * bit-for-bit from its seed.
 */

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds, for timeouts. Not comparable across processes. */
  now(): number;
  /**
   * Milliseconds since the Unix epoch. Only the leader reads it, to stamp proposals; the state
   * machine then expires client sessions by the times carried in the log, never by its own clock.
   */
  wallTime(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  setInterval(fn: () => void, ms: number): TimerHandle;
  /**
   * Runs `fn` after the work already queued for the current turn: everything that arrives in one
   * turn (messages, proposals, reads) is handled by one pass of the Ready loop.
   */
  defer(fn: () => void): void;
}

/** The real clock: performance.now(), Date.now(), Node timers (unref'd so they never hold the process). */
export class SystemClock implements Clock {
  now(): number {
    return performance.now();
  }

  wallTime(): number {
    return Date.now();
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    const timer = setInterval(fn, ms);
    timer.unref();
    return { cancel: () => clearInterval(timer) };
  }

  defer(fn: () => void): void {
    setImmediate(fn);
  }
}
