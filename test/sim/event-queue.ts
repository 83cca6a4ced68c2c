/**
 * Virtual time: a discrete event queue (binary min-heap by time, then by insertion order, so events
 * at the same instant run first-in first-out and a run is deterministic). No real timers anywhere.
 */

export interface SimEvent {
  time: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class EventQueue {
  private heap: SimEvent[] = [];
  private readonly deferred: Array<() => void> = [];
  private seq = 0;
  private time = 0;
  /** Events run so far. */
  executed = 0;

  get now(): number {
    return this.time;
  }

  get size(): number {
    return this.heap.length;
  }

  at(time: number, fn: () => void): SimEvent {
    if (!(time >= this.time)) throw new Error(`event scheduled in the past: ${time} < ${this.time}`);
    const ev: SimEvent = { time, seq: this.seq++, fn, cancelled: false };
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(ev, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = ev;
    return ev;
  }

  after(delay: number, fn: () => void): SimEvent {
    return this.at(this.time + delay, fn);
  }

  /** Time of the next live event, or Infinity. */
  peekTime(): number {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    return this.heap.length > 0 ? this.heap[0]!.time : Number.POSITIVE_INFINITY;
  }

  /**
   * Runs `fn` right after the current event, before any later one (FIFO): the end of a "loop turn"
   * of a node (Clock.defer) costs no heap operation.
   */
  defer(fn: () => void): void {
    this.deferred.push(fn);
  }

  /** Runs the next live event, then everything it deferred; false when none is left. */
  step(): boolean {
    for (;;) {
      const ev = this.pop();
      if (ev === undefined) return false;
      if (ev.cancelled) continue;
      this.time = ev.time;
      this.executed++;
      ev.fn();
      this.runDeferred();
      return true;
    }
  }

  /** Runs deferred work (also after async work settled outside an event). */
  runDeferred(): void {
    const d = this.deferred;
    if (d.length === 0) return;
    for (let i = 0; i < d.length; i++) d[i]!();
    d.length = 0;
  }

  private pop(): SimEvent | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(h[r]!, h[l]!) ? r : l;
        if (!before(h[c]!, last)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
