import { WalError } from './errors.js';

/**
 * When an append is acknowledged.
 *
 * - `always` (the default): an append resolves only after the fdatasync that covers it returned.
 *   Nothing acknowledged is lost, even on power loss.
 * - `interval`: an append resolves as soon as its records are written to the operating system
 *   (they survive a crash of the process, `kill -9`), and the log calls fdatasync every
 *   `intervalMs`. On power loss or a kernel crash, the writes of the last interval are lost,
 *   acknowledged or not. Use it only where that loss is acceptable.
 */
export type SyncMode = { kind: 'always' } | { kind: 'interval'; intervalMs: number };

/** Bounds of the interval of `interval:<ms>`, inclusive. */
export const MIN_SYNC_INTERVAL_MS = 1;
export const MAX_SYNC_INTERVAL_MS = 60_000;

const INTERVAL_PATTERN = /^interval:(\d+)$/;

/**
 * Parses the string form `"always" | "interval:<ms>"` (as found in configuration files and flags),
 * or checks an already-structured `SyncMode`. Anything else is a `WalError` that quotes the input.
 */
export function parseSyncMode(value: SyncMode | string): SyncMode {
  if (typeof value === 'string') {
    if (value === 'always') return { kind: 'always' };
    const match = INTERVAL_PATTERN.exec(value);
    if (match === null) {
      throw new WalError(
        `invalid WAL sync mode ${JSON.stringify(value)}: expected "always" or "interval:<ms>" (e.g. "interval:10")`,
      );
    }
    return { kind: 'interval', intervalMs: checkInterval(Number(match[1]), value) };
  }
  if (value !== null && typeof value === 'object') {
    if (value.kind === 'always') return { kind: 'always' };
    if (value.kind === 'interval')
      return { kind: 'interval', intervalMs: checkInterval(value.intervalMs, value) };
  }
  throw new WalError(
    `invalid WAL sync mode ${describe(value)}: expected "always", "interval:<ms>", { kind: 'always' } or { kind: 'interval', intervalMs }`,
  );
}

function checkInterval(ms: number, input: unknown): number {
  if (!Number.isInteger(ms) || ms < MIN_SYNC_INTERVAL_MS || ms > MAX_SYNC_INTERVAL_MS) {
    throw new WalError(
      `invalid WAL sync mode ${describe(input)}: the interval must be a whole number of milliseconds from ${MIN_SYNC_INTERVAL_MS} to ${MAX_SYNC_INTERVAL_MS}`,
    );
  }
  return ms;
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The form `parseSyncMode` accepts, for messages and configuration dumps. */
export function formatSyncMode(mode: SyncMode): string {
  return mode.kind === 'always' ? 'always' : `interval:${mode.intervalMs}`;
}
