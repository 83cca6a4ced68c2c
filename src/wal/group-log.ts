/**
 * One Raft group's view of the shared log, kept in memory: its snapshot marker, hard state, and an
 * index of its live entries (term, position in the files, frame size). Entry data is not kept here;
 * it is read from the segment files on demand so a large log does not live in the heap.
 *
 * The log is etcd-shaped: firstIndex = snapshot index + 1, lastIndex = snapshot index + number of
 * entries; the term of the snapshot index is the snapshot's term (Raft §5.3 / thesis §5.1 need it
 * for the consistency check of the entry that follows).
 */
import type { GroupStateCopy } from './record-codec.js';
import type { WalHardState } from './types.js';

/** A position packs the segment number and the byte offset in it into one float64. */
const SEGMENT_SPAN = 2 ** 32;

export function packPosition(seq: number, offset: number): number {
  return seq * SEGMENT_SPAN + offset;
}
export function positionSeq(position: number): number {
  return Math.floor(position / SEGMENT_SPAN);
}
export function positionOffset(position: number): number {
  return position % SEGMENT_SPAN;
}

/** Dropped head slots are reclaimed once there are this many and they outnumber the live ones. */
const COMPACT_HEAD_AFTER = 4096;

export class GroupLog {
  readonly group: number;
  snapshotIndex = 0;
  snapshotTerm = 0;
  hasSnapshot = false;
  hardState: WalHardState | null = null;

  /** Index of the oldest live entry (meaningful when count > 0). */
  private first = 0;
  /** Array slot of the oldest live entry: dropping a prefix moves it instead of shifting arrays. */
  private head = 0;
  private count = 0;
  private readonly terms: number[] = [];
  private readonly positions: number[] = [];
  private readonly sizes: number[] = [];

  constructor(group: number) {
    this.group = group;
  }

  get entryCount(): number {
    return this.count;
  }

  /** Index of the oldest indexed entry, or 0 when there is none. */
  get firstEntryIndex(): number {
    return this.count > 0 ? this.first : 0;
  }

  firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  lastIndex(): number {
    return this.count > 0 ? this.first + this.count - 1 : this.snapshotIndex;
  }

  hasEntry(index: number): boolean {
    return this.count > 0 && index >= this.first && index < this.first + this.count;
  }

  /** Term of entry `index`, or of the snapshot when `index` is the snapshot index; undefined otherwise. */
  termAt(index: number): number | undefined {
    if (this.hasEntry(index)) return this.terms[this.head + index - this.first];
    if (index === this.snapshotIndex) return this.snapshotTerm;
    return undefined;
  }

  /** Caller checks hasEntry(index). */
  positionOf(index: number): number {
    return this.positions[this.head + index - this.first]!;
  }
  sizeOf(index: number): number {
    return this.sizes[this.head + index - this.first]!;
  }

  /**
   * Adds entry `index`. An index <= lastIndex replaces the suffix from there (a conflicting
   * entry, Raft §5.3). On an empty log any index is taken as the start: recovery of a log whose
   * older segments were released sees entries before the snapshot marker that explains them.
   */
  appendEntry(index: number, term: number, position: number, size: number): void {
    if (this.count > 0 && index <= this.lastIndex()) this.truncateFrom(index);
    if (this.count === 0) {
      this.clear();
      this.first = index;
    } else if (index !== this.first + this.count) {
      throw new Error(
        `WAL invariant broken: group ${this.group} entry ${index} after last index ${this.lastIndex()}`,
      );
    }
    this.terms.push(term);
    this.positions.push(position);
    this.sizes.push(size);
    this.count++;
  }

  /** Removes entries with index >= fromIndex. */
  truncateFrom(fromIndex: number): void {
    if (this.count === 0 || fromIndex > this.lastIndex()) return;
    if (fromIndex <= this.first) {
      this.clear();
      return;
    }
    this.count = fromIndex - this.first;
    const length = this.head + this.count;
    this.terms.length = length;
    this.positions.length = length;
    this.sizes.length = length;
  }

  /** Records a snapshot marker and drops the entries it covers (index <= marker). */
  applySnapshot(index: number, term: number): void {
    if (this.hasSnapshot && index < this.snapshotIndex) {
      throw new Error(
        `WAL invariant broken: group ${this.group} snapshot marker ${index} below ${this.snapshotIndex}`,
      );
    }
    this.snapshotIndex = index;
    this.snapshotTerm = term;
    this.hasSnapshot = true;
    if (this.count === 0) return;
    if (index >= this.lastIndex()) {
      this.clear();
    } else if (index >= this.first) {
      const dropped = index - this.first + 1;
      this.head += dropped;
      this.first += dropped;
      this.count -= dropped;
      if (this.head >= COMPACT_HEAD_AFTER && this.head > this.count) this.compactHead();
    }
  }

  /** Smallest segment number holding a live entry, or Infinity. */
  oldestSegment(): number {
    return this.count > 0 ? positionSeq(this.positions[this.head]!) : Number.POSITIVE_INFINITY;
  }

  private clear(): void {
    this.head = 0;
    this.count = 0;
    this.terms.length = 0;
    this.positions.length = 0;
    this.sizes.length = 0;
  }

  private compactHead(): void {
    this.terms.splice(0, this.head);
    this.positions.splice(0, this.head);
    this.sizes.splice(0, this.head);
    this.head = 0;
  }
}

/** The hard state and snapshot marker of every group that has one, for a segment header. */
export function stateCopiesOf(groups: Iterable<GroupLog>): GroupStateCopy[] {
  const states: GroupStateCopy[] = [];
  for (const g of groups) {
    if (g.hardState === null && !g.hasSnapshot) continue;
    states.push({
      group: g.group,
      hardState: g.hardState,
      snapshot: g.hasSnapshot ? { index: g.snapshotIndex, term: g.snapshotTerm } : null,
    });
  }
  return states;
}
