/**
 * The node's durable Raft log, as the Ready loop needs it (DESIGN.md §3 "Persistence order", §4
 * WAL). One `append` carries the writes of every group of the node: one fdatasync covers them all
 * (group commit). Implemented over the write-ahead log (./wal-log-storage.ts) in the server, and in
 * memory with simulated crashes (./memory-log-storage.ts) for tests and the simulator.
 */
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';

/** What one group contributes to one durable append. Applied in this order: snapshot, entries, hardState. */
export interface GroupLogWrite {
  group: number;
  /**
   * A snapshot marker: the state machine durably holds everything up to `snapshot.index`, so the log
   * no longer needs those entries (recovery starts after it).
   */
  snapshot?: SnapshotMeta;
  /**
   * With `snapshot`: true when the snapshot was installed from the leader (Raft §7): the whole log
   * is discarded and restarts right after the snapshot. False for a local compaction point: only
   * entries <= snapshot.index are dropped.
   */
  discardLog?: boolean;
  /** Contiguous entries; the first one's index may be <= the last durable index: that suffix is replaced. */
  entries: Entry[];
  hardState?: HardState;
}

/** One group's durable log state, as recovery finds it. */
export interface RecoveredGroupLog {
  hardState: HardState;
  /** The latest snapshot marker; the entries start right after it. */
  snapshot: SnapshotMeta | null;
  /** Contiguous entries after the snapshot marker (or from index 1). */
  entries: Entry[];
}

export interface LogStorage {
  /** Reads and verifies everything durable, per group. Called once, before the first append. */
  recover(): Promise<Map<number, RecoveredGroupLog>>;
  /**
   * Writes and syncs `writes` as one durable unit; calls `done` once everything is on stable
   * storage (or with the error that prevented it: the node must then stop, DESIGN.md §1.4).
   * Appends complete in the order they were issued.
   */
  append(writes: GroupLogWrite[], done: (error: Error | null) => void): void;
  /** Entries <= index of `group` are covered by a durable snapshot marker: their space may be reclaimed. */
  release(group: number, index: number): void;
  close(): Promise<void>;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: '', commit: 0 }) as HardState;

/** The last index a recovered log covers (its last entry, else its snapshot marker, else 0). */
export function lastIndexOf(log: RecoveredGroupLog): number {
  if (log.entries.length > 0) return log.entries[log.entries.length - 1]!.index;
  return log.snapshot?.index ?? 0;
}
