/**
 * The human-readable report of a history check (docs/history.md, "Reading a failure"). Lines are
 * 1-based lines of the history file (event position + 1).
 */
import { REGISTER_FUNCTIONS } from './history-event.js';
import type { HistoryOperation } from './history-operation.js';
import type { HistoryCheckResult, KeyFailure } from './linearizability-checker.js';
import type { LostWrite } from './lost-writes.js';

/** Most operations listed for one failing key. */
const MAX_LISTED_OPERATIONS = 40;
/** Most lost writes listed. */
const MAX_LISTED_LOST_WRITES = 20;

function showValue(value: string | null): string {
  return value === null ? '(absent)' : JSON.stringify(value);
}

/** "write "v-1"", "read -> "v-1"", "cas "a" -> "b"", "delete". */
export function describeOperation(op: HistoryOperation): string {
  switch (op.f) {
    case 'read':
      return op.outcome === 'ok' ? `read -> ${showValue(op.output)}` : 'read';
    case 'write':
      return `write ${showValue(op.value as string)}`;
    case 'cas': {
      const [expected, next] = op.value as readonly [string | null, string];
      return `cas ${showValue(expected)} -> ${showValue(next)}`;
    }
    case 'delete':
      return 'delete';
  }
}

/** The value an operation installs (undefined for a read). */
function installedValue(op: HistoryOperation): string | null | undefined {
  if (op.f === 'write') return op.value as string;
  if (op.f === 'cas') return (op.value as readonly [string | null, string])[1];
  return op.f === 'delete' ? null : undefined;
}

/** The value an operation saw the key hold: an ok read's result, an ok cas's expected value. */
function observedValue(op: HistoryOperation): string | null | undefined {
  if (op.outcome !== 'ok') return undefined;
  if (op.f === 'read') return op.output;
  if (op.f === 'cas') return (op.value as readonly [string | null, string])[0];
  return undefined;
}

function describeOutcome(op: HistoryOperation): string {
  const reason = op.error === null ? '' : ` (${op.error})`;
  if (op.outcome === 'info') return `info${reason}: may have taken effect at any time after its invoke, or never`;
  if (op.outcome === 'fail' && op.f === 'cas' && op.error === 'mismatch') {
    return 'fail (mismatch): the key did not hold the expected value';
  }
  return `${op.outcome}${reason}`;
}

function lines(op: HistoryOperation): string {
  return `lines ${op.invokeIndex + 1}-${op.completeIndex + 1}`;
}

function label(index: number): string {
  return `#${index + 1}`;
}

/** Pairs (a, b) where a completed before b was invoked, without those implied by transitivity. */
function realTimeOrder(operations: readonly HistoryOperation[], failurePoint: number): string[] {
  const precedes = (a: HistoryOperation, b: HistoryOperation): boolean =>
    a.outcome !== 'info' && a.completeIndex <= failurePoint && a.completeIndex < b.invokeIndex;
  const pairs: string[] = [];
  operations.forEach((a, i) => {
    operations.forEach((b, j) => {
      if (!precedes(a, b)) return;
      const implied = operations.some((c) => c !== a && c !== b && precedes(a, c) && precedes(c, b));
      if (!implied) pairs.push(`${label(i)} < ${label(j)}`);
    });
  });
  return pairs;
}

function formatFailure(failure: KeyFailure): string[] {
  const out: string[] = [];
  out.push(
    `Key ${JSON.stringify(failure.key)} (${failure.keyOperationCount} operations): its history stops being linearizable at line ${failure.failurePoint + 1}.`,
  );
  out.push(
    `No order of these ${failure.operations.length} operations respects both their real-time order and the register's semantics${
      failure.minimized ? '' : ' (the search budget ran out while shrinking: the set may not be minimal)'
    }:`,
  );
  const listed = failure.operations.slice(0, MAX_LISTED_OPERATIONS);
  const width = Math.max(...listed.map((op) => describeOperation(op).length));
  const written = new Set(listed.filter((op) => op.outcome !== 'fail').map(installedValue));
  listed.forEach((op, i) => {
    const notes: string[] = [];
    if (op.completeIndex > failure.failurePoint) notes.push('not yet completed at the failure point');
    const seen = observedValue(op);
    if (seen !== undefined && seen !== null && !written.has(seen)) {
      notes.push('no operation that may have taken effect wrote this value');
    }
    out.push(
      `  ${label(i).padEnd(4)} ${lines(op).padEnd(19)} process ${String(op.process).padEnd(6)} ${describeOperation(op).padEnd(width)}  ${describeOutcome(op)}${notes.map((note) => `  [${note}]`).join('')}`,
    );
  });
  if (failure.operations.length > listed.length) {
    out.push(`  ... and ${failure.operations.length - listed.length} more operations`);
  }
  const order = realTimeOrder(listed, failure.failurePoint);
  out.push(
    order.length === 0
      ? '  Real-time order: all of them overlap.'
      : `  Real-time order (X < Y: X completed before Y was invoked): ${order.join(', ')}`,
  );
  return out;
}

function formatLostWrite(lost: LostWrite): string {
  const { write, evidence } = lost;
  return `  key ${JSON.stringify(lost.key)}: process ${write.process} ${describeOperation(write)} (${lines(write)}, ok); then process ${evidence.process} ${describeOperation(evidence)} (${lines(evidence)}) saw an older state, and no later read saw the write`;
}

/** The full report: verdict, failing keys with their operations, counts, lost writes. */
export function formatHistoryCheckResult(result: HistoryCheckResult): string {
  const out: string[] = [];
  switch (result.verdict) {
    case 'linearizable':
      out.push(`linearizable: ${result.operationCount} operations on ${result.keyCount} keys.`);
      break;
    case 'not-linearizable':
      out.push(
        `NOT linearizable: ${result.failingKeyCount} of ${result.keyCount} keys cannot be linearized${
          result.failures.length < result.failingKeyCount ? ` (the first ${result.failures.length} are shown)` : ''
        }.`,
      );
      break;
    case 'unknown':
      out.push(
        `UNKNOWN: no violation found, but the search budget ran out on ${result.unknownKeys.length} of ${result.keyCount} keys before a verdict.`,
      );
      break;
  }
  for (const failure of result.failures) {
    out.push('', ...formatFailure(failure));
  }
  if (result.unknownKeys.length > 0) {
    const shown = result.unknownKeys.slice(0, 10).map((key) => JSON.stringify(key));
    const more = result.unknownKeys.length > shown.length ? `, ... (${result.unknownKeys.length} in all)` : '';
    out.push('', `Undecided keys (budget ran out): ${shown.join(', ')}${more}.`);
    out.push('Raise --max-steps-per-key or --time-limit, or record fewer concurrent operations per key.');
  }
  out.push('', `Operations: ${result.operationCount} (${result.eventCount} events) on ${result.keyCount} keys`);
  out.push(`  ${'function'.padEnd(10)}${'ok'.padStart(10)}${'fail'.padStart(10)}${'info'.padStart(10)}`);
  for (const f of REGISTER_FUNCTIONS) {
    const c = result.counts[f];
    out.push(`  ${f.padEnd(10)}${String(c.ok).padStart(10)}${String(c.fail).padStart(10)}${String(c.info).padStart(10)}`);
  }
  if (result.lostWrites.length === 0) {
    out.push('Lost writes: none');
  } else {
    out.push(`Lost writes: ${result.lostWrites.length}`);
    for (const lost of result.lostWrites.slice(0, MAX_LISTED_LOST_WRITES)) out.push(formatLostWrite(lost));
    if (result.lostWrites.length > MAX_LISTED_LOST_WRITES) {
      out.push(`  ... and ${result.lostWrites.length - MAX_LISTED_LOST_WRITES} more`);
    }
  }
  out.push(`Search: ${result.searchSteps} steps, ${result.elapsedMs} ms`);
  return out.join('\n');
}
