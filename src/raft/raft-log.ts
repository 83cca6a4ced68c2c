import { RaftInvariantError } from './errors.js';
import type { Entry, SnapshotMeta } from './types.js';

/** Bytes an entry costs in a message beyond its data (index, term, type, framing), for byte budgets. */
export const ENTRY_OVERHEAD_BYTES = 32;

export function entryBytes(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD_BYTES;
}

/**
 * The in-memory Raft log of one group: the entries after an offset (the last compacted or
 * snapshotted index, whose term is remembered so AppendEntries consistency checks work at the
 * boundary), plus the commit/applied/stable cursors.
 *
 * `stableIndex` is the last index known durable in the driver's WAL; entries after it are handed
 * out in the next Ready. Entries are never mutated in place: a truncation replaces the suffix.
 */
export class RaftLog {
  /** Index of the entry just before entries[0] (0, a snapshot's index, or a compaction point). */
  private offsetIndex: number;
  private offsetTerm: number;
  private entries: Entry[];
  private _committed: number;
  private _applied: number;
  private _stableIndex: number;
  /** An accepted incoming snapshot not yet handed to (and persisted by) the driver. */
  pendingSnapshot: SnapshotMeta | undefined;

  constructor(snapshot: SnapshotMeta | null, entries: Entry[], commit: number, applied: number) {
    this.offsetIndex = snapshot?.index ?? 0;
    this.offsetTerm = snapshot?.term ?? 0;
    for (let i = 1; i < entries.length; i++) {
      if (entries[i].index !== entries[i - 1].index + 1 || entries[i].term < entries[i - 1].term) {
        throw new RaftInvariantError(`initial entries not contiguous at index ${entries[i].index}`);
      }
    }
    let rest = entries;
    if (rest.length > 0 && rest[0].index !== this.offsetIndex + 1) {
      const first = rest[0];
      const last = rest[rest.length - 1];
      if (snapshot !== null && first.index > snapshot.index + 1) {
        throw new RaftInvariantError(
          `initial entries start at ${first.index}, leaving a gap after snapshot ${snapshot.index}`,
        );
      }
      if (snapshot !== null && last.index < snapshot.index) {
        rest = []; // a kept tail entirely covered by the snapshot
      } else {
        // A kept tail below the snapshot (or, without one, a log starting after 1): the entry before
        // the first has an unknown term, so the first entry becomes the offset marker.
        if (snapshot !== null) {
          const atSnapshot = rest[snapshot.index - first.index];
          if (atSnapshot.term !== snapshot.term) {
            throw new RaftInvariantError(
              `entry ${snapshot.index} has term ${atSnapshot.term}, snapshot says ${snapshot.term}`,
            );
          }
        }
        this.offsetIndex = first.index;
        this.offsetTerm = first.term;
        rest = rest.slice(1);
      }
    }
    this.entries = rest.slice();
    this._stableIndex = this.lastIndex();
    // A snapshot is committed by definition (only committed state is snapshotted).
    if (snapshot !== null && commit < snapshot.index) commit = snapshot.index;
    if (commit > this.lastIndex()) {
      throw new RaftInvariantError(
        `commit ${commit} is beyond the last log index ${this.lastIndex()}: was the log truncated or lost?`,
      );
    }
    if (applied > commit) throw new RaftInvariantError(`applied ${applied} > commit ${commit}`);
    if (applied < this.offsetIndex) {
      throw new RaftInvariantError(
        `applied ${applied} is below the first retained index ${this.offsetIndex + 1}`,
      );
    }
    this._committed = commit;
    this._applied = applied;
  }

  get committed(): number {
    return this._committed;
  }

  get applied(): number {
    return this._applied;
  }

  get stableIndex(): number {
    return this._stableIndex;
  }

  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.offsetIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length === 0 ? this.offsetTerm : this.entries[this.entries.length - 1].term;
  }

  /** The term of the entry at `index`, or undefined when compacted away or beyond the log. */
  term(index: number): number | undefined {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offsetIndex - 1].term;
  }

  entryAt(index: number): Entry | undefined {
    if (index <= this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offsetIndex - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: the candidate's log is at least as up-to-date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Fast backtracking (Raft §5.3 end; etcd's findConflictByTerm): the largest index
   * <= `index` whose term is <= `term`, with its term. Every entry between there and `index` has a
   * term > `term`, so cannot match a log whose entry at `index` has term `term`.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    for (; i > this.offsetIndex; i--) {
      const t = this.entries[i - this.offsetIndex - 1].term;
      if (t <= term) return { index: i, term: t };
    }
    // At or below the offset: the marker term is known; below it, report 0 (unknown).
    if (i === this.offsetIndex && this.offsetTerm <= term) return { index: i, term: this.offsetTerm };
    return { index: Math.min(i, this.offsetIndex), term: 0 };
  }

  /** The index of the first entry of `entries` that is not in our log with the same term, or 0. */
  findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Entries in [lo, hi) whose total size fits `maxBytes` (at least one), or undefined when `lo` is
   * compacted away. `hi` is clamped to lastIndex + 1.
   */
  slice(lo: number, hi: number, maxBytes: number): Entry[] | undefined {
    if (lo <= this.offsetIndex) return undefined;
    const end = Math.min(hi, this.lastIndex() + 1);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < end; i++) {
      const e = this.entries[i - this.offsetIndex - 1];
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Entries not yet handed to the driver for persistence. */
  unstableEntries(): Entry[] {
    return this.entries.slice(this._stableIndex - this.offsetIndex);
  }

  /** Append entries after `entries[0].index - 1`, replacing any suffix from there. */
  appendReplacing(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const from = entries[0].index;
    if (from <= this._committed) {
      throw new RaftInvariantError(`truncating committed entry ${from} (commit ${this._committed})`);
    }
    if (from > this.lastIndex() + 1) {
      throw new RaftInvariantError(`append at ${from} leaves a gap after last index ${this.lastIndex()}`);
    }
    this.entries.length = from - this.offsetIndex - 1;
    for (const e of entries) {
      if (e.index !== this.lastIndex() + 1)
        throw new RaftInvariantError(`non-contiguous append at ${e.index}`);
      if (e.term < this.lastTerm())
        throw new RaftInvariantError(`append of term ${e.term} after ${this.lastTerm()}`);
      this.entries.push(e);
    }
    if (this._stableIndex >= from) this._stableIndex = from - 1;
  }

  commitTo(index: number): void {
    if (index <= this._committed) return;
    if (index > this.lastIndex()) {
      throw new RaftInvariantError(`commit ${index} beyond last index ${this.lastIndex()}`);
    }
    this._committed = index;
  }

  appliedTo(index: number): void {
    if (index < this._applied)
      throw new RaftInvariantError(`applied goes back from ${this._applied} to ${index}`);
    if (index > this._committed) throw new RaftInvariantError(`applied ${index} > commit ${this._committed}`);
    this._applied = index;
  }

  /** The driver made entries up to (index, term) durable; ignored when the log has changed there since. */
  stableTo(index: number, term: number): void {
    if (this.term(index) === term && index > this._stableIndex) this._stableIndex = index;
  }

  /** Committed entries the driver has not applied yet (none while a snapshot is being installed). */
  nextCommitted(maxBytes: number): Entry[] {
    if (this.pendingSnapshot !== undefined || this._committed <= this._applied) return [];
    return this.slice(this._applied + 1, this._committed + 1, maxBytes) ?? [];
  }

  hasNextCommitted(): boolean {
    return this.pendingSnapshot === undefined && this._committed > this._applied;
  }

  /** Reset the log to an accepted snapshot (Raft §7): everything before and after it is discarded. */
  restore(meta: SnapshotMeta): void {
    if (meta.index <= this._committed) {
      throw new RaftInvariantError(`restoring snapshot ${meta.index} at or below commit ${this._committed}`);
    }
    this.offsetIndex = meta.index;
    this.offsetTerm = meta.term;
    this.entries = [];
    this._committed = meta.index;
    this._stableIndex = meta.index;
    this.pendingSnapshot = meta;
  }

  /** The driver persisted the snapshot marker and installed its data: applied jumps to it. */
  snapshotInstalled(meta: SnapshotMeta): void {
    if (this.pendingSnapshot !== undefined && this.pendingSnapshot.index === meta.index) {
      this.pendingSnapshot = undefined;
    }
    if (meta.index > this._applied) this._applied = meta.index;
  }

  /** Drop entries <= index (log compaction, Raft §7). Returns whether anything was dropped. */
  compactTo(index: number): boolean {
    if (index <= this.offsetIndex) return false;
    if (index > this._applied)
      throw new RaftInvariantError(`compacting to ${index} beyond applied ${this._applied}`);
    const term = this.term(index);
    if (term === undefined) throw new RaftInvariantError(`compacting to ${index}: no such entry`);
    this.entries = this.entries.slice(index - this.offsetIndex);
    this.offsetIndex = index;
    this.offsetTerm = term;
    return true;
  }

  /**
   * Where to compact to so that at most `maxEntries` entries and `maxBytes` (entryBytes) of them stay
   * at and below `index`: the kept tail is (result, index]. Never below what is already compacted.
   */
  tailStart(index: number, maxEntries: number, maxBytes: number): number {
    let point = Math.min(index, this.lastIndex());
    let bytes = 0;
    while (point > this.offsetIndex && index - point < maxEntries) {
      bytes += entryBytes(this.entries[point - this.offsetIndex - 1]);
      if (bytes > maxBytes) break;
      point--;
    }
    return point;
  }

  /** Number of confChange entries in (from, to]. */
  countConfChanges(from: number, to: number): number {
    let n = 0;
    for (let i = Math.max(from + 1, this.offsetIndex + 1); i <= Math.min(to, this.lastIndex()); i++) {
      if (this.entries[i - this.offsetIndex - 1].type === 'confChange') n++;
    }
    return n;
  }
}
