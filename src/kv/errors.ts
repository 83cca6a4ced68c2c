/**
 * Errors a StateStore throws. Each names what was wrong so that the node and the API can turn it
 * into a specific client error (DESIGN.md §1.5) or a loud failure (broken invariants, corruption).
 */

/** A request exceeded one of the store's configured limits (see limits.ts); nothing was applied. */
export class StoreLimitError extends Error {
  override readonly name = 'StoreLimitError';
  /** The limit's name, as in StoreLimits (e.g. 'maxValueBytes'). */
  readonly limit: string;
  readonly max: number;
  readonly actual: number;

  constructor(limit: string, max: number, actual: number, what: string, advice?: string) {
    super(
      `${what} is ${actual}, over the store limit ${limit} = ${max}${advice === undefined ? '' : `; ${advice}`}`,
    );
    this.limit = limit;
    this.max = max;
    this.actual = actual;
  }
}

/** A request was malformed (wrong type, empty key, unknown compare operator...); nothing was applied. */
export class InvalidStoreRequestError extends Error {
  override readonly name = 'InvalidStoreRequestError';
}

/**
 * A store invariant would be broken (applied index not increasing, revision overflow, apply during a
 * snapshot import). This is a bug in the caller or the store, never a client error: fail loudly.
 */
export class StoreInvariantError extends Error {
  override readonly name = 'StoreInvariantError';
}

/** The store was used after close(). */
export class StoreClosedError extends Error {
  override readonly name = 'StoreClosedError';
  constructor(what: string) {
    super(`state store is closed: ${what}`);
  }
}

/** The on-disk store holds data this code cannot verify or read (unknown format, malformed record). */
export class StoreCorruptionError extends Error {
  override readonly name = 'StoreCorruptionError';
}

/**
 * A snapshot stream was corrupt, reordered, truncated, or from another stream. The importing store's
 * state is unchanged. `chunk` is the 0-based position of the offending chunk in the stream (the header
 * is chunk 0); for a stream that ended early it is the position where the next chunk was expected.
 */
export class SnapshotCorruptionError extends Error {
  override readonly name = 'SnapshotCorruptionError';
  readonly chunk: number;
  readonly reason: string;

  constructor(chunk: number, reason: string) {
    super(`snapshot chunk ${chunk}: ${reason}`);
    this.chunk = chunk;
    this.reason = reason;
  }
}
