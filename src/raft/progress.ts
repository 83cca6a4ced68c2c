import { RaftInvariantError } from './errors.js';
import type { ProgressState } from './types.js';

/**
 * The bounded window of AppendEntries in flight to one follower (etcd Inflights): the last index
 * of each unacknowledged message, oldest first. When full, the leader stops sending until an
 * acknowledgement frees a slot.
 */
export class Inflights {
  private readonly buffer: number[];
  private start = 0;
  private _count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1)
      throw new RaftInvariantError(`inflight capacity ${capacity}`);
    this.buffer = new Array<number>(capacity).fill(0);
  }

  get count(): number {
    return this._count;
  }

  full(): boolean {
    return this._count === this.capacity;
  }

  add(lastIndex: number): void {
    if (this.full()) throw new RaftInvariantError('inflights overflow');
    if (this._count > 0 && lastIndex <= this.buffer[(this.start + this._count - 1) % this.capacity]) {
      throw new RaftInvariantError(`inflight ${lastIndex} not increasing`);
    }
    this.buffer[(this.start + this._count) % this.capacity] = lastIndex;
    this._count++;
  }

  /** Free every message whose last index is <= `index` (acknowledged). */
  freeLE(index: number): void {
    while (this._count > 0 && this.buffer[this.start] <= index) {
      this.start = (this.start + 1) % this.capacity;
      this._count--;
    }
  }

  freeFirstOne(): void {
    if (this._count === 0) return;
    this.start = (this.start + 1) % this.capacity;
    this._count--;
  }

  reset(): void {
    this.start = 0;
    this._count = 0;
  }
}

/**
 * The leader's view of one follower's log (Raft §5.3 nextIndex/matchIndex, etcd Progress):
 * - probe: one AppendEntries at a time until the match point is found (after a rejection, on
 *   election, after a snapshot);
 * - replicate: pipelined AppendEntries, `next` advanced optimistically, bounded by `inflights`;
 * - snapshot: a snapshot is being streamed; nothing else is sent until it is reported.
 */
export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Probe state: an append was sent and is not answered yet (pauses further probes). */
  probeSent = false;
  /** Snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round (thesis §6.2). */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(
    next: number,
    maxInflight: number,
    public isLearner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      // After a snapshot the follower has at least its index (if installed); probe from there.
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** An acknowledgement up to `n`: returns whether match advanced. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejection of the append whose prevLogIndex was `rejected`; `matchHint` is the highest index
   * that may still match (from the follower's conflict hint). Returns false for a stale rejection.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      // Appends are pipelined: a rejection at or below match is a stale, reordered answer.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Probe/snapshot: only the rejection of the latest probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether the leader must not send appends now (flow control). */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  /** Record that an append carrying entries up to `lastIndex` (count `n`) was sent. */
  sentEntries(n: number, lastIndex: number): void {
    if (this.state === 'replicate') {
      if (n > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    } else {
      throw new RaftInvariantError('sending entries in snapshot state');
    }
  }
}
