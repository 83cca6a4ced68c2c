/**
 * Errors of the write-ahead log. Every one says what was wrong and, for data on disk, where:
 * DESIGN.md §1.4 ("corruption is detected and reported with file and offset").
 */

/** Base class of every error the WAL raises on purpose. */
export class WalError extends Error {
  override name = 'WalError';
}

/**
 * A record on disk failed verification (checksum, framing, or a Raft invariant the log must
 * satisfy) somewhere other than the torn tail of the last segment. Nothing at or after
 * `file`:`offset` is trusted or returned. See docs/storage.md, "When WalCorruptionError is reported".
 */
export class WalCorruptionError extends WalError {
  override name = 'WalCorruptionError';
  /** Path of the segment file that holds the bad record. */
  readonly file: string;
  /** Byte offset of the bad record within `file`. */
  readonly offset: number;

  constructor(file: string, offset: number, detail: string) {
    super(`WAL corruption in ${file} at offset ${offset}: ${detail}`);
    this.file = file;
    this.offset = offset;
  }
}

/** Any use of a log after `close()` was called. */
export class WalClosedError extends WalError {
  override name = 'WalClosedError';
  constructor(operation: string) {
    super(`write-ahead log is closed: cannot ${operation}`);
  }
}

/**
 * A write or fdatasync failed. After that the log's on-disk state is unknown (a failed fsync may
 * have dropped dirty pages), so the log refuses every further operation: fail-stop.
 */
export class WalFailedError extends WalError {
  override name = 'WalFailedError';
  constructor(cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`write-ahead log failed and accepts no more operations: ${detail}`, { cause });
  }
}

/** A record or a request exceeds one of the log's explicit limits (record size, vote length, queue). */
export class WalLimitError extends WalError {
  override name = 'WalLimitError';
}

/**
 * A record that would break an invariant of a Raft log (index gap, decreasing term, snapshot
 * marker going backwards, a vote changed within a term, ...) or is malformed. The whole
 * `append` call is rejected; nothing of it is written.
 */
export class WalInvalidRecordError extends WalError {
  override name = 'WalInvalidRecordError';
}
