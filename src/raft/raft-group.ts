import {
  applyConfChangeTo,
  cloneConfState,
  confChangeProblem,
  confStateProblem,
  encodeConfChange,
  InvalidConfChangeError,
  isJoint,
  members,
} from './conf-change.js';
import { NotLeaderError, ProposalDroppedError, RaftInvariantError } from './errors.js';
import { LeaderReads, type PendingRead } from './leader-reads.js';
import { Progress } from './progress.js';
import { JointQuorum } from './quorum.js';
import { RaftLog } from './raft-log.js';
import type {
  AppendRequest,
  AppendResponse,
  ConfChange,
  ConfState,
  Entry,
  EntryType,
  HardState,
  HeartbeatRequest,
  HeartbeatResponse,
  Message,
  NodeId,
  PlantedBug,
  ProgressStatus,
  RaftConfig,
  RaftGroupApi,
  RaftInitialState,
  RaftStatus,
  ReadIndexRequest,
  ReadIndexResponse,
  ReadState,
  Ready,
  Role,
  SnapshotMeta,
  SoftState,
  VoteRequest,
  VoteResponse,
} from './types.js';
import { MAX_READ_CONTEXT_BYTES, validateMessage } from './validate-message.js';

const NO_MESSAGES: readonly Message[] = [];

/** A leader's replication traffic, which may leave before the leader's own write is durable (thesis §10.2.1). */
export function isLeaderReplication(m: Message): boolean {
  return m.type === 'append' || m.type === 'heartbeat';
}

export const DEFAULT_ELECTION_TICK = 10;
export const DEFAULT_HEARTBEAT_TICK = 1;
export const DEFAULT_MAX_INFLIGHT_MSGS = 256;
export const DEFAULT_MAX_MSG_BYTES = 1024 * 1024;
export const DEFAULT_MAX_PROPOSAL_QUEUE = 4096;
export const DEFAULT_MAX_PENDING_READS = 4096;
export const DEFAULT_MAX_APPLY_BYTES = 16 * 1024 * 1024;
export const DEFAULT_LEASE_DRIFT_TICKS = 2;

/** The defaults for every tunable of RaftConfig; a driver spreads its overrides over these. */
export const RAFT_CONFIG_DEFAULTS = {
  electionTick: DEFAULT_ELECTION_TICK,
  heartbeatTick: DEFAULT_HEARTBEAT_TICK,
  maxInflightMsgs: DEFAULT_MAX_INFLIGHT_MSGS,
  maxMsgBytes: DEFAULT_MAX_MSG_BYTES,
  checkQuorum: true,
  preVote: true,
  leaseRead: false,
} as const;

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1)
    throw new RangeError(`raft config: ${name} must be a positive integer, got ${v}`);
  return v;
}

/**
 * One Raft group as a pure state machine (Raft paper, Ongaro's thesis; etcd raft's structure).
 * The driver feeds it ticks, peer messages and requests, and executes the Ready batches it hands
 * out: persist entries and hard state, then send messages, apply committed entries, report back
 * with advance(). See docs/raft.md.
 */
export class RaftGroup implements RaftGroupApi {
  readonly id: NodeId;
  readonly group: number;
  private readonly electionTick: number;
  private readonly heartbeatTick: number;
  private readonly random: () => number;
  private readonly maxInflightMsgs: number;
  private readonly maxMsgBytes: number;
  private readonly checkQuorum: boolean;
  private readonly preVote: boolean;
  private readonly leaseRead: boolean;
  private readonly leaseTicks: number;
  private readonly maxProposalQueue: number;
  private readonly maxPendingReads: number;
  private readonly maxApplyBytes: number;
  private readonly snapshotProvider: () => SnapshotMeta;
  private readonly bugs: ReadonlySet<PlantedBug>;

  private currentTerm = 0;
  private vote: NodeId | '' = '';
  private lead: NodeId | '' = '';
  /** The leader observed in the current term (at most one per term: Election Safety, Raft §5.2). */
  private termLeader: NodeId | '' = '';
  private role: Role = 'follower';
  private readonly log: RaftLog;
  private conf: ConfState;
  private quorum: JointQuorum;
  private readonly progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();

  /** Monotonic tick counter (lease reads). */
  private ticks = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** After a restart with lease reads on: refuse votes for one election timeout (the lease we may have granted). */
  private restartVoteGuard: boolean;

  private transferee: NodeId | '' = '';
  /** Index of the latest confChange the leader proposed; another waits until it is applied. */
  private pendingConfIndex = 0;

  private msgs: Message[] = [];
  /** Leader: new entries or a new commit index to broadcast at the next Ready (batching). */
  private bcastPending = false;
  private readStates: ReadState[] = [];
  private leaderReads: LeaderReads | null = null;
  /** Follower: ReadIndex requests to forward to the leader at the next Ready (one message per batch). */
  private forwardReads: Buffer[] = [];

  private prevSoft: SoftState;
  private prevHard: HardState;
  private outstanding: Ready | null = null;
  private lastCommitSeen: number;
  private readonly dropped: Record<string, number> = {};

  constructor(config: RaftConfig, initial: RaftInitialState) {
    if (typeof config.id !== 'string' || config.id.length === 0)
      throw new RangeError('raft config: id is empty');
    if (!Number.isSafeInteger(config.group) || config.group < 0)
      throw new RangeError('raft config: bad group id');
    this.id = config.id;
    this.group = config.group;
    this.electionTick = positiveInt('electionTick', config.electionTick);
    this.heartbeatTick = positiveInt('heartbeatTick', config.heartbeatTick);
    if (this.heartbeatTick >= this.electionTick) {
      throw new RangeError('raft config: heartbeatTick must be smaller than electionTick');
    }
    if (typeof config.random !== 'function') throw new RangeError('raft config: random generator missing');
    this.random = config.random;
    this.maxInflightMsgs = positiveInt('maxInflightMsgs', config.maxInflightMsgs);
    this.maxMsgBytes = positiveInt('maxMsgBytes', config.maxMsgBytes);
    this.checkQuorum = config.checkQuorum;
    this.preVote = config.preVote;
    this.leaseRead = config.leaseRead;
    if (this.leaseRead && !this.checkQuorum)
      throw new RangeError('raft config: leaseRead requires checkQuorum');
    const drift = config.leaseDriftTicks ?? DEFAULT_LEASE_DRIFT_TICKS;
    if (!Number.isSafeInteger(drift) || drift < 0 || drift >= this.electionTick) {
      throw new RangeError('raft config: leaseDriftTicks must be in [0, electionTick)');
    }
    this.leaseTicks = this.electionTick - drift;
    this.maxProposalQueue = positiveInt(
      'maxProposalQueue',
      config.maxProposalQueue ?? DEFAULT_MAX_PROPOSAL_QUEUE,
    );
    this.maxPendingReads = positiveInt(
      'maxPendingReads',
      config.maxPendingReads ?? DEFAULT_MAX_PENDING_READS,
    );
    this.maxApplyBytes = positiveInt('maxApplyBytes', config.maxApplyBytes ?? DEFAULT_MAX_APPLY_BYTES);
    this.snapshotProvider = config.snapshotProvider;
    this.bugs = config.bugs ?? new Set();
    this.restartVoteGuard = this.leaseRead;

    const problem = confStateProblem(initial.conf);
    if (problem !== null) throw new RaftInvariantError(`initial conf: ${problem}`);
    const hs = initial.hardState;
    if (!Number.isSafeInteger(hs.term) || hs.term < 0)
      throw new RaftInvariantError('initial term is invalid');
    this.log = new RaftLog(initial.snapshot, initial.entries, hs.commit, initial.applied);
    if (this.log.lastTerm() > hs.term) {
      throw new RaftInvariantError(`log term ${this.log.lastTerm()} is above the hard state term ${hs.term}`);
    }
    this.currentTerm = hs.term;
    this.vote = hs.vote;
    this.conf = cloneConfState(initial.conf);
    this.quorum = new JointQuorum(this.conf.voters, this.conf.votersOutgoing);
    this.syncProgress();
    this.lastCommitSeen = this.log.committed;
    this.becomeFollower(this.currentTerm, '');
    this.prevSoft = this.softState();
    this.prevHard = this.hardState();
  }

  // -------------------------------------------------------------------------------------------
  // Public API
  // -------------------------------------------------------------------------------------------

  /** Advance logical time by one tick (election and heartbeat timers, thesis §3.4 / §6.2). */
  tick(): void {
    this.ticks++;
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
    this.checkInvariants();
  }

  /** Start an election now, as if the election timeout had elapsed (with PreVote if enabled). */
  campaign(): void {
    this.hup(false);
    this.checkInvariants();
  }

  step(input: Message): void {
    const v = validateMessage(input, this.id, this.group);
    if (!v.ok) {
      this.count(v.reason);
      return;
    }
    this.stepValidated(v.message);
    this.checkInvariants();
  }

  propose(data: Buffer): { index: number; term: number } {
    if (!Buffer.isBuffer(data)) throw new TypeError('propose: data must be a Buffer');
    return this.proposeEntry('normal', data);
  }

  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    this.requireLeader();
    const problem = confChangeProblem(cc);
    if (problem !== null) throw new ProposalDroppedError('invalid-conf-change', problem);
    if (this.pendingConfIndex > this.log.applied) {
      throw new ProposalDroppedError(
        'conf-change-pending',
        `configuration change at ${this.pendingConfIndex} not applied yet (applied ${this.log.applied})`,
      );
    }
    try {
      applyConfChangeTo(this.conf, cc);
    } catch (e) {
      if (e instanceof InvalidConfChangeError)
        throw new ProposalDroppedError('invalid-conf-change', e.message);
      throw e;
    }
    const r = this.proposeEntry('confChange', encodeConfChange(cc));
    this.pendingConfIndex = r.index;
    return r;
  }

  /**
   * The driver applies a committed confChange entry (etcd applies membership at apply time, which
   * with one pending change at a time is equivalent to the thesis §4.1 rule for single changes and
   * keeps joint consensus, §4.3, explicit: C_old,new then C_new as two log entries).
   */
  applyConfChange(cc: ConfChange): ConfState {
    const problem = confChangeProblem(cc);
    if (problem !== null) throw new InvalidConfChangeError(problem);
    this.setConf(applyConfChangeTo(this.conf, cc));
    this.checkInvariants();
    return cloneConfState(this.conf);
  }

  /** Leadership transfer (thesis §3.10). On a follower the request is forwarded to the leader. */
  transferLeadership(to: NodeId): void {
    if (this.role !== 'leader') {
      if (this.lead === '') throw new NotLeaderError('', this.group);
      this.msgs.push({
        group: this.group,
        from: this.id,
        to: this.lead,
        term: this.currentTerm,
        type: 'transferLeader',
        target: to,
      });
      return;
    }
    const problem = this.startTransfer(to);
    if (problem !== null) throw new ProposalDroppedError('invalid-transfer-target', problem);
  }

  /**
   * Linearizable read (thesis §6.4). The leader confirms leadership with one heartbeat round for
   * every read pending at the next Ready; a follower forwards its reads to the leader in one message.
   */
  readIndex(context: Buffer): void {
    if (!Buffer.isBuffer(context) || context.length > MAX_READ_CONTEXT_BYTES) {
      throw new RangeError(`readIndex: context must be a Buffer of at most ${MAX_READ_CONTEXT_BYTES} bytes`);
    }
    if (this.role === 'leader') {
      if (this.leaderReads!.pendingCount >= this.maxPendingReads) {
        throw new ProposalDroppedError('read-queue-full', `${this.maxPendingReads} reads pending`);
      }
      this.leaderRead([{ from: this.id, context }]);
      return;
    }
    if (this.lead === '') throw new NotLeaderError('', this.group);
    if (this.forwardReads.length >= this.maxPendingReads) {
      throw new ProposalDroppedError('read-queue-full', `${this.maxPendingReads} reads pending`);
    }
    this.forwardReads.push(context);
  }

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    return (
      this.msgs.length > 0 ||
      (this.bcastPending && this.role === 'leader') ||
      this.readStates.length > 0 ||
      this.log.stableIndex < this.log.lastIndex() ||
      this.log.pendingSnapshot !== undefined ||
      this.log.hasNextCommitted() ||
      this.forwardReads.length > 0 ||
      (this.leaderReads?.hasUnassigned() ?? false) ||
      !sameSoft(this.softState(), this.prevSoft) ||
      !sameHard(this.hardState(), this.prevHard)
    );
  }

  ready(): Ready {
    if (this.outstanding !== null) throw new RaftInvariantError('ready() called again before advance()');
    if (this.bcastPending && this.role === 'leader') this.bcastAppend();
    this.flushReads();
    const rd: Ready = {
      entries: this.log.unstableEntries(),
      committedEntries: this.log.nextCommitted(this.maxApplyBytes),
      messages: this.msgs,
      readStates: this.readStates,
    };
    const soft = this.softState();
    if (!sameSoft(soft, this.prevSoft)) rd.softState = soft;
    const hard = this.hardState();
    if (!sameHard(hard, this.prevHard)) rd.hardState = hard;
    if (this.log.pendingSnapshot !== undefined) rd.snapshot = this.log.pendingSnapshot;
    this.msgs = [];
    this.readStates = [];
    this.prevSoft = soft;
    this.prevHard = hard;
    this.outstanding = rd;
    return rd;
  }

  /**
   * A leader's AppendEntries and heartbeats produced since the last Ready, taken out to be sent at
   * once, for the driver to call while a Ready is outstanding (its write in flight). Raft thesis
   * §10.2.1: a leader may send entries before they are durable on its own disk; it counts itself
   * toward a quorum only for entries it persisted (advance), so followers persist entries proposed
   * during the leader's fsync instead of waiting for it. The entries stay unstable and go to disk
   * with the next Ready; every other message waits for that Ready.
   */
  takeEarlyReplication(): readonly Message[] {
    if (this.role !== 'leader') return NO_MESSAGES;
    if (this.bcastPending) this.bcastAppend();
    if (!this.msgs.some(isLeaderReplication)) return NO_MESSAGES;
    const early = this.msgs.filter(isLeaderReplication);
    this.msgs = this.msgs.filter((m) => !isLeaderReplication(m));
    return early;
  }

  /** The driver persisted `rd`'s entries/hard state/snapshot, sent its messages and applied its entries. */
  advance(rd: Ready): void {
    if (rd !== this.outstanding)
      throw new RaftInvariantError('advance() with a Ready that is not the outstanding one');
    this.outstanding = null;
    if (rd.snapshot !== undefined) this.log.snapshotInstalled(rd.snapshot);
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      this.log.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      this.log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1].index);
    }
    if (this.role === 'leader') {
      // The leader counts itself toward a quorum only for entries durable on its own disk.
      this.progress.get(this.id)?.maybeUpdate(this.log.stableIndex);
      if (this.maybeCommit()) this.bcastPending = true;
      this.maybeAutoLeave();
    }
    this.checkInvariants();
  }

  compact(index: number, keepTail: number, keepTailBytes = Number.POSITIVE_INFINITY): void {
    if (!Number.isSafeInteger(index) || index < 0 || !Number.isSafeInteger(keepTail) || keepTail < 0) {
      throw new RangeError(`compact(${index}, ${keepTail}): arguments must be non-negative integers`);
    }
    if (!(keepTailBytes >= 0))
      throw new RangeError(`compact: keepTailBytes must be >= 0, got ${keepTailBytes}`);
    if (index > this.log.applied) {
      throw new RaftInvariantError(`compact(${index}) beyond applied index ${this.log.applied}`);
    }
    this.log.compactTo(this.log.tailStart(index, keepTail, keepTailBytes));
  }

  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.role === 'leader' ? this.progress.get(to) : undefined;
    if (pr === undefined || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or a heartbeat response) before probing again.
    pr.probeSent = true;
  }

  reportUnreachable(to: NodeId): void {
    const pr = this.role === 'leader' ? this.progress.get(to) : undefined;
    if (pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  term(index: number): number | undefined {
    return this.log.term(index);
  }

  stableIndex(): number {
    return this.log.stableIndex;
  }

  firstIndex(): number {
    return this.log.firstIndex();
  }

  status(): RaftStatus {
    const s: RaftStatus = {
      id: this.id,
      group: this.group,
      term: this.currentTerm,
      vote: this.vote,
      role: this.role,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      conf: cloneConfState(this.conf),
      dropped: { ...this.dropped },
    };
    if (this.role === 'leader') {
      const progress: Record<NodeId, ProgressStatus> = {};
      for (const [id, pr] of this.progress) {
        progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          learner: pr.isLearner,
          recentActive: pr.recentActive,
          inflight: pr.inflights.count,
        };
      }
      s.progress = progress;
      if (this.transferee !== '') s.transferee = this.transferee;
    }
    return s;
  }

  // -------------------------------------------------------------------------------------------
  // Roles and timers
  // -------------------------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTick) this.restartVoteGuard = false;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTick) {
      this.electionElapsed = 0;
      // CheckQuorum (thesis §6.2): a leader that has not heard from a quorum within an election
      // timeout steps down, so a partitioned leader stops serving and stops taking proposals.
      if (this.checkQuorum) {
        const active = this.quorum.hasQuorum(
          (id) => id === this.id || (this.progress.get(id)?.recentActive ?? false),
        );
        for (const [id, pr] of this.progress) pr.recentActive = id === this.id;
        if (!active) {
          this.count('check-quorum-step-down');
          this.becomeFollower(this.currentTerm, '');
          return;
        }
      }
      // Thesis §3.10: abort a transfer that has not completed within an election timeout.
      if (this.transferee !== '') this.abortTransfer('transfer-timeout');
    }
    if (this.heartbeatElapsed >= this.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  private resetRandomizedElectionTimeout(): void {
    const r = this.random();
    if (!(r >= 0 && r < 1)) throw new RaftInvariantError(`random() returned ${r}, outside [0, 1)`);
    // Raft §5.2: randomized timeouts in [electionTick, 2*electionTick) make split votes rare.
    this.randomizedElectionTimeout = this.electionTick + Math.floor(r * this.electionTick);
  }

  private setTerm(term: number): void {
    if (term < this.currentTerm)
      throw new RaftInvariantError(`term decreases from ${this.currentTerm} to ${term}`);
    if (term !== this.currentTerm) {
      this.currentTerm = term;
      this.vote = '';
      this.termLeader = '';
    }
  }

  private setLead(lead: NodeId | ''): void {
    if (lead !== '') {
      if (this.termLeader !== '' && this.termLeader !== lead) {
        throw new RaftInvariantError(
          `two leaders in term ${this.currentTerm}: ${this.termLeader} and ${lead} (election safety, Raft §5.2)`,
        );
      }
      this.termLeader = lead;
    }
    this.lead = lead;
  }

  private reset(term: number): void {
    this.setTerm(term);
    this.lead = '';
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.transferee = '';
    this.bcastPending = false;
    this.votes.clear();
    if (this.leaderReads !== null) {
      // Leadership is lost: pending reads can no longer be confirmed (the driver times them out).
      const abandoned = this.leaderReads.pendingCount + this.leaderReads.abandoned;
      if (abandoned > 0) this.dropped['reads-abandoned'] = (this.dropped['reads-abandoned'] ?? 0) + abandoned;
      this.leaderReads = null;
    }
    this.pendingConfIndex = 0;
    for (const [id, pr] of this.progress) {
      const fresh = new Progress(this.log.lastIndex() + 1, this.maxInflightMsgs, pr.isLearner);
      if (id === this.id) fresh.match = this.log.stableIndex;
      this.progress.set(id, fresh);
    }
  }

  private becomeFollower(term: number, lead: NodeId | ''): void {
    this.reset(term);
    this.role = 'follower';
    this.setLead(lead);
  }

  private becomePreCandidate(): void {
    if (this.role === 'leader') throw new RaftInvariantError('leader cannot become pre-candidate');
    // PreVote (thesis §9.6): no term change, no vote; just ask whether an election could succeed.
    this.votes.clear();
    this.lead = '';
    this.role = 'preCandidate';
  }

  private becomeCandidate(): void {
    if (this.role === 'leader') throw new RaftInvariantError('leader cannot become candidate');
    this.reset(this.currentTerm + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    if (this.role !== 'candidate') throw new RaftInvariantError(`${this.role} cannot become leader`);
    this.reset(this.currentTerm);
    this.role = 'leader';
    this.setLead(this.id);
    this.leaderReads = new LeaderReads(this.id);
    this.progress.get(this.id)!.recentActive = true;
    // Entries of earlier terms may hide a conf change not yet applied: none may be proposed until
    // everything up to here is applied.
    this.pendingConfIndex = this.log.lastIndex();
    // Raft §8 / thesis §6.4: commit an entry of the new term at once (a no-op), which commits
    // everything before it and lets the leader learn its commit index for reads.
    this.appendLocal('normal', Buffer.alloc(0));
    this.bcastAppend();
  }

  private promotable(): boolean {
    return this.conf.voters.includes(this.id) || this.conf.votersOutgoing.includes(this.id);
  }

  /** Election timeout elapsed (or TimeoutNow when `transfer`): start (pre)campaigning. */
  private hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    this.restartVoteGuard = false;
    // A node that has committed but unapplied conf changes does not know its configuration yet.
    if (this.log.countConfChanges(this.log.applied, this.log.committed) > 0) {
      this.count('campaign-pending-conf');
      return;
    }
    if (this.preVote && !transfer) this.campaignPre();
    else this.campaignElection(transfer);
  }

  private campaignPre(): void {
    this.becomePreCandidate();
    this.electionElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.votes.set(this.id, true);
    if (this.quorum.voteResult(this.votes) === 'won') {
      this.campaignElection(false);
      return;
    }
    this.sendVoteRequests('preVote', this.currentTerm + 1, false);
  }

  private campaignElection(transfer: boolean): void {
    this.becomeCandidate();
    this.votes.set(this.id, true);
    if (this.quorum.voteResult(this.votes) === 'won') {
      this.becomeLeader();
      return;
    }
    this.sendVoteRequests('vote', this.currentTerm, transfer);
  }

  private sendVoteRequests(type: 'preVote' | 'vote', term: number, transfer: boolean): void {
    for (const id of this.quorum.voters()) {
      if (id === this.id) continue;
      const m: VoteRequest = {
        group: this.group,
        from: this.id,
        to: id,
        term: term,
        type,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
        transfer,
      };
      this.msgs.push(m);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Message handling
  // -------------------------------------------------------------------------------------------

  private stepValidated(m: Message): void {
    if (m.term > this.currentTerm) {
      if (m.type === 'vote' || m.type === 'preVote') {
        // CheckQuorum lease (thesis §4.2.3): a node that heard from a leader within the minimum
        // election timeout ignores (pre)votes, so a partitioned node rejoining cannot disrupt a
        // healthy leader. A transfer campaign (TimeoutNow) is exempt.
        const heardRecently = this.lead !== '' || this.restartVoteGuard;
        if (this.checkQuorum && heardRecently && this.electionElapsed < this.electionTick && !m.transfer) {
          this.count('vote-in-lease');
          return;
        }
      }
      if (m.type === 'preVote' || (m.type === 'preVoteResp' && !m.reject)) {
        // A pre-vote does not change terms (thesis §9.6); a granted pre-vote answers in the future term.
      } else if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, '');
      }
    } else if (m.term < this.currentTerm) {
      if ((this.checkQuorum || this.preVote) && (m.type === 'append' || m.type === 'heartbeat')) {
        // A stale leader may be partitioned with PreVote/CheckQuorum keeping our term from reaching
        // it through votes: tell it the current term so it steps down.
        this.msgs.push(this.appendResponse(m.from, false, 0, 0, 0));
      } else if (m.type === 'preVote' || m.type === 'vote') {
        // Raft Figure 2: reply false to a stale candidate, with our term so it catches up.
        const type = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
        this.msgs.push({
          group: this.group,
          from: this.id,
          to: m.from,
          term: this.currentTerm,
          type,
          reject: true,
        });
      } else {
        this.count('stale-term');
      }
      return;
    }

    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  private handleVoteRequest(m: VoteRequest): void {
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    // Raft §5.2: one vote per term (repeat to the same candidate); a pre-vote for a future term is
    // not a vote.
    const canVote =
      this.vote === m.from ||
      (this.vote === '' && this.lead === '') ||
      (m.type === 'preVote' && m.term > this.currentTerm);
    // Raft §5.4.1 election restriction: only a candidate whose log is at least as up-to-date.
    const upToDate = this.bugs.has('vote-any-log') || this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (canVote && upToDate) {
      const resp: VoteResponse = {
        group: this.group,
        from: this.id,
        to: m.from,
        term: m.term,
        type: respType,
        reject: false,
      };
      this.msgs.push(resp);
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      const resp: VoteResponse = {
        group: this.group,
        from: this.id,
        to: m.from,
        term: this.currentTerm,
        type: respType,
        reject: true,
      };
      this.msgs.push(resp);
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'appendResp':
        this.handleAppendResponse(m);
        return;
      case 'heartbeatResp':
        this.handleHeartbeatResponse(m);
        return;
      case 'readIndex':
        this.handleForwardedRead(m);
        return;
      case 'transferLeader': {
        const problem = this.startTransfer(m.target);
        if (problem !== null) this.count('bad-transfer-request');
        return;
      }
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        throw new RaftInvariantError(
          `leader ${this.id} got ${m.type} from ${m.from} in its own term ${this.currentTerm} (election safety)`,
        );
      default:
        this.count(`leader-ignores-${m.type}`);
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // A leader of our term exists (Raft §5.2): return to follower and take the message.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case 'voteResp':
      case 'preVoteResp': {
        const mine = this.role === 'candidate' ? 'voteResp' : 'preVoteResp';
        const expectedTerm = this.role === 'candidate' || m.reject ? this.currentTerm : this.currentTerm + 1;
        if (m.type !== mine || m.term !== expectedTerm || !this.quorum.isVoter(m.from)) {
          this.count('stray-vote-response');
          return;
        }
        if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject);
        const result = this.quorum.voteResult(this.votes);
        if (result === 'won') {
          if (this.role === 'preCandidate') this.campaignElection(false);
          else this.becomeLeader();
        } else if (result === 'lost') {
          this.becomeFollower(this.currentTerm, '');
        }
        return;
      }
      default:
        this.count(`${this.role}-ignores-${m.type}`);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.setLead(m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.setLead(m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.setLead(m.from);
        this.handleSnapshot(m.from, m.snapshot);
        return;
      case 'timeoutNow':
        // Thesis §3.10: the transfer target starts an election at once, skipping PreVote.
        if (this.promotable()) this.hup(true);
        else this.count('timeout-now-not-voter');
        return;
      case 'readIndexResp':
        for (const context of m.contexts) this.readStates.push({ index: m.index, context });
        return;
      default:
        this.count(`follower-ignores-${m.type}`);
    }
  }

  /** AppendEntries receiver (Raft §5.3, Figure 2). */
  private handleAppend(m: AppendRequest): void {
    if (this.role === 'leader')
      throw new RaftInvariantError('a leader never takes entries from another node');
    const committed = this.log.committed;
    if (m.prevLogIndex < committed) {
      // Everything up to our commit index matches any leader's log (Leader Completeness).
      this.msgs.push(this.appendResponse(m.from, false, committed, 0, 0));
      return;
    }
    if (this.log.matchTerm(m.prevLogIndex, m.prevLogTerm)) {
      const lastNew = m.prevLogIndex + m.entries.length;
      const conflict = this.log.findConflict(m.entries);
      if (conflict !== 0) {
        if (conflict <= committed) {
          throw new RaftInvariantError(
            `entry ${conflict} conflicts with the committed log (commit ${committed})`,
          );
        }
        let toAppend = m.entries.slice(conflict - m.prevLogIndex - 1);
        if (this.bugs.has('keep-conflict')) {
          // PLANTED BUG: keep our conflicting entries instead of truncating them (breaks log matching).
          toAppend = m.entries.filter((e) => e.index > this.log.lastIndex());
        }
        this.log.appendReplacing(toAppend);
      }
      this.log.commitTo(Math.min(m.commit, lastNew));
      this.msgs.push(this.appendResponse(m.from, false, lastNew, 0, 0));
      return;
    }
    // Fast backtracking (Raft §5.3 end): tell the leader where the logs may match.
    const hint = this.log.findConflictByTerm(Math.min(m.prevLogIndex, this.log.lastIndex()), m.prevLogTerm);
    this.msgs.push(this.appendResponse(m.from, true, m.prevLogIndex, hint.index, hint.term));
  }

  private handleHeartbeat(m: HeartbeatRequest): void {
    // The leader sends min(match, commit), so the commit index is within our matching prefix.
    if (m.commit <= this.log.lastIndex()) this.log.commitTo(m.commit);
    else this.count('heartbeat-commit-beyond-log');
    const resp: HeartbeatResponse = {
      group: this.group,
      from: this.id,
      to: m.from,
      term: this.currentTerm,
      type: 'heartbeatResp',
      readRound: m.readRound,
    };
    this.msgs.push(resp);
  }

  /** InstallSnapshot receiver (Raft §7): accept a snapshot newer than our commit index. */
  private handleSnapshot(from: NodeId, meta: SnapshotMeta): void {
    if (this.restore(meta)) {
      this.msgs.push(this.appendResponse(from, false, this.log.lastIndex(), 0, 0));
    } else {
      this.msgs.push(this.appendResponse(from, false, this.log.committed, 0, 0));
    }
  }

  private restore(meta: SnapshotMeta): boolean {
    if (meta.index <= this.log.committed) {
      this.count('stale-snapshot');
      return false;
    }
    if (!members(meta.conf).includes(this.id)) {
      this.count('snapshot-excludes-self');
      return false;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // Our log already holds the snapshot's last entry: just learn that it is committed.
      this.log.commitTo(meta.index);
      return false;
    }
    this.log.restore(meta);
    this.setConf(cloneConfState(meta.conf));
    return true;
  }

  private handleAppendResponse(m: AppendResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) {
      this.count('response-from-non-member');
      return;
    }
    if (m.index > this.log.lastIndex()) {
      this.count('ack-beyond-log');
      return;
    }
    pr.recentActive = true;
    if (m.reject) {
      if (m.hintIndex === 0 && pr.match === 0 && pr.state === 'probe' && this.snapshotProvider().index > 0) {
        // The follower shares nothing with our log (a new member, or one that lost its log). It
        // cannot replay from index 1: the bootstrap configuration is not in the log, only in
        // snapshots. Initialize it from a snapshot (Raft §7).
        pr.probeSent = false;
        this.sendSnapshot(m.from, pr);
        return;
      }
      let probeFrom = m.hintIndex;
      if (m.hintTerm > 0) probeFrom = this.log.findConflictByTerm(m.hintIndex, m.hintTerm).index;
      if (pr.maybeDecrTo(m.index, probeFrom)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (pr.maybeUpdate(m.index)) {
      if (pr.state === 'probe') {
        pr.becomeReplicate();
      } else if (
        pr.state === 'snapshot' &&
        (pr.match >= pr.pendingSnapshot || pr.match + 1 >= this.log.firstIndex())
      ) {
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === 'replicate') {
        pr.inflights.freeLE(m.index);
      }
      if (this.maybeCommit()) this.bcastPending = true;
      else if (wasPaused) this.sendAppend(m.from, true);
      // Pipelining: fill the window with whatever is left to send.
      while (this.sendAppend(m.from, false)) {}
      if (m.from === this.transferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
    }
  }

  private handleHeartbeatResponse(m: HeartbeatResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) {
      this.count('response-from-non-member');
      return;
    }
    pr.recentActive = true;
    pr.probeSent = false;
    // Appends may have been lost: free a slot so replication cannot stall on a full window.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
    this.deliverReads(this.leaderReads!.ack(m.from, m.readRound, this.quorum));
  }

  private handleForwardedRead(m: ReadIndexRequest): void {
    if (this.leaderReads!.pendingCount + m.contexts.length > this.maxPendingReads) {
      this.count('read-queue-full');
      return;
    }
    this.leaderRead(m.contexts.map((context) => ({ from: m.from, context })));
  }

  // -------------------------------------------------------------------------------------------
  // Leader: replication and commitment
  // -------------------------------------------------------------------------------------------

  private requireLeader(): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.lead, this.group);
    if (this.transferee !== '') {
      // Thesis §3.10: the leader stops accepting client requests while it transfers leadership.
      throw new ProposalDroppedError('leadership-transfer', `transferring leadership to ${this.transferee}`);
    }
  }

  private proposeEntry(type: EntryType, data: Buffer): { index: number; term: number } {
    this.requireLeader();
    if (data.length > this.maxMsgBytes) {
      throw new ProposalDroppedError(
        'entry-too-large',
        `${data.length} bytes exceeds maxMsgBytes ${this.maxMsgBytes}`,
      );
    }
    if (this.log.lastIndex() - this.log.committed >= this.maxProposalQueue) {
      throw new ProposalDroppedError('proposal-queue-full', `${this.maxProposalQueue} uncommitted entries`);
    }
    const e = this.appendLocal(type, data);
    // Batching: every proposal until the next Ready travels in the same appends.
    this.bcastPending = true;
    this.checkInvariants();
    return { index: e.index, term: e.term };
  }

  private appendLocal(type: EntryType, data: Buffer): Entry {
    const e: Entry = { term: this.currentTerm, index: this.log.lastIndex() + 1, type, data };
    this.log.appendReplacing([e]);
    return e;
  }

  private appendResponse(
    to: NodeId,
    reject: boolean,
    index: number,
    hintIndex: number,
    hintTerm: number,
  ): AppendResponse {
    return {
      group: this.group,
      from: this.id,
      to,
      term: this.currentTerm,
      type: 'appendResp',
      reject,
      index,
      hintIndex,
      hintTerm,
    };
  }

  /** Send every follower what it lacks (or an empty append carrying the commit index), filling its window. */
  private bcastAppend(): void {
    this.bcastPending = false;
    for (const id of this.progress.keys()) {
      if (id !== this.id && this.sendAppend(id, true)) while (this.sendAppend(id, false)) {}
    }
  }

  /**
   * Send the follower the entries it lacks (Raft §5.3), subject to flow control: one probe at a
   * time in probe state, at most maxInflightMsgs messages in replicate state, at most maxMsgBytes
   * of entries per message. Falls back to a snapshot when the entries are compacted away (§7).
   */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevLogIndex = pr.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    const entries =
      prevLogTerm === undefined
        ? undefined
        : this.log.slice(pr.next, this.log.lastIndex() + 1, this.maxMsgBytes);
    if (entries === undefined || prevLogTerm === undefined) return this.sendSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    const m: AppendRequest = {
      group: this.group,
      from: this.id,
      to,
      term: this.currentTerm,
      type: 'append',
      prevLogIndex,
      prevLogTerm,
      entries,
      commit: this.log.committed,
    };
    this.msgs.push(m);
    pr.sentEntries(entries.length, prevLogIndex + entries.length);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.count('snapshot-to-inactive-deferred');
      return false;
    }
    const meta = this.snapshotProvider();
    if (meta.index === 0 || meta.index < this.log.firstIndex() - 1) {
      // The follower could not continue from this snapshot with the entries we still hold.
      this.count('snapshot-unavailable');
      return false;
    }
    const t = this.log.term(meta.index);
    if (meta.index > this.log.committed || (t !== undefined && t !== meta.term)) {
      throw new RaftInvariantError(
        `snapshotProvider returned index ${meta.index} term ${meta.term}; log has term ${t}, commit ${this.log.committed}`,
      );
    }
    pr.becomeSnapshot(meta.index);
    this.msgs.push({
      group: this.group,
      from: this.id,
      to,
      term: this.currentTerm,
      type: 'snapshot',
      snapshot: { index: meta.index, term: meta.term, conf: cloneConfState(meta.conf) },
    });
    return true;
  }

  private bcastHeartbeat(): void {
    const round = this.leaderReads!.newRound(this.ticks, this.log.committed);
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      const m: HeartbeatRequest = {
        group: this.group,
        from: this.id,
        to: id,
        term: this.currentTerm,
        type: 'heartbeat',
        commit: Math.min(pr.match, this.log.committed),
        readRound: round,
      };
      this.msgs.push(m);
    }
    this.deliverReads(this.leaderReads!.release(this.quorum));
  }

  /**
   * Raft §5.4.2 / Figure 8: advance the commit index to the largest index replicated on a quorum,
   * but only if that entry is of the current term; earlier entries are then committed indirectly.
   */
  private maybeCommit(): boolean {
    const mci = this.quorum.committedIndex((id) => this.progress.get(id)?.match ?? 0);
    if (!Number.isFinite(mci) || mci <= this.log.committed) return false;
    const t = this.log.term(mci);
    const ok = t === this.currentTerm || (this.bugs.has('commit-old-term') && t !== undefined);
    if (!ok) return false;
    this.log.commitTo(mci);
    if (this.committedInTerm()) this.leaderReads!.undefer();
    return true;
  }

  private committedInTerm(): boolean {
    return this.log.term(this.log.committed) === this.currentTerm;
  }

  // -------------------------------------------------------------------------------------------
  // Leader: reads
  // -------------------------------------------------------------------------------------------

  private leaderRead(reads: PendingRead[]): void {
    const lr = this.leaderReads!;
    if (this.bugs.has('stale-read')) {
      // PLANTED BUG: answer at once with the local commit index, without confirming leadership.
      this.deliverReads([{ index: this.log.committed, reads }]);
      return;
    }
    if (!this.committedInTerm()) {
      lr.defer(reads);
      return;
    }
    const soleVoter = this.quorum.hasQuorum((id) => id === this.id);
    const leased = this.leaseRead && this.transferee === '' && lr.leaseValid(this.ticks, this.leaseTicks);
    if (soleVoter || leased) {
      this.deliverReads([{ index: this.log.committed, reads }]);
      return;
    }
    lr.enqueue(reads);
  }

  private deliverReads(released: Array<{ index: number; reads: PendingRead[] }>): void {
    for (const { index, reads } of released) {
      const byPeer = new Map<NodeId, Buffer[]>();
      for (const r of reads) {
        if (r.from === this.id) {
          this.readStates.push({ index, context: r.context });
        } else {
          const list = byPeer.get(r.from);
          if (list === undefined) byPeer.set(r.from, [r.context]);
          else list.push(r.context);
        }
      }
      for (const [to, contexts] of byPeer) {
        const m: ReadIndexResponse = {
          group: this.group,
          from: this.id,
          to,
          term: this.currentTerm,
          type: 'readIndexResp',
          contexts,
          index,
        };
        this.msgs.push(m);
      }
    }
  }

  /** At each Ready: start one heartbeat round for all newly pending leader reads; forward follower reads. */
  private flushReads(): void {
    if (this.forwardReads.length > 0) {
      const contexts = this.forwardReads;
      this.forwardReads = [];
      if (this.role === 'leader') {
        this.leaderRead(contexts.map((context) => ({ from: this.id, context })));
      } else if (this.lead === '') {
        this.count('reads-without-leader');
      } else {
        const m: ReadIndexRequest = {
          group: this.group,
          from: this.id,
          to: this.lead,
          term: this.currentTerm,
          type: 'readIndex',
          contexts,
        };
        this.msgs.push(m);
      }
    }
    if (this.role === 'leader' && this.leaderReads!.hasUnassigned()) this.bcastHeartbeat();
  }

  // -------------------------------------------------------------------------------------------
  // Leader: transfer, membership
  // -------------------------------------------------------------------------------------------

  private startTransfer(target: NodeId): string | null {
    if (target === this.id) {
      if (this.transferee !== '') this.abortTransfer('transfer-to-self');
      return null;
    }
    if (!this.conf.voters.includes(target)) return `${target} is not a voter`;
    if (this.transferee === target) return null;
    if (this.transferee !== '') this.abortTransfer('transfer-replaced');
    this.transferee = target;
    // The transfer must complete within an election timeout (thesis §3.10).
    this.electionElapsed = 0;
    const pr = this.progress.get(target)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.sendAppend(target, true);
    return null;
  }

  private abortTransfer(reason: string): void {
    this.count(reason);
    this.transferee = '';
  }

  private sendTimeoutNow(to: NodeId): void {
    this.msgs.push({ group: this.group, from: this.id, to, term: this.currentTerm, type: 'timeoutNow' });
  }

  /** Keep one Progress per member of the configuration (learners included). */
  private syncProgress(): void {
    const all = new Set(members(this.conf));
    for (const id of [...this.progress.keys()]) if (!all.has(id)) this.progress.delete(id);
    for (const id of all) {
      const learner = !this.quorum.isVoter(id);
      const pr = this.progress.get(id);
      if (pr !== undefined) {
        pr.isLearner = learner;
        continue;
      }
      const fresh = new Progress(this.log.lastIndex() + 1, this.maxInflightMsgs, learner);
      if (id === this.id) fresh.match = this.log.stableIndex;
      // A new member counts as active so CheckQuorum does not depose the leader before it answers.
      fresh.recentActive = true;
      this.progress.set(id, fresh);
    }
  }

  private setConf(next: ConfState): void {
    this.conf = next;
    this.quorum = new JointQuorum(next.voters, next.votersOutgoing);
    this.syncProgress();
    if (this.role !== 'leader') return;
    if (!this.promotable()) {
      // Thesis §4.2.2: a leader that is not part of the new configuration steps down once it is
      // committed (here: applied, which implies committed).
      this.count('leader-removed-step-down');
      this.becomeFollower(this.currentTerm, '');
      return;
    }
    if (this.transferee !== '' && !next.voters.includes(this.transferee))
      this.abortTransfer('transferee-removed');
    // The quorum changed: entries and reads may now be confirmed; new members need a first probe.
    this.maybeCommit();
    this.bcastPending = true;
    this.deliverReads(this.leaderReads!.release(this.quorum));
  }

  /** Leave a joint configuration automatically once it is applied (etcd autoLeave). */
  private maybeAutoLeave(): void {
    if (!isJoint(this.conf) || !this.conf.autoLeave || this.transferee !== '') return;
    if (this.pendingConfIndex > this.log.applied) return;
    const e = this.appendLocal('confChange', encodeConfChange({ changes: [] }));
    this.pendingConfIndex = e.index;
    this.bcastPending = true;
  }

  // -------------------------------------------------------------------------------------------
  // Invariants, bookkeeping
  // -------------------------------------------------------------------------------------------

  private checkInvariants(): void {
    const commit = this.log.committed;
    if (commit < this.lastCommitSeen) {
      throw new RaftInvariantError(`commit went back from ${this.lastCommitSeen} to ${commit}`);
    }
    this.lastCommitSeen = commit;
    if (commit > this.log.lastIndex()) throw new RaftInvariantError(`commit ${commit} > last index`);
    if (this.log.applied > commit)
      throw new RaftInvariantError(`applied ${this.log.applied} > commit ${commit}`);
    if (this.role === 'leader' && this.termLeader !== this.id) {
      throw new RaftInvariantError(
        `leader ${this.id} but term ${this.currentTerm} leader is ${this.termLeader}`,
      );
    }
  }

  private count(reason: string): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1;
  }

  private softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  private hardState(): HardState {
    return { term: this.currentTerm, vote: this.vote, commit: this.log.committed };
  }
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
