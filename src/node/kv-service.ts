/**
 * The one narrow interface through which client-facing protocols (src/api/) reach a node
 * (DESIGN.md §2, §5). The node implements it; the HTTP API, and later the Redis protocol, call it.
 *
 * Every method may reject with one of the errors in ./errors.js; the API maps each to a stable
 * error code and status.
 */
import type { KeyValue, RangeOptions, Txn, TxnResult } from '../kv/state-store.js';

export type ReadConsistency = 'linearizable' | 'serializable';

/**
 * Identifies a client's request for exactly-once application (Raft thesis §6.3). One request at a
 * time per client id. A retry answered with the original result was not applied again. A session
 * that expired or was evicted (idle past the TTL, or the table full) answers outcome_unknown to every
 * further request of that client id: the client continues under a new client id.
 */
export interface ClientSession {
  clientId: string;
  /** Strictly increasing per client; a retry reuses the same number. */
  seq: number;
}

export type MemberRole = 'voter' | 'learner';

export interface MemberInfo {
  id: string;
  /** host:port of the member's peer listener. */
  peerAddress: string;
  /** http://host:port of the member's client API ('' if unknown yet). */
  clientUrl: string;
  role: MemberRole;
  /** True while a joint configuration still counts this member in the outgoing set only. */
  leaving?: boolean;
}

export interface NodeStatus {
  id: string;
  role: 'leader' | 'follower' | 'candidate' | 'preCandidate';
  term: number;
  /** '' when no leader is known. */
  leader: string;
  commitIndex: number;
  lastApplied: number;
  lastIndex: number;
  /** Index of the latest snapshot / compaction point. */
  snapshotIndex: number;
  revision: number;
  members: MemberInfo[];
}

export interface KvService {
  /** Node id of this node. */
  readonly id: string;

  /**
   * Applies a transaction through Raft (forwarded to the leader when this node is a follower) and
   * resolves with its result once committed and applied. A session makes retries exactly-once.
   */
  write(txn: Txn, session?: ClientSession): Promise<TxnResult>;

  /** Reads one key; linearizable reads first obtain a read index (from the leader) and wait for it. */
  get(key: Buffer, consistency: ReadConsistency): Promise<KeyValue | null>;
  range(options: RangeOptions, consistency: ReadConsistency): Promise<KeyValue[]>;
  /** Runs a read-only transaction (compares and gets only) at one consistent point. */
  readTxn(txn: Txn, consistency: ReadConsistency): Promise<TxnResult>;

  status(): NodeStatus;
  members(): MemberInfo[];
  /** Adds a member (as a learner unless role is 'voter'); resolves when the change is committed. */
  addMember(id: string, peerAddress: string, clientUrl: string, role: MemberRole): Promise<MemberInfo[]>;
  removeMember(id: string): Promise<MemberInfo[]>;
  promoteMember(id: string): Promise<MemberInfo[]>;
  /** Transfers leadership to `to` (or the most caught-up voter when omitted); resolves once it has moved. */
  transferLeadership(to?: string): Promise<string>;
}
