/**
 * The node's write-ahead log: one log shared by all Raft groups of a node (DESIGN.md §4), so one
 * fdatasync makes every group's writes durable (group commit).
 *
 * Writing. `append` checks and encodes its records at once into the pending batch and updates the
 * in-memory index, then returns the batch's promise. The batch is written with one write and made
 * durable with one fdatasync once the current callback is done (a microtask), so every append of
 * the same callback shares them; while a batch is being synced, new appends accumulate in the next
 * one (pipelining). Not the next loop turn: a node appends one Ready at a time and waits for it, so
 * waiting for the turn batches nothing and only delays its fdatasync (0.1-0.4 ms per append, traced
 * on a loaded 2-core machine, on the leader's and the follower's side of every commit).
 * Records that do not fit in the current segment go to the next one; the old segment is synced
 * before the first byte goes to the new one, so only the last segment can ever hold a torn write.
 *
 * Reading. Only an index (group -> index -> segment, offset, size, term) lives in memory; entry
 * data is read from the files (or from a batch not yet written) when asked for, and its checksum
 * is verified again on every read. Reads see every accepted append at once, durable or not:
 * await `append` before acting on its durability (Raft: before sending what depends on it).
 *
 * Segments. Fixed-size files, zero-filled and fsynced before use; the next one is prepared in the
 * background. Each starts with a header that repeats every group's hard state and snapshot marker,
 * so `release` can delete old segments without losing them (as etcd does when it cuts a segment).
 *
 * Failure. If a write or fdatasync fails, the log stops (fail-stop): after a failed fsync the
 * kernel may have dropped the dirty pages, and retrying would report success for lost data.
 */
import { readSync } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { WalClosedError, WalCorruptionError, WalError, WalFailedError, WalLimitError } from './errors.js';
import { fdatasyncFile, fsyncFile, writeFullySync } from './file-io.js';
import { GroupLog, packPosition, positionOffset, positionSeq, stateCopiesOf } from './group-log.js';
import {
  checkSegmentSize,
  DEFAULT_MAX_PENDING_BYTES,
  DEFAULT_SEGMENT_SIZE,
  MAX_SEGMENT_SEQ,
  MIN_MAX_PENDING_BYTES,
  MiB,
} from './limits.js';
import {
  decodeRecord,
  encodeEntry,
  encodeHardState,
  encodeSegmentHeader,
  encodeSnapshot,
  encodeTruncate,
  entryFrameBytes,
  frameBytes,
  HARD_STATE_FIXED_BYTES,
  RecordType,
  readFrame,
  SNAPSHOT_PAYLOAD_BYTES,
  segmentHeaderFrameBytesOf,
  TRUNCATE_PAYLOAD_BYTES,
} from './record-codec.js';
import { headerHardStateBytesOf, type ValidationContext, validateAppend } from './record-validation.js';
import { recoverLog } from './recovery.js';
import {
  closeQuietly,
  createSegmentWithHeader,
  fsyncDirectory,
  lockDirectory,
  type SegmentFile,
  SegmentPreallocator,
  segmentFileName,
  zeroRange,
} from './segment-files.js';
import { parseSyncMode, type SyncMode } from './sync-mode.js';
import type {
  WalEntry,
  WalHardState,
  WalOptions,
  WalRecord,
  WalSnapshotMarker,
  WalSyncStats,
} from './types.js';

/** Bytes of one contiguous read in `entries` (a single larger entry is read on its own). */
const MAX_READ_SPAN = 1 * MiB;
const INITIAL_CHUNK_BYTES = 64 * 1024;
/** Batch buffers kept for reuse, and the largest one worth keeping. */
const POOLED_BUFFERS = 4;
const MAX_POOLED_BUFFER = 8 * MiB;

/** Bytes of a batch bound for one segment, at one file offset. */
interface Chunk {
  seq: number;
  fileOffset: number;
  buf: Buffer;
  len: number;
  records: number;
  /** The segment starts with this chunk: its file must be put in place first. */
  newSegment: boolean;
}

/** All appends of one turn: written with one write per segment and one fdatasync. */
class Batch {
  readonly chunks: Chunk[] = [];
  records = 0;
  bytes = 0;
  /** Snapshot markers in this batch: once durable, they allow releasing segments. */
  readonly snapshots: Array<[group: number, index: number]> = [];
  /** Highest segment whose header this batch writes (0: none). */
  headerSeq = 0;
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (err: Error) => void;

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/** What becomes true once a written batch is synced. */
interface DurabilityEffects {
  snapshots: Array<[number, number]>;
  headerSeq: number;
}

type LogState = 'open' | 'closing' | 'closed' | 'failed';

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class WriteAheadLog {
  private readonly dir: string;
  private readonly segmentSize: number;
  private readonly syncMode: SyncMode;
  private readonly onSync: ((stats: WalSyncStats) => void) | undefined;
  private readonly maxPendingBytes: number;
  private readonly unlock: () => void;
  private readonly preallocator: SegmentPreallocator;

  private readonly groupLogs: Map<number, GroupLog>;
  /** Live segments by number, ascending (Map keeps insertion order). */
  private readonly segments = new Map<number, SegmentFile>();
  /** What validateAppend checks a call against (the index, and the segment header's size now). */
  private readonly validation: ValidationContext;

  /** Where the next record goes (counts records appended but not yet written). */
  private tailSegment: SegmentFile;
  private tailSeq: number;
  private tailOffset: number;
  private tailSize: number;
  /** Offset in its chunk of the record `reserve` made room for. */
  private reservedAt = 0;
  /** Segment of the last chunk written to a file. */
  private writtenSeq: number;

  private pending: Batch | null = null;
  private inFlight: Batch | null = null;
  /** Chunks not yet written, oldest first: reads of their records are served from memory. */
  private readonly unwritten: Chunk[] = [];
  private readonly bufferPool: Buffer[] = [];
  private pumping = false;
  private syncRequested = false;
  private syncWaiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  private timer: NodeJS.Timeout | null = null;

  private state: LogState = 'open';
  private failure: WalFailedError | null = null;
  private closePromise: Promise<void> | null = null;

  /** Per group, the highest snapshot marker known to be on stable storage. */
  private readonly durableSnapshotIndex = new Map<number, number>();
  /** Highest segment whose header is on stable storage. */
  private durableHeaderSeq: number;
  /** Effects of batches written but not yet covered by an fdatasync, oldest first. */
  private readonly writtenNotSynced: DurabilityEffects[] = [];
  private unsyncedRecords = 0;
  private unsyncedBytes = 0;
  private releaseChain: Promise<unknown> = Promise.resolve();

  private constructor(init: {
    dir: string;
    segmentSize: number;
    syncMode: SyncMode;
    onSync: ((stats: WalSyncStats) => void) | undefined;
    maxPendingBytes: number;
    unlock: () => void;
    groups: Map<number, GroupLog>;
    segments: SegmentFile[];
    tailOffset: number;
  }) {
    this.dir = init.dir;
    this.segmentSize = init.segmentSize;
    this.syncMode = init.syncMode;
    this.onSync = init.onSync;
    this.maxPendingBytes = init.maxPendingBytes;
    this.unlock = init.unlock;
    this.groupLogs = init.groups;
    for (const s of init.segments) this.segments.set(s.seq, s);
    const tail = init.segments[init.segments.length - 1]!;
    this.tailSegment = tail;
    this.tailSeq = tail.seq;
    this.tailOffset = init.tailOffset;
    this.tailSize = tail.size;
    this.writtenSeq = tail.seq;
    this.durableHeaderSeq = tail.seq;
    this.validation = {
      groupLogs: this.groupLogs,
      segmentSize: this.segmentSize,
      headerHardStateBytes: 0,
      headerSnapshots: 0,
      result: { frameBytes: 0, headerHardStateBytes: 0, headerSnapshots: 0 },
    };
    for (const g of this.groupLogs.values()) {
      if (g.hardState !== null) this.validation.headerHardStateBytes += headerHardStateBytesOf(g.hardState);
      if (g.hasSnapshot) {
        this.validation.headerSnapshots++;
        this.durableSnapshotIndex.set(g.group, g.snapshotIndex);
      }
    }
    this.preallocator = new SegmentPreallocator(this.dir, this.segmentSize);
    this.preallocator.start();
    if (this.syncMode.kind === 'interval') {
      this.timer = setInterval(() => {
        if (this.unsyncedBytes > 0 || this.writtenNotSynced.length > 0) this.requestSync();
      }, this.syncMode.intervalMs);
      this.timer.unref();
    }
  }

  /**
   * Opens (creating if needed) the log in `dir`, verifies every record and rebuilds the index.
   * Throws WalCorruptionError if a record other than the torn tail of the last segment is bad.
   */
  static async open(dir: string, options: WalOptions = {}): Promise<WriteAheadLog> {
    const segmentSize = checkSegmentSize(options.segmentSize ?? DEFAULT_SEGMENT_SIZE);
    const syncMode = parseSyncMode(options.syncMode ?? 'always');
    if (options.onSync !== undefined && typeof options.onSync !== 'function') {
      throw new WalError('WAL option onSync must be a function');
    }
    const maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    if (!Number.isSafeInteger(maxPendingBytes) || maxPendingBytes < MIN_MAX_PENDING_BYTES) {
      throw new RangeError(
        `invalid WAL maxPendingBytes ${maxPendingBytes}: must be at least ${MIN_MAX_PENDING_BYTES}`,
      );
    }
    await mkdir(dir, { recursive: true });
    const unlock = lockDirectory(dir);
    let segments: SegmentFile[] = [];
    try {
      const recovered = recoverLog(dir);
      segments = recovered.segments;
      let tailOffset = recovered.tailOffset;
      const repair = recovered.repair;
      if (repair.kind === 'createSegment') {
        const created = await createSegmentWithHeader(
          dir,
          repair.seq,
          segmentSize,
          stateCopiesOf(recovered.groups.values()),
        );
        segments.push(created.segment);
        tailOffset = created.headerBytes;
      } else {
        const tail = segments[segments.length - 1]!;
        if (repair.kind === 'zeroTail') {
          await zeroRange(tail.fd, repair.from, Math.max(repair.to, repair.from));
          if (repair.fileSize < repair.size) await zeroRange(tail.fd, repair.fileSize, repair.size);
          await fsyncFile(tail.fd);
        } else {
          // What recovery read may have been written by a process that died before its fdatasync:
          // make it durable before anything (a vote, a release) depends on it.
          await fdatasyncFile(tail.fd);
        }
      }
      return new WriteAheadLog({
        dir,
        segmentSize,
        syncMode,
        onSync: options.onSync,
        maxPendingBytes,
        unlock,
        groups: recovered.groups,
        segments,
        tailOffset,
      });
    } catch (err) {
      for (const s of segments) closeQuietly(s.fd);
      unlock();
      throw err;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Writing

  /**
   * Appends records; resolves once they are durable (sync mode `always`) or written to the OS
   * (`interval`). The whole call is checked first: a malformed record, one over a limit, or one
   * that breaks a Raft log invariant rejects the call and nothing of it is written.
   */
  append(records: WalRecord[]): Promise<void> {
    const unusable = this.unusable('append');
    if (unusable !== null) return Promise.reject(unusable);
    let checked: ReturnType<typeof validateAppend>;
    try {
      checked = validateAppend(records, this.validation);
    } catch (err) {
      return Promise.reject(err);
    }
    if (records.length === 0) return this.barrier();
    const queued = this.pending?.bytes ?? 0;
    if (queued + checked.frameBytes > this.maxPendingBytes) {
      return Promise.reject(
        new WalLimitError(
          `WAL write queue is full: ${queued} bytes wait for the disk and this append adds ${checked.frameBytes}; the limit (maxPendingBytes) is ${this.maxPendingBytes}`,
        ),
      );
    }
    this.validation.headerHardStateBytes = checked.headerHardStateBytes;
    this.validation.headerSnapshots = checked.headerSnapshots;
    const batch = this.pendingBatch();
    try {
      for (const record of records) this.writeRecord(batch, record);
    } catch (err) {
      // Only a broken invariant of the log itself gets here (the call was validated): stop.
      this.fail(err);
      return Promise.reject(this.failure);
    }
    return batch.promise;
  }

  /**
   * Removes the group's entries from `fromIndex` on, durably (it is an append of a `truncate`
   * record). Entries covered by the snapshot marker cannot be truncated. Nothing is written when
   * fromIndex > lastIndex; the promise then resolves once earlier appends are durable.
   */
  truncateSuffix(group: number, fromIndex: number): Promise<void> {
    return this.append([{ kind: 'truncate', group, fromIndex }]);
  }

  /** Resolves once everything appended so far is as durable as the sync mode makes it. */
  private barrier(): Promise<void> {
    const batch = this.pending ?? this.inFlight;
    return batch === null ? Promise.resolve() : batch.promise;
  }

  private pendingBatch(): Batch {
    if (this.pending === null) {
      this.pending = new Batch();
      this.kick();
    }
    return this.pending;
  }

  private writeRecord(batch: Batch, record: WalRecord): void {
    switch (record.kind) {
      case 'entry': {
        const size = entryFrameBytes(record.data.length);
        const chunk = this.reserve(batch, size);
        const at = this.reservedAt;
        encodeEntry(chunk.buf, at, record.group, record.term, record.index, record.entryType, record.data);
        const position = packPosition(chunk.seq, chunk.fileOffset + at);
        this.groupLog(record.group).appendEntry(record.index, record.term, position, size);
        const maxIndex = this.tailSegment.maxEntryIndex;
        if ((maxIndex.get(record.group) ?? 0) < record.index) maxIndex.set(record.group, record.index);
        return;
      }
      case 'hardState': {
        const size = frameBytes(HARD_STATE_FIXED_BYTES + Buffer.byteLength(record.vote, 'utf8'));
        const chunk = this.reserve(batch, size);
        encodeHardState(chunk.buf, this.reservedAt, record.group, record.term, record.commit, record.vote);
        this.groupLog(record.group).hardState = {
          term: record.term,
          vote: record.vote,
          commit: record.commit,
        };
        return;
      }
      case 'snapshot': {
        const size = frameBytes(SNAPSHOT_PAYLOAD_BYTES);
        const chunk = this.reserve(batch, size);
        encodeSnapshot(chunk.buf, this.reservedAt, record.group, record.index, record.term);
        this.groupLog(record.group).applySnapshot(record.index, record.term);
        batch.snapshots.push([record.group, record.index]);
        return;
      }
      case 'truncate': {
        const g = this.groupLogs.get(record.group);
        if (g === undefined || record.fromIndex > g.lastIndex()) return; // nothing to drop
        const size = frameBytes(TRUNCATE_PAYLOAD_BYTES);
        const chunk = this.reserve(batch, size);
        encodeTruncate(chunk.buf, this.reservedAt, record.group, record.fromIndex);
        g.truncateFrom(record.fromIndex);
        return;
      }
    }
  }

  private groupLog(group: number): GroupLog {
    let g = this.groupLogs.get(group);
    if (g === undefined) {
      g = new GroupLog(group);
      this.groupLogs.set(group, g);
    }
    return g;
  }

  /**
   * Finds room for one record of `size` bytes at the tail, rolling to a new segment if it does not
   * fit, and counts it in the batch. Returns the chunk; the record goes at `this.reservedAt` in it.
   * (Two results without an object per record: this is the hottest path of an append.)
   */
  private reserve(batch: Batch, size: number): Chunk {
    if (this.tailOffset + size > this.tailSize) {
      this.roll(batch);
      if (this.tailOffset + size > this.tailSize) {
        // validateAppend keeps records and headers within half a segment each.
        throw new Error(`WAL invariant broken: a ${size}-byte record does not fit in a fresh segment`);
      }
    }
    let chunk = batch.chunks[batch.chunks.length - 1];
    if (chunk === undefined || chunk.seq !== this.tailSeq) {
      chunk = this.newChunk(batch, this.tailSeq, this.tailOffset, false, size);
    }
    this.ensureCapacity(chunk, size);
    this.reservedAt = chunk.len;
    chunk.len += size;
    chunk.records++;
    batch.records++;
    batch.bytes += size;
    this.tailOffset += size;
    return chunk;
  }

  /** Starts the next segment in this batch: its header repeats every group's state. */
  private roll(batch: Batch): void {
    const seq = this.tailSeq + 1;
    if (seq > MAX_SEGMENT_SEQ) throw new WalLimitError(`WAL segment number limit ${MAX_SEGMENT_SEQ} reached`);
    const states = stateCopiesOf(this.groupLogs.values());
    const headerBytes = segmentHeaderFrameBytesOf(states);
    const chunk = this.newChunk(batch, seq, 0, true, headerBytes);
    chunk.len = encodeSegmentHeader(chunk.buf, 0, seq, this.segmentSize, states);
    batch.bytes += chunk.len;
    batch.headerSeq = seq;
    this.tailSegment = {
      seq,
      path: join(this.dir, segmentFileName(seq)),
      fd: -1,
      size: this.segmentSize,
      maxEntryIndex: new Map(),
    };
    this.segments.set(seq, this.tailSegment);
    this.tailSeq = seq;
    this.tailOffset = chunk.len;
    this.tailSize = this.segmentSize;
  }

  private newChunk(
    batch: Batch,
    seq: number,
    fileOffset: number,
    newSegment: boolean,
    minBytes: number,
  ): Chunk {
    const chunk: Chunk = { seq, fileOffset, buf: this.takeBuffer(minBytes), len: 0, records: 0, newSegment };
    batch.chunks.push(chunk);
    this.unwritten.push(chunk);
    return chunk;
  }

  private ensureCapacity(chunk: Chunk, more: number): void {
    const needed = chunk.len + more;
    if (needed <= chunk.buf.length) return;
    let capacity = chunk.buf.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = Buffer.allocUnsafe(capacity);
    chunk.buf.copy(grown, 0, 0, chunk.len);
    this.recycleBuffer(chunk.buf);
    chunk.buf = grown;
  }

  private takeBuffer(minBytes: number): Buffer {
    for (let i = 0; i < this.bufferPool.length; i++) {
      if (this.bufferPool[i]!.length >= minBytes) return this.bufferPool.splice(i, 1)[0]!;
    }
    let capacity = INITIAL_CHUNK_BYTES;
    while (capacity < minBytes) capacity *= 2;
    return Buffer.allocUnsafe(capacity);
  }

  private recycleBuffer(buf: Buffer): void {
    if (buf.length <= MAX_POOLED_BUFFER && this.bufferPool.length < POOLED_BUFFERS) this.bufferPool.push(buf);
  }

  // ---------------------------------------------------------------------------------------------
  // Flushing: one batch at a time; appends of the meantime accumulate in the next one.

  private kick(): void {
    if (this.pumping) return;
    this.pumping = true;
    queueMicrotask(this.runPump);
  }

  private readonly runPump = (): void => {
    void this.pump();
  };

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const batch = this.pending;
        if (batch !== null) {
          this.pending = null;
          this.inFlight = batch;
          await this.writeBatch(batch);
          this.inFlight = null;
          batch.resolve();
          // Let the appenders just resumed add their next records before the next write.
          await nextTurn();
          continue;
        }
        if (this.syncRequested) {
          this.syncRequested = false;
          await this.syncTail();
          continue;
        }
        break;
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.pumping = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private async writeBatch(batch: Batch): Promise<void> {
    const { chunks } = batch;
    // A batch of no-op truncations writes nothing; resolving it after the batches before it is
    // all its callers need.
    if (chunks.length === 0) return;
    let segment: SegmentFile | undefined;
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i]!;
      segment = this.segments.get(chunk.seq)!;
      if (chunk.newSegment) await this.activateSegment(segment);
      writeFullySync(segment.fd, chunk.buf, 0, chunk.len, chunk.fileOffset);
      this.writtenSeq = chunk.seq;
      if (this.unwritten[0] !== chunk) throw new Error('WAL invariant broken: chunks written out of order');
      this.unwritten.shift();
      this.unsyncedRecords += chunk.records;
      this.unsyncedBytes += chunk.len;
      this.recycleBuffer(chunk.buf);
      const next = chunks[i + 1];
      // Seal a segment before anything goes to the next: only the last one may hold a torn write.
      if (next !== undefined && next.seq !== chunk.seq) await this.sync(segment.fd);
    }
    this.writtenNotSynced.push({ snapshots: batch.snapshots, headerSeq: batch.headerSeq });
    if (this.syncMode.kind === 'always') await this.sync(segment!.fd);
  }

  /** Puts the pre-allocated file in place as `segment` and makes its directory entry durable. */
  private async activateSegment(segment: SegmentFile): Promise<void> {
    segment.fd = await this.preallocator.takeAs(segment.path);
    this.preallocator.start();
    await fsyncDirectory(this.dir);
  }

  /** fdatasync of `fd`, which covers everything written so far (older segments are sealed). */
  private async sync(fd: number): Promise<void> {
    const effects = this.writtenNotSynced.length;
    const records = this.unsyncedRecords;
    const bytes = this.unsyncedBytes;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    this.unsyncedRecords = 0;
    this.unsyncedBytes = 0;
    const started = performance.now();
    await fdatasyncFile(fd);
    const latencyMs = performance.now() - started;
    for (const effect of this.writtenNotSynced.splice(0, effects)) {
      for (const [group, index] of effect.snapshots) {
        if ((this.durableSnapshotIndex.get(group) ?? -1) < index) this.durableSnapshotIndex.set(group, index);
      }
      if (effect.headerSeq > this.durableHeaderSeq) this.durableHeaderSeq = effect.headerSeq;
    }
    for (const resolve of waiters) resolve();
    if (this.onSync !== undefined) {
      try {
        this.onSync({ latencyMs, records, bytes });
      } catch (err) {
        process.emitWarning(`WAL onSync callback threw: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** The interval mode's timed fdatasync (and a forced one for release). */
  private async syncTail(): Promise<void> {
    if (this.unsyncedBytes === 0 && this.writtenNotSynced.length === 0) {
      const waiters = this.syncWaiters;
      this.syncWaiters = [];
      for (const resolve of waiters) resolve();
      return;
    }
    await this.sync(this.segments.get(this.writtenSeq)!.fd);
  }

  /** Resolves after an fdatasync that covers everything written before the call. */
  private requestSync(): Promise<void> {
    const done = new Promise<void>((resolve) => this.syncWaiters.push(resolve));
    this.syncRequested = true;
    this.kick();
    return done;
  }

  private fail(err: unknown): void {
    if (this.state === 'failed' || this.state === 'closed') return;
    this.state = 'failed';
    this.failure = err instanceof WalFailedError ? err : new WalFailedError(err);
    this.inFlight?.reject(this.failure);
    this.pending?.reject(this.failure);
    this.inFlight = null;
    this.pending = null;
    this.unwritten.length = 0;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const resolve of waiters) resolve();
    if (this.timer !== null) clearInterval(this.timer);
  }

  private unusable(operation: string): Error | null {
    if (this.state === 'open') return null;
    if (this.state === 'failed') return this.failure!;
    return new WalClosedError(operation);
  }

  private assertUsable(operation: string): void {
    const unusable = this.unusable(operation);
    if (unusable !== null) throw unusable;
  }

  // ---------------------------------------------------------------------------------------------
  // Reading

  /**
   * Entries [lo, hi) of `group`, read from the segment files and verified. `maxBytes` (optional)
   * caps the total data size returned, but at least one entry is returned when lo < hi (as etcd's
   * Storage.Entries). Throws RangeError outside [firstIndex, lastIndex + 1].
   * The returned data Buffers may share memory with up to 1 MiB of neighbouring entries.
   */
  entries(group: number, lo: number, hi: number, maxBytes = Number.POSITIVE_INFINITY): WalEntry[] {
    this.assertUsable('read entries');
    const g = this.groupLogs.get(group);
    const first = g?.firstIndex() ?? 1;
    const last = g?.lastIndex() ?? 0;
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || lo < first || hi > last + 1 || lo > hi) {
      throw new RangeError(
        `entries(${group}, ${lo}, ${hi}): the range must lie within [${first}, ${last + 1}) (firstIndex ${first}, lastIndex ${last})`,
      );
    }
    const out: WalEntry[] = [];
    if (g === undefined) return out;
    let total = 0;
    let i = lo;
    while (i < hi) {
      const start = g.positionOf(i);
      const seq = positionSeq(start);
      let spanEnd = start + g.sizeOf(i);
      let j = i + 1;
      while (j < hi && g.positionOf(j) === spanEnd && spanEnd - start + g.sizeOf(j) <= MAX_READ_SPAN) {
        spanEnd += g.sizeOf(j);
        j++;
      }
      const span = this.readSpan(seq, positionOffset(start), spanEnd - start);
      let at = 0;
      for (let k = i; k < j; k++) {
        const entry = this.decodeEntryAt(span, at, g, k, seq, positionOffset(start) + at);
        if (out.length > 0 && total + entry.data.length > maxBytes) return out;
        total += entry.data.length;
        out.push(entry);
        at += g.sizeOf(k);
      }
      i = j;
    }
    return out;
  }

  private decodeEntryAt(
    span: Buffer,
    at: number,
    g: GroupLog,
    index: number,
    seq: number,
    fileOffset: number,
  ): WalEntry {
    const size = g.sizeOf(index);
    const frame = readFrame(span, at, at + size);
    const path = this.segments.get(seq)?.path ?? join(this.dir, segmentFileName(seq));
    if (frame.kind !== 'record') {
      throw new WalCorruptionError(
        path,
        fileOffset,
        frame.kind === 'bad'
          ? `${frame.reason} (reading entry ${index} of group ${g.group})`
          : 'entry missing',
      );
    }
    const record = decodeRecord(span, frame);
    if (
      typeof record === 'string' ||
      record.type !== RecordType.Entry ||
      record.group !== g.group ||
      record.index !== index ||
      record.term !== g.termAt(index)
    ) {
      throw new WalCorruptionError(
        path,
        fileOffset,
        `the record is not entry ${index} of group ${g.group} as indexed`,
      );
    }
    return {
      term: record.term,
      index: record.index,
      entryType: record.entryType,
      data: span.subarray(record.dataStart, record.dataEnd),
    };
  }

  /** Bytes [offset, offset + length) of segment `seq`, from the file or from batches not yet written. */
  private readSpan(seq: number, offset: number, length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    const end = offset + length;
    // In a segment, everything below its oldest unwritten chunk is in the file.
    let fileEnd = end;
    for (const chunk of this.unwritten) {
      if (chunk.seq !== seq) continue;
      fileEnd = Math.min(fileEnd, Math.max(offset, chunk.fileOffset));
      const from = Math.max(offset, chunk.fileOffset);
      const to = Math.min(end, chunk.fileOffset + chunk.len);
      if (from < to) chunk.buf.copy(out, from - offset, from - chunk.fileOffset, to - chunk.fileOffset);
    }
    if (fileEnd > offset) {
      const fd = this.segments.get(seq)!.fd;
      let done = 0;
      while (done < fileEnd - offset) {
        const n = readSync(fd, out, done, fileEnd - offset - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      if (done < fileEnd - offset) out.fill(0, done, fileEnd - offset); // a short file reads as a bad record
    }
    return out;
  }

  /** Term of entry `index`, or of the snapshot marker at `index`. Throws RangeError otherwise. */
  term(group: number, index: number): number {
    this.assertUsable('read a term');
    const g = this.groupLogs.get(group);
    const term = g === undefined ? (index === 0 ? 0 : undefined) : g.termAt(index);
    if (term === undefined) {
      throw new RangeError(
        `term(${group}, ${index}): index is outside [${this.firstIndex(group) - 1}, ${this.lastIndex(group)}]`,
      );
    }
    return term;
  }

  /** Snapshot index + 1 (1 for a group without a snapshot marker or unknown). */
  firstIndex(group: number): number {
    this.assertUsable('read the first index');
    return this.groupLogs.get(group)?.firstIndex() ?? 1;
  }

  /** Index of the last entry, or the snapshot index when no entry follows it (0 for an unknown group). */
  lastIndex(group: number): number {
    this.assertUsable('read the last index');
    return this.groupLogs.get(group)?.lastIndex() ?? 0;
  }

  hardState(group: number): WalHardState | null {
    this.assertUsable('read a hard state');
    const hs = this.groupLogs.get(group)?.hardState ?? null;
    return hs === null ? null : { ...hs };
  }

  snapshot(group: number): WalSnapshotMarker | null {
    this.assertUsable('read a snapshot marker');
    const g = this.groupLogs.get(group);
    return g?.hasSnapshot ? { index: g.snapshotIndex, term: g.snapshotTerm } : null;
  }

  /** Groups that have any record in the log, ascending. */
  groups(): number[] {
    this.assertUsable('list groups');
    return [...this.groupLogs.keys()].sort((a, b) => a - b);
  }

  /** Paths of the live segment files, oldest first (for operators and tests). */
  segmentFiles(): string[] {
    this.assertUsable('list segments');
    return [...this.segments.values()].filter((s) => s.fd !== -1).map((s) => s.path);
  }

  // ---------------------------------------------------------------------------------------------
  // Releasing and closing

  /**
   * Deletes the oldest segments in which every entry of every group is covered by a durable
   * snapshot marker; returns how many. Never deletes the segment whose header holds the latest
   * durable copy of the hard states and snapshot markers, nor any after it.
   */
  release(): Promise<number> {
    const unusable = this.unusable('release segments');
    if (unusable !== null) return Promise.reject(unusable);
    const run = async (): Promise<number> => {
      await this.barrier();
      if (this.syncMode.kind === 'interval') await this.requestSync();
      let released = 0;
      for (const segment of [...this.segments.values()]) {
        if (segment.seq >= this.durableHeaderSeq || !this.coveredBySnapshots(segment)) break;
        closeQuietly(segment.fd);
        segment.fd = -1;
        await unlink(segment.path);
        this.segments.delete(segment.seq);
        released++;
      }
      if (released > 0) await fsyncDirectory(this.dir);
      return released;
    };
    const result = this.releaseChain.then(run);
    this.releaseChain = result.catch(() => {});
    return result;
  }

  private coveredBySnapshots(segment: SegmentFile): boolean {
    for (const [group, maxIndex] of segment.maxEntryIndex) {
      if (maxIndex > (this.durableSnapshotIndex.get(group) ?? 0)) return false;
    }
    return true;
  }

  /**
   * Waits for pending appends to be written and synced, then closes every file. Further use
   * throws WalClosedError. Rejects with WalFailedError if that last write or sync fails.
   */
  close(): Promise<void> {
    if (this.closePromise !== null) return this.closePromise;
    const alreadyFailed = this.state === 'failed';
    if (!alreadyFailed) this.state = 'closing';
    this.closePromise = (async () => {
      let failure: Error | null = null;
      try {
        await this.whenIdle();
        if (!alreadyFailed && this.syncMode.kind === 'interval' && this.state === 'closing') {
          await this.requestSync();
        }
        if (!alreadyFailed && this.state === 'failed') failure = this.failure;
        await this.releaseChain;
      } finally {
        if (this.timer !== null) clearInterval(this.timer);
        await this.preallocator.dispose();
        for (const s of this.segments.values()) if (s.fd !== -1) closeQuietly(s.fd);
        this.state = 'closed';
        this.unlock();
      }
      if (failure !== null) throw failure;
    })();
    return this.closePromise;
  }

  private whenIdle(): Promise<void> {
    if (!this.pumping && this.pending === null) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.kick();
    });
  }
}
