/**
 * The replicated state machine's store: one Raft group's key space (DESIGN.md §4).
 *
 * Keys and values are binary Buffers. Every key carries etcd-style metadata. The store keeps one
 * revision counter; every transaction that writes advances it by exactly one, and all of that
 * transaction's writes carry the new revision. `apply` is atomic: all of a batch's transactions,
 * the new applied index and the meta writes land together, or nothing does.
 */

export interface KeyValue {
  /** For `get` (and txn get responses) the very Buffer the caller passed; otherwise a fresh copy. */
  key: Buffer;
  /** Always caller-owned: never shared with the store. */
  value: Buffer;
  /** Revision of the transaction that created the key (since its last deletion). */
  createRevision: number;
  /** Revision of the last transaction that wrote the key. */
  modRevision: number;
  /** Number of writes since creation: 1 after create, +1 per put. */
  version: number;
}

export type CompareOp = '=' | '!=' | '<' | '>';

/**
 * A condition of a transaction. On a missing key, version/createRevision/modRevision read as 0 and
 * a `value` comparison is false (as in etcd).
 */
export type Compare =
  | { key: Buffer; target: 'value'; op: CompareOp; value: Buffer }
  | { key: Buffer; target: 'version' | 'createRevision' | 'modRevision'; op: CompareOp; value: number }
  | { key: Buffer; target: 'exists'; exists: boolean };

export type RequestOp =
  | { type: 'put'; key: Buffer; value: Buffer }
  | { type: 'delete'; key: Buffer }
  | { type: 'get'; key: Buffer };

export type ResponseOp =
  | { type: 'put'; revision: number }
  | { type: 'delete'; deleted: 0 | 1; revision: number }
  | { type: 'get'; kv: KeyValue | null };

/** An etcd-style transaction. A plain put is a Txn with no compares and one success op. */
export interface Txn {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResult {
  succeeded: boolean;
  /** The store revision after this transaction (unchanged if it wrote nothing). */
  revision: number;
  responses: ResponseOp[];
}

/** A write to the store's meta space (outside the user key space): Raft conf state, client sessions. */
export interface MetaWrite {
  key: string;
  /** null deletes the meta key. */
  value: Buffer | null;
}

export interface ApplyBatch {
  /** The Raft index of the last entry this batch covers; must be greater than the current one. */
  appliedIndex: number;
  txns: Txn[];
  meta?: MetaWrite[];
}

export interface RangeOptions {
  /** Inclusive start; omitted (or empty) = from the first key. */
  start?: Buffer;
  /** Exclusive end; omitted = to the last key. */
  end?: Buffer;
  /**
   * 1..maxRangeLimit (limits.ts). Omitted: the whole range, but a range holding more than
   * maxRangeLimit key-values throws StoreLimitError rather than being silently cut.
   */
  limit?: number;
  /** Descending order; with a limit, the last `limit` keys of the range. */
  reverse?: boolean;
}

export interface SnapshotHeader {
  appliedIndex: number;
  revision: number;
  keyCount: number;
  /** Opaque blob for Raft's use (term, membership). */
  metadata: Buffer;
}

export interface StateStore {
  /** Atomically applies all transactions and records the applied index; returns one result per txn. */
  apply(batch: ApplyBatch): TxnResult[];
  /**
   * Like apply, but the caller's thread never waits for the disk. `computed` (optional) is called
   * with the results as soon as they are known: from then on the batch commits unless the process
   * dies or the store fails (then the promise rejects), and reads (get, range, prefix, count,
   * revision) see it, as etcd's reads see its buffer of writes not yet in bbolt. The promise
   * resolves with the same results once the batch is committed (landed); until then appliedIndex(),
   * getMeta() and snapshot exports show the state without it. Durable after the next sync(); a
   * crash before that returns the store to an earlier complete batch (the Raft log replays the rest).
   * Batches may overlap: the next applyDeferred may be called once the previous one's `computed`
   * ran (both stores run it before returning); they commit in call order.
   * No apply or importSnapshot while any is pending.
   */
  applyDeferred(batch: ApplyBatch, computed?: (results: TxnResult[]) => void): Promise<TxnResult[]>;
  /**
   * Starts the commit of every batch applyDeferred is holding back now (LmdbStore's commitDelayMs
   * gathers batches into one disk commit); a no-op where none are held. For a caller that waits
   * for them to land (a snapshot install, a reader of appliedIndex()).
   */
  commitPending(): void;
  get(key: Buffer): KeyValue | null;
  range(options: RangeOptions): KeyValue[];
  prefix(prefix: Buffer, options?: { limit?: number; reverse?: boolean }): KeyValue[];
  count(options?: { start?: Buffer; end?: Buffer }): number;
  appliedIndex(): number;
  revision(): number;
  getMeta(key: string): Buffer | null;
  /** Makes everything applied so far (a pending applyDeferred included) durable. */
  sync(): Promise<void>;
  /**
   * A consistent view as checksummed chunks (format: snapshot-format.ts); applies may continue while
   * it is read. The view is pinned when exportSnapshot is called, not at the first next(). Iterate
   * it to the end or call return(): an LMDB export holds a read transaction until then.
   */
  exportSnapshot(metadata: Buffer): AsyncGenerator<Buffer>;
  /**
   * Builds the state from snapshot chunks (each Buffer one chunk exactly as exported) in a fresh
   * place and swaps it in atomically. On a corrupt or incomplete stream it throws
   * SnapshotCorruptionError and the old state stays. apply() must not be called meanwhile.
   */
  importSnapshot(chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<SnapshotHeader>;
  close(): Promise<void>;
}
