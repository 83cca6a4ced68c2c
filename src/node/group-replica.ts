/**
 * One Raft group as hosted by a node: its raft state machine, its store, and everything between
 * them and the clients — proposals and their answers, ReadIndex reads, client sessions, membership,
 * snapshots sent and received, log compaction. The node (./raft-node.ts) owns the Ready loop across
 * all its groups and the one durable log they share; this class does the per-group work of each step.
 */
import { InvalidStoreRequestError, StoreClosedError, StoreLimitError } from '../kv/errors.js';
import type { MetaWrite, SnapshotHeader, StateStore, Txn, TxnResult } from '../kv/state-store.js';
import { cloneConfState, decodeConfChange } from '../raft/conf-change.js';
import { NotLeaderError, ProposalDroppedError } from '../raft/errors.js';
import { RaftGroup } from '../raft/raft-group.js';
import { entryBytes } from '../raft/raft-log.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  Message,
  NodeId,
  PlantedBug,
  ReadState,
  Ready,
  Role,
  SnapshotMeta,
  SnapshotRequest,
} from '../raft/types.js';
import type { Clock, TimerHandle } from './clock.js';
import { type TxnCommand, decodeCommand, encodeCommand } from './command.js';
import { NodeError } from './errors.js';
import type { NodeHooks, NodeLogger } from './hooks.js';
import type { ClientSession, MemberInfo, NodeStatus, ReadConsistency } from './kv-service.js';
import {
  META_CONF,
  type MemberAddress,
  MemberDirectory,
  encodeConf,
  encodeMembersContext,
  isJoint,
  isMember,
} from './membership.js';
import { META_APPLIED_TERM, encodeAppliedTerm, type GroupRecovery } from './recovery.js';
import { type SessionLimits, SessionTable } from './sessions.js';
import {
  SnapshotReceiver,
  SnapshotSender,
  type SnapshotStreamLimits,
  decodeSnapshotMeta,
  encodeSnapshotMeta,
} from './snapshot-transfer.js';
import type {
  ForwardedRequest,
  ForwardedResult,
  MembershipRequest,
  PeerMemberInfo,
  PeerMessage,
  SnapshotAckMessage,
  SnapshotChunkMessage,
} from './transport.js';
import type { TxnLimits } from './txn-codec.js';

/** The node's tunables, resolved (defaults in ./raft-node.ts). */
export interface NodeSettings {
  tickMs: number;
  electionTick: number;
  heartbeatTick: number;
  checkQuorum: boolean;
  preVote: boolean;
  leaseRead: boolean;
  maxInflightMsgs: number;
  maxMsgBytes: number;
  /** Default timeout of a client request (ms). */
  requestTimeoutMs: number;
  /** Writes and membership requests waiting (queued, proposed, forwarded) per group; beyond: 'overloaded'. */
  maxPendingRequests: number;
  /** Linearizable reads waiting per group; beyond: 'overloaded'. */
  maxPendingReads: number;
  /** Take a snapshot (compaction) once this many entries were applied since the last one. */
  snapshotEntries: number;
  /** ... or once this many bytes of entries (entryBytes) were: raft holds them all in memory until then. */
  snapshotBytes: number;
  /** Entries kept in raft's memory below a compaction point, for slightly slow followers. */
  keepTail: number;
  /** ... and at most this many bytes of them (large entries would otherwise make the tail huge). */
  keepTailBytes: number;
  /** A learner is promoted once its match index is within this many entries of the leader's last. */
  learnerCatchUpLag: number;
  /** Promote learners added without an explicit role once caught up (DESIGN.md §10). */
  autoPromoteLearners: boolean;
  /** A follower re-forwards a write a (former) leader definitely refused at most this many times. */
  maxForwardHops: number;
  txnLimits: TxnLimits;
  sessionLimits: SessionLimits;
  snapshotLimits: SnapshotStreamLimits;
  /** TEST-ONLY planted bugs, per node, never global. */
  bugs: ReadonlySet<PlantedBug>;
}

/** What a replica needs from its node. */
export interface ReplicaHost {
  readonly id: NodeId;
  readonly clock: Clock;
  readonly random: () => number;
  readonly hooks: NodeHooks;
  readonly logger: NodeLogger;
  readonly settings: NodeSettings;
  /** Asks for a pass of the Ready loop soon (same turn batching). */
  schedule(): void;
  /** Queues a message for a peer; flushed, coalesced per peer, at the end of the loop turn. */
  send(to: NodeId, m: PeerMessage): void;
  forward(
    group: number,
    to: NodeId,
    request: ForwardedRequest,
    timeoutMs: number,
    done: (error: NodeError | null, result?: ForwardedResult) => void,
  ): void;
  /** Tracks an async store operation (the simulator waits for these to settle). */
  track<T>(p: Promise<T>): Promise<T>;
  /** An unrecoverable error (storage failure, broken invariant): the node stops. */
  fatal(error: Error): void;
  /** The node stopped or crashed: nothing may be answered any more. */
  readonly isHalted: boolean;
  newStreamId(): string;
  /** Bytes that make this incarnation's ReadIndex contexts unique. */
  readonly readContextPrefix: Buffer;
  /** A compaction point whose store state is durable: include its marker in the next append. */
  queueCompaction(group: number, meta: SnapshotMeta): void;
  peerAddressChanged(id: NodeId, address: string | null): void;
}

type RequestState = 'queued' | 'proposed' | 'forwarded' | 'transferring' | 'done';

/** A write, membership change or leadership transfer from a client (or forwarded by a peer). */
export interface ClientRequest {
  request: ForwardedRequest;
  finish: (error: NodeError | null, result?: ForwardedResult) => void;
  deadline: number;
  /** Arrived from a follower: never forwarded again; a non-leader answers not_leader. */
  fromPeer: boolean;
  state: RequestState;
  timer: TimerHandle | null;
  proposedIndex: number;
  proposedTerm: number;
  hops: number;
  /** Leader hint from a definite refusal, and the tick before which not to retry without one. */
  hint: NodeId | '';
  retryTick: number;
  transferTarget: NodeId;
}

interface ReadRequest {
  exec: (store: StateStore) => unknown;
  finish: (error: NodeError | null, value?: unknown) => void;
  timer: TimerHandle | null;
  done: boolean;
}

interface ReadBatch {
  reads: ReadRequest[];
  issuedTick: number;
  index: number;
}

/** How one applied entry answers its proposal. */
type EntryOutcome =
  | { kind: 'none' }
  | { kind: 'txn'; slot: number }
  | { kind: 'result'; result: TxnResult }
  | { kind: 'error'; error: NodeError }
  | { kind: 'conf' };

/** A committed entry handed to the apply pipeline; a conf change has already taken effect in raft. */
interface AdmittedEntry {
  entry: Entry;
  /** For a conf change: the configuration after it and its meta writes (members, conf). */
  conf: { after: ConfState; meta: MetaWrite[] } | null;
}

/** One store batch being applied: what answers each entry once the store has committed it. */
interface PreparedApply {
  items: AdmittedEntry[];
  outcomes: EntryOutcome[];
  txnSessions: Array<ClientSession | null>;
  /** null when every entry was already in the store (nothing to write). */
  batch: { appliedIndex: number; txns: Txn[]; meta: MetaWrite[] } | null;
  /** Its proposals were answered (results known); it may not be visible yet. */
  answered: boolean;
  /** The store committed it (it is finished once every earlier batch is too). */
  landed: boolean;
}

/**
 * Entries per store apply. Each may add up to three session meta writes (its own, the previous
 * batch's result, an eviction), which keeps a batch well under the store's maxMetaWrites (10,000).
 */
const MAX_ENTRIES_PER_APPLY = 2048;

const NO_RESULTS: TxnResult[] = [];

/**
 * Store batches answered and not yet landed (each up to MAX_ENTRIES_PER_APPLY entries): the ones
 * the store holds for its commit delay (one batch per Ready: 40-50 in 100 ms at one connection; the
 * store holds at most MAX_HELD_BATCHES) and the ones committing: twice the store's cap, so a full
 * hold never stalls applying behind the commit before it.
 */
const MAX_LANDING_BATCHES = 256;

const DEFINITE_NOT_APPLIED = 'leadership changed before the request committed; it was not applied';

export class GroupReplica {
  readonly raft: RaftGroup;
  private conf: ConfState;
  private readonly sessions: SessionTable;
  private readonly members: MemberDirectory;
  private role: Role = 'follower';
  private leader: NodeId | '' = '';
  private term: number;
  /**
   * Last index whose store batch has committed (landed): snapshots are cut and compaction happens
   * at it. The store's own applied index may be ahead after a snapshot.
   */
  private applied: number;
  /**
   * Last index whose store batch's results are known (its proposals answered): >= applied. The
   * store's reads see every such batch (StateStore.applyDeferred), so linearizable reads wait for
   * this, not for the store's commit.
   */
  private visible: number;
  /** Last committed index handed to the apply pipeline (raft's applied); >= applied. */
  private admitted: number;
  /** The configuration as of `applied` (this.conf is raft's, as of `admitted`). */
  private appliedConf: ConfState;
  /** Admitted entries not yet in a store batch, in log order. */
  private applyQueue: AdmittedEntry[] = [];
  /** Last admitted index already in a store batch. */
  private preparedThrough: number;
  /** The store batch whose results are not known yet (at most one: results come in log order). */
  private computing: PreparedApply | null = null;
  /** Store batches handed to the store and not yet finished, in log order. */
  private landing: PreparedApply[] = [];
  /** Settles after the newest batch in `landing` landed. */
  private lastLanding: Promise<void> | null = null;
  private pumping = false;
  /** An incoming snapshot is being installed: no store batch may start. */
  private installing = false;
  private commit: number;
  /** Index of the durable snapshot marker in the log. */
  private snapshotIndex: number;
  /** entryBytes of the entries applied since the last compaction started (or snapshot install). */
  private appliedBytesSinceSnapshot = 0;
  private compacting = false;
  private ticks = 0;

  private readonly queue: ClientRequest[] = [];
  private readonly proposals = new Map<number, ClientRequest>();
  private readonly forwarded = new Set<ClientRequest>();
  private readonly transfers = new Set<ClientRequest>();

  private newReads: ReadRequest[] = [];
  private readonly readBatches = new Map<string, ReadBatch>();
  private readyReads: ReadBatch[] = [];
  private pendingReadCount = 0;
  private readSeq = 0;

  private readonly senders = new Map<NodeId, SnapshotSender>();
  private readonly receiver: SnapshotReceiver;
  /** A completed incoming stream was stepped into raft; the next Ready tells whether raft took it. */
  private snapshotStepped = false;
  private stopped = false;

  constructor(
    private readonly host: ReplicaHost,
    readonly group: number,
    readonly store: StateStore,
    recovery: GroupRecovery,
    bootstrap: readonly MemberAddress[],
  ) {
    const s = host.settings;
    this.sessions = new SessionTable(s.sessionLimits);
    this.sessions.load((k) => store.getMeta(k));
    this.members = new MemberDirectory(bootstrap);
    this.members.load((k) => store.getMeta(k));
    const init = recovery.initial;
    this.conf = cloneConfState(init.conf);
    this.applied = init.applied;
    this.visible = init.applied;
    this.admitted = init.applied;
    this.preparedThrough = init.applied;
    this.appliedConf = cloneConfState(init.conf);
    this.commit = init.hardState.commit;
    this.term = init.hardState.term;
    this.snapshotIndex = init.snapshot?.index ?? 0;
    this.receiver = new SnapshotReceiver(group, host.id, s.snapshotLimits);
    host.hooks.recovered?.({
      group,
      hardState: init.hardState,
      snapshot: init.snapshot,
      entries: init.entries,
      applied: init.applied,
    });
    this.raft = new RaftGroup(
      {
        id: host.id,
        group,
        electionTick: s.electionTick,
        heartbeatTick: s.heartbeatTick,
        random: host.random,
        maxInflightMsgs: s.maxInflightMsgs,
        maxMsgBytes: s.maxMsgBytes,
        checkQuorum: s.checkQuorum,
        preVote: s.preVote,
        leaseRead: s.leaseRead,
        // Raft's own bound on uncommitted entries sits above ours: the no-op, conf changes and
        // leave-joint entries also count there, and our bound should be the one a client sees.
        maxProposalQueue: s.maxPendingRequests + 64,
        maxPendingReads: s.maxPendingReads,
        snapshotProvider: () => this.snapshotForRaft(),
        bugs: s.bugs,
      },
      init,
    );
    for (const m of this.members.all()) if (m.id !== host.id) host.peerAddressChanged(m.id, m.peerAddress);
  }

  // -------------------------------------------------------------------------------------------
  // Inputs: ticks, peer messages, client requests
  // -------------------------------------------------------------------------------------------

  tick(): void {
    this.ticks++;
    this.raft.tick();
    for (const [to, sender] of this.senders) {
      sender.onTick();
      if (sender.done) this.senders.delete(to);
    }
    this.reissueStaleReads();
    if (this.role === 'leader' && this.ticks % this.host.settings.heartbeatTick === 0)
      this.maybePromoteLearners();
    if (this.queue.length > 0) this.host.schedule();
  }

  step(m: Message): void {
    this.raft.step(m);
  }

  onSnapshotChunk(m: SnapshotChunkMessage): void {
    const outcome = this.receiver.onChunk(m);
    if (outcome.kind === 'ignore') return;
    this.host.send(m.from, outcome.ack);
    if (outcome.kind === 'complete') {
      this.host.hooks.snapshot?.({
        group: this.group,
        event: 'received',
        index: outcome.request.snapshot.index,
        peer: m.from,
      });
      this.snapshotStepped = true;
      this.raft.step(outcome.request);
    }
  }

  onSnapshotAck(m: SnapshotAckMessage): void {
    const sender = this.senders.get(m.from);
    if (sender === undefined) return;
    sender.onAck(m);
    if (sender.done) this.senders.delete(m.from);
  }

  /** Accepts a write / membership change / transfer; answers through req.finish exactly once. */
  submit(req: ClientRequest): void {
    if (this.stopped) {
      req.finish(new NodeError('shutting_down', 'the node is shutting down'));
      return;
    }
    const pending = this.queue.length + this.proposals.size + this.forwarded.size + this.transfers.size;
    if (pending >= this.host.settings.maxPendingRequests) {
      req.finish(
        new NodeError(
          'overloaded',
          `${pending} requests pending in group ${this.group}; the limit maxPendingRequests is ${this.host.settings.maxPendingRequests}`,
        ),
      );
      return;
    }
    const wrapped = req.finish;
    req.finish = (error, result) => {
      if (req.state === 'done') return;
      req.state = 'done';
      req.timer?.cancel();
      req.timer = null;
      wrapped(error, result);
    };
    req.timer = this.host.clock.setTimeout(
      () => this.expire(req),
      Math.max(0, req.deadline - this.host.clock.now()),
    );
    this.queue.push(req);
    this.host.schedule();
  }

  /** A read: serializable ones run at once; linearizable ones wait for a ReadIndex (thesis §6.4). */
  read(
    consistency: ReadConsistency,
    exec: (store: StateStore) => unknown,
    timeoutMs: number,
    finish: (error: NodeError | null, value?: unknown) => void,
  ): void {
    if (this.stopped) {
      finish(new NodeError('shutting_down', 'the node is shutting down'));
      return;
    }
    if (consistency === 'serializable') {
      this.runRead(exec, finish);
      this.host.hooks.read?.({ group: this.group, consistency, count: 1 });
      return;
    }
    if (this.pendingReadCount >= this.host.settings.maxPendingReads) {
      finish(
        new NodeError(
          'overloaded',
          `${this.pendingReadCount} reads pending; the limit maxPendingReads is ${this.host.settings.maxPendingReads}`,
        ),
      );
      return;
    }
    const r: ReadRequest = { exec, finish, timer: null, done: false };
    r.timer = this.host.clock.setTimeout(() => {
      this.finishRead(
        r,
        new NodeError(
          'no_quorum',
          `could not confirm leadership with a quorum within ${timeoutMs} ms (read not served)`,
        ),
      );
    }, timeoutMs);
    this.pendingReadCount++;
    this.newReads.push(r);
    this.host.schedule();
  }

  // -------------------------------------------------------------------------------------------
  // The Ready loop's per-group steps
  // -------------------------------------------------------------------------------------------

  /** Before taking a Ready: hand queued requests to raft (or the leader) and batch new reads. */
  beforeReady(): void {
    if (this.queue.length > 0) this.flushQueue();
    if (this.newReads.length > 0) this.flushReads();
  }

  /**
   * While this node's append is in flight (the host takes no Ready then): a leader proposes what
   * its clients queued meanwhile and sends the appends at once (RaftGroup.takeEarlyReplication),
   * so the followers' disks work while its own does. The entries are persisted here with the next Ready.
   */
  sendEarlyReplication(): void {
    if (this.role !== 'leader' || this.queue.length === 0) return;
    this.flushQueue();
    for (const m of this.raft.takeEarlyReplication()) this.host.send(m.to, { kind: 'raft', message: m });
  }

  takeReady(): Ready | null {
    if (!this.raft.hasReady()) return null;
    const rd = this.raft.ready();
    this.host.hooks.readyTaken?.(this.group, rd);
    if (this.snapshotStepped) {
      this.snapshotStepped = false;
      // Raft declined the completed stream (stale, or our log already had it): drop the staging.
      if (rd.snapshot === undefined) this.receiver.reset();
    }
    if (rd.hardState !== undefined) {
      if (rd.hardState.term < this.term)
        throw new Error(`group ${this.group}: term went back from ${this.term}`);
      if (rd.hardState.commit < this.commit) {
        throw new Error(
          `group ${this.group}: commit went back from ${this.commit} to ${rd.hardState.commit}`,
        );
      }
      this.term = rd.hardState.term;
      this.commit = rd.hardState.commit;
    }
    if (rd.softState !== undefined) this.onSoftState(rd.softState.role, rd.softState.leader);
    return rd;
  }

  /**
   * Installs an accepted incoming snapshot into the store (before its WAL marker is written: a crash
   * in between is repaired at recovery, ./recovery.ts).
   */
  async installSnapshot(meta: SnapshotMeta): Promise<void> {
    const chunks = this.receiver.staged(meta);
    if (chunks === null) {
      throw new Error(
        `group ${this.group}: raft accepted snapshot ${meta.index}/${meta.term} but nothing is staged for it`,
      );
    }
    // The store takes no batch while it imports: let the one in flight land, drop the queued ones
    // (all at or below the snapshot: raft takes a snapshot only beyond its commit index).
    this.installing = true;
    let header: SnapshotHeader;
    try {
      if (this.landing.length > 0) this.store.commitPending(); // none held back for the delay
      while (this.landing.length > 0 && this.lastLanding !== null) await this.lastLanding;
      for (const item of this.applyQueue) {
        if (item.entry.index > meta.index) {
          throw new Error(
            `group ${this.group}: entry ${item.entry.index} waits for apply beyond snapshot ${meta.index}`,
          );
        }
      }
      this.applyQueue = [];
      header = await this.host.track(this.store.importSnapshot(chunks));
    } finally {
      this.installing = false;
    }
    const carried = decodeSnapshotMeta(header.metadata);
    if (carried.index !== meta.index || carried.term !== meta.term) {
      throw new Error(
        `group ${this.group}: snapshot data is for ${carried.index}/${carried.term}, raft installed ${meta.index}/${meta.term}`,
      );
    }
    if (header.appliedIndex < meta.index) {
      throw new Error(
        `group ${this.group}: snapshot data applied index ${header.appliedIndex} < its meta ${meta.index}`,
      );
    }
    await this.host.track(this.store.sync());
    // Only this snapshot's staging: a newer stream may have completed (and been stepped into raft)
    // while this one was being installed.
    this.receiver.release(meta);
    if (this.stopped) return;
    this.sessions.load((k) => this.store.getMeta(k));
    this.members.load((k) => this.store.getMeta(k));
    for (const m of this.members.all())
      if (m.id !== this.host.id) this.host.peerAddressChanged(m.id, m.peerAddress);
    this.conf = cloneConfState(meta.conf);
    this.appliedConf = cloneConfState(meta.conf);
    this.applied = meta.index;
    this.visible = meta.index;
    this.appliedBytesSinceSnapshot = 0;
    this.admitted = meta.index;
    this.preparedThrough = meta.index;
    if (this.commit < meta.index) this.commit = meta.index;
    // Proposals covered by the snapshot: their entries were never applied here one by one.
    for (const [index, req] of this.proposals) {
      if (index > meta.index) continue;
      this.proposals.delete(index);
      this.answerUnseen(req, index === meta.index ? meta.term : undefined);
    }
    this.host.hooks.snapshotInstalled?.(this.group, meta);
    this.host.hooks.snapshot?.({ group: this.group, event: 'installed', index: meta.index });
    this.serveReads();
  }

  /** The snapshot marker of an installed snapshot is durable. */
  snapshotPersisted(meta: SnapshotMeta): void {
    this.snapshotIndex = meta.index;
  }

  /** Sends a Ready's messages; raft's 'snapshot' messages become chunked streams. */
  sendMessages(rd: Ready): void {
    for (const m of rd.messages) {
      if (m.type === 'snapshot') this.startSnapshotStream(m);
      else this.host.send(m.to, { kind: 'raft', message: m });
    }
  }

  /**
   * After the Ready is durable and its messages are out: hand the committed entries to the apply
   * pipeline, advance raft, serve reads. Raft counts the entries applied from here on (their conf
   * changes take effect now, as etcd's raft expects); the store commits them in the background and
   * their answers and reads wait for that (`applied`).
   */
  afterPersist(rd: Ready): void {
    if (rd.committedEntries.length > 0 && !this.supersededBySnapshot(rd)) {
      const last = rd.committedEntries[rd.committedEntries.length - 1]!.index;
      if (last > this.admitted)
        this.admit(rd.committedEntries.slice(rd.committedEntries.length - (last - this.admitted)));
    }
    if (rd.readStates.length > 0) this.onReadStates(rd.readStates);
    this.raft.advance(rd);
    this.pumpApply();
    this.serveReads();
    this.maybeCompact();
  }

  /**
   * While `rd` is being persisted: its committed entries that were already durable here before it
   * (in an earlier Ready's append) go to the apply pipeline now, so their answers need not wait for
   * this Ready's fdatasync, which only its own entries need. Under load every Ready carries both
   * the entries committed since the last one and new proposals, so without this each write waited
   * for a second fdatasync. Entries committed but not yet durable here (a follower catching up
   * receives entries and a commit index covering them in one message) still wait: the store must
   * never get ahead of this node's log. A committed entry is never overwritten (Raft §5.4), so one
   * at or below the stable index stays what it is. Only entries before the first conf change.
   */
  admitDurable(rd: Ready): void {
    if (rd.snapshot !== undefined || rd.committedEntries.length === 0 || this.supersededBySnapshot(rd))
      return;
    const stable = this.raft.stableIndex();
    const first = rd.committedEntries[0]!.index;
    if (first !== this.admitted + 1)
      throw new Error(`group ${this.group}: committed entries start at ${first}, admitted ${this.admitted}`);
    let count = Math.min(rd.committedEntries.length, stable - this.admitted);
    // A conf change takes effect in raft when admitted; it waits for afterPersist, right before
    // raft.advance, as before: between here and there raft steps messages (a snapshot among them)
    // and must not see a configuration ahead of its applied index (simulator seed 283/5 nodes).
    for (let i = 0; i < count; i++) {
      if (rd.committedEntries[i]!.type === 'confChange') {
        count = i;
        break;
      }
    }
    if (count <= 0) return;
    this.admit(
      count === rd.committedEntries.length ? rd.committedEntries : rd.committedEntries.slice(0, count),
    );
    this.pumpApply();
  }

  /**
   * True when raft no longer holds `rd`'s committed entries: a snapshot from the leader was stepped
   * (restored in raft) while `rd` was being persisted. Raft takes a snapshot only beyond its commit
   * index, so it covers every one of them; its install resets the apply state. Admitting them would
   * apply their conf changes on top of the snapshot's configuration (simulator seed 50214/3 nodes:
   * the founders' bootstrap change re-applied to a restored configuration made it joint).
   */
  private supersededBySnapshot(rd: Ready): boolean {
    const first = this.raft.firstIndex();
    const entries = rd.committedEntries;
    if (entries[0]!.index >= first) return false;
    if (entries[entries.length - 1]!.index >= first)
      throw new Error(
        `group ${this.group}: committed entries ${entries[0]!.index}..${entries[entries.length - 1]!.index} straddle raft's first index ${first}`,
      );
    return true;
  }

  /** A compaction marker is durable: raft may drop the log below it, the WAL its segments. */
  compactionPersisted(meta: SnapshotMeta): boolean {
    this.compacting = false;
    if (meta.index <= this.snapshotIndex) return false; // superseded by an installed snapshot
    this.snapshotIndex = meta.index;
    this.raft.compact(meta.index, this.host.settings.keepTail, this.host.settings.keepTailBytes);
    this.host.hooks.snapshot?.({ group: this.group, event: 'compacted', index: meta.index });
    return true;
  }

  compactionAbandoned(): void {
    this.compacting = false;
  }

  /** A queued compaction point is still worth a marker: no snapshot at or past it was installed since. */
  compactionCurrent(meta: SnapshotMeta): boolean {
    return !this.installing && meta.index > this.snapshotIndex && meta.index <= this.applied;
  }

  /** Stops: every waiting request is answered (never left hanging). */
  stop(reason: NodeError): void {
    if (this.stopped) return;
    this.stopped = true;
    const unknown = new NodeError(
      'outcome_unknown',
      `${reason.message}; the request may or may not have been applied`,
    );
    for (const r of this.queue) r.finish(reason);
    this.queue.length = 0;
    for (const r of this.proposals.values()) r.finish(unknown);
    this.proposals.clear();
    for (const r of this.forwarded) r.finish(unknown);
    this.forwarded.clear();
    for (const r of this.transfers) r.finish(reason);
    this.transfers.clear();
    for (const r of this.newReads) this.finishRead(r, reason);
    for (const b of this.readBatches.values()) for (const r of b.reads) this.finishRead(r, reason);
    for (const b of this.readyReads) for (const r of b.reads) this.finishRead(r, reason);
    this.newReads = [];
    this.readBatches.clear();
    this.readyReads = [];
    for (const s of this.senders.values()) s.abort(false);
    this.senders.clear();
  }

  // -------------------------------------------------------------------------------------------
  // Status
  // -------------------------------------------------------------------------------------------

  status(): NodeStatus {
    const st = this.raft.status();
    return {
      id: this.host.id,
      role: st.role,
      term: st.term,
      leader: st.leader,
      commitIndex: st.commit,
      lastApplied: this.applied,
      lastIndex: st.lastIndex,
      snapshotIndex: this.snapshotIndex,
      revision: this.store.revision(),
      members: this.memberList(),
    };
  }

  memberList(): MemberInfo[] {
    return this.members.list(this.conf);
  }

  get currentLeader(): NodeId | '' {
    return this.leader;
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  get appliedIndex(): number {
    return this.applied;
  }

  get confState(): ConfState {
    return this.conf;
  }

  // -------------------------------------------------------------------------------------------
  // Proposals
  // -------------------------------------------------------------------------------------------

  private flushQueue(): void {
    const waiting = this.queue.splice(0, this.queue.length);
    for (const req of waiting) {
      if (req.state === 'done') continue;
      if (this.role === 'leader') {
        this.proposeLocal(req);
      } else if (req.fromPeer) {
        req.finish(
          new NodeError('not_leader', `${this.host.id} is not the leader`, this.leader || undefined),
        );
      } else {
        const target = req.hint !== '' ? req.hint : this.leader;
        if (target === '' || target === this.host.id || (req.hint === '' && this.ticks < req.retryTick)) {
          this.queue.push(req); // no leader known yet: wait (answered no_quorum at the deadline)
        } else {
          this.forwardToLeader(req, target);
        }
      }
    }
  }

  private proposeLocal(req: ClientRequest): void {
    const r = req.request;
    try {
      switch (r.op) {
        case 'write': {
          const cmd: TxnCommand = {
            txn: r.txn,
            session: r.session ?? null,
            time: this.host.clock.wallTime(),
          };
          const at = this.raft.propose(encodeCommand(cmd));
          this.trackProposal(req, at);
          this.host.hooks.proposed?.({ group: this.group, kind: 'write', count: 1 });
          return;
        }
        case 'confChange': {
          const cc = this.buildConfChange(r.change);
          const at = this.raft.proposeConfChange(cc);
          this.trackProposal(req, at);
          this.host.hooks.proposed?.({ group: this.group, kind: 'confChange', count: 1 });
          return;
        }
        case 'transferLeadership': {
          const target = r.to ?? this.bestTransferTarget();
          if (target === undefined) {
            req.finish(new NodeError('invalid_request', 'no other voter to transfer leadership to'));
            return;
          }
          if (target === this.host.id) {
            req.finish(null, { op: 'transferLeadership', leader: this.host.id });
            return;
          }
          if (!this.conf.voters.includes(target)) {
            req.finish(new NodeError('member_not_found', `${target} is not a voter of group ${this.group}`));
            return;
          }
          this.raft.transferLeadership(target);
          req.state = 'transferring';
          req.transferTarget = target;
          this.transfers.add(req);
          return;
        }
      }
    } catch (e) {
      if (e instanceof NotLeaderError) {
        this.queue.push(req); // lost leadership in this very turn: try again (forward) next pass
        return;
      }
      req.finish(toNodeError(e));
    }
  }

  private trackProposal(req: ClientRequest, at: { index: number; term: number }): void {
    req.state = 'proposed';
    req.proposedIndex = at.index;
    req.proposedTerm = at.term;
    const previous = this.proposals.get(at.index);
    if (previous !== undefined) {
      // An older proposal at the same index was overwritten by a newer term before we saw it
      // committed: its entry can never commit at that index (the index now holds another entry).
      previous.finish(new NodeError('not_leader', DEFINITE_NOT_APPLIED));
    }
    this.proposals.set(at.index, req);
  }

  private forwardToLeader(req: ClientRequest, target: NodeId): void {
    req.state = 'forwarded';
    req.hops++;
    this.forwarded.add(req);
    const remaining = Math.max(1, req.deadline - this.host.clock.now());
    this.host.forward(this.group, target, req.request, remaining, (error, result) => {
      this.forwarded.delete(req);
      if (req.state === 'done') return;
      if (error === null) {
        req.finish(null, result);
        return;
      }
      // 'not_leader' from the peer is definite (it did not propose): try the leader it names.
      if (error.code === 'not_leader' && req.hops < this.host.settings.maxForwardHops && !this.stopped) {
        req.state = 'queued';
        req.hint = error.leader !== undefined && error.leader !== target ? error.leader : '';
        req.retryTick = this.ticks + 1;
        this.queue.push(req);
        this.host.schedule();
        return;
      }
      req.finish(error);
    });
  }

  private expire(req: ClientRequest): void {
    if (req.state === 'done') return;
    switch (req.state) {
      case 'queued': {
        const i = this.queue.indexOf(req);
        if (i >= 0) this.queue.splice(i, 1);
        // Never handed to raft or to a leader: certainly not applied.
        req.finish(
          new NodeError(
            'no_quorum',
            'no leader was reachable before the deadline; the request was not proposed',
          ),
        );
        return;
      }
      case 'proposed':
        this.proposals.delete(req.proposedIndex);
        req.finish(
          new NodeError(
            'outcome_unknown',
            'proposed but not committed before the deadline; it may still be applied',
          ),
        );
        return;
      case 'forwarded':
        this.forwarded.delete(req);
        req.finish(
          new NodeError(
            'outcome_unknown',
            'no answer from the leader before the deadline; it may still be applied',
          ),
        );
        return;
      case 'transferring':
        this.transfers.delete(req);
        req.finish(
          new NodeError('no_quorum', `leadership did not move to ${req.transferTarget} before the deadline`),
        );
        return;
    }
  }

  private buildConfChange(change: MembershipRequest): ConfChange {
    let cc: ConfChange;
    switch (change.type) {
      case 'add': {
        if (isMember(this.conf, change.id))
          throw new NodeError('member_exists', `${change.id} is already a member`);
        const promote = change.role === 'voter' || this.host.settings.autoPromoteLearners;
        // Every new member joins as a learner and is promoted once caught up (DESIGN.md §10), so an
        // empty node never counts toward a quorum it cannot serve.
        cc = {
          changes: [{ type: 'addLearner', node: change.id }],
          context: encodeMembersContext([
            { id: change.id, peerAddress: change.peerAddress, clientUrl: change.clientUrl, promote },
          ]),
        };
        break;
      }
      case 'remove':
        if (!isMember(this.conf, change.id))
          throw new NodeError('member_not_found', `${change.id} is not a member`);
        cc = { changes: [{ type: 'remove', node: change.id }] };
        break;
      case 'promote':
        if (!this.conf.learners.includes(change.id)) {
          throw new NodeError(
            isMember(this.conf, change.id) ? 'invalid_request' : 'member_not_found',
            `${change.id} is not a learner`,
          );
        }
        cc = { changes: [{ type: 'addVoter', node: change.id }] };
        break;
    }
    if (isJoint(this.conf)) {
      throw new NodeError(
        'membership_change_in_progress',
        'the group is in a joint configuration; retry once it settles',
      );
    }
    return cc;
  }

  /** Leader: promotes learners that asked for it once their log is within the catch-up lag. */
  private maybePromoteLearners(): void {
    if (this.conf.learners.length === 0 || isJoint(this.conf)) return;
    const st = this.raft.status();
    if (st.progress === undefined) return;
    for (const id of this.conf.learners) {
      const m = this.members.get(id);
      const pr = st.progress[id];
      if (m === undefined || !m.promote || pr === undefined || !pr.recentActive) continue;
      // Caught up: replicating normally (not probing, not waiting for a snapshot) and within the lag.
      if (pr.state !== 'replicate' || pr.match + this.host.settings.learnerCatchUpLag < st.lastIndex)
        continue;
      try {
        this.raft.proposeConfChange({ changes: [{ type: 'addVoter', node: id }] });
        this.host.logger.info(
          { group: this.group, learner: id, match: pr.match },
          'promoting caught-up learner',
        );
        this.host.schedule();
      } catch {
        // Another change is pending: try again on a later tick.
      }
      return;
    }
  }

  private bestTransferTarget(): NodeId | undefined {
    const st = this.raft.status();
    let best: NodeId | undefined;
    let bestMatch = -1;
    for (const id of this.conf.voters) {
      if (id === this.host.id) continue;
      const match = st.progress?.[id]?.match ?? 0;
      if (match > bestMatch) {
        best = id;
        bestMatch = match;
      }
    }
    return best;
  }

  // -------------------------------------------------------------------------------------------
  // Apply
  // -------------------------------------------------------------------------------------------

  /**
   * Takes committed entries into the apply pipeline in log order. A conf change takes effect in raft
   * here (Raft thesis §4.1: a server uses a configuration as soon as it is in its log; raft itself
   * gates the next proposal on this "applied"), its store writes ride with its batch.
   */
  private admit(entries: Entry[]): void {
    for (const e of entries) {
      if (e.index !== this.admitted + 1)
        throw new Error(`group ${this.group}: admitting ${e.index} for apply, expected ${this.admitted + 1}`);
      this.admitted = e.index;
      let conf: AdmittedEntry['conf'] = null;
      if (e.type === 'confChange') {
        const cc = decodeConfChange(e.data);
        this.conf = this.raft.applyConfChange(cc);
        const membersWrite = this.members.apply(cc, this.conf);
        for (const m of this.members.all())
          if (m.id !== this.host.id) this.host.peerAddressChanged(m.id, m.peerAddress);
        conf = {
          after: cloneConfState(this.conf),
          meta: [membersWrite, { key: META_CONF, value: encodeConf(this.conf) }],
        };
      }
      this.applyQueue.push({ entry: e, conf });
    }
  }

  /**
   * Hands admitted entries to the store in batches. A batch commits without blocking this thread on
   * the disk (StateStore.applyDeferred: the WAL already holds every entry durably, and compaction
   * syncs the store first). Its proposals are answered, and reads may see it (`visible`), as soon as
   * its results are known; `applied` (what snapshots are cut at) moves when it lands, in log order.
   * The next batch is prepared once the previous one's results are known, so session checks and
   * results stay in log order; up to MAX_LANDING_BATCHES may be held or committing at once.
   */
  private pumpApply(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (
        this.computing === null &&
        !this.installing &&
        !this.stopped &&
        this.applyQueue.length > 0 &&
        this.landing.length < MAX_LANDING_BATCHES
      ) {
        const items =
          this.applyQueue.length <= MAX_ENTRIES_PER_APPLY
            ? this.applyQueue
            : this.applyQueue.slice(0, MAX_ENTRIES_PER_APPLY);
        this.applyQueue = items === this.applyQueue ? [] : this.applyQueue.slice(MAX_ENTRIES_PER_APPLY);
        const prepared = this.prepareApply(items);
        this.computing = prepared;
        this.landing.push(prepared);
        const answer = (results: TxnResult[]): void => {
          if (this.computing !== prepared) return; // the replica stopped
          this.computing = null;
          if (this.stopped || this.host.isHalted) return;
          try {
            this.answerApply(prepared, results);
            this.serveReads(); // the store's reads see this batch now, landed or not
            this.pumpApply(); // a store that reports results later: go on from here
          } catch (e) {
            this.host.fatal(e instanceof Error ? e : new Error(String(e)));
          }
        };
        let committed: Promise<TxnResult[]>;
        if (prepared.batch === null) {
          answer(NO_RESULTS);
          committed = Promise.resolve(NO_RESULTS);
        } else {
          committed = this.store.applyDeferred(prepared.batch, answer);
        }
        this.lastLanding = this.host.track(committed).then(
          () => this.batchLanded(prepared),
          (e: unknown) => this.host.fatal(e instanceof Error ? e : new Error(String(e))),
        );
      }
    } finally {
      this.pumping = false;
    }
  }

  /** A batch is committed in the store: finish, in log order, every landed batch at the front. */
  private batchLanded(prepared: PreparedApply): void {
    prepared.landed = true;
    if (this.stopped || this.host.isHalted) {
      this.landing = [];
      return;
    }
    try {
      let finished = 0;
      while (this.landing.length > 0 && this.landing[0]!.landed) {
        const next = this.landing.shift()!;
        if (!next.answered) throw new Error(`group ${this.group}: a store batch committed unanswered`);
        this.finishApply(next);
        finished++;
      }
      if (finished === 0) return;
      this.pumpApply();
      this.serveReads();
      this.maybeCompact();
      this.host.schedule();
    } catch (e) {
      this.host.fatal(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** Session checks and the store batch for `items` (the entries right after `applied`). */
  private prepareApply(items: AdmittedEntry[]): PreparedApply {
    const storeApplied = this.store.appliedIndex();
    const txns: Txn[] = [];
    const txnSessions: Array<ClientSession | null> = [];
    const outcomes: EntryOutcome[] = [];
    const meta: MetaWrite[] = [];
    /** Requests of this batch by client: a retry committed in the same batch shares the first's result. */
    const batchSlots = new Map<string, { seq: number; slot: number }>();
    let expected = this.preparedThrough + 1;
    let last: Entry | null = null;
    for (const { entry: e, conf } of items) {
      if (e.index !== expected)
        throw new Error(`group ${this.group}: applying ${e.index}, expected ${expected}`);
      expected++;
      if (e.index <= storeApplied) {
        // Already in the store (a snapshot whose data went past its meta).
        outcomes.push({ kind: 'none' });
        continue;
      }
      last = e;
      if (conf !== null) {
        meta.push(...conf.meta);
        outcomes.push({ kind: 'conf' });
        continue;
      }
      if (e.data.length === 0) {
        outcomes.push({ kind: 'none' }); // the leader's no-op (thesis §8)
        continue;
      }
      const cmd = decodeCommand(e.data);
      this.sessions.advanceTime(cmd.time);
      const session = cmd.session;
      if (session === null) {
        outcomes.push({ kind: 'txn', slot: txns.length });
        txns.push(cmd.txn);
        txnSessions.push(null);
        continue;
      }
      const verdict = this.sessions.check(session);
      switch (verdict.kind) {
        case 'apply':
          this.sessions.begin(session);
          batchSlots.set(session.clientId, { seq: session.seq, slot: txns.length });
          outcomes.push({ kind: 'txn', slot: txns.length });
          txns.push(cmd.txn);
          txnSessions.push(session);
          break;
        case 'duplicate': {
          const inBatch = batchSlots.get(session.clientId);
          if (inBatch !== undefined && inBatch.seq === session.seq)
            outcomes.push({ kind: 'txn', slot: inBatch.slot });
          else if (verdict.result !== null) outcomes.push({ kind: 'result', result: verdict.result });
          else {
            outcomes.push({
              kind: 'error',
              error: new NodeError(
                'outcome_unknown',
                `request ${session.clientId}/${session.seq} was already applied, but its result was lost in a restart`,
              ),
            });
          }
          break;
        }
        case 'stale':
          outcomes.push({
            kind: 'error',
            error: new NodeError(
              'outcome_unknown',
              `request ${session.clientId}/${session.seq} is older than the session's last (${verdict.lastSeq}); ` +
                'it was applied before and its result is no longer kept',
            ),
          });
          break;
        case 'unknown':
          outcomes.push({
            kind: 'error',
            error: new NodeError(
              'outcome_unknown',
              `no session for client ${session.clientId} (expired or evicted) and seq ${session.seq} > 1: ` +
                'an earlier attempt may have been applied; not applied now — start a new client id',
            ),
          });
          break;
      }
    }
    this.preparedThrough = items[items.length - 1]!.entry.index;
    if (last === null) return { items, outcomes, txnSessions, batch: null, answered: false, landed: false };
    meta.push(...this.sessions.drainWrites());
    meta.push({ key: META_APPLIED_TERM, value: encodeAppliedTerm(last.term) });
    return {
      items,
      outcomes,
      txnSessions,
      batch: { appliedIndex: last.index, txns, meta },
      answered: false,
      landed: false,
    };
  }

  /**
   * The batch's results are known and it will commit (or the node fails): record session results
   * and answer its proposals. Acknowledging before the store's commit is safe: the entries are
   * committed in the Raft log (a majority's WAL), which replays them after a crash to the same
   * results; reads still wait for `applied`, which moves only once the batch is visible.
   */
  private answerApply(prepared: PreparedApply, results: readonly TxnResult[]): void {
    if (prepared.answered) throw new Error(`group ${this.group}: a store batch answered twice`);
    prepared.answered = true;
    const last = prepared.items[prepared.items.length - 1]!.entry.index;
    if (last <= this.visible) {
      throw new Error(
        `group ${this.group}: batch through ${last} answered, but ${this.visible} was visible already`,
      );
    }
    this.visible = last;
    const txnCount = prepared.batch?.txns.length ?? 0;
    if (results.length !== txnCount) {
      throw new Error(`group ${this.group}: store returned ${results.length} results for ${txnCount} txns`);
    }
    for (let i = 0; i < txnCount; i++) {
      const s = prepared.txnSessions[i];
      if (s !== null && s !== undefined) this.sessions.setResult(s, results[i]!);
    }
    const { items, outcomes } = prepared;
    for (let i = 0; i < items.length; i++) {
      const e = items[i]!.entry;
      const req = this.proposals.get(e.index);
      if (req === undefined) continue;
      this.proposals.delete(e.index);
      this.answer(req, e, outcomes[i]!, results);
    }
  }

  /** The store committed a prepared batch: it is visible, so `applied` moves (reads may use it). */
  private finishApply(prepared: PreparedApply): void {
    const hooks = this.host.hooks;
    const { items } = prepared;
    for (const { entry, conf } of items) {
      if (conf !== null) this.appliedConf = conf.after;
      this.appliedBytesSinceSnapshot += entryBytes(entry);
      hooks.entryApplied?.(this.group, entry);
    }
    const lastIndex = items[items.length - 1]!.entry.index;
    if (lastIndex <= this.applied || lastIndex > this.admitted)
      throw new Error(
        `group ${this.group}: applied ${lastIndex} outside (${this.applied}, ${this.admitted}]`,
      );
    this.applied = lastIndex;
    hooks.applied?.({ group: this.group, entries: items.length, index: this.applied });
  }

  /** Answers a proposal by the entry committed at its index (Raft log matching: index+term identify it). */
  private answer(req: ClientRequest, e: Entry, outcome: EntryOutcome, results: readonly TxnResult[]): void {
    if (req.state === 'done') return;
    if (e.term !== req.proposedTerm) {
      // Another entry committed at this index: ours can never commit (one committed entry per index).
      req.finish(new NodeError('not_leader', DEFINITE_NOT_APPLIED, this.leader || undefined));
      return;
    }
    switch (outcome.kind) {
      case 'txn':
        req.finish(null, { op: 'write', result: results[outcome.slot]! });
        return;
      case 'result':
        req.finish(null, { op: 'write', result: outcome.result });
        return;
      case 'error':
        req.finish(outcome.error);
        return;
      case 'conf':
        req.finish(null, { op: 'confChange', members: this.peerMembers() });
        return;
      case 'none':
        this.answerUnseen(req, e.term);
        return;
    }
  }

  /**
   * A proposal whose entry reached the store without passing through apply here (inside an installed
   * snapshot). If the committed term at its index is known and differs, it definitely failed; else the
   * session table may still know its result; otherwise the outcome is unknown.
   */
  private answerUnseen(req: ClientRequest, committedTerm: number | undefined): void {
    if (committedTerm !== undefined && committedTerm !== req.proposedTerm) {
      req.finish(new NodeError('not_leader', DEFINITE_NOT_APPLIED, this.leader || undefined));
      return;
    }
    const r = req.request;
    if (r.op === 'write' && r.session !== undefined) {
      const v = this.sessions.check(r.session);
      if (v.kind === 'duplicate' && v.result !== null) {
        req.finish(null, { op: 'write', result: v.result });
        return;
      }
    }
    req.finish(
      new NodeError(
        'outcome_unknown',
        'the request was overtaken by a snapshot; its outcome is unknown here',
      ),
    );
  }

  private peerMembers(): PeerMemberInfo[] {
    return this.memberList().map((m) => ({
      id: m.id,
      peerAddress: m.peerAddress,
      clientUrl: m.clientUrl,
      role: m.role,
      leaving: m.leaving === true,
    }));
  }

  private onSoftState(role: Role, leader: NodeId | ''): void {
    const wasLeader = this.role === 'leader';
    this.role = role;
    this.leader = leader;
    this.host.hooks.leaderChanged?.({ group: this.group, leader, role, term: this.term });
    this.host.logger.info({ group: this.group, role, leader, term: this.term }, 'raft role changed');
    if (wasLeader && role !== 'leader') {
      for (const s of this.senders.values()) s.abort(false);
      this.senders.clear();
    }
    if (leader !== '') {
      for (const req of this.transfers) {
        if (leader !== this.host.id || req.transferTarget === this.host.id) {
          this.transfers.delete(req);
          req.finish(null, { op: 'transferLeadership', leader });
        }
      }
    }
    this.host.schedule();
  }

  // -------------------------------------------------------------------------------------------
  // Reads (thesis §6.4: ReadIndex, batched; on followers too)
  // -------------------------------------------------------------------------------------------

  private flushReads(): void {
    if (this.leader === '') return; // wait for a leader (answered no_quorum at the deadline)
    const reads = this.newReads.filter((r) => !r.done);
    this.newReads = [];
    if (reads.length === 0) return;
    const ctx = Buffer.allocUnsafe(this.host.readContextPrefix.length + 6);
    this.host.readContextPrefix.copy(ctx, 0);
    ctx.writeUIntBE(this.readSeq++, this.host.readContextPrefix.length, 6);
    try {
      this.raft.readIndex(ctx);
    } catch (e) {
      if (e instanceof NotLeaderError) {
        this.newReads = reads;
        return;
      }
      const err = toNodeError(e);
      for (const r of reads) this.finishRead(r, err);
      return;
    }
    this.readBatches.set(ctx.toString('latin1'), { reads, issuedTick: this.ticks, index: -1 });
    this.host.hooks.readIndexIssued?.(this.group, ctx);
  }

  private onReadStates(states: ReadState[]): void {
    for (const rs of states) {
      const key = rs.context.toString('latin1');
      const batch = this.readBatches.get(key);
      if (batch === undefined) continue; // re-issued or from an earlier incarnation
      this.readBatches.delete(key);
      batch.index = rs.index;
      this.readyReads.push(batch);
    }
  }

  private serveReads(): void {
    if (this.readyReads.length === 0) return;
    const waiting: ReadBatch[] = [];
    let served = 0;
    for (const b of this.readyReads) {
      if (b.index > this.visible) {
        waiting.push(b);
        continue;
      }
      for (const r of b.reads) {
        if (r.done) continue;
        this.runRead(r.exec, (error, value) => this.finishRead(r, error, value));
        served++;
      }
    }
    this.readyReads = waiting;
    if (served > 0) this.host.hooks.read?.({ group: this.group, consistency: 'linearizable', count: served });
  }

  /** A batch whose ReadIndex got no answer (lost message, leader change) is asked again. */
  private reissueStaleReads(): void {
    if (this.readBatches.size === 0) return;
    const limit = 2 * this.host.settings.electionTick;
    for (const [key, b] of this.readBatches) {
      if (this.ticks - b.issuedTick < limit) continue;
      this.readBatches.delete(key);
      for (const r of b.reads) if (!r.done) this.newReads.push(r);
    }
    if (this.newReads.length > 0) this.host.schedule();
  }

  private runRead(
    exec: (store: StateStore) => unknown,
    finish: (error: NodeError | null, value?: unknown) => void,
  ): void {
    let value: unknown;
    try {
      value = exec(this.store);
    } catch (e) {
      finish(toNodeError(e));
      return;
    }
    finish(null, value);
  }

  private finishRead(r: ReadRequest, error: NodeError | null, value?: unknown): void {
    if (r.done) return;
    r.done = true;
    r.timer?.cancel();
    this.pendingReadCount--;
    r.finish(error, value);
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots and compaction
  // -------------------------------------------------------------------------------------------

  /**
   * The store's applied state as a snapshot identity (term and conf as of that index); null when
   * raft no longer knows that index's term (it just accepted a newer snapshot, not yet installed).
   */
  private appliedSnapshotMeta(): SnapshotMeta | null {
    const index = this.applied;
    const term = index === 0 ? 0 : this.raft.term(index);
    if (term === undefined) return null;
    return { index, term, conf: cloneConfState(this.appliedConf) };
  }

  /** raft's snapshotProvider: index 0 means "none to offer now". */
  private snapshotForRaft(): SnapshotMeta {
    return this.appliedSnapshotMeta() ?? { index: 0, term: 0, conf: cloneConfState(this.appliedConf) };
  }

  private startSnapshotStream(m: SnapshotRequest): void {
    const existing = this.senders.get(m.to);
    if (existing !== undefined && !existing.done) return; // one stream per follower at a time
    // The export is the store's state now, which may be ahead of the meta raft chose a moment ago:
    // the stream carries the meta of exactly the exported state.
    const meta = this.appliedSnapshotMeta();
    if (meta === null || meta.index === 0) {
      this.raft.reportSnapshot(m.to, false); // nothing to stream right now: raft retries later
      return;
    }
    const request: SnapshotRequest = { ...m, snapshot: meta };
    const chunks = this.store.exportSnapshot(encodeSnapshotMeta(meta));
    const sender = new SnapshotSender(
      this.group,
      this.host.id,
      m.to,
      this.host.newStreamId(),
      request,
      chunks,
      this.host.settings.snapshotLimits,
      {
        now: () => this.host.clock.now(),
        send: (to, c) => {
          this.host.send(to, c);
          this.host.schedule();
        },
        finished: (to, ok, index) => {
          if (this.role === 'leader') this.raft.reportSnapshot(to, ok);
          this.host.hooks.snapshot?.({
            group: this.group,
            event: ok ? 'streamDone' : 'streamFailed',
            index,
            peer: to,
          });
          this.host.schedule();
        },
        track: (p) => this.host.track(p),
        failed: (e) =>
          this.host.logger.warn({ group: this.group, to: m.to, err: e.message }, 'snapshot export failed'),
      },
    );
    this.senders.set(m.to, sender);
    this.host.hooks.snapshot?.({ group: this.group, event: 'streamStarted', index: meta.index, peer: m.to });
    sender.pump();
  }

  /**
   * Compaction (Raft §7): once enough entries, or bytes of them, were applied since the last
   * snapshot, sync the store and mark it.
   */
  private maybeCompact(): void {
    if (this.compacting) return;
    const { snapshotEntries, snapshotBytes } = this.host.settings;
    if (this.applied - this.snapshotIndex < snapshotEntries && this.appliedBytesSinceSnapshot < snapshotBytes)
      return;
    if (this.store.appliedIndex() !== this.applied) return; // the store is ahead (snapshot catch-up): wait
    const meta = this.appliedSnapshotMeta();
    if (meta === null) return; // a newer snapshot is being installed
    this.compacting = true;
    this.appliedBytesSinceSnapshot = 0;
    this.host.track(this.store.sync()).then(
      () => {
        if (this.stopped) return;
        // The node drops it before writing the marker if a snapshot was installed meanwhile.
        this.host.queueCompaction(this.group, meta);
        this.host.schedule();
      },
      (e: unknown) => this.host.fatal(e instanceof Error ? e : new Error(String(e))),
    );
  }
}

export function toNodeError(e: unknown): NodeError {
  if (e instanceof NodeError) return e;
  // The store's own limits and request checks (a range without a limit over too many keys, ...).
  if (e instanceof StoreLimitError) return new NodeError('limit_exceeded', e.message);
  if (e instanceof InvalidStoreRequestError) return new NodeError('invalid_request', e.message);
  if (e instanceof StoreClosedError) return new NodeError('shutting_down', e.message);
  if (e instanceof NotLeaderError) return new NodeError('not_leader', e.message, e.leader || undefined);
  if (e instanceof ProposalDroppedError) {
    switch (e.reason) {
      case 'proposal-queue-full':
      case 'read-queue-full':
        return new NodeError('overloaded', e.message);
      case 'conf-change-pending':
        return new NodeError('membership_change_in_progress', e.message);
      case 'entry-too-large':
        return new NodeError('limit_exceeded', e.message);
      case 'leadership-transfer':
        return new NodeError('not_leader', `${e.message}; not proposed, retry shortly`);
      default:
        return new NodeError('invalid_request', e.message);
    }
  }
  return new NodeError('internal', e instanceof Error ? e.message : String(e));
}
