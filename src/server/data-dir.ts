/**
 * A node's data directory:
 *
 *   <data-dir>/LOCK        pid of the process using it (./data-dir-lock.ts)
 *   <data-dir>/node.json   whose directory this is: node id and cluster id, written once
 *   <data-dir>/wal/        the write-ahead log (src/wal)
 *   <data-dir>/store/      the LMDB state machine (src/kv), for the default store backend
 *
 * node.json makes a misconfiguration (another node's --data-dir, another cluster's) a clear error at
 * start instead of a node that runs on someone else's log. It is written with write-fsync-rename,
 * so a crash leaves either no file or a whole one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type DataDirLock, lockDataDir } from './data-dir-lock.js';

export const IDENTITY_FILE_NAME = 'node.json';
const IDENTITY_FORMAT = 1;
/** node.json is a few hundred bytes; anything bigger is not ours. */
const MAX_IDENTITY_BYTES = 64 * 1024;

export interface DataDirIdentity {
  format: number;
  nodeId: string;
  clusterId: string;
  /** The store backend it was created with: a memory-backend directory holds no durable state. */
  storeBackend: string;
  createdAt: string;
}

export class DataDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirError';
  }
}

export interface OpenedDataDir {
  readonly path: string;
  readonly walDir: string;
  readonly storeDir: string;
  /** The identity as found on disk, or null when this start created it. */
  readonly previous: DataDirIdentity | null;
  release(): void;
}

/**
 * Creates (if needed) and locks the data directory, then checks or writes its identity. Throws
 * DataDirLockedError when another process uses it, DataDirError when it belongs to another node.
 */
export function openDataDir(dir: string, expected: { nodeId: string; clusterId: string; storeBackend: string }): OpenedDataDir {
  const path = resolve(dir);
  try {
    mkdirSync(path, { recursive: true });
  } catch (err) {
    throw new DataDirError(`cannot create data directory ${path}: ${(err as Error).message}`);
  }
  const lock: DataDirLock = lockDataDir(path);
  try {
    const identityPath = join(lock.dir, IDENTITY_FILE_NAME);
    const previous = readIdentity(identityPath);
    if (previous !== null) {
      if (previous.nodeId !== expected.nodeId) {
        throw new DataDirError(
          `data directory ${lock.dir} belongs to node ${JSON.stringify(previous.nodeId)}, not ${JSON.stringify(expected.nodeId)}: ` +
            'give each node its own --data-dir',
        );
      }
      if (previous.clusterId !== expected.clusterId) {
        throw new DataDirError(
          `data directory ${lock.dir} belongs to cluster ${JSON.stringify(previous.clusterId)}, not ${JSON.stringify(expected.clusterId)} (--cluster-id)`,
        );
      }
      if (previous.storeBackend !== expected.storeBackend) {
        throw new DataDirError(
          `data directory ${lock.dir} was created with store backend ${previous.storeBackend}, not ${expected.storeBackend}`,
        );
      }
    } else {
      writeIdentity(lock.dir, identityPath, {
        format: IDENTITY_FORMAT,
        nodeId: expected.nodeId,
        clusterId: expected.clusterId,
        storeBackend: expected.storeBackend,
        createdAt: new Date().toISOString(),
      });
    }
    return {
      path: lock.dir,
      walDir: join(lock.dir, 'wal'),
      storeDir: join(lock.dir, 'store'),
      previous,
      release: () => lock.release(),
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}

function readIdentity(path: string): DataDirIdentity | null {
  let text: string;
  try {
    const raw = readFileSync(path);
    if (raw.length > MAX_IDENTITY_BYTES) throw new DataDirError(`${path}: larger than ${MAX_IDENTITY_BYTES} bytes; not a node.json`);
    text = raw.toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DataDirError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const v = value as Partial<Record<keyof DataDirIdentity, unknown>>;
  if (
    typeof value !== 'object' ||
    value === null ||
    v.format !== IDENTITY_FORMAT ||
    typeof v.nodeId !== 'string' ||
    typeof v.clusterId !== 'string' ||
    typeof v.storeBackend !== 'string' ||
    typeof v.createdAt !== 'string'
  ) {
    throw new DataDirError(
      `${path}: expected {"format":${IDENTITY_FORMAT},"nodeId","clusterId","storeBackend","createdAt"}; this directory was not written by this AtlasDB version`,
    );
  }
  return { format: v.format, nodeId: v.nodeId, clusterId: v.clusterId, storeBackend: v.storeBackend, createdAt: v.createdAt };
}

function writeIdentity(dir: string, path: string, identity: DataDirIdentity): void {
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, 'w');
  try {
    writeSync(fd, `${JSON.stringify(identity, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
