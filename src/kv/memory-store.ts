/**
 * The in-memory StateStore backend (DESIGN.md §4), for tests and the deterministic simulator.
 *
 * Keys live in one array sorted bytewise, of immutable records. Readers that need a consistent view
 * while applies continue (snapshot export, the durable image kept at sync()) take the array itself
 * and mark it shared; the next write copies it first (copy on write), so a view never changes.
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
import { searchSorted } from './sorted-search.js';
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

/** A staged write of the batch being applied: the new record, or null for a deletion. */
interface StagedWrite {
  key: Buffer;
  record: MemoryRecord | null;
}

/** Batches that change at most this many keys are merged by splicing; larger ones by one merge pass. */
const SPLICE_MERGE_MAX = 16;

const keyOf = (record: MemoryRecord): Buffer => record.key;

/** Index of `key` in `records`, or -(insertion point) - 1 when absent. */
function search(records: readonly MemoryRecord[], key: Uint8Array): number {
  return searchSorted(records, key, keyOf);
}

/** Index of the first record whose key is >= `key`. */
function lowerBound(records: readonly MemoryRecord[], key: Uint8Array): number {
  const at = search(records, key);
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
}

export class MemoryStore implements StateStore {
  readonly limits: StoreLimits;
  private records: MemoryRecord[];
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

  constructor(options: MemoryStoreOptions = {}) {
    this.limits = resolveStoreLimits(options.limits);
    const image = emptyImage();
    this.records = image.records;
    this.meta = image.meta;
    this.applied = image.appliedIndex;
    this.rev = image.revision;
    this.durable = this.captureImage();
  }

  apply(batch: ApplyBatch): TxnResult[] {
    this.assertOpen('apply');
    if (this.importing) throw new StoreInvariantError('apply called while a snapshot import is in progress');
    checkApplyBatch(batch, this.limits, this.applied);

    const staged = new Map<string, StagedWrite>();
    const base = this.records;
    const readRecord = (key: Buffer): MemoryRecord | null => {
      const write = staged.get(key.toString('latin1'));
      if (write !== undefined) return write.record;
      const at = search(base, key);
      return at >= 0 ? base[at]! : null;
    };
    const view: TxnStateView = {
      readVersion: (key) => readRecord(key),
      readKeyValue: (key) => {
        const record = readRecord(key);
        return record === null ? null : toKeyValue(record, key);
      },
      write: (key, value, version: EntryVersion) => {
        const owned = Buffer.from(key);
        const record: MemoryRecord = {
          key: owned,
          value: Buffer.from(value),
          createRevision: version.createRevision,
          modRevision: version.modRevision,
          version: version.version,
        };
        staged.set(owned.toString('latin1'), { key: owned, record });
      },
      remove: (key) => {
        const owned = Buffer.from(key);
        staged.set(owned.toString('latin1'), { key: owned, record: null });
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
    const at = search(this.records, key);
    return at >= 0 ? toKeyValue(this.records[at]!, key) : null;
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
    const from = range.start === undefined ? 0 : lowerBound(this.records, range.start);
    const to = range.end === undefined ? this.records.length : lowerBound(this.records, range.end);
    return Math.max(0, to - from);
  }

  appliedIndex(): number {
    return this.applied;
  }

  revision(): number {
    return this.rev;
  }

  getMeta(key: string): Buffer | null {
    this.assertOpen('getMeta');
    metaKeyBytes(key, this.limits, 'getMeta');
    const value = this.meta.get(key);
    return value === undefined ? null : Buffer.from(value);
  }

  async sync(): Promise<void> {
    this.assertOpen('sync');
    this.durable = this.captureImage();
  }

  /**
   * A new MemoryStore holding exactly what the last sync() made durable: the state a crash of a
   * simulated node leaves (the WAL replays the rest).
   */
  durableCopy(): MemoryStore {
    this.assertOpen('durableCopy');
    const copy = new MemoryStore({ limits: this.limits });
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
          records.push({
            key: Buffer.from(kv.key),
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
    const records = this.records;
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

  /** Replaces the whole state with `image` (shared: copied before the next write). */
  private adopt(image: MemoryImage): void {
    this.records = image.records;
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
    writes.sort((a, b) => Buffer.compare(a.key, b.key));
    if (writes.length <= SPLICE_MERGE_MAX) {
      const records = this.ownRecords();
      for (const write of writes) {
        const at = search(records, write.key);
        if (write.record === null) {
          if (at >= 0) records.splice(at, 1);
        } else if (at >= 0) records[at] = write.record;
        else records.splice(-at - 1, 0, write.record);
      }
      return;
    }
    // One merge pass of two sorted sequences into a fresh array (which nothing shares yet).
    const base = this.records;
    const merged: MemoryRecord[] = [];
    let i = 0;
    for (const write of writes) {
      while (i < base.length && Buffer.compare(base[i]!.key, write.key) < 0) merged.push(base[i++]!);
      if (i < base.length && Buffer.compare(base[i]!.key, write.key) === 0) i++;
      if (write.record !== null) merged.push(write.record);
    }
    while (i < base.length) merged.push(base[i++]!);
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
