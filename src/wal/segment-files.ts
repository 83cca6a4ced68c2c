/**
 * Segment files on disk: names, listing, zero-filled pre-allocation, directory fsync, and the
 * directory lock that keeps two logs from writing the same files.
 */
import { closeSync, constants, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { WalError, WalLimitError } from './errors.js';
import { fdatasyncFile, fsyncFile, openFile, writeFully } from './file-io.js';
import { MiB } from './limits.js';
import { encodeSegmentHeader, type GroupStateCopy, segmentHeaderFrameBytesOf } from './record-codec.js';

/** A segment of the log, as the writer and the reader see it. */
export interface SegmentFile {
  seq: number;
  path: string;
  /** Open descriptor; -1 while the segment is only planned by a batch not yet written. */
  fd: number;
  /** Capacity in bytes (from its header; new segments get the configured size). */
  size: number;
  /** Per group, the highest entry index written in this segment (live or since replaced). */
  maxEntryIndex: Map<number, number>;
}

const SEGMENT_NAME = /^([0-9a-f]{16})\.wal$/;
/** The next segment, being zero-filled in the background; renamed into place when the log rolls. */
export const PREALLOCATED_FILE = 'next-segment.tmp';
export const LOCK_FILE = 'LOCK';

export function segmentFileName(seq: number): string {
  return `${seq.toString(16).padStart(16, '0')}.wal`;
}

/** Segment number of a file name, or null for any other file. */
export function parseSegmentFileName(name: string): number | null {
  const match = SEGMENT_NAME.exec(name);
  return match === null ? null : Number.parseInt(match[1]!, 16);
}

/** fsync a directory so that creations, renames and deletions in it are durable. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const ZERO_CHUNK = Buffer.alloc(1 * MiB);

/**
 * Creates `path` (replacing any old file) and fills it with `size` zero bytes, then fsyncs it.
 * Writing real zeros (not a sparse extension) allocates the blocks now, so a later fdatasync of
 * data written into the file has no block allocation or size change to flush and stays fast.
 * Returns the open read-write descriptor.
 */
export async function createZeroFilledFile(path: string, size: number): Promise<number> {
  const fd = await openFile(path, 'w+');
  try {
    for (let offset = 0; offset < size; offset += ZERO_CHUNK.length) {
      await writeFully(fd, ZERO_CHUNK, 0, Math.min(ZERO_CHUNK.length, size - offset), offset);
    }
    await fsyncFile(fd);
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
  return fd;
}

/** Writes zeros over [from, to) of `fd`. */
export async function zeroRange(fd: number, from: number, to: number): Promise<void> {
  for (let p = from; p < to; p += ZERO_CHUNK.length) {
    await writeFully(fd, ZERO_CHUNK, 0, Math.min(ZERO_CHUNK.length, to - p), p);
  }
}

/**
 * Writes segment `seq` afresh, replacing any file of that name: zero-filled, a header repeating
 * `states`, fsynced, renamed into place, directory fsynced. Used for the first segment of a new
 * log and to rebuild a last segment whose header was torn.
 */
export async function createSegmentWithHeader(
  dir: string,
  seq: number,
  size: number,
  states: readonly GroupStateCopy[],
): Promise<{ segment: SegmentFile; headerBytes: number }> {
  const headerBytes = segmentHeaderFrameBytesOf(states);
  if (headerBytes > size / 2) {
    throw new WalLimitError(
      `the recovered hard states and snapshot markers need ${headerBytes} bytes per segment header, more than half the segment size ${size}`,
    );
  }
  const header = Buffer.alloc(headerBytes);
  encodeSegmentHeader(header, 0, seq, size, states);
  const temporary = join(dir, PREALLOCATED_FILE);
  const path = join(dir, segmentFileName(seq));
  const fd = await createZeroFilledFile(temporary, size);
  try {
    await writeFully(fd, header, 0, headerBytes, 0);
    await fdatasyncFile(fd);
    await rename(temporary, path);
    await fsyncDirectory(dir);
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
  return { segment: { seq, path, fd, size, maxEntryIndex: new Map() }, headerBytes };
}

/**
 * Prepares the next segment file in the background (zero-fill + fsync), so that rolling to a new
 * segment only has to rename it and fsync the directory.
 */
export class SegmentPreallocator {
  private readonly path: string;
  private readonly size: number;
  private job: Promise<number> | null = null;

  constructor(dir: string, size: number) {
    this.path = join(dir, PREALLOCATED_FILE);
    this.size = size;
  }

  /** Starts preparing the file if that is not already under way. */
  start(): void {
    if (this.job !== null) return;
    this.job = createZeroFilledFile(this.path, this.size);
    // A failure is reported to whoever takes the file; do not let it be an unhandled rejection.
    this.job.catch(() => {});
  }

  /** Waits for the prepared file and moves it to `target`; returns its descriptor. */
  async takeAs(target: string): Promise<number> {
    this.start();
    const job = this.job!;
    this.job = null;
    const fd = await job;
    try {
      await rename(this.path, target);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return fd;
  }

  /** Waits for a preparation under way, then closes and deletes its file. */
  async dispose(): Promise<void> {
    const job = this.job;
    this.job = null;
    if (job === null) return;
    try {
      closeSync(await job);
    } catch {
      // The preparation failed; nothing to close.
    }
    await unlink(this.path).catch(() => {});
  }
}

/** Directories opened by this process: a second open of the same directory is refused. */
const openInThisProcess = new Set<string>();

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the directory for this log. The LOCK file holds the owner's pid; a lock left by a process
 * that is gone (e.g. killed with -9) is taken over.
 */
export function lockDirectory(dir: string): () => void {
  const key = resolve(dir);
  if (openInThisProcess.has(key)) {
    throw new WalError(`write-ahead log directory ${key} is already open in this process`);
  }
  const lockPath = join(key, LOCK_FILE);
  let owner = Number.NaN;
  try {
    owner = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (Number.isInteger(owner) && owner !== process.pid && isProcessAlive(owner)) {
    throw new WalError(`write-ahead log directory ${key} is in use by process ${owner} (see ${lockPath})`);
  }
  writeFileSync(lockPath, String(process.pid));
  openInThisProcess.add(key);
  return () => {
    openInThisProcess.delete(key);
    try {
      unlinkSync(lockPath);
    } catch {
      // Already gone: nothing to release.
    }
  };
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closing is best effort on shutdown paths.
  }
}
