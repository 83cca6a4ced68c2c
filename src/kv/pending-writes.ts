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
  /** The batch that wrote it last. */
  batch: number;
}

/** One deferred batch's writes, in order, to replay inside its LMDB transaction. */
export interface BatchWrite {
  key: Buffer;
  raw: Buffer | null;
}

export class PendingWrites {
  private readonly byKey = new Map<string, PendingWrite>();

  /** The pending bytes of `key`: a Buffer, null (pending delete), or undefined (nothing pending). */
  get(key: Buffer): Buffer | null | undefined {
    return this.byKey.get(key.toString('latin1'))?.raw;
  }

  /** Records a write of batch `batch`; `key` and `raw` must not be changed afterwards. */
  set(key: Buffer, raw: Buffer | null, batch: number): void {
    this.byKey.set(key.toString('latin1'), { key, raw, batch });
  }

  /** Batch `batch` committed: its writes are in LMDB now, unless a later batch wrote the key again. */
  release(writes: readonly BatchWrite[], batch: number): void {
    for (const w of writes) {
      const id = w.key.toString('latin1');
      const pending = this.byKey.get(id);
      if (pending !== undefined && pending.batch === batch) this.byKey.delete(id);
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
