/**
 * The LMDB StateStore backend, the default (DESIGN.md §4): an ordered B+tree on disk, larger than
 * memory, with consistent snapshot reads from LMDB read transactions.
 *
 * Layout: one LMDB environment (a directory) with named databases
 *   control        format record, the active slot, each slot's state record
 *   kv/0,  meta/0  slot 0: user key space and meta space
 *   kv/1,  meta/1  slot 1: the same, used to build an imported snapshot
 * Exactly one slot is active. importSnapshot fills the inactive slot in bounded write transactions
 * and then, in one transaction, makes it active and clears the old one: the atomic swap. Reads and
 * exports keep using the old slot until then; a failed import clears the new slot and changes
 * nothing else; a crash during an import leaves an inactive slot that the next open clears.
 *
 * A kv entry is one LMDB value: a header (create/mod revision, version; compact varints in format
 * 2, fixed u64s in format 1) and the value (stored-entry.ts). Keys too long for LMDB go into buckets
 * (long-key-bucket.ts). The state record (applied index, revision, key counts) is rewritten by every apply in the same transaction as its
 * writes, so after a crash the node replays the WAL from exactly appliedIndex + 1.
 */
import { mkdirSync, realpathSync } from 'node:fs';
import { ABORT, open, type Database, type RootDatabase, type Transaction } from 'lmdb';
import {
  InvalidStoreRequestError,
  StoreClosedError,
  StoreCorruptionError,
  StoreInvariantError,
  StoreLimitError,
} from './errors.js';
import { MAX_CONCURRENT_EXPORTS, resolveStoreLimits, type StoreLimits } from './limits.js';
import {
  type BucketMember,
  bucketKeyOf,
  decodeBucket,
  encodeBucket,
  findMember,
  memberKey,
} from './long-key-bucket.js';
import {
  type CheckedRange,
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
import { StoredEntryCodec } from './stored-entry.js';
import { type EntryVersion, executeTxn, type TxnStateView } from './txn-engine.js';
import { type PendingWrite, PendingWrites } from './pending-writes.js';
import { readUint64LE, writeUint64LE } from './uint64.js';

/**
 * Durability and crash safety: why these lmdb options (DESIGN.md §1.2, §4).
 *
 * - `overlappingSync: true`: lmdb-js's commit protocol. A commit writes its pages and a meta page
 *   marked "not yet flushed", releases the write lock, then fsyncs and writes a "flushed" meta page.
 *   Pages that the last flushed transaction can reach are not reused until a newer flush completes,
 *   and on open after a reboot (power loss: the OS boot id changed) LMDB starts from the last
 *   *flushed* meta page. So a crash at any instant, power loss included, leaves the store as of a
 *   complete committed transaction: never half a batch, never a torn tree.
 * - Not `noSync`: MDB_NOSYNC lets the kernel write a meta page before the pages it points to, and
 *   lets new transactions overwrite pages of the last durable tree; power loss could then leave a
 *   corrupt file, which replaying the WAL cannot repair.
 * - Not `useWritemap`: with a writable map, pages are modified in place in the file (and a stray
 *   pointer can damage them); copy-on-write through private buffers keeps old trees intact.
 * - Commits use NO_SYNC_FLUSH (the "overlapping" mode above): the store may skip an fsync per
 *   apply, since the Raft log is the durable record and replays everything after the store's
 *   durable applied index (compaction waits for sync()). A synchronous commit (apply) still flushes
 *   on the committing thread right after it releases the write lock; applyDeferred commits on
 *   lmdb-js's write thread, which also does the flush, so the node's event loop never waits for
 *   the store's disk. sync() settles a pending deferred apply and calls mdb_env_sync.
 */
export const LMDB_ENV_OPTIONS = {
  /**
   * The address space reserved for the map: the store's size limit. Reserved once (without a
   * writable map the file is not grown to it): lmdb-js otherwise starts at 128 KiB and doubles,
   * keeping every older mapping alive, so a grown store counted about twice in RSS (bench:scale,
   * 1M keys: file-backed RSS 650-690 MB -> 304-324 MB).
   */
  mapSize: 64 * 1024 ** 3,
  overlappingSync: true,
  noSync: false,
  useWritemap: false,
  noSubdir: false,
  compression: false,
  cache: false,
  maxDbs: 8,
} as const;

/** ABORTABLE | SYNCHRONOUS_COMMIT | NO_SYNC_FLUSH (lmdb-js TransactionFlags). */
export const LMDB_COMMIT_FLAGS = 0x1 | 0x2 | 0x10000;
/** LMDB page size of a new store. */
export const LMDB_DEFAULT_PAGE_SIZE = 4096;

/** Format of a new store: 2 = compact entry headers (stored-entry.ts); 1 (fixed headers) is still read and written. */
const FORMAT_VERSION = 2;
const CONTROL_FORMAT = Buffer.from('format');
const CONTROL_ACTIVE = Buffer.from('active');
const CONTROL_STATE = [Buffer.from('state/0'), Buffer.from('state/1')] as const;
const STATE_RECORD_BYTES = 32;
/** The smallest possible key: the lower bound of a reverse scan that has no start. */
const SMALLEST_KEY = Buffer.from([0]);

/** Paths open in this process: lmdb-js would share one environment between two stores. */
const openPaths = new Set<string>();

const noop = (): void => {};

/** A deferred batch waiting for its commit (applyDeferred with commitDelayMs). */
interface HeldBatch {
  batch: ApplyBatch;
  next: StoreState;
  writes: PendingWrite[];
  seq: number;
  results: TxnResult[];
  resolve: (results: TxnResult[]) => void;
  reject: (error: unknown) => void;
  /** performance.now() when it was held: it commits at most commitDelayMs later (or when the commit before it lands). */
  heldAt: number;
}
/** Longest commit delay: readers that do not call commitPending() may see state this much older. */
export const MAX_COMMIT_DELAY_MS = 1000;
/** Held batches beyond this commit at once (reads of a range sort the held writes in it). */
export const MAX_HELD_BATCHES = 128;
/**
 * Key writes per LMDB commit; held writes reaching it commit at once. A commit copies every leaf it
 * touches (with random keys about one 4 KiB page per write), and LMDB reuses the pages it frees only
 * after the commits after it have flushed; it also keeps the dirty-page buffers of its largest
 * commit for good. So the largest commit sets both how far the file outgrows its live tree and how
 * much heap the store keeps (standalone, 1,000,000 random keys in commits of 8,000
 * writes: a 255 MiB file and 54 MiB of anonymous memory; of 2,000: 208 MiB and 28 MiB).
 */
export const MAX_COMMIT_WRITES = 2048;

/** A copy of bytes [from, to) (Buffer#slice would be a view: lmdb-js reuses its read buffers). */
const copySlice = Uint8Array.prototype.slice;
function copyBytes(raw: Buffer, from: number, to: number): Buffer {
  return copySlice.call(raw, from, to) as Buffer;
}

export interface LmdbStoreOptions {
  limits?: Partial<StoreLimits>;
  /**
   * Keys longer than this are kept in long-key buckets. Fixed when the store is created; the default
   * (and the maximum) is LMDB's key size limit minus one. Smaller values exist to test buckets.
   */
  inlineKeyMaxBytes?: number;
  /** LMDB page size for a new store, in bytes (default 4096). */
  pageSize?: number;
  /**
   * How long applyDeferred batches wait in memory to share one LMDB commit (default 0: each commits
   * at once). Every commit costs the disk two flushes (overlapping sync); the WAL holds the batches
   * durably meanwhile, and readers that need one call commitPending().
   */
  commitDelayMs?: number;
  /**
   * Format of a new store (default FORMAT_VERSION, 2). 1 (fixed 24-byte entry headers) exists to
   * test stores created before compact headers; an existing store keeps its own.
   */
  formatVersion?: 1 | 2;
}

interface StoreState {
  appliedIndex: number;
  revision: number;
  keyCount: number;
  /** Keys stored in long-key buckets; while 0, counts can use LMDB's counting directly. */
  longKeyCount: number;
}

function encodeState(state: StoreState): Buffer {
  const out = Buffer.allocUnsafe(STATE_RECORD_BYTES);
  writeUint64LE(out, 0, state.appliedIndex);
  writeUint64LE(out, 8, state.revision);
  writeUint64LE(out, 16, state.keyCount);
  writeUint64LE(out, 24, state.longKeyCount);
  return out;
}

function decodeState(raw: Buffer | undefined, path: string, slot: number): StoreState {
  if (raw === undefined || raw.length !== STATE_RECORD_BYTES) {
    throw new StoreCorruptionError(`${path}: state record of slot ${slot} is missing or malformed`);
  }
  const state = {
    appliedIndex: readUint64LE(raw, 0),
    revision: readUint64LE(raw, 8),
    keyCount: readUint64LE(raw, 16),
    longKeyCount: readUint64LE(raw, 24),
  };
  for (const value of Object.values(state)) {
    if (!Number.isSafeInteger(value))
      throw new StoreCorruptionError(`${path}: state record of slot ${slot} is malformed`);
  }
  return state;
}

type BinaryDatabase = Database<Buffer, Buffer>;

/** Reads of raw LMDB keys (what client reads and batch code share). */
interface RawKeyReader {
  get(key: Buffer): Buffer | undefined;
}

/**
 * Raw LMDB keys of the active key space (inline user keys and long-key bucket keys) as batch code
 * reads and writes them: committed LMDB directly, or committed LMDB behind PendingWrites.
 * `put` may be given a scratch buffer: it copies what it keeps.
 */
interface RawKeySpace extends RawKeyReader {
  put(key: Buffer, raw: Buffer): void;
  remove(key: Buffer): void;
}

/** An export in progress: its consistent read transaction and how to end it early. */
interface OpenExport {
  stop(): Promise<void>;
}

/** Range options as lmdb-js reads them (forward: start up to end; reverse: start down to end). */
interface RawRangeOptions {
  start?: Buffer;
  end?: Buffer;
  reverse?: boolean;
  exclusiveStart?: boolean;
  inclusiveEnd?: boolean;
}

/** Whether raw key `key` lies in the range lmdb-js would walk for `o`. */
function inRawRange(key: Buffer, o: RawRangeOptions): boolean {
  const fromStart = o.start === undefined ? 1 : Buffer.compare(key, o.start);
  const fromEnd = o.end === undefined ? (o.reverse ? 1 : -1) : Buffer.compare(key, o.end);
  if (!o.reverse) {
    return (
      (o.exclusiveStart ? fromStart > 0 : fromStart >= 0) && (o.inclusiveEnd ? fromEnd <= 0 : fromEnd < 0)
    );
  }
  const belowStart = o.start === undefined || (o.exclusiveStart ? fromStart < 0 : fromStart <= 0);
  return belowStart && (o.inclusiveEnd ? fromEnd >= 0 : fromEnd > 0);
}

/**
 * Committed entries merged with the pending writes of the same range, in walk order: a pending
 * write replaces the committed entry of its key, a pending delete hides it.
 */
function* mergePending(
  committed: Iterable<{ key: Buffer; value: Buffer }>,
  pending: readonly PendingWrite[],
  reverse: boolean,
): Generator<{ key: Buffer; value: Buffer }> {
  const direction = reverse ? -1 : 1;
  let i = 0;
  for (const entry of committed) {
    let replaced = false;
    while (i < pending.length) {
      const p = pending[i]!;
      const order = direction * Buffer.compare(p.key, entry.key);
      if (order > 0) break;
      i++;
      if (p.raw !== null) yield { key: p.key, value: p.raw };
      if (order === 0) {
        replaced = true;
        break;
      }
    }
    if (!replaced) yield entry;
  }
  for (; i < pending.length; i++) {
    const p = pending[i]!;
    if (p.raw !== null) yield { key: p.key, value: p.raw };
  }
}

export class LmdbStore implements StateStore {
  readonly limits: StoreLimits;
  readonly path: string;
  /** Keys up to this many bytes are LMDB keys themselves; longer ones live in buckets. */
  readonly inlineKeyMaxBytes: number;
  private readonly root: RootDatabase<Buffer, Buffer>;
  private readonly control: BinaryDatabase;
  private readonly kvSlots: readonly [BinaryDatabase, BinaryDatabase];
  private readonly metaSlots: readonly [BinaryDatabase, BinaryDatabase];
  private slot: 0 | 1;
  private kv: BinaryDatabase;
  private meta: BinaryDatabase;
  private state: StoreState;
  /** Set by open from the store's format record. */
  private readonly entries: StoredEntryCodec;
  private readonly exports = new Set<OpenExport>();
  private importing = false;
  /** Writes of deferred batches not yet committed (read through by later batches). */
  private readonly pending = new PendingWrites();
  /** The state after every batch handed to apply/applyDeferred; `state` is the committed one. */
  private tip: StoreState;
  private pendingBatches = 0;
  /** The last deferred batch's commit; null when none is pending. */
  private lastPending: Promise<TxnResult[]> | null = null;
  private batchSeq = 0;
  /** A deferred batch failed: what was pending is lost, so the store takes no more batches. */
  private failed: Error | null = null;
  /** Deferred batches held back for commitDelayMs, oldest first; committed together. */
  private held: HeldBatch[] = [];
  /** Writes in `held`. */
  private heldWrites = 0;
  private heldTimer: NodeJS.Timeout | null = null;
  /**
   * A commit of held batches is queued and its transaction has not begun (or it was put back, see
   * startCommit): the next one waits, so that each commit is its own LMDB transaction.
   */
  private commitQueued = false;
  /** LMDB transaction id of the last commit of held batches. */
  private lastCommitTxnId = -1;
  /** commitPending() was called: commit what is held without waiting for the delay. */
  private commitRequested = false;
  /** What clients read: the committed key space behind the writes of batches still committing. */
  private readonly visibleKeys: RawKeyReader = {
    get: (key) => {
      const raw = this.pending.get(key);
      return raw === undefined ? this.kv.getBinaryFast(key) : (raw ?? undefined);
    },
  };
  /** The committed key space (the active slot), as the batch code reads and writes it. */
  private readonly committedKeys: RawKeySpace = {
    get: (key) => this.kv.getBinaryFast(key),
    put: (key, raw) => {
      this.kv.putSync(key, raw);
    },
    remove: (key) => {
      this.kv.removeSync(key);
    },
  };
  private closed = false;

  /**
   * Opens (creating if needed) the store in directory `path`. Leftovers of an import interrupted by
   * a crash are cleared. Throws StoreCorruptionError for a directory holding an unknown format.
   */
  static open(path: string, options: LmdbStoreOptions = {}): LmdbStore {
    const commitDelayMs = options.commitDelayMs ?? 0;
    if (!Number.isSafeInteger(commitDelayMs) || commitDelayMs < 0 || commitDelayMs > MAX_COMMIT_DELAY_MS) {
      throw new InvalidStoreRequestError(
        `commitDelayMs must be an integer in [0, ${MAX_COMMIT_DELAY_MS}], got ${commitDelayMs}`,
      );
    }
    mkdirSync(path, { recursive: true });
    const realPath = realpathSync(path);
    if (openPaths.has(realPath)) {
      throw new InvalidStoreRequestError(`LMDB store at ${realPath} is already open in this process`);
    }
    const root = open<Buffer, Buffer>({
      ...LMDB_ENV_OPTIONS,
      path: realPath,
      pageSize: options.pageSize ?? LMDB_DEFAULT_PAGE_SIZE,
      keyEncoding: 'binary',
      encoding: 'binary',
    });
    try {
      const store = new LmdbStore(
        root,
        realPath,
        resolveStoreLimits(options.limits),
        options.inlineKeyMaxBytes,
        options.formatVersion,
        commitDelayMs,
      );
      openPaths.add(realPath);
      return store;
    } catch (error) {
      void root.close();
      throw error;
    }
  }

  private constructor(
    root: RootDatabase<Buffer, Buffer>,
    path: string,
    limits: StoreLimits,
    inlineKeyMaxBytes: number | undefined,
    formatVersion: 1 | 2 | undefined,
    private readonly commitDelayMs: number,
  ) {
    this.root = root;
    this.path = path;
    this.limits = limits;
    const dbOptions = {
      keyEncoding: 'binary',
      encoding: 'binary',
      compression: false,
      cache: false,
    } as const;
    this.control = root.openDB<Buffer, Buffer>('control', dbOptions);
    this.kvSlots = [
      root.openDB<Buffer, Buffer>('kv/0', dbOptions),
      root.openDB<Buffer, Buffer>('kv/1', dbOptions),
    ];
    this.metaSlots = [
      root.openDB<Buffer, Buffer>('meta/0', dbOptions),
      root.openDB<Buffer, Buffer>('meta/1', dbOptions),
    ];
    const lmdbMaxKey = (this.kvSlots[0] as unknown as { maxKeySize: number }).maxKeySize;

    let format = this.control.getBinary(CONTROL_FORMAT);
    if (format === undefined) {
      const inline = inlineKeyMaxBytes ?? lmdbMaxKey - 1;
      if (!Number.isSafeInteger(inline) || inline < 1 || inline > lmdbMaxKey - 1) {
        throw new InvalidStoreRequestError(`inlineKeyMaxBytes must be an integer in [1, ${lmdbMaxKey - 1}]`);
      }
      if (this.hasEntries(0) + this.hasEntries(1) > 0) {
        throw new StoreCorruptionError(`${path}: holds key-value data but no format record`);
      }
      format = Buffer.alloc(8);
      format.writeUInt32LE(formatVersion ?? FORMAT_VERSION, 0);
      format.writeUInt32LE(inline, 4);
      const created = format;
      root.transactionSync(() => {
        this.control.putSync(CONTROL_FORMAT, created);
        this.control.putSync(CONTROL_ACTIVE, Buffer.from([0]));
        this.control.putSync(
          CONTROL_STATE[0],
          encodeState({ appliedIndex: 0, revision: 0, keyCount: 0, longKeyCount: 0 }),
        );
      }, LMDB_COMMIT_FLAGS);
    }
    if (format.length !== 8) throw new StoreCorruptionError(`${path}: malformed format record`);
    const version = format.readUInt32LE(0);
    if (version !== 1 && version !== 2) {
      throw new StoreCorruptionError(
        `${path}: store format version ${version}; this build reads versions 1 and 2`,
      );
    }
    if (formatVersion !== undefined && formatVersion !== version) {
      throw new InvalidStoreRequestError(`${path} has store format ${version}, not ${formatVersion}`);
    }
    this.entries = new StoredEntryCodec(version === 1 ? 'fixed' : 'compact');
    this.inlineKeyMaxBytes = format.readUInt32LE(4);
    if (this.inlineKeyMaxBytes < 1 || this.inlineKeyMaxBytes + 1 > lmdbMaxKey) {
      throw new StoreCorruptionError(
        `${path}: inline key size ${this.inlineKeyMaxBytes} does not fit this LMDB's key limit ${lmdbMaxKey}`,
      );
    }
    if (inlineKeyMaxBytes !== undefined && inlineKeyMaxBytes !== this.inlineKeyMaxBytes) {
      throw new InvalidStoreRequestError(
        `${path} was created with inlineKeyMaxBytes ${this.inlineKeyMaxBytes}, not ${inlineKeyMaxBytes}`,
      );
    }
    const active = this.control.getBinary(CONTROL_ACTIVE);
    if (active === undefined || active.length !== 1 || active[0]! > 1) {
      throw new StoreCorruptionError(`${path}: malformed active-slot record`);
    }
    this.slot = active[0] as 0 | 1;
    this.kv = this.kvSlots[this.slot];
    this.meta = this.metaSlots[this.slot];
    this.state = decodeState(this.control.getBinary(CONTROL_STATE[this.slot]), path, this.slot);
    this.tip = this.state;
    // An import interrupted by a crash left a filled inactive slot: clear it.
    const inactive = (1 - this.slot) as 0 | 1;
    if (this.hasEntries(inactive) > 0) this.clearSlot(inactive);
  }

  apply(batch: ApplyBatch): TxnResult[] {
    this.checkApply('apply', batch);
    if (this.pendingBatches > 0)
      throw new StoreInvariantError('apply called while deferred batches are still pending');
    const next: StoreState = { ...this.state };
    const results = this.root.transactionSync(() => {
      const out = this.executeBatch(batch, next, this.committedKeys);
      this.writeMetaAndState(batch, next);
      return out;
    }, LMDB_COMMIT_FLAGS);
    // Committed: only now does the cached state move.
    this.state = next;
    this.tip = next;
    return results;
  }

  /**
   * Runs the batch now, on this thread, against the committed state plus the writes of batches
   * still pending (PendingWrites), and hands the results to `computed` before returning. The writes
   * then go to LMDB in a transaction of lmdb-js's write thread, which commits and flushes
   * (overlappingSync) there: this thread never waits for the disk. Batches commit in call order;
   * each one atomically (a child transaction: its writes, meta and state record together).
   */
  applyDeferred(batch: ApplyBatch, computed?: (results: TxnResult[]) => void): Promise<TxnResult[]> {
    this.checkApply('applyDeferred', batch);
    const seq = ++this.batchSeq;
    const next: StoreState = { ...this.tip };
    const writes: PendingWrite[] = [];
    const pending = this.pending;
    const visible = this.visibleKeys;
    const keys: RawKeySpace = {
      get: visible.get,
      put: (key, raw) => {
        const owned: PendingWrite = {
          key: Buffer.from(key),
          raw: Buffer.from(raw),
          batch: seq,
          id: key.toString('latin1'),
        };
        writes.push(owned);
        pending.set(owned);
      },
      remove: (key) => {
        const owned: PendingWrite = {
          key: Buffer.from(key),
          raw: null,
          batch: seq,
          id: key.toString('latin1'),
        };
        writes.push(owned);
        pending.set(owned);
      },
    };
    let results: TxnResult[];
    try {
      results = this.executeBatch(batch, next, keys);
    } catch (error) {
      // Nothing reached LMDB, but this batch's pending writes are now in the overlay: unusable.
      this.failed = error instanceof Error ? error : new Error(String(error));
      throw error;
    }
    next.appliedIndex = batch.appliedIndex;
    this.tip = next;
    const landed = new Promise<TxnResult[]>((resolve, reject) => {
      this.held.push({ batch, next, writes, seq, results, resolve, reject, heldAt: performance.now() });
    });
    this.pendingBatches++;
    this.lastPending = landed;
    this.heldWrites += writes.length;
    this.scheduleCommit();
    computed?.(results);
    return landed;
  }

  /** Starts the next commit if one is due and none is queued, or arms the delay's timer. */
  private scheduleCommit(): void {
    if (this.held.length > 0 && !this.commitQueued) {
      const due = this.held[0]!.heldAt + this.commitDelayMs - performance.now();
      if (
        due > 0 &&
        !this.commitRequested &&
        this.held.length < MAX_HELD_BATCHES &&
        this.heldWrites < MAX_COMMIT_WRITES &&
        this.failed === null
      ) {
        if (this.heldTimer === null) {
          this.heldTimer = setTimeout(() => {
            this.heldTimer = null;
            this.scheduleCommit();
          }, due);
        }
        return;
      }
      this.startCommit();
    }
  }

  /**
   * Commits every held batch without waiting for the delay, in LMDB write transactions of up to
   * MAX_COMMIT_WRITES writes, one after another.
   */
  commitPending(): void {
    if (this.held.length === 0) return;
    this.commitRequested = true;
    this.scheduleCommit();
  }

  /**
   * Commits the oldest held batches, up to MAX_COMMIT_WRITES writes (at least one batch), in one
   * LMDB write transaction on lmdb-js's write thread (each batch's writes, meta and state record in
   * order, so the last state record wins); each batch's promise settles with that commit.
   *
   * Pipelined: the next commit is queued as soon as this one's writes are in its transaction, so
   * lmdb-js begins it right after this one commits, while this thread builds it (bench: 600,000
   * random keys in commits of 2,000, queued after the previous landed 55,000 writes/s, queued early
   * 85,000). lmdb-js may still run a queued callback inside the transaction before it; such a
   * commit aborts (writes nothing) and is put back at the head of the held batches, to start again
   * once that transaction has landed, so no commit ever exceeds MAX_COMMIT_WRITES.
   */
  private startCommit(): void {
    if (this.heldTimer !== null) {
      clearTimeout(this.heldTimer);
      this.heldTimer = null;
    }
    if (this.commitQueued) throw new StoreInvariantError('startCommit called while a commit is queued');
    if (this.failed !== null) {
      // Computed on top of a batch that never landed: committing them would skip its writes.
      const failure = this.failed;
      const dropped = this.held;
      this.held = [];
      this.heldWrites = 0;
      this.commitRequested = false;
      for (const h of dropped) {
        this.pendingBatches--;
        h.reject(failure);
      }
      return;
    }
    let take = 0;
    let writes = 0;
    while (
      take < this.held.length &&
      take < MAX_HELD_BATCHES &&
      (take === 0 || writes + this.held[take]!.writes.length <= MAX_COMMIT_WRITES)
    ) {
      writes += this.held[take]!.writes.length;
      take++;
    }
    const group = this.held.splice(0, take);
    this.heldWrites -= writes;
    const requested = this.commitRequested;
    if (this.held.length === 0) this.commitRequested = false;
    this.commitQueued = true;
    /** This commit holds the queue slot: until its writes are in, or until it is put back. */
    let holdsSlot = true;
    const kv = this.kv;
    this.root
      .childTransaction(() => {
        // An earlier commit failed: these batches were computed on top of it and must not land.
        if (this.failed !== null) throw this.failed;
        const txnId = this.root.getWriteTxnId();
        // In the previous commit's transaction: stay queued, go again after it (see above).
        if (txnId === this.lastCommitTxnId) return ABORT;
        if (txnId < this.lastCommitTxnId)
          throw new StoreInvariantError(
            `LMDB transaction id went back: ${txnId} after ${this.lastCommitTxnId}`,
          );
        this.lastCommitTxnId = txnId;
        holdsSlot = false;
        this.commitQueued = false;
        for (const h of group) {
          for (const w of h.writes) {
            if (w.raw === null) kv.removeSync(w.key);
            else kv.putSync(w.key, w.raw);
          }
          this.writeMetaAndState(h.batch, h.next);
        }
        // Not from inside the transaction: lmdb-js refuses to queue one then.
        queueMicrotask(() => this.scheduleCommit());
        return undefined;
      })
      .then(
        (result: unknown) => {
          if (result === ABORT) {
            holdsSlot = false;
            this.commitQueued = false;
            this.held.unshift(...group);
            this.heldWrites += writes;
            if (requested) this.commitRequested = true;
            this.scheduleCommit();
            return;
          }
          for (const h of group) {
            this.state = h.next;
            this.pending.release(h.writes, h.seq);
            this.pendingBatches--;
            h.resolve(h.results);
          }
          if (this.pendingBatches === 0) this.lastPending = null;
          this.scheduleCommit();
        },
        (error: unknown) => {
          if (holdsSlot) this.commitQueued = false;
          this.failed = error instanceof Error ? error : new Error(String(error));
          for (const h of group) {
            this.pendingBatches--;
            h.reject(error);
          }
          this.scheduleCommit();
        },
      );
  }

  private checkApply(what: string, batch: ApplyBatch): void {
    this.assertOpen(what);
    if (this.failed !== null)
      throw new StoreInvariantError(`${what}: an earlier deferred batch failed (${this.failed.message})`);
    if (this.importing)
      throw new StoreInvariantError(`${what} called while a snapshot import is in progress`);
    checkApplyBatch(batch, this.limits, this.tip.appliedIndex);
  }

  /** The batch's transactions against `keys`; `next` follows their revision and counts. */
  private executeBatch(batch: ApplyBatch, next: StoreState, keys: RawKeySpace): TxnResult[] {
    const view = this.writeView(next, keys);
    const out: TxnResult[] = new Array(batch.txns.length);
    for (let i = 0; i < batch.txns.length; i++) {
      const result = executeTxn(view, batch.txns[i]!, next.revision);
      next.revision = result.revision;
      out[i] = result;
    }
    return out;
  }

  /** Inside the batch's write transaction: its meta writes and the state record (applied index). */
  private writeMetaAndState(batch: ApplyBatch, next: StoreState): void {
    if (batch.meta !== undefined) {
      for (const write of batch.meta) {
        const key = Buffer.from(write.key, 'utf8');
        if (write.value === null) this.meta.removeSync(key);
        else this.meta.putSync(key, write.value);
      }
    }
    next.appliedIndex = batch.appliedIndex;
    this.control.putSync(CONTROL_STATE[this.slot], encodeState(next));
  }

  /** Settles every pending deferred batch (a failure is the caller's to handle). */
  private async settleApply(): Promise<void> {
    this.commitPending();
    while (this.lastPending !== null) {
      const last = this.lastPending;
      await last.then(noop, noop);
      if (this.lastPending === last) break;
    }
  }

  get(key: Buffer): KeyValue | null {
    this.assertOpen('get');
    checkKey(key, this.limits, 'get');
    return this.readKeyValue(this.visibleKeys, key);
  }

  range(options: RangeOptions): KeyValue[] {
    this.assertOpen('range');
    return this.scan(checkRange(options, this.limits, 'range'), 'range');
  }

  prefix(prefix: Buffer, options?: { limit?: number; reverse?: boolean }): KeyValue[] {
    this.assertOpen('prefix');
    return this.scan(checkRange(prefixRange(prefix, options, 'prefix'), this.limits, 'prefix'), 'prefix');
  }

  count(options: { start?: Buffer; end?: Buffer } = {}): number {
    this.assertOpen('count');
    const range = checkRange({ start: options.start, end: options.end }, this.limits, 'count');
    if (range.empty) return 0;
    if (range.start === undefined && range.end === undefined) return this.tip.keyCount;
    if (this.tip.longKeyCount === 0 && this.pending.size === 0) {
      return this.kv.getCount(this.lmdbRange(range).options);
    }
    let n = 0;
    this.forEachInRange(this.kv, range, undefined, this.pending, () => {
      n++;
      return true;
    });
    return n;
  }

  appliedIndex(): number {
    return this.state.appliedIndex;
  }

  revision(): number {
    return this.tip.revision;
  }

  getMeta(key: string): Buffer | null {
    this.assertOpen('getMeta');
    const value = this.meta.getBinary(metaKeyBytes(key, this.limits, 'getMeta'));
    return value === undefined ? null : value;
  }

  async sync(): Promise<void> {
    this.assertOpen('sync');
    // What was applied before this call, not what is applied while it waits: batches commit in
    // call order, so the last one pending now covers the rest. Chasing newer batches (as close()
    // does) never ended while writes kept coming: on a busy node compaction stalled for seconds
    // and the Raft log held 25,000+ entries in the heap.
    this.commitPending();
    const last = this.lastPending;
    if (last !== null) await last.then(noop, noop);
    if (this.failed !== null) throw this.failed;
    this.assertOpen('sync');
    const root = this.root as unknown as { sync(callback: (error?: Error) => void): void };
    await new Promise<void>((resolve, reject) => {
      root.sync((error) => (error ? reject(error) : resolve()));
    });
  }

  exportSnapshot(metadata: Buffer): AsyncGenerator<Buffer> {
    this.assertOpen('exportSnapshot');
    const ownMetadata = checkSnapshotMetadata(metadata);
    if (this.exports.size >= MAX_CONCURRENT_EXPORTS) {
      throw new StoreLimitError(
        'maxConcurrentExports',
        MAX_CONCURRENT_EXPORTS,
        this.exports.size + 1,
        'exportSnapshot: number of concurrent exports',
      );
    }
    // The consistent view is pinned now, at the call (not at the first next()), so the caller can
    // pair it with the Raft index it read at the same moment.
    const txn = this.root.useReadTransaction();
    let stream: SnapshotExportStream;
    try {
      const active = this.control.get(CONTROL_ACTIVE, { transaction: txn });
      const slot = (active?.[0] ?? 0) as 0 | 1;
      const state = decodeState(this.control.get(CONTROL_STATE[slot], { transaction: txn }), this.path, slot);
      const inner = this.exportChunks(txn, this.kvSlots[slot], this.metaSlots[slot], state, ownMetadata);
      stream = new SnapshotExportStream(inner, () => {
        this.exports.delete(stream);
        txn.done();
      });
    } catch (error) {
      txn.done();
      throw error;
    }
    this.exports.add(stream);
    return stream;
  }

  async importSnapshot(chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<SnapshotHeader> {
    this.assertOpen('importSnapshot');
    if (this.importing)
      throw new StoreInvariantError('importSnapshot called while another import is in progress');
    if (this.pendingBatches > 0)
      throw new StoreInvariantError('importSnapshot called while deferred batches are still pending');
    this.importing = true;
    const target = (1 - this.slot) as 0 | 1;
    const kv = this.kvSlots[target];
    const meta = this.metaSlots[target];
    const inlineMax = this.inlineKeyMaxBytes;
    try {
      if (this.hasEntries(target) > 0) this.clearSlot(target);
      const reader = new SnapshotChunkReader(this.limits);
      let longKeyCount = 0;
      let bucket: { key: Buffer; members: BucketMember[] } | null = null;
      const flushBucket = (): void => {
        if (bucket === null) return;
        kv.putSync(bucket.key, encodeBucket(bucket.members), { append: true });
        bucket = null;
      };
      for await (const chunk of chunks) {
        if (this.closed) throw new StoreClosedError('importSnapshot interrupted by close()');
        const piece = reader.read(chunk);
        if (piece.kind !== 'data') continue;
        // One write transaction per chunk (~1 MiB): bounded, and keys arrive sorted, so they append.
        this.root.transactionSync(() => {
          for (const entry of piece.meta) meta.putSync(entry.key, entry.value, { append: true });
          for (const record of piece.keyValues) {
            if (record.key.length <= inlineMax) {
              flushBucket();
              kv.putSync(record.key, this.entries.encode(record.value, record), { append: true });
              continue;
            }
            longKeyCount++;
            const bucketKey = bucketKeyOf(record.key, inlineMax);
            if (bucket !== null && !bucket.key.equals(bucketKey)) flushBucket();
            if (bucket === null) bucket = { key: bucketKey, members: [] };
            bucket.members.push({
              suffix: Buffer.from(record.key.subarray(inlineMax)),
              entry: this.entries.encodeOwned(record.value, record),
            });
          }
        }, LMDB_COMMIT_FLAGS);
      }
      const header = reader.end();
      if (this.closed) throw new StoreClosedError('importSnapshot interrupted by close()');
      const state: StoreState = {
        appliedIndex: header.appliedIndex,
        revision: header.revision,
        keyCount: header.keyCount,
        longKeyCount,
      };
      const old = this.slot;
      // The swap: one transaction makes the new slot active and empties the old one.
      this.root.transactionSync(() => {
        flushBucket();
        this.control.putSync(CONTROL_STATE[target], encodeState(state));
        this.control.putSync(CONTROL_ACTIVE, Buffer.from([target]));
        this.control.removeSync(CONTROL_STATE[old]);
        this.kvSlots[old].clearSync();
        this.metaSlots[old].clearSync();
      }, LMDB_COMMIT_FLAGS);
      this.slot = target;
      this.kv = kv;
      this.meta = meta;
      this.state = state;
      this.tip = state;
      return header;
    } catch (error) {
      if (!this.closed && this.slot !== target) {
        try {
          this.clearSlot(target);
        } catch {
          // The next open clears the inactive slot; the import's own error matters more.
        }
      }
      throw error;
    } finally {
      this.importing = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.settleApply();
    // Cursors must close before their read transactions end; stop() ends each export in order.
    for (const stream of [...this.exports]) await stream.stop();
    openPaths.delete(this.path);
    await this.root.close();
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new StoreClosedError(what);
  }

  private hasEntries(slot: 0 | 1): number {
    const stats = (db: BinaryDatabase) => (db.getStats() as { entryCount: number }).entryCount;
    return stats(this.kvSlots[slot]) + stats(this.metaSlots[slot]);
  }

  private clearSlot(slot: 0 | 1): void {
    this.root.transactionSync(() => {
      this.kvSlots[slot].clearSync();
      this.metaSlots[slot].clearSync();
    }, LMDB_COMMIT_FLAGS);
  }

  /** The TxnStateView of a batch over `keys`; counts in `state` follow the writes. */
  private writeView(state: StoreState, keys: RawKeySpace): TxnStateView {
    const inlineMax = this.inlineKeyMaxBytes;
    return {
      readVersion: (key) => {
        if (key.length <= inlineMax) {
          const raw = keys.get(key);
          return raw === undefined ? null : this.entries.decode(raw, raw.length, key);
        }
        const members = this.readBucket(keys, key);
        const at = members === null ? -1 : findMember(members, key.subarray(inlineMax));
        if (members === null || at < 0) return null;
        const entry = members[at]!.entry;
        return this.entries.decode(entry, entry.length, key);
      },
      readKeyValue: (key) => this.readKeyValue(keys, key),
      write: (key, value, version: EntryVersion, created) => {
        if (created) state.keyCount++;
        if (key.length <= inlineMax) {
          keys.put(key, this.entries.encode(value, version));
          return;
        }
        if (created) state.longKeyCount++;
        const bucketKey = bucketKeyOf(key, inlineMax);
        const members = this.readBucket(keys, key) ?? [];
        const suffix = Buffer.from(key.subarray(inlineMax));
        const member = { suffix, entry: this.entries.encodeOwned(value, version) };
        const at = findMember(members, suffix);
        if (at >= 0) members[at] = member;
        else members.splice(-at - 1, 0, member);
        keys.put(bucketKey, encodeBucket(members));
      },
      remove: (key) => {
        state.keyCount--;
        if (key.length <= inlineMax) {
          keys.remove(key);
          return;
        }
        state.longKeyCount--;
        const bucketKey = bucketKeyOf(key, inlineMax);
        const members = this.readBucket(keys, key);
        const at = members === null ? -1 : findMember(members, key.subarray(inlineMax));
        if (members === null || at < 0)
          throw new StoreInvariantError('remove of a long key that does not exist');
        members.splice(at, 1);
        if (members.length === 0) keys.remove(bucketKey);
        else keys.put(bucketKey, encodeBucket(members));
      },
    };
  }

  /** The bucket that would hold long key `key`, or null. */
  private readBucket(keys: RawKeyReader, key: Buffer): BucketMember[] | null {
    const bucketKey = bucketKeyOf(key, this.inlineKeyMaxBytes);
    const raw = keys.get(bucketKey);
    return raw === undefined ? null : decodeBucket(raw, raw.length, bucketKey);
  }

  private readKeyValue(keys: RawKeyReader, key: Buffer): KeyValue | null {
    const inlineMax = this.inlineKeyMaxBytes;
    if (key.length <= inlineMax) {
      // Committed reads return lmdb-js's reusable buffer, valid until the next read: decode at once.
      const raw = keys.get(key);
      if (raw === undefined) return null;
      const length = raw.length;
      const version = this.entries.decode(raw, length, key);
      return {
        key,
        value: copyBytes(raw, version.valueOffset, length),
        createRevision: version.createRevision,
        modRevision: version.modRevision,
        version: version.version,
      };
    }
    const members = this.readBucket(keys, key);
    const at = members === null ? -1 : findMember(members, key.subarray(inlineMax));
    if (members === null || at < 0) return null;
    const entry = members[at]!.entry;
    const { createRevision, modRevision, version, valueOffset } = this.entries.decode(
      entry,
      entry.length,
      key,
    );
    return { key, value: copyBytes(entry, valueOffset, entry.length), createRevision, modRevision, version };
  }

  /**
   * LMDB range options for a user range, and the bounds left to check on bucket members (a bound
   * longer than inlineKeyMaxBytes falls inside a bucket). See long-key-bucket.ts for why the
   * mapping keeps bytewise order.
   */
  private lmdbRange(range: CheckedRange): {
    options: RawRangeOptions;
    low: Buffer | undefined;
    high: Buffer | undefined;
  } {
    const inlineMax = this.inlineKeyMaxBytes;
    const { start, end } = range;
    const options: RawRangeOptions = {};
    let low: Buffer | undefined;
    let high: Buffer | undefined;
    if (!range.reverse) {
      if (start !== undefined) {
        if (start.length <= inlineMax) options.start = start;
        else {
          options.start = bucketKeyOf(start, inlineMax);
          low = start;
        }
      }
      if (end !== undefined) {
        if (end.length <= inlineMax) options.end = end;
        else {
          options.end = bucketKeyOf(end, inlineMax);
          options.inclusiveEnd = true;
          high = end;
        }
      }
    } else {
      // lmdb-js walks a reverse range from `start` (the upper end) down to `end` (the lower end).
      options.reverse = true;
      if (end !== undefined) {
        if (end.length <= inlineMax) {
          options.start = end;
          options.exclusiveStart = true;
        } else {
          options.start = bucketKeyOf(end, inlineMax);
          high = end;
        }
      }
      options.inclusiveEnd = true;
      if (start === undefined) options.end = SMALLEST_KEY;
      else if (start.length <= inlineMax) options.end = start;
      else {
        options.end = bucketKeyOf(start, inlineMax);
        low = start;
      }
    }
    return { options, low, high };
  }

  /**
   * Calls `visit` for each key-value of the range in order until it returns false. Values are
   * decoded only when `visit` needs them (entries are passed as raw stored entries).
   */
  private forEachInRange(
    kv: BinaryDatabase,
    range: CheckedRange,
    lmdbLimit: number | undefined,
    overlay: PendingWrites | null,
    visit: (key: Buffer, entry: Buffer) => boolean,
    txn?: Transaction,
  ): void {
    const inlineMax = this.inlineKeyMaxBytes;
    const { options, low, high } = this.lmdbRange(range);
    const pending =
      overlay === null || overlay.size === 0
        ? []
        : overlay.sortedIn((key) => inRawRange(key, options), options.reverse === true);
    const committed = kv.getRange({
      ...options,
      // A pending delete hides a committed entry: no LMDB limit then (the iteration is lazy).
      ...(lmdbLimit === undefined || pending.length > 0 ? {} : { limit: lmdbLimit }),
      ...(txn === undefined ? {} : { transaction: txn }),
    });
    const iterable =
      pending.length === 0 ? committed : mergePending(committed, pending, options.reverse === true);
    for (const { key, value } of iterable) {
      if (key.length !== inlineMax + 1) {
        if (!visit(key, value)) return;
        continue;
      }
      const members = decodeBucket(value, value.length, key);
      for (let i = 0; i < members.length; i++) {
        const member = members[range.reverse ? members.length - 1 - i : i]!;
        const full = memberKey(key, member.suffix, inlineMax);
        if (low !== undefined && Buffer.compare(full, low) < 0) continue;
        if (high !== undefined && Buffer.compare(full, high) >= 0) continue;
        if (!visit(full, member.entry)) return;
      }
    }
  }

  private scan(range: CheckedRange, where: string): KeyValue[] {
    if (range.empty) return [];
    // Without a limit, read one more than allowed to tell "exactly the maximum" from "too many".
    const want = range.limitGiven ? range.limit : range.limit + 1;
    const out: KeyValue[] = [];
    // Each LMDB entry yields at least one key-value, except the (at most two) buckets a long bound
    // falls into, whose members may all lie outside the range: want + 2 entries always suffice.
    this.forEachInRange(this.kv, range, want + 2, this.pending, (key, entry) => {
      const version = this.entries.decode(entry, entry.length, key);
      out.push({
        key,
        value: entry.subarray(version.valueOffset),
        createRevision: version.createRevision,
        modRevision: version.modRevision,
        version: version.version,
      });
      return out.length < want;
    });
    if (!range.limitGiven && out.length > range.limit) throw rangeTooLarge(this.limits, where);
    return out;
  }

  /** The export body: meta entries, then key-values, as snapshot chunks from read transaction `txn`. */
  private async *exportChunks(
    txn: Transaction,
    kv: BinaryDatabase,
    meta: BinaryDatabase,
    state: StoreState,
    metadata: Buffer,
  ): AsyncGenerator<Buffer> {
    const writer = new SnapshotChunkWriter();
    yield writer.header({
      appliedIndex: state.appliedIndex,
      revision: state.revision,
      keyCount: state.keyCount,
      metadata,
    });
    // Each walk step runs synchronously until one chunk fills, then the chunk leaves and the walk
    // resumes after the last key: no LMDB cursor stays open across a yield, and memory stays at
    // about one chunk.
    const walk = { resumeAfter: undefined as Buffer | undefined, chunk: null as Buffer | null };
    for (;;) {
      walk.chunk = null;
      const iterable = meta.getRange({
        transaction: txn,
        ...(walk.resumeAfter === undefined ? {} : { start: walk.resumeAfter, exclusiveStart: true }),
      });
      for (const { key, value } of iterable) {
        walk.resumeAfter = key;
        walk.chunk = writer.addMeta(key, value);
        if (walk.chunk !== null) break;
      }
      if (walk.chunk === null) break;
      yield walk.chunk;
    }
    walk.resumeAfter = undefined;
    const all: CheckedRange = {
      start: undefined,
      end: undefined,
      reverse: false,
      limit: Number.MAX_SAFE_INTEGER,
      limitGiven: true,
      empty: false,
    };
    for (;;) {
      walk.chunk = null;
      const range = walk.resumeAfter === undefined ? all : { ...all, start: nextKey(walk.resumeAfter) };
      this.forEachInRange(
        kv,
        range,
        undefined,
        null, // an export is of the committed state its read transaction pinned
        (key, entry) => {
          const version = this.entries.decode(entry, entry.length, key);
          walk.resumeAfter = key;
          walk.chunk = writer.addKeyValue({
            key,
            value: entry.subarray(version.valueOffset),
            createRevision: version.createRevision,
            modRevision: version.modRevision,
            version: version.version,
          });
          return walk.chunk === null;
        },
        txn,
      );
      if (walk.chunk === null) break;
      yield walk.chunk;
    }
    for (const chunk of writer.finish()) yield chunk;
  }
}

/** The smallest key greater than `key`: key ++ 0x00. */
function nextKey(key: Buffer): Buffer {
  const out = Buffer.alloc(key.length + 1);
  key.copy(out);
  return out;
}

/**
 * An export's chunk stream. Ends its read transaction when the stream completes, fails, or is
 * returned early (including before its first next(), which a plain async generator would not see).
 */
class SnapshotExportStream implements AsyncGenerator<Buffer, void, undefined>, OpenExport {
  private readonly inner: AsyncGenerator<Buffer>;
  private release: (() => void) | null;

  constructor(inner: AsyncGenerator<Buffer>, release: () => void) {
    this.inner = inner;
    this.release = release;
  }

  async next(): Promise<IteratorResult<Buffer, void>> {
    try {
      const result = await this.inner.next();
      if (result.done) this.finish();
      return result;
    } catch (error) {
      this.finish();
      throw error;
    }
  }

  async return(): Promise<IteratorResult<Buffer, void>> {
    try {
      // First let the inner generator close its cursor, then end the transaction under it.
      await this.inner.return(undefined);
    } finally {
      this.finish();
    }
    return { done: true, value: undefined };
  }

  async throw(error: unknown): Promise<IteratorResult<Buffer, void>> {
    try {
      await this.inner.return(undefined);
    } finally {
      this.finish();
    }
    throw error;
  }

  async stop(): Promise<void> {
    await this.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private finish(): void {
    const release = this.release;
    this.release = null;
    release?.();
  }
}
