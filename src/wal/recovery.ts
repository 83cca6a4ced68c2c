/**
 * Recovery on open: read every segment, verify every record's CRC32C, and rebuild the in-memory
 * index. Rules (DESIGN.md §4, docs/storage.md "Recovery"):
 *
 * - A bad or incomplete record at the tail of the LAST segment, after which no valid record
 *   follows anywhere in that segment, is a write torn by a crash: it is cut off (zeroed).
 * - Any other bad record (a non-last segment, or a valid record follows it) raises
 *   WalCorruptionError with file and offset. Nothing at or after it is trusted or returned.
 * - A record with a valid checksum that breaks the log's invariants (an index gap, a term going
 *   down, a segment header that disagrees with the log before it) is corruption too.
 *
 * Replay is lenient in one way only: a group whose log is empty accepts its first entry at any
 * index, because releasing old segments can leave entries ahead of the snapshot marker that covers
 * what was released (that marker comes later in the log). Once everything is read, each group's
 * entries must start right after its snapshot marker, or segments are missing.
 */
import { closeSync, fstatSync, openSync, readdirSync, readSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { WalCorruptionError } from './errors.js';
import { GroupLog, packPosition, positionOffset, positionSeq } from './group-log.js';
import { checkSegmentSize, MAX_SEGMENT_SIZE } from './limits.js';
import {
  type DecodedRecord,
  decodeRecord,
  endOfNonZero,
  findValidFrame,
  type GroupStateCopy,
  isAllZero,
  RecordType,
  readFrame,
} from './record-codec.js';
import {
  closeQuietly,
  PREALLOCATED_FILE,
  parseSegmentFileName,
  type SegmentFile,
  segmentFileName,
} from './segment-files.js';

export type { SegmentFile };

/** What the log must do to the last segment before it appends again. */
export type TailRepair =
  /** No segment yet, or the last one's header was torn: write segment `seq` afresh (header only). */
  | { kind: 'createSegment'; seq: number }
  /** Zero the torn bytes [from, to) and make the file `size` long again. */
  | { kind: 'zeroTail'; from: number; to: number; size: number; fileSize: number }
  | { kind: 'none' };

export interface RecoveredLog {
  groups: Map<number, GroupLog>;
  /** Ascending by seq, with open descriptors (the last one read-write). Excludes a segment to be created. */
  segments: SegmentFile[];
  /** Where the next record goes (valid unless repair is 'createSegment'). */
  tailOffset: number;
  repair: TailRepair;
}

export function recoverLog(dir: string): RecoveredLog {
  const names = readdirSync(dir);
  if (names.includes(PREALLOCATED_FILE)) unlinkSync(join(dir, PREALLOCATED_FILE));
  const seqs = names
    .map(parseSegmentFileName)
    .filter((s): s is number => s !== null)
    .sort((a, b) => a - b);
  const groups = new Map<number, GroupLog>();
  if (seqs.length === 0) {
    return { groups, segments: [], tailOffset: 0, repair: { kind: 'createSegment', seq: 1 } };
  }
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i] !== seqs[i - 1]! + 1) {
      throw new WalCorruptionError(
        join(dir, segmentFileName(seqs[i - 1]! + 1)),
        0,
        `segment file is missing between ${segmentFileName(seqs[i - 1]!)} and ${segmentFileName(seqs[i]!)}`,
      );
    }
  }

  const segments: SegmentFile[] = [];
  let buffer = Buffer.alloc(0);
  let tailOffset = 0;
  let repair: TailRepair = { kind: 'none' };
  try {
    for (let k = 0; k < seqs.length; k++) {
      const seq = seqs[k]!;
      const isLast = k === seqs.length - 1;
      const path = join(dir, segmentFileName(seq));
      const fd = openSync(path, isLast ? 'r+' : 'r');
      const segment: SegmentFile = { seq, path, fd, size: 0, maxEntryIndex: new Map() };
      segments.push(segment);
      const fileSize = fstatSync(fd).size;
      if (fileSize > MAX_SEGMENT_SIZE) {
        throw new WalCorruptionError(
          path,
          0,
          `segment file of ${fileSize} bytes exceeds ${MAX_SEGMENT_SIZE}`,
        );
      }
      if (buffer.length < fileSize) buffer = Buffer.allocUnsafe(fileSize);
      readAll(fd, buffer, fileSize);
      const outcome = replaySegment(buffer, fileSize, segment, k === 0, isLast, groups);
      if (outcome.kind === 'tornHeader') {
        if (k === 0 && seq !== 1) {
          throw new WalCorruptionError(
            path,
            0,
            'the header of the oldest remaining segment is unreadable, and the segments before it were released: hard states and snapshot markers are lost',
          );
        }
        closeSync(fd);
        segments.pop();
        repair = { kind: 'createSegment', seq };
      } else {
        segment.size = outcome.size;
        tailOffset = outcome.end;
        if (outcome.dirtyEnd > outcome.end || fileSize < outcome.size) {
          repair = {
            kind: 'zeroTail',
            from: outcome.end,
            to: outcome.dirtyEnd,
            size: outcome.size,
            fileSize,
          };
        }
      }
    }
    checkContiguous(groups, segments);
  } catch (err) {
    for (const s of segments) closeQuietly(s.fd);
    throw err;
  }
  return { groups, segments, tailOffset, repair };
}

function readAll(fd: number, buf: Buffer, length: number): void {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, done);
    if (n === 0) break;
    done += n;
  }
  if (done < length) buf.fill(0, done, length);
}

type SegmentOutcome =
  | { kind: 'ok'; size: number; end: number; dirtyEnd: number }
  /** The last segment's header is torn and nothing valid follows. */
  | { kind: 'tornHeader' };

function replaySegment(
  buf: Buffer,
  fileSize: number,
  segment: SegmentFile,
  isFirst: boolean,
  isLast: boolean,
  groups: Map<number, GroupLog>,
): SegmentOutcome {
  const { path } = segment;
  const headerFrame = readFrame(buf, 0, fileSize);
  if (headerFrame.kind !== 'record') {
    const reason = headerFrame.kind === 'bad' ? headerFrame.reason : 'segment header missing';
    if (!isLast) throw new WalCorruptionError(path, 0, reason);
    const valid = findValidFrame(buf, 0, fileSize);
    if (valid >= 0) {
      throw new WalCorruptionError(path, 0, `${reason}; a valid record follows at offset ${valid}`);
    }
    return { kind: 'tornHeader' };
  }
  const header = decodeRecord(buf, headerFrame);
  if (typeof header === 'string') throw new WalCorruptionError(path, 0, header);
  if (header.type !== RecordType.SegmentHeader) {
    throw new WalCorruptionError(path, 0, 'the segment does not start with a segment header');
  }
  if (header.seq !== segment.seq) {
    throw new WalCorruptionError(path, 0, `segment header names segment ${header.seq}, not ${segment.seq}`);
  }
  try {
    checkSegmentSize(header.segmentSize);
  } catch {
    throw new WalCorruptionError(path, 0, `segment header has an invalid segment size ${header.segmentSize}`);
  }
  // Only the last segment may be shorter than its header says (someone truncated it); recovery
  // treats the missing bytes as zeros and fills them in again.
  if (fileSize > header.segmentSize || (!isLast && fileSize !== header.segmentSize)) {
    throw new WalCorruptionError(
      path,
      0,
      `segment file is ${fileSize} bytes but its header says ${header.segmentSize}`,
    );
  }
  applyHeaderStates(path, header.states, isFirst, groups);

  const limit = fileSize;
  let offset = headerFrame.next;
  let stop: { offset: number; reason: string } | null = null;
  for (;;) {
    const frame = readFrame(buf, offset, limit);
    if (frame.kind === 'end') break;
    if (frame.kind === 'bad') {
      stop = { offset, reason: frame.reason };
      break;
    }
    const record = decodeRecord(buf, frame);
    if (typeof record === 'string') throw new WalCorruptionError(path, offset, record);
    const problem = replayRecord(
      record,
      segment,
      packPosition(segment.seq, offset),
      frame.next - offset,
      groups,
    );
    if (problem !== null) throw new WalCorruptionError(path, offset, problem);
    offset = frame.next;
  }
  if (stop === null && !isAllZero(buf, offset, limit)) {
    stop = { offset, reason: 'non-zero bytes after the last record' };
  }
  if (stop === null) return { kind: 'ok', size: header.segmentSize, end: offset, dirtyEnd: offset };
  if (!isLast) throw new WalCorruptionError(path, stop.offset, stop.reason);
  const valid = findValidFrame(buf, stop.offset, limit);
  if (valid >= 0) {
    throw new WalCorruptionError(
      path,
      stop.offset,
      `${stop.reason}; a valid record follows at offset ${valid}`,
    );
  }
  // A torn tail: cut it off.
  return {
    kind: 'ok',
    size: header.segmentSize,
    end: stop.offset,
    dirtyEnd: endOfNonZero(buf, stop.offset, limit),
  };
}

function groupOf(groups: Map<number, GroupLog>, group: number): GroupLog {
  let g = groups.get(group);
  if (g === undefined) {
    g = new GroupLog(group);
    groups.set(group, g);
  }
  return g;
}

/**
 * A segment header repeats every group's hard state and snapshot marker. In the oldest segment
 * present they are the starting point; in later ones they must equal what the log before says.
 */
function applyHeaderStates(
  path: string,
  states: GroupStateCopy[],
  isFirst: boolean,
  groups: Map<number, GroupLog>,
): void {
  if (isFirst) {
    for (const s of states) {
      const g = groupOf(groups, s.group);
      if (s.hardState !== null) g.hardState = { ...s.hardState };
      if (s.snapshot !== null) g.applySnapshot(s.snapshot.index, s.snapshot.term);
    }
    return;
  }
  let hardStates = 0;
  let snapshots = 0;
  for (const g of groups.values()) {
    if (g.hardState !== null) hardStates++;
    if (g.hasSnapshot) snapshots++;
  }
  for (const s of states) {
    const g = groups.get(s.group);
    const hs = g?.hardState ?? null;
    const sameHardState =
      s.hardState === null
        ? hs === null
        : hs !== null &&
          hs.term === s.hardState.term &&
          hs.vote === s.hardState.vote &&
          hs.commit === s.hardState.commit;
    const sameSnapshot =
      s.snapshot === null
        ? g === undefined || !g.hasSnapshot
        : g?.hasSnapshot === true &&
          g.snapshotIndex === s.snapshot.index &&
          g.snapshotTerm === s.snapshot.term;
    if (!sameHardState || !sameSnapshot) {
      throw new WalCorruptionError(
        path,
        0,
        `segment header disagrees with the preceding segments about group ${s.group}'s hard state or snapshot marker`,
      );
    }
    if (s.hardState !== null) hardStates--;
    if (s.snapshot !== null) snapshots--;
  }
  if (hardStates !== 0 || snapshots !== 0) {
    throw new WalCorruptionError(
      path,
      0,
      'segment header lacks the state of groups the preceding segments hold',
    );
  }
}

/** Applies one record during replay; returns why it cannot be applied, or null. */
function replayRecord(
  record: DecodedRecord,
  segment: SegmentFile,
  position: number,
  size: number,
  groups: Map<number, GroupLog>,
): string | null {
  switch (record.type) {
    case RecordType.Entry: {
      const g = groupOf(groups, record.group);
      const { index, term } = record;
      if (index <= g.snapshotIndex) {
        return `entry ${index} of group ${record.group} is at or below its snapshot marker ${g.snapshotIndex}`;
      }
      if (g.entryCount > 0 && index > g.lastIndex() + 1) {
        return `entry ${index} of group ${record.group} leaves a gap after index ${g.lastIndex()}`;
      }
      const previousTerm = g.termAt(index - 1);
      if (previousTerm !== undefined && term < previousTerm) {
        return `entry ${index} of group ${record.group} has term ${term}, below term ${previousTerm} before it`;
      }
      g.appendEntry(index, term, position, size);
      const max = segment.maxEntryIndex.get(record.group) ?? 0;
      if (index > max) segment.maxEntryIndex.set(record.group, index);
      return null;
    }
    case RecordType.HardState: {
      const g = groupOf(groups, record.group);
      const prev = g.hardState;
      if (prev !== null) {
        if (record.term < prev.term) return `hard state term of group ${record.group} goes down`;
        if (record.term === prev.term && prev.vote !== '' && record.vote !== prev.vote) {
          return `vote of group ${record.group} changes within term ${record.term}`;
        }
        if (record.commit < prev.commit) return `commit of group ${record.group} goes down`;
      }
      g.hardState = { term: record.term, vote: record.vote, commit: record.commit };
      return null;
    }
    case RecordType.Snapshot: {
      const g = groupOf(groups, record.group);
      if (g.hasSnapshot) {
        if (record.index < g.snapshotIndex || record.term < g.snapshotTerm) {
          return `snapshot marker of group ${record.group} goes backwards`;
        }
        if (record.index === g.snapshotIndex && record.term !== g.snapshotTerm) {
          return `snapshot marker of group ${record.group} repeated with another term`;
        }
      }
      if (
        g.hasEntry(record.index) &&
        record.index > g.snapshotIndex &&
        g.termAt(record.index) !== record.term
      ) {
        return `snapshot marker of group ${record.group} conflicts with entry ${record.index}`;
      }
      g.applySnapshot(record.index, record.term);
      return null;
    }
    case RecordType.Truncate: {
      const g = groupOf(groups, record.group);
      if (record.fromIndex <= g.snapshotIndex) {
        return `truncation of group ${record.group} from ${record.fromIndex} reaches into its snapshot`;
      }
      g.truncateFrom(record.fromIndex);
      return null;
    }
    case RecordType.SegmentHeader:
      return 'segment header in the middle of a segment';
  }
}

/** After replay, every group's entries must start right after its snapshot marker. */
function checkContiguous(groups: Map<number, GroupLog>, segments: SegmentFile[]): void {
  for (const g of groups.values()) {
    if (g.entryCount === 0 || g.firstEntryIndex === g.snapshotIndex + 1) continue;
    const position = g.positionOf(g.firstEntryIndex);
    const segment = segments.find((s) => s.seq === positionSeq(position));
    throw new WalCorruptionError(
      segment?.path ?? `segment ${positionSeq(position)}`,
      positionOffset(position),
      `entries of group ${g.group} start at index ${g.firstEntryIndex} but its snapshot marker is at ${g.snapshotIndex}: entries ${g.snapshotIndex + 1}..${g.firstEntryIndex - 1} are missing`,
    );
  }
}
