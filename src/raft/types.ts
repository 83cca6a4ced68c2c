/**
 * The public types of the Raft library (`src/raft/`): the contract between the consensus state
 * machine and its driver (`src/node/`) and the deterministic simulator (`test/sim/`).
 *
 * Raft here is a pure state machine in the style of etcd's raft: time enters only through
 * `tick()`, randomness only through `RaftConfig.random`, and all I/O is done by the driver from
 * the `Ready` batches. See docs/raft.md for the rules implemented and the driver's obligations.
 *
 * Every type here is plain data (numbers, strings, booleans, Buffers, arrays, plain objects) so a
 * driver can frame messages with msgpackr.
 */

export type NodeId = string;

/** WAL stores entryType 0 = normal, 1 = confChange. */
export type EntryType = 'normal' | 'confChange';

/** A log entry. The leader's no-op on election (Raft §8) is a 'normal' entry with empty data. */
export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Buffer;
}

/** What must be durable before any message of the same Ready leaves the node (Raft §5, Figure 2). */
export interface HardState {
  term: number;
  vote: NodeId | '';
  commit: number;
}

/**
 * A membership configuration (thesis §4.3, etcd's ConfState). In a joint configuration
 * `votersOutgoing` is the old voter set (C_old) and `voters` the new one (C_new); decisions need a
 * majority of each. `learnersNext` are outgoing voters that become learners when the joint
 * configuration is left (a node cannot be a voter and a learner at once).
 */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  votersOutgoing: NodeId[];
  learnersNext: NodeId[];
  autoLeave: boolean;
}

/** The identity of a snapshot: the last index/term it covers and the configuration at that index. */
export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

export type ConfChangeType = 'addVoter' | 'addLearner' | 'remove';

/**
 * A membership change (etcd ConfChangeV2 semantics). A change that touches voters goes through
 * joint consensus: enter joint, then leave (automatically when `autoLeave`, the default). A change
 * that only adds/removes learners is applied directly. Promotion of a learner = addVoter of it.
 * An empty `changes` list is the request to leave a joint configuration.
 */
export interface ConfChange {
  changes: Array<{ type: ConfChangeType; node: NodeId }>;
  /** Default true: the leader proposes leaving the joint configuration once it is applied. */
  autoLeave?: boolean;
  /** Opaque to raft; carried through the log for the driver. */
  context?: Buffer;
}

/** TEST-ONLY planted bugs, used by the simulator to show its checks are not vacuous. */
export type PlantedBug =
  | 'commit-old-term'
  | 'vote-any-log'
  | 'stale-read'
  | 'keep-conflict'
  | 'ack-before-persist';

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

// ---------------------------------------------------------------------------------------------
// Messages. Every message carries its group id, sender, receiver and the sender's term.
// ---------------------------------------------------------------------------------------------

export type MessageType =
  | 'preVote'
  | 'preVoteResp'
  | 'vote'
  | 'voteResp'
  | 'append'
  | 'appendResp'
  | 'heartbeat'
  | 'heartbeatResp'
  | 'snapshot'
  | 'timeoutNow'
  | 'readIndex'
  | 'readIndexResp'
  | 'transferLeader';

export interface MessageBase {
  type: MessageType;
  group: number;
  from: NodeId;
  to: NodeId;
  /** Sender's term; for 'preVote' the term the sender would campaign in (its term + 1). */
  term: number;
}

/** RequestVote / PreVote (Raft §5.2, thesis §9.6). */
export interface VoteRequest extends MessageBase {
  type: 'preVote' | 'vote';
  lastLogIndex: number;
  lastLogTerm: number;
  /** Campaign started by TimeoutNow (leadership transfer): bypasses the CheckQuorum lease (thesis §4.2.3). */
  transfer: boolean;
}

export interface VoteResponse extends MessageBase {
  type: 'preVoteResp' | 'voteResp';
  reject: boolean;
}

/** AppendEntries (Raft §5.3). */
export interface AppendRequest extends MessageBase {
  type: 'append';
  prevLogIndex: number;
  prevLogTerm: number;
  entries: Entry[];
  commit: number;
}

export interface AppendResponse extends MessageBase {
  type: 'appendResp';
  reject: boolean;
  /** Success: the follower's log matches the leader's up to here. Reject: the rejected prevLogIndex. */
  index: number;
  /**
   * Reject only (fast backtracking, Raft §5.3 end): the largest index <= min(prevLogIndex,
   * follower's last index) whose term is <= prevLogTerm, and that term.
   */
  hintIndex: number;
  hintTerm: number;
}

/** Leader heartbeat; `readRound` confirms leadership for a batch of ReadIndex requests (thesis §6.4). */
export interface HeartbeatRequest extends MessageBase {
  type: 'heartbeat';
  commit: number;
  readRound: number;
}

export interface HeartbeatResponse extends MessageBase {
  type: 'heartbeatResp';
  readRound: number;
}

/**
 * InstallSnapshot decision (Raft §7). The leader's raft emits it carrying `snapshotProvider()`'s meta;
 * the drivers stream the data in chunks and the follower's driver steps this message into its raft
 * once the data is staged and verified.
 */
export interface SnapshotRequest extends MessageBase {
  type: 'snapshot';
  snapshot: SnapshotMeta;
}

/** Leadership transfer: the target starts an election at once (thesis §3.10). */
export interface TimeoutNowRequest extends MessageBase {
  type: 'timeoutNow';
}

/** A follower forwards a batch of ReadIndex requests to its leader (thesis §6.4). */
export interface ReadIndexRequest extends MessageBase {
  type: 'readIndex';
  contexts: Buffer[];
}

export interface ReadIndexResponse extends MessageBase {
  type: 'readIndexResp';
  contexts: Buffer[];
  index: number;
}

/** A follower forwards a leadership transfer request to its leader. */
export interface TransferLeaderRequest extends MessageBase {
  type: 'transferLeader';
  target: NodeId;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotRequest
  | TimeoutNowRequest
  | ReadIndexRequest
  | ReadIndexResponse
  | TransferLeaderRequest;

// ---------------------------------------------------------------------------------------------
// Configuration, initial state, Ready, status
// ---------------------------------------------------------------------------------------------

export interface RaftConfig {
  id: NodeId;
  group: number;
  /** Default 10; each election timeout is drawn uniformly from [electionTick, 2*electionTick). */
  electionTick: number;
  /** Default 1; must be < electionTick. */
  heartbeatTick: number;
  /** Injected seeded generator in [0,1); never Math.random. */
  random: () => number;
  /** Bounded pipelining window per follower, in AppendEntries messages (default 256). */
  maxInflightMsgs: number;
  /** Byte budget of entry data per AppendEntries (default 1 MiB); one entry is always sent. */
  maxMsgBytes: number;
  checkQuorum: boolean;
  preVote: boolean;
  /** Lease reads (thesis §6.4.1). Requires checkQuorum. */
  leaseRead: boolean;
  /** Lease reads: ticks of clock drift to allow for; the lease is electionTick - leaseDriftTicks. Default 2. */
  leaseDriftTicks?: number;
  /** Uncommitted proposals bound (default 4096); propose throws ProposalDroppedError when full. */
  maxProposalQueue?: number;
  /** Pending ReadIndex requests bound (default 4096); readIndex throws ProposalDroppedError when full. */
  maxPendingReads?: number;
  /** Byte budget of committedEntries per Ready (default 16 MiB); one entry is always delivered. */
  maxApplyBytes?: number;
  /** The latest snapshot the application can serve a lagging follower (the store's applied state). */
  snapshotProvider: () => SnapshotMeta;
  /** TEST-ONLY planted bugs; never a global flag. */
  bugs?: ReadonlySet<PlantedBug>;
}

export interface RaftInitialState {
  hardState: HardState;
  /** The latest durable snapshot marker (the log starts right after it), or null. */
  snapshot: SnapshotMeta | null;
  /** Durable entries after the snapshot, contiguous. */
  entries: Entry[];
  /** The configuration as of `applied` (entries after it are re-applied by the driver). */
  conf: ConfState;
  applied: number;
}

export interface SoftState {
  leader: NodeId | '';
  role: Role;
}

export interface ReadState {
  /** The read is linearizable once the state machine has applied at least this index. */
  index: number;
  context: Buffer;
}

export interface Ready {
  softState?: SoftState;
  /** Persist if present. */
  hardState?: HardState;
  /** Persist; entries[0].index <= persisted last index means: replace the suffix from there. */
  entries: Entry[];
  /** An accepted incoming snapshot: install the staged data, persist the marker. */
  snapshot?: SnapshotMeta;
  /** Apply in order. */
  committedEntries: Entry[];
  /** Send only AFTER hardState/entries/snapshot of this Ready are durable. */
  messages: Message[];
  readStates: ReadState[];
}

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  /** Learner (non-voting) in the current configuration. */
  learner: boolean;
  /** Heard from within the last election timeout (CheckQuorum). */
  recentActive: boolean;
  inflight: number;
}

export interface RaftStatus {
  id: NodeId;
  group: number;
  term: number;
  vote: NodeId | '';
  role: Role;
  leader: NodeId | '';
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  conf: ConfState;
  /** Leader only: per-member replication progress (the driver promotes learners whose match caught up). */
  progress?: Record<NodeId, ProgressStatus>;
  /** Leader only: the target of a leadership transfer in progress. */
  transferee?: NodeId;
  /** Peer messages dropped by validation or as stale, counted by reason. */
  dropped: Record<string, number>;
}

/** The methods of `RaftGroup` (src/raft/raft-group.ts), for drivers and fakes. */
export interface RaftGroupApi {
  tick(): void;
  /** Untrusted input: malformed messages are dropped and counted in status().dropped. */
  step(m: Message): void;
  /** Throws NotLeaderError / ProposalDroppedError. */
  propose(data: Buffer): { index: number; term: number };
  proposeConfChange(cc: ConfChange): { index: number; term: number };
  /** The driver calls this when it applies a confChange entry (decode with decodeConfChange). */
  applyConfChange(cc: ConfChange): ConfState;
  transferLeadership(to: NodeId): void;
  /** The result arrives in Ready.readStates. Throws NotLeaderError when no leader is known. */
  readIndex(context: Buffer): void;
  hasReady(): boolean;
  ready(): Ready;
  advance(rd: Ready): void;
  /**
   * The application took a durable snapshot at `index`; raft drops the log below it except a tail
   * of at most `keepTail` entries and `keepTailBytes` (entryBytes; default unbounded) for slow followers.
   */
  compact(index: number, keepTail: number, keepTailBytes?: number): void;
  reportSnapshot(to: NodeId, ok: boolean): void;
  reportUnreachable(to: NodeId): void;
  term(index: number): number | undefined;
  /** The first index raft's log holds (after a compaction or a restored snapshot, what precedes it is gone). */
  firstIndex(): number;
  /** The last index durable in the driver's storage (advanced by advance(); entries past it are in a Ready or in flight). */
  stableIndex(): number;
  status(): RaftStatus;
}
