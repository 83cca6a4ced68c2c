/**
 * Shrinks a key's non-linearizable history to a small set of operations a person can read.
 *
 * 1. The shortest failing prefix: linearizability is prefix-closed (cutting a history turns the
 *    operations still pending at the cut into ones of unknown outcome, which only loosens it), so a
 *    binary search over the completion events finds the first event after which the key's history
 *    cannot be linearized — the failure point.
 * 2. Delta debugging (Zeller's ddmin, simplified to chunk halving then single removals) over the
 *    operations of that prefix: drop every operation whose removal keeps the history
 *    non-linearizable. One rule keeps the result honest: an operation that installs a value
 *    (write, cas, delete) is never dropped while a remaining operation observes that value, so
 *    the result never turns "read an old value" into "read a value nobody wrote".
 *
 * The result also lists, as context, failed writes of values that the remaining operations
 * observe (a failed write did not happen, so a read of its value is what cannot be explained).
 */
import type { HistoryOperation } from './history-operation.js';
import {
  type RegisterSearchOperation,
  type SearchBudget,
  searchLinearization,
  toSearchOperations,
} from './register-search.js';

export interface MinimizedFailure {
  /** Position of the completion event after which this key's history is no longer linearizable. */
  readonly failurePoint: number;
  /** Operations that cannot be ordered, in invoke order. */
  readonly operations: readonly HistoryOperation[];
  /** False when the budget ran out before the set could be shrunk further. */
  readonly minimized: boolean;
}

/** Values that remaining operations positively observed: the result of reads and the expected value of cas. */
function observedValues(operations: readonly RegisterSearchOperation[]): Set<string | null> {
  const observed = new Set<string | null>();
  for (const op of operations) {
    if (op.ret === Number.POSITIVE_INFINITY) continue;
    if (op.kind === 'read' || op.kind === 'cas') observed.add(op.expected);
  }
  return observed;
}

function installsObservedValue(op: RegisterSearchOperation, observed: Set<string | null>): boolean {
  return (op.kind === 'write' || op.kind === 'cas') && observed.has(op.next);
}

/**
 * `keyOperations`: all operations of one key, whose history is known to be non-linearizable.
 * Every search draws on `budget`; when it runs out, the smallest set found so far is returned.
 */
export function minimizeFailure(keyOperations: readonly HistoryOperation[], budget: SearchBudget): MinimizedFailure {
  let exhausted = false;
  const fails = (operations: readonly RegisterSearchOperation[]): boolean => {
    if (exhausted) return false;
    const verdict = searchLinearization(operations, budget);
    if (verdict === 'unknown') exhausted = true;
    return verdict === 'not-linearizable';
  };

  // 1. Shortest failing prefix, cutting only at completion events (an invoke never breaks it).
  const cuts = keyOperations.map((op) => op.completeIndex).sort((a, b) => a - b);
  let passing = -1;
  let failing = cuts.length - 1;
  while (failing - passing > 1 && !exhausted) {
    const middle = (passing + failing) >>> 1;
    if (fails(toSearchOperations(keyOperations, cuts[middle]))) failing = middle;
    else if (!exhausted) passing = middle;
  }
  const failurePoint = cuts[failing] as number;
  let current = toSearchOperations(keyOperations, failurePoint);

  // 2. Remove chunks, halving their size, then single operations until nothing more goes.
  const tryRemove = (from: number, to: number): boolean => {
    const outside = current.slice(0, from).concat(current.slice(to));
    const observed = observedValues(outside);
    const kept = current.slice(from, to).filter((op) => installsObservedValue(op, observed));
    if (kept.length === to - from) return false;
    const candidate = current.slice(0, from).concat(kept, current.slice(to));
    if (!fails(candidate)) return false;
    current = candidate;
    return true;
  };
  let chunk = Math.max(1, Math.ceil(current.length / 2));
  while (chunk > 1 && !exhausted) {
    for (let start = 0; start < current.length && !exhausted; ) {
      if (!tryRemove(start, Math.min(start + chunk, current.length))) start += chunk;
    }
    chunk = Math.ceil(chunk / 2);
  }
  let removedAny = true;
  while (removedAny && !exhausted) {
    removedAny = false;
    for (let index = current.length - 1; index >= 0 && !exhausted; index--) {
      if (tryRemove(index, index + 1)) removedAny = true;
    }
  }
  // Context for the reader: failed operations (which did not happen) that wrote a value the
  // remaining operations observe, e.g. a failed write whose value was later read.
  const observed = observedValues(current);
  const failedWriters = keyOperations.filter(
    (op) =>
      op.outcome === 'fail' &&
      op.completeIndex <= failurePoint &&
      ((op.f === 'write' && observed.has(op.value as string)) ||
        (op.f === 'cas' && op.error !== 'mismatch' && observed.has((op.value as readonly [string | null, string])[1]))),
  );
  const operations = [...current.map((op) => op.source), ...failedWriters].sort((a, b) => a.invokeIndex - b.invokeIndex);
  return { failurePoint, operations, minimized: !exhausted };
}
