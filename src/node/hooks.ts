/**
 * Observation hooks: the server turns them into Prometheus metrics and structured logs; the
 * simulator checks Raft's safety properties through them. A hook never changes the node's
 * behaviour and must not throw (a throwing hook is a bug in the observer; the simulator uses that
 * to stop at the first violated invariant).
 */
import type { Entry, HardState, NodeId, Ready, Role, SnapshotMeta } from '../raft/types.js';
import type { ReadConsistency } from './kv-service.js';

export type SnapshotEvent =
  | 'streamStarted'
  | 'streamDone'
  | 'streamFailed'
  | 'received'
  | 'installed'
  | 'compacted';

export interface NodeHooks {
  // --- metrics -------------------------------------------------------------------------------
  /** This node's view of a group's leader changed. */
  leaderChanged?(e: { group: number; leader: NodeId | ''; role: Role; term: number }): void;
  /** Proposals handed to raft (a write, a conf change). */
  proposed?(e: { group: number; kind: 'write' | 'confChange'; count: number }): void;
  /** A batch of committed entries was applied. */
  applied?(e: { group: number; entries: number; index: number }): void;
  /** A client request was forwarded to the leader. */
  forwarded?(e: { group: number; op: string; to: NodeId }): void;
  /** Reads served; `readIndex` for linearizable ones. */
  read?(e: { group: number; consistency: ReadConsistency; count: number }): void;
  /** One durable append (group commit) completed. */
  persisted?(e: { groups: number; entries: number; ms: number }): void;
  snapshot?(e: { group: number; event: SnapshotEvent; index: number; peer?: NodeId }): void;

  // --- fine-grained observation (the simulator's invariant checks) -------------------------
  /** The state a group recovered from durable storage, before its raft is constructed. */
  recovered?(e: {
    group: number;
    hardState: HardState;
    snapshot: SnapshotMeta | null;
    entries: Entry[];
    applied: number;
  }): void;
  /** A Ready was taken from a group's raft (before it is persisted). */
  readyTaken?(group: number, rd: Ready): void;
  /** One committed entry was applied to the state machine (or skipped: already in the store). */
  entryApplied?(group: number, entry: Entry): void;
  /** A batch of linearizable reads asked raft for a read index with this context. */
  readIndexIssued?(group: number, context: Buffer): void;
  /** An incoming snapshot was installed into the store. */
  snapshotInstalled?(group: number, meta: SnapshotMeta): void;
}

/** Structured logging, pino-compatible: the object first, then the message. */
export interface NodeLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

export const SILENT_LOGGER: NodeLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
