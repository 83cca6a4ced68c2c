import type { SyncMode } from './sync-mode.js';

/**
 * What the log stores. Every record belongs to one Raft group (a node's groups share one log so one
 * fdatasync covers all of them: DESIGN.md §4).
 * - `entry`: a Raft log entry. An entry whose index is <= the group's last index replaces the
 *   suffix from that index (etcd's WAL has the same rule on replay).
 * - `hardState`: Raft's persistent state (Raft paper, Figure 2: currentTerm, votedFor; plus commit).
 * - `snapshot`: a marker that a snapshot covers the group's log up to `index` (of term `term`);
 *   entries at or below `index` are dropped from the log. If the log holds entry `index` with
 *   another term, the marker is refused: drop the conflicting suffix first.
 * - `truncate`: drops the group's entries from `fromIndex` on (what `truncateSuffix` writes). Put
 *   it in the same `append` as a snapshot marker to discard a log atomically when installing a
 *   leader's snapshot (Raft §7): [{ truncate from snapshotIndex + 1 of the old marker }, { snapshot }].
 */
export type WalRecord =
  | { kind: 'entry'; group: number; term: number; index: number; entryType: number; data: Buffer }
  | { kind: 'hardState'; group: number; term: number; vote: string; commit: number }
  | { kind: 'snapshot'; group: number; index: number; term: number }
  | { kind: 'truncate'; group: number; fromIndex: number };

export interface WalEntry {
  term: number;
  index: number;
  entryType: number;
  data: Buffer;
}

export interface WalHardState {
  term: number;
  vote: string;
  commit: number;
}

export interface WalSnapshotMarker {
  index: number;
  term: number;
}

/** Figures of one fdatasync, for metrics (fsync latency is what DESIGN.md §10 "slow disk" watches). */
export interface WalSyncStats {
  latencyMs: number;
  /** Records this fdatasync made durable. */
  records: number;
  /** Bytes (framed, on disk) this fdatasync made durable. */
  bytes: number;
}

export interface WalOptions {
  /** Size of every new segment file in bytes: a multiple of 4096 from 4 KiB to 1 GiB (limits.ts). Default 64 MiB. */
  segmentSize?: number;
  /** `"always"` (default) or `"interval:<ms>"`; see `SyncMode`. */
  syncMode?: SyncMode | string;
  /** Called after every fdatasync the log issues. Exceptions it throws become process warnings. */
  onSync?: (stats: WalSyncStats) => void;
  /**
   * Most bytes that may wait for the next write (records appended while the previous batch is
   * being synced). An append beyond it is rejected with `WalLimitError`. Default 256 MiB.
   */
  maxPendingBytes?: number;
}
