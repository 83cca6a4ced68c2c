/**
 * The in-memory StateStore backend (DESIGN.md §4), for tests and the deterministic simulator.
 *
 * Keys live in one array sorted bytewise, of immutable records, plus a Map from the key's latin1
 * string (one character per byte: injective) to its record for point lookups, which would
 * otherwise cost ~log2(n) Buffer.compare calls. Readers that need a consistent view while applies
 * continue (snapshot export, the durable image kept at sync()) take the array itself and mark it
 * shared; the next write copies it first (copy on write), so a view never changes.
 *
 * `apply` stages a batch's writes in an overlay and merges them only once every transaction has run,
 * so a batch that throws leaves nothing behind. Buffers are copied in and out: callers never share
 * memory with the store.
 */
import { StoreClosedError, StoreInvariantError } from './errors.js';
import { resolveStoreLimits, type StoreLimits } from './limits.js';
import {
  checkApplyBatch,
  checkKey,
  checkSnapshotMetadata,
  checkRange,
  metaKeyBytes,
  prefixRange,
  rangeTooLarge,
} from './request-validation.js';
import { SnapshotChunkReader, SnapshotChunkWriter } from './snapshot-format.js';
import type {
  ApplyBatch,
  KeyValue,
  RangeOptions,
  SnapshotHeader,
  StateStore,
  TxnResult,
} from './state-store.js';
import { type EntryVersion, executeTxn, type TxnStateView } from './txn-engine.js';

interface MemoryRecord {
  /** The key as a latin1 string: one char per byte, so string order is bytewise key order. */
  readonly id: string;
  readonly key: Buffer;
  readonly value: Buffer;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

/** Everything a MemoryStore holds; the arrays and map are never mutated once shared. */
interface MemoryImage {
  records: MemoryRecord[];
  meta: Map<string, Buffer>;
  appliedIndex: number;
  revision: number;
}

/** A deferred batch: its state image once visible, and how to settle its promise. */
interface PendingBatch {
  image: MemoryImage;
  committed: boolean;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** A staged write of the batch being applied: the new record, or null for a deletion. */
interface StagedWrite {
  /** The key's latin1 string (the index key). */
  id: string;
  key: Buffer;
  record: MemoryRecord | null;
}

/** Batches that change at most this many keys are merged by splicing; larger ones by one merge pass. */
const SPLICE_MERGE_MAX = 16;

/**
 * Index of the record with `id` (looking from `from` on), or -(insertion point) - 1 when absent.
 * Compares latin1 strings in JS rather than calling Buffer.compare, which costs a native call.
 */
function search(records: readonly MemoryRecord[], id: string, from = 0): number {
  let lo = from;
  let hi = records.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const other = records[mid]!.id;
    if (other < id) lo = mid + 1;
    else if (other > id) hi = mid - 1;
    else return mid;
  }
  return -lo - 1;
}

function indexOf(records: readonly MemoryRecord[]): Map<string, MemoryRecord> {
  const index = new Map<string, MemoryRecord>();
  for (const record of records) index.set(record.id, record);
  return index;
}

/** Index of the first record whose key is >= `key`. */
function lowerBound(records: readonly MemoryRecord[], key: Buffer): number {
  const at = search(records, key.toString('latin1'));
  return at >= 0 ? at : -at - 1;
}

function toKeyValue(record: MemoryRecord, key: Buffer): KeyValue {
  return {
    key,
    value: Buffer.from(record.value),
    createRevision: record.createRevision,
    modRevision: record.modRevision,
    version: record.version,
  };
}

function emptyImage(): MemoryImage {
  return { records: [], meta: new Map(), appliedIndex: 0, revision: 0 };
}

export interface MemoryStoreOptions {
  limits?: Partial<StoreLimits>;
  /**
   * When an applyDeferred commits: `commit` is called once the batch may become visible. Default:
   * a microtask. The simulator passes its own, so commits land at chosen virtual times.
   */
  scheduleCommit?: (commit: () => void) => void;
}

const commitInMicrotask = (commit: () => void): void => queueMicrotask(commit);
const noop = (): void => {};

export class MemoryStore implements StateStore {
  readonly limits: StoreLimits;
  private records: MemoryRecord[];
  /** Point lookups into the live `records` (never shared with a view). */
  private index: Map<string, MemoryRecord>;
  private meta: Map<string, Buffer>;
  private applied: number;
  private rev: number;
  /** True while `records` / `meta` are referenced by a view and must be copied before a write. */
  private recordsShared = false;
  private metaShared = false;
  /** What the last sync() made durable: the state a simulated crash returns to. */
  private durable: MemoryImage;
  private importing = false;
  private closed = false;
  private readonly scheduleCommit: (commit: () => void) => void;
  /** Deferred batches not yet landed, in call order. */
  private landing: PendingBatch[] = [];
  /** The state after every pending batch, which reads see (null when none is pending). */
  private tip: MemoryImage | null = null;
  /** The promise of the newest deferred batch. */
  private lastLanded: Promise<TxnResult[]> | null = null;

  constructor(options: MemoryStoreOptions = {}) {
    this.limits = resolveStoreLimits(options.limits);
    this.scheduleCommit = options.scheduleCommit ?? commitInMicrotask;
    const image = emptyImage();
    this.records = image.records;
    this.index = new Map();
    this.meta = image.meta;
    this.applied = image.appliedIndex;
    this.rev = image.revision;
    this.durable = this.captureImage();
  }

  apply(batch: ApplyBatch): TxnResult[] {
    this.checkApply('apply', batch);
    if (this.landing.length > 0)
      throw new StoreInvariantError('apply called while deferred batches are still pending');
    return this.commitBatch(batch);
  }

  /**
   * Like LmdbStore: the results are computed now, against the state after every earlier pending
   * batch, and reported through `computed` before returning; reads see the batch from then on. It
   * lands (appliedIndex() moves, its promise resolves) at its scheduled commit, in call order (a
   * commit scheduled earlier waits for the ones before it).
   */
  applyDeferred(batch: ApplyBatch, computed?: (results: TxnResult[]) => void): Promise<TxnResult[]> {
    this.checkApply('applyDeferred', batch);
    const visible = this.captureImage();
    if (this.tip !== null) this.adopt(this.tip);
    let results: TxnResult[];
    try {
      results = this.commitBatch(batch);
    } catch (e) {
      this.adopt(visible);
      throw e;
    }
    const after = this.captureImage();
    this.adopt(visible);
    this.tip = after;
    const landed = new Promise<TxnResult[]>((resolve, reject) => {
      const batchCommit: PendingBatch = {
        image: after,
        committed: false,
        resolve: () => resolve(results),
        reject,
      };
      this.landing.push(batchCommit);
      this.scheduleCommit(() => {
        batchCommit.committed = true;
        this.landCommitted();
      });
    });
    this.lastLanded = landed;
    computed?.(results);
    return landed;
  }

  /** Batches land when scheduleCommit says (the simulator chooses): nothing is held back here. */
  commitPending(): void {}

  /** Makes the committed batches at the front of `landing` visible, in order. */
  private landCommitted(): void {
    while (this.landing.length > 0 && this.landing[0]!.committed) {
      const next = this.landing.shift()!;
      if (this.closed) {
        next.reject(new StoreClosedError('applyDeferred'));
        continue;
      }
      this.adopt(next.image);
      if (this.landing.length === 0) this.tip = null;
      next.resolve();
    }
  }

  private checkApply(what: string, batch: ApplyBatch): void {
    this.assertOpen(what);
    if (this.importing)
      throw new StoreInvariantError(`${what} called while a snapshot import is in progress`);
    checkApplyBatch(batch, this.limits, this.tip?.appliedIndex ?? this.applied);
  }

  private commitBatch(batch: ApplyBatch): TxnResult[] {
    const staged = new Map<string, StagedWrite>();
    const index = this.index;
    const readRecord = (key: Buffer): MemoryRecord | null => {
      const id = key.toString('latin1');
      const write = staged.get(id);
      if (write !== undefined) return write.record;
      return index.get(id) ?? null;
    };
    const view: TxnStateView = {
      readVersion: (key) => readRecord(key),
      readKeyValue: (key) => {
        const record = readRecord(key);
        return record === null ? null : toKeyValue(record, key);
      },
      write: (key, value, version: EntryVersion) => {
        const owned = Buffer.from(key);
        const id = owned.toString('latin1');
        const record: MemoryRecord = {
          id,
          key: owned,
          value: Buffer.from(value),
          createRevision: version.createRevision,
          modRevision: version.modRevision,
          version: version.version,
        };
        staged.set(id, { id, key: owned, record });
      },
      remove: (key) => {
        const owned = Buffer.from(key);
        const id = owned.toString('latin1');
        staged.set(id, { id, key: owned, record: null });
      },
    };

    let revision = this.rev;
    const results: TxnResult[] = new Array(batch.txns.length);
    for (let i = 0; i < batch.txns.length; i++) {
      const result = executeTxn(view, batch.txns[i]!, revision);
      revision = result.revision;
      results[i] = result;
    }

    // Everything below only swaps in what was staged: nothing can throw half-way.
    if (staged.size > 0) this.mergeStaged([...staged.values()]);
    if (batch.meta !== undefined && batch.meta.length > 0) {
      const meta = this.ownMeta();
      for (const write of batch.meta) {
        if (write.value === null) meta.delete(write.key);
        else meta.set(write.key, Buffer.from(write.value));
      }
    }
    this.applied = batch.appliedIndex;
    this.rev = revision;
    return results;
  }

  get(key: Buffer): KeyValue | null {
    this.assertOpen('get');
    checkKey(key, this.limits, 'get');
    const id = key.toString('latin1');
    let record: MemoryRecord | undefined;
    if (this.tip === null) record = this.index.get(id);
    else {
      const at = search(this.tip.records, id);
      record = at >= 0 ? this.tip.records[at] : undefined;
    }
    return record === undefined ? null : toKeyValue(record, key);
  }

  range(options: RangeOptions): KeyValue[] {
    this.assertOpen('range');
    return this.scan(options, 'range');
  }

  prefix(prefix: Buffer, options: { limit?: number; reverse?: boolean } = {}): KeyValue[] {
    this.assertOpen('prefix');
    return this.scan(prefixRange(prefix, options, 'prefix'), 'prefix');
  }

  count(options: { start?: Buffer; end?: Buffer } = {}): number {
    this.assertOpen('count');
    const range = checkRange({ start: options.start, end: options.end }, this.limits, 'count');
    if (range.empty) return 0;
    const records = this.visibleRecords();
    const from = range.start === undefined ? 0 : lowerBound(records, range.start);
    const to = range.end === undefined ? records.length : lowerBound(records, range.end);
    return Math.max(0, to - from);
  }

  appliedIndex(): number {
    return this.applied;
  }

  revision(): number {
    return this.tip?.revision ?? this.rev;
  }

  getMeta(key: string): Buffer | null {
    this.assertOpen('getMeta');
    metaKeyBytes(key, this.limits, 'getMeta');
    const value = this.meta.get(key);
    return value === undefined ? null : Buffer.from(value);
  }

  async sync(): Promise<void> {
    this.assertOpen('sync');
    while (this.landing.length > 0 && this.lastLanded !== null) await this.lastLanded.then(noop, noop);
    this.assertOpen('sync');
    this.durable = this.captureImage();
  }

  /**
   * A new MemoryStore holding exactly what the last sync() made durable: the state a crash of a
   * simulated node leaves (the WAL replays the rest).
   */
  durableCopy(): MemoryStore {
    this.assertOpen('durableCopy');
    const copy = new MemoryStore({ limits: this.limits, scheduleCommit: this.scheduleCommit });
    copy.adopt(this.durable);
    copy.durable = this.durable;
    return copy;
  }

  exportSnapshot(metadata: Buffer): AsyncGenerator<Buffer> {
    this.assertOpen('exportSnapshot');
    const ownMetadata = checkSnapshotMetadata(metadata);
    // The view is taken now, at the call, not at the first next(): the caller pairs it with the
    // Raft index it read at the same moment.
    return exportImage(this.captureImage(), ownMetadata);
  }

  async importSnapshot(chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<SnapshotHeader> {
    this.assertOpen('importSnapshot');
    if (this.importing)
      throw new StoreInvariantError('importSnapshot called while another import is in progress');
    if (this.landing.length > 0)
      throw new StoreInvariantError('importSnapshot called while deferred batches are still pending');
    this.importing = true;
    try {
      const reader = new SnapshotChunkReader(this.limits);
      const records: MemoryRecord[] = [];
      const meta = new Map<string, Buffer>();
      for await (const chunk of chunks) {
        if (this.closed) throw new StoreClosedError('importSnapshot interrupted by close()');
        const piece = reader.read(chunk);
        if (piece.kind !== 'data') continue;
        for (const entry of piece.meta) meta.set(entry.key.toString('utf8'), Buffer.from(entry.value));
        for (const kv of piece.keyValues) {
          const key = Buffer.from(kv.key);
          records.push({
            id: key.toString('latin1'),
            key,
            value: Buffer.from(kv.value),
            createRevision: kv.createRevision,
            modRevision: kv.modRevision,
            version: kv.version,
          });
        }
      }
      const header = reader.end();
      if (this.closed) throw new StoreClosedError('importSnapshot interrupted by close()');
      this.adopt({ records, meta, appliedIndex: header.appliedIndex, revision: header.revision });
      return header;
    } finally {
      this.importing = false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new StoreClosedError(what);
  }

  private scan(options: RangeOptions, where: string): KeyValue[] {
    const range = checkRange(options, this.limits, where);
    if (range.empty) return [];
    const records = this.visibleRecords();
    const from = range.start === undefined ? 0 : lowerBound(records, range.start);
    const to = range.end === undefined ? records.length : lowerBound(records, range.end);
    const available = Math.max(0, to - from);
    if (!range.limitGiven && available > range.limit) throw rangeTooLarge(this.limits, where);
    const n = Math.min(available, range.limit);
    const out: KeyValue[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const record = records[range.reverse ? to - 1 - i : from + i]!;
      out[i] = toKeyValue(record, Buffer.from(record.key));
    }
    return out;
  }

  /** What reads see: the state after every batch whose results are known, landed or not. */
  private visibleRecords(): MemoryRecord[] {
    return this.tip?.records ?? this.records;
  }

  /** Replaces the whole state with `image` (shared: copied before the next write). */
  private adopt(image: MemoryImage): void {
    this.records = image.records;
    this.index = indexOf(image.records);
    this.meta = image.meta;
    this.applied = image.appliedIndex;
    this.rev = image.revision;
    this.recordsShared = true;
    this.metaShared = true;
  }

  private captureImage(): MemoryImage {
    this.recordsShared = true;
    this.metaShared = true;
    return { records: this.records, meta: this.meta, appliedIndex: this.applied, revision: this.rev };
  }

  private ownRecords(): MemoryRecord[] {
    if (this.recordsShared) {
      this.records = this.records.slice();
      this.recordsShared = false;
    }
    return this.records;
  }

  private ownMeta(): Map<string, Buffer> {
    if (this.metaShared) {
      this.meta = new Map(this.meta);
      this.metaShared = false;
    }
    return this.meta;
  }

  private mergeStaged(writes: StagedWrite[]): void {
    writes.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const write of writes) {
      if (write.record === null) this.index.delete(write.id);
      else this.index.set(write.id, write.record);
    }
    if (writes.length <= SPLICE_MERGE_MAX) {
      const records = this.ownRecords();
      for (const write of writes) {
        const at = search(records, write.id);
        if (write.record === null) {
          if (at >= 0) records.splice(at, 1);
        } else if (at >= 0) records[at] = write.record;
        else records.splice(-at - 1, 0, write.record);
      }
      return;
    }
    // One merge pass into a fresh array (which nothing shares yet): each write's position is found
    // by binary search from the previous one, and the records in between are copied unexamined.
    const base = this.records;
    const merged: MemoryRecord[] = new Array(base.length + writes.length);
    let length = 0;
    let next = 0;
    for (const write of writes) {
      const at = search(base, write.id, next);
      const position = at >= 0 ? at : -at - 1;
      for (let i = next; i < position; i++) merged[length++] = base[i]!;
      next = at >= 0 ? at + 1 : position;
      if (write.record !== null) merged[length++] = write.record;
    }
    for (let i = next; i < base.length; i++) merged[length++] = base[i]!;
    merged.length = length;
    this.records = merged;
    this.recordsShared = false;
  }
}

/** Streams a captured image in the shared snapshot format. */
async function* exportImage(image: MemoryImage, metadata: Buffer): AsyncGenerator<Buffer> {
  const writer = new SnapshotChunkWriter();
  yield writer.header({
    appliedIndex: image.appliedIndex,
    revision: image.revision,
    keyCount: image.records.length,
    metadata,
  });
  const meta = [...image.meta.entries()]
    .map(([key, value]) => ({ key: Buffer.from(key, 'utf8'), value }))
    .sort((a, b) => Buffer.compare(a.key, b.key));
  for (const entry of meta) {
    const chunk = writer.addMeta(entry.key, entry.value);
    if (chunk !== null) yield chunk;
  }
  for (const record of image.records) {
    const chunk = writer.addKeyValue(record);
    if (chunk !== null) yield chunk;
  }
  for (const chunk of writer.finish()) yield chunk;
}
