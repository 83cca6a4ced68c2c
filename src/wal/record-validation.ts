/**
 * Checks an `append` call before any of it is applied, so a call is written whole or not at all.
 *
 * Records of one call are checked in order against the log as the earlier records of the same call
 * would leave it. That state is kept in a small overlay per group (GroupOverlay) instead of
 * mutating the real index, which would need undoing when a later record of the call fails.
 */
import { WalInvalidRecordError, WalLimitError } from './errors.js';
import type { GroupLog } from './group-log.js';
import {
  MAX_ENTRY_TYPE,
  MAX_GROUP_ID,
  MAX_VOTE_BYTES,
  maxRecordBytes,
  maxSegmentHeaderBytes,
} from './limits.js';
import {
  entryFrameBytes,
  frameBytes,
  HARD_STATE_FIXED_BYTES,
  hardStatePayloadBytes,
  SNAPSHOT_PAYLOAD_BYTES,
  segmentHeaderFrameBytes,
  TRUNCATE_PAYLOAD_BYTES,
} from './record-codec.js';
import type { WalHardState, WalRecord } from './types.js';

export interface ValidationContext {
  groupLogs: ReadonlyMap<number, GroupLog>;
  segmentSize: number;
  /** Sum of the hard-state payload bytes all groups put in a segment header now. */
  headerHardStateBytes: number;
  /** Number of groups with a snapshot marker now. */
  headerSnapshots: number;
  /** Where validateAppend puts its result (one object, reused: appends are hot). */
  result: ValidatedAppend;
}

/** What a valid call will add: frame bytes, and the segment header's new composition. */
export interface ValidatedAppend {
  frameBytes: number;
  headerHardStateBytes: number;
  headerSnapshots: number;
}

const NO_TERMS: number[] = [];

/** One group's log as the records checked so far would leave it. */
class GroupOverlay {
  snapshotIndex: number;
  snapshotTerm: number;
  hasSnapshot: boolean;
  hardState: WalHardState | null;
  /** Entries of the real index with index in (snapshotIndex, cut] are still live. */
  private cut: number;
  /** Terms of the entries this call adds after `cut` (allocated on first use: most calls add one). */
  private added: number[] = NO_TERMS;
  private readonly base: GroupLog | undefined;

  constructor(base: GroupLog | undefined) {
    this.base = base;
    this.snapshotIndex = base?.snapshotIndex ?? 0;
    this.snapshotTerm = base?.snapshotTerm ?? 0;
    this.hasSnapshot = base?.hasSnapshot ?? false;
    this.hardState = base?.hardState ?? null;
    this.cut = base?.lastIndex() ?? 0;
  }

  lastIndex(): number {
    return this.cut + this.added.length;
  }

  termAt(index: number): number {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index <= this.cut) return this.base!.termAt(index)!;
    return this.added[index - this.cut - 1]!;
  }

  truncateFrom(index: number): void {
    if (index > this.lastIndex()) return;
    if (index - 1 < this.cut) {
      this.cut = index - 1;
      this.added.length = 0;
    } else {
      this.added.length = index - 1 - this.cut;
    }
  }

  push(term: number): void {
    if (this.added === NO_TERMS) this.added = [];
    this.added.push(term);
  }

  snapshot(index: number, term: number): void {
    if (index >= this.lastIndex()) {
      this.cut = index;
      this.added.length = 0;
    } else if (index > this.cut) {
      this.added.splice(0, index - this.cut);
      this.cut = index;
    }
    this.snapshotIndex = index;
    this.snapshotTerm = term;
    this.hasSnapshot = true;
  }
}

function fail(position: number, group: number, message: string): never {
  throw new WalInvalidRecordError(`records[${position}] (group ${group}): ${message}`);
}

function isCount(value: unknown, min: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min;
}

function checkGroup(value: unknown, position: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_GROUP_ID) {
    throw new WalInvalidRecordError(
      `records[${position}]: group must be an integer from 0 to ${MAX_GROUP_ID}, got ${String(value)}`,
    );
  }
  return value;
}

type EntryRecord = Extract<WalRecord, { kind: 'entry' }>;

/** What checkEntryPlacement needs of a group's log: the real index, or an overlay of it. */
interface LogView {
  snapshotIndex: number;
  lastIndex(): number;
  termAt(index: number): number | undefined;
}

const EMPTY_LOG: LogView = {
  snapshotIndex: 0,
  lastIndex: () => 0,
  termAt: (index) => (index === 0 ? 0 : undefined),
};

/** Checks an entry's fields and size; returns its framed size. */
function checkEntryShape(
  r: EntryRecord,
  i: number,
  group: number,
  recordLimit: number,
  segmentSize: number,
): number {
  if (!isCount(r.index, 1)) fail(i, group, `entry index must be a safe integer >= 1, got ${String(r.index)}`);
  if (!isCount(r.term, 0)) fail(i, group, `entry term must be a safe integer >= 0, got ${String(r.term)}`);
  if (!Number.isInteger(r.entryType) || r.entryType < 0 || r.entryType > MAX_ENTRY_TYPE) {
    fail(i, group, `entryType must be an integer from 0 to ${MAX_ENTRY_TYPE}, got ${String(r.entryType)}`);
  }
  if (!(r.data instanceof Uint8Array)) fail(i, group, 'entry data must be a Buffer');
  const size = entryFrameBytes(r.data.length);
  if (size > recordLimit) {
    throw new WalLimitError(
      `records[${i}] (group ${group}): entry ${r.index} takes ${size} bytes framed; the limit is ${recordLimit} bytes (half the WAL segment size ${segmentSize})`,
    );
  }
  return size;
}

/** Checks where an entry goes in the group's log: no gap, not compacted, terms never decrease. */
function checkEntryPlacement(log: LogView, r: EntryRecord, i: number, group: number): void {
  if (r.index <= log.snapshotIndex) {
    fail(i, group, `entry index ${r.index} is covered by the snapshot marker at ${log.snapshotIndex}`);
  }
  const last = log.lastIndex();
  if (r.index > last + 1) fail(i, group, `entry index ${r.index} leaves a gap after last index ${last}`);
  // Entry index - 1 stays in the log (a replaced suffix starts at index); at the snapshot index the
  // snapshot's term counts, and 0 before the first entry.
  const previousTerm = log.termAt(r.index - 1)!;
  if (r.term < previousTerm) {
    // Log terms never decrease along the log (Raft §5.3, Log Matching).
    fail(i, group, `entry ${r.index} has term ${r.term}, below term ${previousTerm} of entry ${r.index - 1}`);
  }
}

/**
 * The common call, one entry: checked straight against the index (nothing before it in the call
 * can have changed the group), without building an overlay.
 */
function validateSingleEntry(r: EntryRecord, ctx: ValidationContext): ValidatedAppend {
  const group = checkGroup(r.group, 0);
  const size = checkEntryShape(r, 0, group, maxRecordBytes(ctx.segmentSize), ctx.segmentSize);
  checkEntryPlacement(ctx.groupLogs.get(group) ?? EMPTY_LOG, r, 0, group);
  const out = ctx.result;
  out.frameBytes = size;
  out.headerHardStateBytes = ctx.headerHardStateBytes;
  out.headerSnapshots = ctx.headerSnapshots;
  return out;
}

/**
 * Throws WalInvalidRecordError / WalLimitError for the first record that is malformed, over a
 * limit, or breaks a Raft log invariant given the records before it. Returns what the call adds
 * (in ctx.result, reused from call to call).
 */
export function validateAppend(records: readonly WalRecord[], ctx: ValidationContext): ValidatedAppend {
  if (!Array.isArray(records)) throw new WalInvalidRecordError('append expects an array of records');
  const only = records.length === 1 ? (records[0] as WalRecord | null | undefined) : undefined;
  if (only !== null && typeof only === 'object' && only.kind === 'entry')
    return validateSingleEntry(only, ctx);
  // Most calls touch one group: keep its overlay at hand and build a map only for a second one.
  let lastGroup = -1;
  let lastOverlay: GroupOverlay | undefined;
  let overlays: Map<number, GroupOverlay> | null = null;
  const overlay = (group: number): GroupOverlay => {
    if (group === lastGroup) return lastOverlay!;
    let o = overlays?.get(group);
    if (o === undefined) {
      o = new GroupOverlay(ctx.groupLogs.get(group));
      if (lastOverlay !== undefined) {
        overlays ??= new Map([[lastGroup, lastOverlay]]);
        overlays.set(group, o);
      }
    }
    lastGroup = group;
    lastOverlay = o;
    return o;
  };
  const recordLimit = maxRecordBytes(ctx.segmentSize);
  let total = 0;
  let headerHardStateBytes = ctx.headerHardStateBytes;
  let headerSnapshots = ctx.headerSnapshots;
  // A segment may roll after any record of the call, so the header must fit at every step.
  let headerPeak = segmentHeaderFrameBytes(headerHardStateBytes, headerSnapshots);

  for (let i = 0; i < records.length; i++) {
    const r = records[i] as WalRecord | null | undefined;
    if (r === null || typeof r !== 'object') throw new WalInvalidRecordError(`records[${i}] is not a record`);
    const group = checkGroup(r.group, i);
    switch (r.kind) {
      case 'entry': {
        const size = checkEntryShape(r, i, group, recordLimit, ctx.segmentSize);
        const o = overlay(group);
        checkEntryPlacement(o, r, i, group);
        // An entry at or below lastIndex replaces the suffix from there (Raft §5.3).
        o.truncateFrom(r.index);
        o.push(r.term);
        total += size;
        break;
      }
      case 'hardState': {
        if (!isCount(r.term, 0))
          fail(i, group, `hard state term must be a safe integer >= 0, got ${String(r.term)}`);
        if (!isCount(r.commit, 0)) {
          fail(i, group, `hard state commit must be a safe integer >= 0, got ${String(r.commit)}`);
        }
        if (typeof r.vote !== 'string') fail(i, group, 'hard state vote must be a string (empty for none)');
        const voteBytes = Buffer.byteLength(r.vote, 'utf8');
        if (voteBytes > MAX_VOTE_BYTES) {
          throw new WalLimitError(
            `records[${i}] (group ${group}): vote takes ${voteBytes} bytes in UTF-8; the limit is ${MAX_VOTE_BYTES}`,
          );
        }
        const o = overlay(group);
        const prev = o.hardState;
        if (prev !== null) {
          // Raft Figure 2: currentTerm only grows; votedFor is fixed for a term; commitIndex only grows.
          if (r.term < prev.term)
            fail(i, group, `hard state term ${r.term} is below the stored term ${prev.term}`);
          if (r.term === prev.term && prev.vote !== '' && r.vote !== prev.vote) {
            fail(i, group, `vote changed from "${prev.vote}" to "${r.vote}" within term ${r.term}`);
          }
          if (r.commit < prev.commit) {
            fail(i, group, `commit ${r.commit} is below the stored commit ${prev.commit}`);
          }
          headerHardStateBytes -= hardStatePayloadBytes(Buffer.byteLength(prev.vote, 'utf8'));
        }
        headerHardStateBytes += HARD_STATE_FIXED_BYTES + voteBytes;
        headerPeak = Math.max(headerPeak, segmentHeaderFrameBytes(headerHardStateBytes, headerSnapshots));
        o.hardState = { term: r.term, vote: r.vote, commit: r.commit };
        total += frameBytes(HARD_STATE_FIXED_BYTES + voteBytes);
        break;
      }
      case 'snapshot': {
        if (!isCount(r.index, 0))
          fail(i, group, `snapshot index must be a safe integer >= 0, got ${String(r.index)}`);
        if (!isCount(r.term, 0))
          fail(i, group, `snapshot term must be a safe integer >= 0, got ${String(r.term)}`);
        const o = overlay(group);
        if (o.hasSnapshot) {
          if (r.index < o.snapshotIndex) {
            fail(i, group, `snapshot marker ${r.index} goes backwards from ${o.snapshotIndex}`);
          }
          if (r.term < o.snapshotTerm) {
            fail(i, group, `snapshot term ${r.term} goes backwards from ${o.snapshotTerm}`);
          }
          if (r.index === o.snapshotIndex && r.term !== o.snapshotTerm) {
            fail(
              i,
              group,
              `snapshot marker ${r.index} repeated with term ${r.term} instead of ${o.snapshotTerm}`,
            );
          }
        } else {
          headerSnapshots++;
          headerPeak = Math.max(headerPeak, segmentHeaderFrameBytes(headerHardStateBytes, headerSnapshots));
        }
        if (r.index > o.snapshotIndex && r.index <= o.lastIndex() && o.termAt(r.index) !== r.term) {
          fail(
            i,
            group,
            `snapshot marker (${r.index}, term ${r.term}) conflicts with entry ${r.index} of term ${o.termAt(r.index)}: truncate the conflicting suffix first`,
          );
        }
        o.snapshot(r.index, r.term);
        total += frameBytes(SNAPSHOT_PAYLOAD_BYTES);
        break;
      }
      case 'truncate': {
        if (!isCount(r.fromIndex, 1)) {
          fail(i, group, `truncate fromIndex must be a safe integer >= 1, got ${String(r.fromIndex)}`);
        }
        const o = overlay(group);
        if (r.fromIndex <= o.snapshotIndex) {
          fail(
            i,
            group,
            `cannot truncate from ${r.fromIndex}: entries up to ${o.snapshotIndex} are covered by the snapshot marker`,
          );
        }
        o.truncateFrom(r.fromIndex);
        total += frameBytes(TRUNCATE_PAYLOAD_BYTES);
        break;
      }
      default:
        throw new WalInvalidRecordError(
          `records[${i}]: unknown record kind ${JSON.stringify((r as { kind?: unknown }).kind)}`,
        );
    }
  }
  const headerLimit = maxSegmentHeaderBytes(ctx.segmentSize);
  if (headerPeak > headerLimit) {
    throw new WalLimitError(
      `the hard states and snapshot markers of all groups would take ${headerPeak} bytes in each segment header; the limit is ${headerLimit} bytes (half the WAL segment size ${ctx.segmentSize}): use a larger segment size or fewer groups`,
    );
  }
  const out = ctx.result;
  out.frameBytes = total;
  out.headerHardStateBytes = headerHardStateBytes;
  out.headerSnapshots = headerSnapshots;
  return out;
}

/** Bytes a hard state adds to the segment header. */
export function headerHardStateBytesOf(hardState: WalHardState): number {
  return hardStatePayloadBytes(Buffer.byteLength(hardState.vote, 'utf8'));
}
