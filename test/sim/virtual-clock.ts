/**
 * A node incarnation's Clock over the simulator's event queue. A crash kills the clock: none of the
 * incarnation's timers fire afterwards (the process is gone). Each node's wall clock has its own
 * skew, so the times leaders stamp into entries are not monotonic across leaders.
 */
import type { Clock, TimerHandle } from '../../src/node/clock.js';
import type { EventQueue, SimEvent } from './event-queue.js';

/** Wall-clock time of virtual time 0 (a fixed date: runs replay exactly). */
const EPOCH_MS = Date.UTC(2025, 0, 1);

export class VirtualClock implements Clock {
  private alive = true;

  constructor(
    private readonly queue: EventQueue,
    private readonly skewMs: number,
  ) {}

  now(): number {
    return this.queue.now;
  }

  wallTime(): number {
    return EPOCH_MS + this.queue.now + this.skewMs;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const ev = this.queue.after(Math.max(0, ms), () => {
      if (this.alive) fn();
    });
    return cancelHandle(ev);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    if (!(ms > 0)) throw new Error('setInterval needs a positive period');
    let ev: SimEvent;
    const fire = () => {
      if (!this.alive) return;
      ev = this.queue.after(ms, fire);
      fn();
    };
    ev = this.queue.after(ms, fire);
    return {
      cancel: () => {
        ev.cancelled = true;
      },
    };
  }

  defer(fn: () => void): void {
    this.queue.defer(() => {
      if (this.alive) fn();
    });
  }

  kill(): void {
    this.alive = false;
  }
}

function cancelHandle(ev: SimEvent): TimerHandle {
  return {
    cancel: () => {
      ev.cancelled = true;
    },
  };
}
