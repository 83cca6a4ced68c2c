/**
 * The process's limit on open files (`ulimit -n`), read from /proc/self/limits (Linux; Node has no
 * getrlimit). Every client connection is a file descriptor, so a node configured for more client
 * connections than the limit allows would fail at accept() long before max-client-connections:
 * libuv then accepts and closes at once, and clients see resets with nothing in the server's logs.
 */
import { readFileSync } from 'node:fs';

export interface OpenFileLimit {
  soft: number;
  /** Infinity for "unlimited". */
  hard: number;
}

/**
 * Descriptors a node needs besides its client connections: WAL segments, the LMDB environment,
 * peer connections (in and out), the listeners, stdio, and libuv's own (the emfile reserve).
 */
export const NODE_RESERVED_FILES = 256;

/** Parses the "Max open files" line of /proc/<pid>/limits; null if absent or malformed. */
export function parseOpenFileLimit(limitsText: string): OpenFileLimit | null {
  const line = limitsText.split('\n').find((l) => l.startsWith('Max open files'));
  if (line === undefined) return null;
  const fields = line.slice('Max open files'.length).trim().split(/\s+/);
  const value = (text: string | undefined): number => {
    if (text === 'unlimited') return Number.POSITIVE_INFINITY;
    return text !== undefined && /^[0-9]{1,15}$/.test(text) ? Number(text) : Number.NaN;
  };
  const soft = value(fields[0]);
  const hard = value(fields[1]);
  if (Number.isNaN(soft) || Number.isNaN(hard)) return null;
  return { soft, hard };
}

/** This process's open-file limit; null where /proc/self/limits cannot be read (not Linux). */
export function openFileLimit(): OpenFileLimit | null {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
  return parseOpenFileLimit(text);
}

/**
 * A warning when `maxClientConnections` cannot all be open under the soft limit, naming the fix;
 * null when they fit or the limit is unknown.
 */
export function openFileLimitWarning(maxClientConnections: number, limit: OpenFileLimit | null): string | null {
  if (limit === null) return null;
  const needed = maxClientConnections + NODE_RESERVED_FILES;
  if (limit.soft >= needed) return null;
  const raise =
    limit.hard >= needed
      ? `raise it with \`ulimit -n ${needed}\` (the hard limit is ${limit.hard === Number.POSITIVE_INFINITY ? 'unlimited' : limit.hard})`
      : `the hard limit is ${limit.hard}: raise it (LimitNOFILE in systemd, nofile in limits.conf) or lower max-client-connections`;
  return (
    `the open-file limit (ulimit -n) is ${limit.soft}, below max-client-connections ${maxClientConnections} + ` +
    `${NODE_RESERVED_FILES} for the node's own files: connections past about ${Math.max(0, limit.soft - NODE_RESERVED_FILES)} ` +
    `will be reset at accept; ${raise}`
  );
}
