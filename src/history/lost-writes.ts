/**
 * Lost writes: acknowledged writes that a later read shows were undone, and that no read after that
 * ever observed again — the signature of a write lost in a crash. The definition (docs/history.md):
 *
 * An acknowledged write w is an `ok` write or `ok` cas of key k; it installs value v. A value x is
 * OLDER than w when every operation that may have installed x (ok or info writes and cas of x;
 * for x = null: ok or info deletes, and the initial state) completed before w was invoked. w is
 * LOST when some ok read r of k, invoked after w completed, returned a value older than w, and no
 * ok read of k invoked after r completed returned v.
 *
 * A read of a value no operation wrote is not evidence here (the linearizability check reports
 * it). Written values are unique in a test (HISTORY.md); if one is not, every operation that wrote
 * it counts as a possible installer, which can only make a write look less lost.
 */
import type { HistoryOperation } from './history-operation.js';

export interface LostWrite {
  readonly key: string;
  /** The acknowledged write (or cas) that was lost. */
  readonly write: HistoryOperation;
  /** The latest read that returned a value older than the write. */
  readonly evidence: HistoryOperation;
}

/** Prefix maximum over positions 0..size-1 (Fenwick tree), remembering which read holds it. */
class PrefixMaximum {
  private readonly best: Int32Array;
  private readonly holder: Int32Array;

  constructor(size: number) {
    this.best = new Int32Array(size + 1).fill(-1);
    this.holder = new Int32Array(size + 1).fill(-1);
  }

  add(position: number, value: number, holder: number): void {
    for (let i = position + 1; i < this.best.length; i += i & -i) {
      if (value > this.best[i]) {
        this.best[i] = value;
        this.holder[i] = holder;
      }
    }
  }

  /** The holder of the largest value added at a position <= `position`, or -1. */
  query(position: number): number {
    let bestValue = -1;
    let bestHolder = -1;
    for (let i = Math.min(position + 1, this.best.length - 1); i > 0; i -= i & -i) {
      if (this.best[i] > bestValue) {
        bestValue = this.best[i];
        bestHolder = this.holder[i];
      }
    }
    return bestHolder;
  }
}

function installedValue(op: HistoryOperation): { installs: boolean; value: string | null } {
  if (op.outcome === 'fail') return { installs: false, value: null };
  switch (op.f) {
    case 'write':
      return { installs: true, value: op.value as string };
    case 'cas':
      return { installs: true, value: (op.value as readonly [string | null, string])[1] };
    case 'delete':
      return { installs: true, value: null };
    case 'read':
      return { installs: false, value: null };
  }
}

/** Lost writes of one key; `operations` are all of that key's operations. O(n log n). */
export function findLostWrites(key: string, operations: readonly HistoryOperation[]): LostWrite[] {
  // Local ranks of the key's event positions keep the Fenwick tree as small as the key's history.
  const positions = operations.flatMap((op) => [op.invokeIndex, op.completeIndex]).sort((a, b) => a - b);
  const rank = new Map<number, number>(positions.map((position, index) => [position, index]));
  const rankOf = (position: number): number => rank.get(position) as number;

  // For each value: the latest completion rank of an operation that may have installed it
  // (+Infinity when one is info: it may take effect at any time). null starts out installed (-1).
  const installedBy = new Map<string | null, number>([[null, -1]]);
  for (const op of operations) {
    const { installs, value } = installedValue(op);
    if (!installs) continue;
    const until = op.outcome === 'info' ? Number.POSITIVE_INFINITY : rankOf(op.completeIndex);
    installedBy.set(value, Math.max(installedBy.get(value) ?? -1, until));
  }
  const reads = operations.filter((op) => op.f === 'read' && op.outcome === 'ok');
  const lastReadInvoke = new Map<string | null, number>();
  for (const read of reads) {
    lastReadInvoke.set(read.output, Math.max(lastReadInvoke.get(read.output) ?? -1, rankOf(read.invokeIndex)));
  }
  const acknowledged = operations
    .filter((op) => op.outcome === 'ok' && (op.f === 'write' || op.f === 'cas'))
    .sort((a, b) => b.completeIndex - a.completeIndex);
  reads.sort((a, b) => b.invokeIndex - a.invokeIndex);

  // Sweep writes by decreasing completion, adding the reads invoked after it, indexed by how old
  // their value is (+1 so that the initial null, -1, lands at 0), valued by their completion.
  const tree = new PrefixMaximum(positions.length + 1);
  const lost: LostWrite[] = [];
  let nextRead = 0;
  for (const write of acknowledged) {
    while (nextRead < reads.length && reads[nextRead].invokeIndex > write.completeIndex) {
      const read = reads[nextRead++];
      const installedUntil = installedBy.get(read.output);
      if (installedUntil === undefined || installedUntil === Number.POSITIVE_INFINITY) continue;
      tree.add(installedUntil + 1, rankOf(read.completeIndex), nextRead - 1);
    }
    // Older than the write: installed-until < the write's invoke, i.e. tree position <= invoke rank.
    const holder = tree.query(rankOf(write.invokeIndex));
    if (holder < 0) continue;
    const evidence = reads[holder];
    const value = installedValue(write).value;
    if ((lastReadInvoke.get(value) ?? -1) < rankOf(evidence.completeIndex)) {
      lost.push({ key, write, evidence });
    }
  }
  return lost.sort((a, b) => a.write.invokeIndex - b.write.invokeIndex);
}
