/**
 * A reference linearizability checker for small histories, written independently of
 * src/history/: it pairs events itself, keeps all keys in one state (no per-key split), and tries
 * EVERY order of the operations that respects real-time order, for every subset of the operations
 * whose outcome is unknown. Exponential: only for histories of about ten operations.
 *
 * Semantics (docs/history.md): ok operations happened inside their interval; fail operations did
 * not happen, except a cas failed with error "mismatch", which saw the key not holding its
 * expected value; info operations may have happened at any time after their invoke, or never.
 */
import type { HistoryEvent } from '../../src/history/history-event.js';

interface ReferenceOperation {
  readonly f: 'read' | 'write' | 'cas' | 'delete' | 'mismatch';
  readonly key: string;
  readonly args: HistoryEvent['value'];
  readonly output: string | null;
  /** Positions of the invoke and of the completion (+Infinity when the outcome is unknown). */
  readonly call: number;
  readonly ret: number;
}

function referenceOperations(events: readonly HistoryEvent[]): { required: ReferenceOperation[]; optional: ReferenceOperation[] } {
  const open = new Map<number, { event: HistoryEvent; index: number }>();
  const required: ReferenceOperation[] = [];
  const optional: ReferenceOperation[] = [];
  events.forEach((event, index) => {
    if (event.type === 'invoke') {
      open.set(event.process, { event, index });
      return;
    }
    const invoke = open.get(event.process);
    if (invoke === undefined) throw new Error(`reference checker: completion without invoke at ${index}`);
    open.delete(event.process);
    const base = { key: event.key, args: invoke.event.value, call: invoke.index };
    if (event.type === 'ok') {
      required.push({ ...base, f: event.f, output: event.f === 'read' ? event.value : null, ret: index });
    } else if (event.type === 'fail') {
      if (event.f === 'cas' && event.error === 'mismatch') required.push({ ...base, f: 'mismatch', output: null, ret: index });
    } else if (event.f !== 'read') {
      optional.push({ ...base, f: event.f, output: null, ret: Number.POSITIVE_INFINITY });
    }
  });
  if (open.size > 0) throw new Error('reference checker: invoke without completion');
  return { required, optional };
}

/** Applies `op` to `state`; returns the new state, or undefined if the operation is not legal there. */
function apply(state: ReadonlyMap<string, string>, op: ReferenceOperation): Map<string, string> | undefined {
  const current = state.get(op.key) ?? null;
  const after = new Map(state);
  switch (op.f) {
    case 'read':
      return current === op.output ? after : undefined;
    case 'write':
      after.set(op.key, op.args as string);
      return after;
    case 'delete':
      after.delete(op.key);
      return after;
    case 'cas': {
      const [expected, next] = op.args as readonly [string | null, string];
      if (current !== expected) return undefined;
      after.set(op.key, next);
      return after;
    }
    case 'mismatch': {
      const [expected] = op.args as readonly [string | null, string];
      return current !== expected ? after : undefined;
    }
  }
}

function someOrderWorks(remaining: readonly ReferenceOperation[], state: ReadonlyMap<string, string>): boolean {
  if (remaining.length === 0) return true;
  for (let i = 0; i < remaining.length; i++) {
    const candidate = remaining[i];
    // Real-time order: nothing still to be placed may have completed before this one was invoked.
    if (remaining.some((other) => other.ret < candidate.call)) continue;
    const after = apply(state, candidate);
    if (after === undefined) continue;
    if (someOrderWorks([...remaining.slice(0, i), ...remaining.slice(i + 1)], after)) return true;
  }
  return false;
}

/** True when some subset of the unknown-outcome operations, with all the others, has a legal order. */
export function bruteForceLinearizable(events: readonly HistoryEvent[]): boolean {
  const { required, optional } = referenceOperations(events);
  if (optional.length > 16) throw new Error('reference checker: too many info operations for brute force');
  for (let subset = 0; subset < 1 << optional.length; subset++) {
    const chosen = optional.filter((_, i) => (subset & (1 << i)) !== 0);
    if (someOrderWorks([...required, ...chosen], new Map())) return true;
  }
  return false;
}
