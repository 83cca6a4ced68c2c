/**
 * Writes of deferred store batches that are computed but not yet committed to LMDB (etcd keeps the
 * same kind of buffer in front of bbolt, its txReadBuffer). Later batches read through them, so that
 * a batch's compares and versions see every earlier batch, and so do clients' reads: a read sees
 * every batch whose results are known (answered), not only the ones LMDB has committed. Keys are
 * raw LMDB keys: an inline user key, or a long-key bucket key.
 */
export interface PendingWrite {
  /** The raw LMDB key (owned). */
  key: Buffer;
  /** The stored bytes, or null for a delete. */
  raw: Buffer | null;
  /** The batch that wrote it. */
  batch: number;
  /** `key` as a latin1 string, the map's key: made once per write, not again at release. */
  id: string;
}

export class PendingWrites {
  private readonly byKey = new Map<string, PendingWrite>();

  /** The pending bytes of `key`: a Buffer, null (pending delete), or undefined (nothing pending). */
  get(key: Buffer): Buffer | null | undefined {
    return this.byKey.get(key.toString('latin1'))?.raw;
  }

  /**
   * Records a write (its batch wrote the key last); the same object is the batch's record of the
   * write, replayed at its commit. Its fields must not be changed afterwards.
   */
  set(write: PendingWrite): void {
    this.byKey.set(write.id, write);
  }

  /** Batch `batch` committed: its writes are in LMDB now, unless a later batch wrote the key again. */
  release(writes: readonly PendingWrite[], batch: number): void {
    for (const w of writes) {
      const pending = this.byKey.get(w.id);
      if (pending !== undefined && pending.batch === batch) this.byKey.delete(w.id);
    }
  }

  /** The pending writes whose keys pass `inRange`, in bytewise key order (reversed if `reverse`). */
  sortedIn(inRange: (key: Buffer) => boolean, reverse: boolean): PendingWrite[] {
    const out: PendingWrite[] = [];
    for (const w of this.byKey.values()) if (inRange(w.key)) out.push(w);
    out.sort(reverse ? (a, b) => Buffer.compare(b.key, a.key) : (a, b) => Buffer.compare(a.key, b.key));
    return out;
  }

  get size(): number {
    return this.byKey.size;
  }
}
