/**
 * The linearizability checker for key-value register histories (HISTORY.md; semantics and output
 * in docs/history.md).
 *
 * The model: each key is an independent register holding a string or nothing (null). read returns
 * the value; write sets it; delete removes it; cas [expected, new] sets `new` only if the key holds
 * `expected` (null: only if absent). The history is linearizable when every key's sub-history is
 * (linearizability is local: Herlihy & Wing 1990, Theorem 1), so each key is searched on its own
 * (see register-search.ts), under a step budget so that a pathological history reports "unknown"
 * instead of running forever.
 */
import { minimizeFailure } from './failure-minimizer.js';
import { type HistoryEvent, REGISTER_FUNCTIONS, type RegisterFunction, validateHistoryEvents } from './history-event.js';
import { type HistoryOperation, pairOperations } from './history-operation.js';
import { findLostWrites, type LostWrite } from './lost-writes.js';
import { SearchBudget, searchLinearization, toSearchOperations } from './register-search.js';

export type HistoryVerdict = 'linearizable' | 'not-linearizable' | 'unknown';

export interface OutcomeCounts {
  ok: number;
  fail: number;
  info: number;
}

/** A key whose operations cannot be linearized. */
export interface KeyFailure {
  readonly key: string;
  /** How many operations the history holds on this key. */
  readonly keyOperationCount: number;
  /** Position (line - 1) of the completion event after which the key's history is not linearizable. */
  readonly failurePoint: number;
  /**
   * A small set of the key's operations that cannot be ordered, in invoke order; plus, as context,
   * any failed write whose value one of them observed.
   */
  readonly operations: readonly HistoryOperation[];
  /** False when the minimization budget ran out: the set is smaller than the key's history but may not be minimal. */
  readonly minimized: boolean;
}

export interface HistoryCheckResult {
  /** 'unknown': no violation found, but the budget ran out on some key (see unknownKeys). */
  readonly verdict: HistoryVerdict;
  /** True only when the whole history was proven linearizable. */
  readonly linearizable: boolean;
  readonly eventCount: number;
  readonly operationCount: number;
  readonly keyCount: number;
  /** ok / fail / info per function. */
  readonly counts: Readonly<Record<RegisterFunction, OutcomeCounts>>;
  /** How many keys are not linearizable (failures lists at most maxReportedFailures of them). */
  readonly failingKeyCount: number;
  readonly failures: readonly KeyFailure[];
  /** Keys on which the search ran out of budget before a verdict. */
  readonly unknownKeys: readonly string[];
  /** Acknowledged writes that a later read showed undone (definition in lost-writes.ts / docs). */
  readonly lostWrites: readonly LostWrite[];
  /** Search steps spent, minimization included. */
  readonly searchSteps: number;
  readonly elapsedMs: number;
}

export interface HistoryCheckOptions {
  /** Search steps allowed per key before it is reported unknown. Default 20,000,000 (a few seconds). */
  readonly maxStepsPerKey?: number;
  /** Wall-clock limit for the whole check, in milliseconds; keys not decided by then are unknown. Default: none. */
  readonly timeLimitMs?: number;
  /** How many failing keys get a minimized report. Default 5. */
  readonly maxReportedFailures?: number;
  /** Search steps allowed for minimizing one failing key. Default 5,000,000. */
  readonly maxMinimizationSteps?: number;
}

export const HISTORY_CHECK_DEFAULTS = {
  maxStepsPerKey: 20_000_000,
  maxReportedFailures: 5,
  maxMinimizationSteps: 5_000_000,
} as const;

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen <= 0) {
    throw new RangeError(`checkHistory: ${name} must be a positive integer, got ${chosen}`);
  }
  return chosen;
}

/**
 * Checks a history for linearizability against the key-value register model. The events are
 * validated first (shape and structural rules, as for a file); a malformed history throws
 * HistoryFormatError.
 */
export function checkHistory(events: readonly HistoryEvent[], options: HistoryCheckOptions = {}): HistoryCheckResult {
  const started = Date.now();
  const maxStepsPerKey = positiveInteger('maxStepsPerKey', options.maxStepsPerKey, HISTORY_CHECK_DEFAULTS.maxStepsPerKey);
  const maxReportedFailures = positiveInteger(
    'maxReportedFailures',
    options.maxReportedFailures,
    HISTORY_CHECK_DEFAULTS.maxReportedFailures,
  );
  const maxMinimizationSteps = positiveInteger(
    'maxMinimizationSteps',
    options.maxMinimizationSteps,
    HISTORY_CHECK_DEFAULTS.maxMinimizationSteps,
  );
  if (options.timeLimitMs !== undefined && !(options.timeLimitMs > 0)) {
    throw new RangeError(`checkHistory: timeLimitMs must be positive, got ${options.timeLimitMs}`);
  }
  const deadline = options.timeLimitMs === undefined ? Number.POSITIVE_INFINITY : started + options.timeLimitMs;

  const operations = pairOperations(validateHistoryEvents(events));
  const counts = Object.fromEntries(REGISTER_FUNCTIONS.map((f) => [f, { ok: 0, fail: 0, info: 0 }])) as Record<
    RegisterFunction,
    OutcomeCounts
  >;
  const byKey = new Map<string, HistoryOperation[]>();
  for (const op of operations) {
    counts[op.f][op.outcome] += 1;
    let list = byKey.get(op.key);
    if (list === undefined) {
      list = [];
      byKey.set(op.key, list);
    }
    list.push(op);
  }

  const failures: KeyFailure[] = [];
  const unknownKeys: string[] = [];
  const lostWrites: LostWrite[] = [];
  let failingKeyCount = 0;
  let searchSteps = 0;
  for (const [key, keyOperations] of byKey) {
    for (const lost of findLostWrites(key, keyOperations)) lostWrites.push(lost);
    const budget = new SearchBudget(maxStepsPerKey, deadline);
    const verdict =
      Date.now() > deadline ? 'unknown' : searchLinearization(toSearchOperations(keyOperations), budget);
    searchSteps += budget.stepsSpent;
    if (verdict === 'unknown') {
      unknownKeys.push(key);
    } else if (verdict === 'not-linearizable') {
      failingKeyCount += 1;
      if (failures.length < maxReportedFailures) {
        const minimizationBudget = new SearchBudget(maxMinimizationSteps, deadline);
        const minimized = minimizeFailure(keyOperations, minimizationBudget);
        searchSteps += minimizationBudget.stepsSpent;
        failures.push({ key, keyOperationCount: keyOperations.length, ...minimized });
      }
    }
  }
  lostWrites.sort((a, b) => a.write.invokeIndex - b.write.invokeIndex);
  const verdict: HistoryVerdict =
    failingKeyCount > 0 ? 'not-linearizable' : unknownKeys.length > 0 ? 'unknown' : 'linearizable';
  return {
    verdict,
    linearizable: verdict === 'linearizable',
    eventCount: events.length,
    operationCount: operations.length,
    keyCount: byKey.size,
    counts,
    failingKeyCount,
    failures,
    unknownKeys,
    lostWrites,
    searchSteps,
    elapsedMs: Date.now() - started,
  };
}
