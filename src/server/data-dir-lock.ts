/**
 * One process per data directory. LMDB lets several processes open one environment and the WAL's
 * own lock only covers its folder, so the server takes a lock on the whole data directory before it
 * opens anything in it: two `atlas start` on one directory would otherwise write one log twice.
 *
 * The lock is a file created atomically with link(2) (it fails if the name exists), holding the
 * owner's pid and start time. A lock whose owner is gone (killed with -9, machine rebooted) is taken
 * over; a lock held by a live process is refused with its pid. Within one process a second open of
 * the same directory is refused too (embedded use may start several nodes in one process).
 */
import { linkSync, readFileSync, realpathSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const LOCK_FILE_NAME = 'LOCK';

/** Directories locked by this process. */
const lockedHere = new Set<string>();

export class DataDirLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly ownerPid: number | null,
  ) {
    super(
      ownerPid === null
        ? `data directory ${dir} is already in use by this process`
        : `data directory ${dir} is in use by process ${ownerPid} (lock file ${join(dir, LOCK_FILE_NAME)}); ` +
            'stop that node first; if no such process exists, the lock is taken over automatically',
    );
    this.name = 'DataDirLockedError';
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(lockPath: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, 'utf8').split('\n')[0] ?? '', 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export interface DataDirLock {
  readonly dir: string;
  release(): void;
}

/** Bounds the take-over loop: another process racing for a stale lock wins at most this often. */
const MAX_ATTEMPTS = 5;

/** Locks the existing directory `dir` (absolute or relative); throws DataDirLockedError if taken. */
export function lockDataDir(dir: string): DataDirLock {
  const real = realpathSync(dir);
  if (lockedHere.has(real)) throw new DataDirLockedError(real, null);
  const lockPath = join(real, LOCK_FILE_NAME);
  const candidate = join(real, `${LOCK_FILE_NAME}.${process.pid}.tmp`);
  writeFileSync(candidate, `${process.pid}\n${new Date().toISOString()}\n`);
  try {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        linkSync(candidate, lockPath); // atomic: fails with EEXIST if any lock file is there
        lockedHere.add(real);
        return { dir: real, release: () => releaseLock(real, lockPath) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = readOwner(lockPath);
      if (owner !== null && owner !== process.pid && isProcessAlive(owner)) throw new DataDirLockedError(real, owner);
      // Stale (owner gone, or a leftover of this very pid from an earlier life): move it aside
      // atomically and try again. Between our read and the rename another process may have taken
      // the stale lock over; then what we moved is its live lock: put it back and report it.
      const aside = join(real, `${LOCK_FILE_NAME}.stale.${process.pid}`);
      try {
        renameSync(lockPath, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      const moved = readOwner(aside);
      if (moved !== null && moved !== owner && moved !== process.pid && isProcessAlive(moved)) {
        try {
          linkSync(aside, lockPath);
        } catch {
          // A third process holds the name now; it is its lock, and ours is refused either way.
        }
        unlinkQuietly(aside);
        throw new DataDirLockedError(real, moved);
      }
      unlinkQuietly(aside);
    }
    throw new DataDirLockedError(real, readOwner(lockPath));
  } finally {
    unlinkQuietly(candidate);
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or ours and harmless if left.
  }
}

function releaseLock(real: string, lockPath: string): void {
  if (!lockedHere.delete(real)) return;
  if (readOwner(lockPath) !== process.pid) return; // not ours any more: never delete another's lock
  unlinkQuietly(lockPath);
}
