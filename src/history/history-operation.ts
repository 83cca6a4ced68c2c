/**
 * An operation of a history: an invoke paired with its completion. The checker and its reports
 * work on operations; the events' positions in the history are kept so that a report can name the
 * lines of a history file (position + 1).
 */
import type { CasArguments, CompletionType, HistoryEvent, RegisterFunction } from './history-event.js';

export interface HistoryOperation {
  /** Position in invoke order among all operations of the history (0-based). */
  readonly id: number;
  readonly process: number;
  readonly f: RegisterFunction;
  readonly key: string;
  /** The invoke's value: write → the value; cas → [expected, new]; read and delete → null. */
  readonly value: string | CasArguments | null;
  /** For an ok read: the value read (null: the key did not exist). Null for everything else. */
  readonly output: string | null;
  readonly outcome: CompletionType;
  /** The completion's error, if any (`"mismatch"` on a cas whose precondition failed). */
  readonly error: string | null;
  /** Index of the invoke event in the history (0-based; line number - 1 in a file). */
  readonly invokeIndex: number;
  /** Index of the completion event. For `info` the operation's interval is nonetheless open-ended. */
  readonly completeIndex: number;
  readonly invokeTime: number;
  readonly completeTime: number;
}

/**
 * Pairs each invoke with its completion. The events must already satisfy the structural rules
 * (validateHistoryEvents / parseHistory); a violation here is a programming error and throws.
 */
export function pairOperations(events: readonly HistoryEvent[]): HistoryOperation[] {
  const open = new Map<number, { event: HistoryEvent; index: number; id: number }>();
  const operations: (HistoryOperation | undefined)[] = [];
  events.forEach((event, index) => {
    if (event.type === 'invoke') {
      if (open.has(event.process)) throw new Error(`pairOperations: process ${event.process} has two outstanding invokes`);
      open.set(event.process, { event, index, id: operations.length });
      operations.push(undefined);
      return;
    }
    const invoke = open.get(event.process);
    if (invoke === undefined || invoke.event.f !== event.f || invoke.event.key !== event.key) {
      throw new Error(`pairOperations: event ${index + 1} does not complete an outstanding invoke`);
    }
    open.delete(event.process);
    operations[invoke.id] = {
      id: invoke.id,
      process: event.process,
      f: event.f,
      key: event.key,
      value: invoke.event.value,
      output: event.f === 'read' && event.type === 'ok' ? event.value : null,
      outcome: event.type,
      error: event.error ?? null,
      invokeIndex: invoke.index,
      completeIndex: index,
      invokeTime: invoke.event.time,
      completeTime: event.time,
    };
  });
  if (open.size > 0) throw new Error(`pairOperations: ${open.size} invokes have no completion`);
  return operations.map((operation) => {
    if (operation === undefined) throw new Error('pairOperations: unpaired operation');
    return operation;
  });
}
