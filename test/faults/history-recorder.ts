/**
 * Records what the clients of a fault run saw, in the format of HISTORY.md: an `invoke` and one
 * completion per operation, times in nanoseconds since the run started from one monotonic clock.
 * All clients live in this one process, so appending in call order keeps `time` non-decreasing.
 */
import { writeFileSync } from 'node:fs';

export type CompletionType = 'ok' | 'fail' | 'info';

export interface HistoryRecord {
  process: number;
  type: 'invoke' | CompletionType;
  f: string;
  key: string;
  value: unknown;
  time: number;
  error?: string;
}

/** Bound on recorded events (a 30-minute soak at a few hundred ops/s stays far below it). */
const MAX_EVENTS = 20_000_000;

export class HistoryRecorder {
  readonly events: HistoryRecord[] = [];
  private readonly t0 = process.hrtime.bigint();
  private nextProcess = 0;

  /** Nanoseconds since the run started. */
  now(): number {
    return Number(process.hrtime.bigint() - this.t0);
  }

  /** A process id never used before (a client starts with one, and takes a new one after `info`). */
  newProcess(): number {
    return this.nextProcess++;
  }

  invoke(proc: number, f: string, key: string, value: unknown): void {
    this.push({ process: proc, type: 'invoke', f, key, value, time: this.now() });
  }

  complete(proc: number, type: CompletionType, f: string, key: string, value: unknown, error?: string): void {
    const event: HistoryRecord = { process: proc, type, f, key, value, time: this.now() };
    if (error !== undefined && type !== 'ok') event.error = error;
    this.push(event);
  }

  /** Counts of completions by type, over all functions. */
  counts(): Record<CompletionType, number> & { ops: number } {
    const c = { ops: 0, ok: 0, fail: 0, info: 0 };
    for (const e of this.events) {
      if (e.type === 'invoke') c.ops++;
      else c[e.type]++;
    }
    return c;
  }

  writeJsonl(path: string): void {
    writeFileSync(path, this.events.map((e) => JSON.stringify(e)).join('\n') + (this.events.length > 0 ? '\n' : ''));
  }

  private push(e: HistoryRecord): void {
    if (this.events.length >= MAX_EVENTS) throw new Error(`history holds ${MAX_EVENTS} events: run shorter`);
    this.events.push(e);
  }
}
