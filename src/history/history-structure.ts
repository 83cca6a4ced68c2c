/**
 * The structural rules of a history (HISTORY.md), checked event by event:
 *
 * - time never decreases through the history;
 * - a process has at most one outstanding operation: it invokes, then completes, then may invoke again;
 * - a completion matches its invoke: same function, same key, and (for write, cas, delete) the same value;
 * - a process never issues again after an `info` completion (its operation may still take effect
 *   at any later time, so a later operation of the same process would not be sequential to it);
 * - at the end, every invoke has its completion.
 *
 * Value shapes per event are checked by decodeHistoryEvent; this validator assumes well-shaped events.
 */
import type { HistoryEvent, HistoryIssue } from './history-event.js';

interface OutstandingInvoke {
  readonly event: HistoryEvent;
  readonly line: number;
}

function sameValue(a: HistoryEvent['value'], b: HistoryEvent['value']): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a[0] === b[0] && a[1] === b[1];
  return a === b;
}

function show(value: HistoryEvent['value']): string {
  return JSON.stringify(value);
}

export class HistoryStructureValidator {
  private readonly outstanding = new Map<number, OutstandingInvoke>();
  /** Processes that completed an operation with `info`, and the line of that completion. */
  private readonly retired = new Map<number, number>();
  private lastTime = 0;
  private lastTimeLine = 0;

  /**
   * Checks one event that follows all the events accepted so far. Returns null when the event is
   * acceptable (and records it), or a message saying which rule it breaks (and records nothing).
   */
  accept(event: HistoryEvent, line: number): string | null {
    if (event.time < this.lastTime) {
      return `time ${event.time} is earlier than time ${this.lastTime} on line ${this.lastTimeLine} (time must never decrease)`;
    }
    const problem = event.type === 'invoke' ? this.acceptInvoke(event, line) : this.acceptCompletion(event, line);
    if (problem !== null) return problem;
    this.lastTime = event.time;
    this.lastTimeLine = line;
    return null;
  }

  private acceptInvoke(event: HistoryEvent, line: number): string | null {
    const retiredAt = this.retired.get(event.process);
    if (retiredAt !== undefined) {
      return `process ${event.process} invokes again after its info completion on line ${retiredAt} (after info a process never issues again: use a fresh process id)`;
    }
    const open = this.outstanding.get(event.process);
    if (open !== undefined) {
      return `process ${event.process} invokes while its ${open.event.f} invoked on line ${open.line} is still outstanding (one operation at a time per process)`;
    }
    this.outstanding.set(event.process, { event, line });
    return null;
  }

  private acceptCompletion(event: HistoryEvent, line: number): string | null {
    const open = this.outstanding.get(event.process);
    if (open === undefined) {
      const retiredAt = this.retired.get(event.process);
      const why = retiredAt === undefined ? '' : ` (it completed with info on line ${retiredAt})`;
      return `${event.type} completion for process ${event.process}, which has no outstanding invoke${why}`;
    }
    const invoke = open.event;
    if (invoke.f !== event.f) {
      return `${event.type} completion is a ${event.f} but process ${event.process} invoked a ${invoke.f} on line ${open.line}`;
    }
    if (invoke.key !== event.key) {
      return `${event.type} completion is for key ${JSON.stringify(event.key)} but process ${event.process} invoked key ${JSON.stringify(invoke.key)} on line ${open.line}`;
    }
    if (event.f !== 'read' && !sameValue(invoke.value, event.value)) {
      return `${event.type} completion has value ${show(event.value)} but the ${event.f} invoked on line ${open.line} has value ${show(invoke.value)}`;
    }
    this.outstanding.delete(event.process);
    if (event.type === 'info') this.retired.set(event.process, line);
    return null;
  }

  /** Issues for the end of the history: every invoke still without a completion. */
  finish(): HistoryIssue[] {
    const issues: HistoryIssue[] = [];
    for (const open of this.outstanding.values()) {
      issues.push({
        line: open.line,
        message: `process ${open.event.process} invoked a ${open.event.f} that never completes (record an info completion when the outcome is unknown)`,
      });
    }
    return issues.sort((a, b) => a.line - b.line);
  }
}
