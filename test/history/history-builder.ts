/** Test helper: writes histories by hand, one event at a time, in order. */
import type { CasArguments, HistoryEvent, RegisterFunction } from '../../src/history/history-event.js';

type InvokeValue = string | CasArguments | null;

export class HistoryBuilder {
  readonly events: HistoryEvent[] = [];
  private time = 0;
  private readonly open = new Map<number, { f: RegisterFunction; key: string; value: InvokeValue }>();

  private push(event: Record<string, unknown>): this {
    this.time += 10;
    this.events.push({ ...event, time: this.time } as unknown as HistoryEvent);
    return this;
  }

  invoke(process: number, f: RegisterFunction, key: string, value: InvokeValue = null): this {
    this.open.set(process, { f, key, value });
    return this.push({ process, type: 'invoke', f, key, value: f === 'read' ? null : value });
  }

  private complete(process: number, type: 'ok' | 'fail' | 'info', readValue: string | null, error?: string): this {
    const op = this.open.get(process);
    if (op === undefined) throw new Error(`HistoryBuilder: process ${process} has nothing outstanding`);
    this.open.delete(process);
    const value = op.f === 'read' ? readValue : op.value;
    return this.push({ process, type, f: op.f, key: op.key, value, ...(error === undefined ? {} : { error }) });
  }

  /** Completes with ok; for a read, `read` is the value read (null: absent). */
  ok(process: number, read: string | null = null): this {
    return this.complete(process, 'ok', read);
  }

  fail(process: number, error?: string): this {
    return this.complete(process, 'fail', null, error);
  }

  info(process: number, error = 'timeout'): this {
    return this.complete(process, 'info', null, error);
  }

  /** A whole operation that overlaps nothing: invoke then ok. */
  write(process: number, key: string, value: string): this {
    return this.invoke(process, 'write', key, value).ok(process);
  }

  read(process: number, key: string, result: string | null): this {
    return this.invoke(process, 'read', key).ok(process, result);
  }

  cas(process: number, key: string, expected: string | null, next: string): this {
    return this.invoke(process, 'cas', key, [expected, next]).ok(process);
  }

  casMismatch(process: number, key: string, expected: string | null, next: string): this {
    return this.invoke(process, 'cas', key, [expected, next]).fail(process, 'mismatch');
  }

  delete(process: number, key: string): this {
    return this.invoke(process, 'delete', key).ok(process);
  }

  toJsonLines(): string {
    return `${this.events.map((event) => JSON.stringify(event)).join('\n')}\n`;
  }
}
