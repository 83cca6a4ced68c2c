/**
 * One server process's node: hosts Raft groups and drives their Ready loop (DESIGN.md §3, §5).
 *
 * Each pass of the loop takes the Ready of every group that has one and makes all their hard
 * states, entries and snapshot markers durable with ONE append (group commit); only then do that
 * Ready's messages leave (Raft §5, "Persistence order": a vote or an append acknowledgement never
 * precedes the state it promises), and then committed entries are applied and proposals answered.
 * While an append is in flight, ticks, messages and requests keep flowing into raft; the next pass
 * starts when the append completes.
 *
 * The node reaches the world only through four narrow interfaces, so the same code runs over
 * sockets and files in the server and over simulated ones in the simulator: PeerTransport
 * (./transport.ts), LogStorage (./log-storage.ts), StateStore (src/kv) and Clock (./clock.ts).
 *
 * It implements KvService (./kv-service.ts) for the data group; the callback-style `submit*`
 * methods are the same operations without promises (the simulator drives them deterministically).
 */
import { randomInt } from 'node:crypto';
import type { KeyValue, RangeOptions, StateStore, Txn, TxnResult } from '../kv/state-store.js';
import { MAX_NODE_ID_BYTES, emptyConfState, encodeConfChange } from '../raft/conf-change.js';
import {
  DEFAULT_ELECTION_TICK,
  DEFAULT_HEARTBEAT_TICK,
  DEFAULT_MAX_INFLIGHT_MSGS,
  DEFAULT_MAX_MSG_BYTES,
  isLeaderReplication,
} from '../raft/raft-group.js';
import type { HardState, Message, NodeId, Ready, SnapshotMeta } from '../raft/types.js';
import { type Clock, SystemClock, type TimerHandle } from './clock.js';
import { NodeError } from './errors.js';
import {
  type ClientRequest,
  GroupReplica,
  type NodeSettings,
  type ReplicaHost,
  toNodeError,
} from './group-replica.js';
import { type NodeHooks, type NodeLogger, SILENT_LOGGER } from './hooks.js';
import type {
  ClientSession,
  KvService,
  MemberInfo,
  MemberRole,
  NodeStatus,
  ReadConsistency,
} from './kv-service.js';
import type { GroupLogWrite, LogStorage, RecoveredGroupLog } from './log-storage.js';
import { type MemberAddress, encodeMembersContext } from './membership.js';
import { ForwardDedup } from './forward-dedup.js';
import { validatePeerMessage } from './peer-validation.js';
import { evaluateReadTxn } from './read-txn.js';
import { recoverGroup } from './recovery.js';
import { DEFAULT_SESSION_LIMITS, SessionTable } from './sessions.js';
import { DEFAULT_SNAPSHOT_LIMITS } from './snapshot-transfer.js';
import type {
  ForwardMessage,
  ForwardReplyMessage,
  ForwardedRequest,
  ForwardedResult,
  MembershipRequest,
  PeerMessage,
  PeerTransport,
} from './transport.js';
import { DEFAULT_TXN_LIMITS, isReadOnly, validateTxn } from './txn-codec.js';

/** The group that holds the key space in the first release (sharding adds more, DESIGN.md §9). */
export const DATA_GROUP = 0;

export interface GroupConfig {
  group: number;
  store: StateStore;
  /**
   * The initial voters when this node starts a new cluster: every founding node must list the same
   * members with the same addresses (they become log entry 1 on each). Empty when the node joins an
   * existing cluster: it learns the configuration from the leader's log or snapshot. Ignored once
   * the node has durable state.
   */
  bootstrap: MemberAddress[];
}

export interface NodeConfig {
  id: NodeId;
  groups: GroupConfig[];
  transport: PeerTransport;
  storage: LogStorage;
  clock?: Clock;
  /** Randomness for election timeouts and ids; seeded in the simulator. Default: crypto. */
  random?: () => number;
  settings?: Partial<NodeSettings>;
  hooks?: NodeHooks;
  logger?: NodeLogger;
  /** Called once if the node stops on an unrecoverable error (storage failure, broken invariant). */
  onFatal?: (error: Error) => void;
}

export const DEFAULT_NODE_SETTINGS: NodeSettings = {
  tickMs: 50,
  electionTick: DEFAULT_ELECTION_TICK,
  heartbeatTick: DEFAULT_HEARTBEAT_TICK,
  checkQuorum: true,
  preVote: true,
  leaseRead: false,
  maxInflightMsgs: DEFAULT_MAX_INFLIGHT_MSGS,
  // Above the largest transaction (DEFAULT_TXN_LIMITS.maxTxnBytes) plus its encoding: a maximal
  // write still fits one AppendEntries.
  maxMsgBytes: 2 * DEFAULT_MAX_MSG_BYTES,
  requestTimeoutMs: 5000,
  maxPendingRequests: 4096,
  maxPendingReads: 4096,
  snapshotEntries: 10_000,
  snapshotBytes: 64 * 1024 * 1024,
  keepTail: 1000,
  keepTailBytes: 16 * 1024 * 1024,
  learnerCatchUpLag: 16,
  autoPromoteLearners: true,
  maxForwardHops: 3,
  txnLimits: DEFAULT_TXN_LIMITS,
  sessionLimits: DEFAULT_SESSION_LIMITS,
  snapshotLimits: DEFAULT_SNAPSHOT_LIMITS,
  bugs: new Set(),
};

const MAX_ADDRESS_BYTES = 512;
const NO_MARKERS: ReadonlyMap<number, SnapshotMeta> = new Map();
const NO_MESSAGES: Message[] = [];

interface PendingForward {
  to: NodeId;
  timer: TimerHandle;
  done: (error: NodeError | null, result?: ForwardedResult) => void;
}

export class RaftNode implements KvService, ReplicaHost {
  readonly id: NodeId;
  readonly clock: Clock;
  readonly random: () => number;
  readonly hooks: NodeHooks;
  readonly logger: NodeLogger;
  readonly settings: NodeSettings;
  readonly readContextPrefix: Buffer;

  private readonly transport: PeerTransport;
  private readonly storage: LogStorage;
  private readonly onFatal: ((error: Error) => void) | undefined;
  private readonly replicas = new Map<number, GroupReplica>();
  private readonly outbox = new Map<NodeId, PeerMessage[]>();
  private readonly compactions = new Map<number, SnapshotMeta>();
  private readonly forwards = new Map<number, PendingForward>();
  private readonly forwardDedup = new ForwardDedup();
  private readonly incarnation: string;
  private nextForwardId = 1;
  private nextStreamId = 1;
  private scheduled = false;
  private persisting = false;
  /** Per group, the hard state last handed to storage (term and vote durable once that append is). */
  private readonly persistedHard = new Map<number, HardState>();
  private running = false;
  private halted = false;
  private ticker: TimerHandle | null = null;
  private asyncOps = 0;
  /** Peer messages dropped by validation, by reason. */
  readonly dropped: Record<string, number> = {};

  private constructor(config: NodeConfig, settings: NodeSettings) {
    this.id = config.id;
    this.clock = config.clock ?? new SystemClock();
    this.random = config.random ?? (() => randomInt(2 ** 47) / 2 ** 47);
    this.hooks = config.hooks ?? {};
    this.logger = config.logger ?? SILENT_LOGGER;
    this.settings = settings;
    this.transport = config.transport;
    this.storage = config.storage;
    this.onFatal = config.onFatal;
    this.incarnation = Math.floor(this.random() * 2 ** 32).toString(36);
    this.readContextPrefix = Buffer.alloc(6);
    this.readContextPrefix.writeUIntBE(Math.floor(this.random() * 2 ** 48), 0, 6);
  }

  /** Recovers every group from the log and its store (DESIGN.md §4) and returns the node, not yet started. */
  static async open(config: NodeConfig): Promise<RaftNode> {
    if (
      typeof config.id !== 'string' ||
      config.id.length === 0 ||
      Buffer.byteLength(config.id) > MAX_NODE_ID_BYTES
    ) {
      throw new Error(`node id must be a non-empty string of at most ${MAX_NODE_ID_BYTES} bytes`);
    }
    if (config.groups.length === 0) throw new Error('a node hosts at least one group');
    const settings = resolveSettings(config.settings);
    const node = new RaftNode(config, settings);
    const logs = await config.storage.recover();
    const repairs: GroupLogWrite[] = [];
    for (const g of config.groups) {
      if (node.replicas.has(g.group)) throw new Error(`group ${g.group} configured twice`);
      let log = logs.get(g.group);
      if (g.bootstrap.length > 0 && isFresh(log, g.store)) {
        // A founding member's first start: the log begins with the initial configuration as entry 1
        // (etcd does the same), so a member that joins later rebuilds the membership by replaying
        // the log from the start. Every founder writes the identical entry.
        log = bootstrapLog(g.bootstrap);
        repairs.push({ group: g.group, entries: log.entries, hardState: log.hardState });
      }
      const recovery = recoverGroup(g.group, log, g.store, emptyConfState());
      if (recovery.repairMarker !== null) {
        node.logger.warn(
          { group: g.group, index: recovery.repairMarker.index },
          'store ahead of the log (snapshot installed, marker lost in a crash): rewriting the marker',
        );
        repairs.push({
          group: g.group,
          snapshot: recovery.repairMarker,
          discardLog: true,
          entries: [],
          hardState: recovery.initial.hardState,
        });
      }
      node.replicas.set(g.group, new GroupReplica(node, g.group, g.store, recovery, g.bootstrap));
    }
    if (repairs.length > 0) {
      await new Promise<void>((resolve, reject) =>
        config.storage.append(repairs, (e) => (e === null ? resolve() : reject(e))),
      );
    }
    return node;
  }

  /** Starts listening and ticking. */
  start(): void {
    if (this.running || this.halted) return;
    this.running = true;
    this.transport.listen((from, messages) => this.receive(from, messages));
    this.ticker = this.clock.setInterval(() => this.onTick(), this.settings.tickMs);
    this.schedule();
  }

  /**
   * Graceful stop: stops ticking, answers every waiting request (shutting_down, or outcome_unknown
   * for proposals in flight), waits for an append in flight, closes the log.
   */
  async stop(): Promise<void> {
    if (this.halted) return;
    const reason = new NodeError('shutting_down', 'the node is shutting down');
    this.halt();
    for (const r of this.replicas.values()) r.stop(reason);
    this.failForwards(new NodeError('outcome_unknown', 'the node shut down before the leader answered'));
    await this.storage.close();
  }

  /**
   * Stops at once without answering anything or touching storage: the process died. Used by the
   * simulator for a crash; the server calls stop().
   */
  halt(): void {
    this.halted = true;
    this.running = false;
    this.ticker?.cancel();
    this.ticker = null;
    for (const f of this.forwards.values()) f.timer.cancel();
  }

  get isHalted(): boolean {
    return this.halted;
  }

  /** Async store operations in flight (snapshot export/import, sync); the simulator waits for 0. */
  get pendingAsync(): number {
    return this.asyncOps;
  }

  replica(group: number = DATA_GROUP): GroupReplica {
    const r = this.replicas.get(group);
    if (r === undefined) throw new NodeError('invalid_request', `this node hosts no group ${group}`);
    return r;
  }

  // -------------------------------------------------------------------------------------------
  // ReplicaHost
  // -------------------------------------------------------------------------------------------

  schedule(): void {
    if (this.scheduled || this.halted) return;
    this.scheduled = true;
    this.clock.defer(() => this.guarded(() => this.runLoop()));
  }

  send(to: NodeId, m: PeerMessage): void {
    if (this.halted) return;
    let box = this.outbox.get(to);
    if (box === undefined) {
      box = [];
      this.outbox.set(to, box);
    }
    box.push(m);
  }

  forward(
    group: number,
    to: NodeId,
    request: ForwardedRequest,
    timeoutMs: number,
    done: (error: NodeError | null, result?: ForwardedResult) => void,
  ): void {
    const id = this.nextForwardId++;
    const timer = this.clock.setTimeout(() => {
      if (!this.forwards.delete(id)) return;
      done(
        new NodeError(
          'outcome_unknown',
          `no answer from the leader ${to} within ${timeoutMs} ms; it may still be applied`,
        ),
      );
    }, timeoutMs);
    this.forwards.set(id, { to, timer, done });
    const m: ForwardMessage = {
      kind: 'forward',
      group,
      from: this.id,
      to,
      origin: this.incarnation,
      id,
      timeoutMs,
      request,
    };
    this.send(to, m);
    this.hooks.forwarded?.({ group, op: request.op, to });
    this.schedule();
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.asyncOps++;
    const settle = () => {
      this.asyncOps--;
    };
    p.then(settle, settle);
    return p;
  }

  fatal(error: Error): void {
    if (this.halted) return;
    this.logger.error({ err: error.message, stack: error.stack }, 'node stopping on an unrecoverable error');
    const reason = new NodeError('internal', `node stopped: ${error.message}`);
    this.halt();
    for (const r of this.replicas.values()) r.stop(reason);
    this.failForwards(new NodeError('outcome_unknown', `node stopped: ${error.message}`));
    this.onFatal?.(error);
  }

  newStreamId(): string {
    return `${this.id}.${this.incarnation}.${this.nextStreamId++}`;
  }

  queueCompaction(group: number, meta: SnapshotMeta): void {
    this.compactions.set(group, meta);
  }

  peerAddressChanged(id: NodeId, address: string | null): void {
    if (id !== this.id) this.transport.setPeerAddress(id, address);
  }

  // -------------------------------------------------------------------------------------------
  // The Ready loop
  // -------------------------------------------------------------------------------------------

  private guarded(fn: () => void): void {
    if (this.halted) return;
    try {
      fn();
    } catch (e) {
      this.fatal(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private onTick(): void {
    this.guarded(() => {
      for (const r of this.replicas.values()) r.tick();
      this.schedule();
    });
  }

  private runLoop(): void {
    this.scheduled = false;
    if (this.halted) return;
    if (this.persisting) {
      for (const r of this.replicas.values()) r.sendEarlyReplication();
      this.flushOutbox();
      return;
    }
    const readies: Array<{ replica: GroupReplica; rd: Ready }> = [];
    for (const r of this.replicas.values()) {
      r.beforeReady();
      const rd = r.takeReady();
      if (rd !== null) readies.push({ replica: r, rd });
    }
    if (readies.length === 0 && this.compactions.size === 0) {
      this.flushOutbox();
      return;
    }
    for (const [group, meta] of this.compactions) {
      // Superseded by a snapshot installed after the store sync that queued it.
      const replica = this.replica(group);
      if (!replica.compactionCurrent(meta)) {
        this.compactions.delete(group);
        replica.compactionAbandoned();
      }
    }
    const markers = this.compactions.size === 0 ? NO_MARKERS : new Map(this.compactions);
    this.compactions.clear();
    this.persisting = true;
    const installs = readies.some((x) => x.rd.snapshot !== undefined)
      ? readies.filter((x) => x.rd.snapshot !== undefined)
      : null;
    if (installs === null) {
      this.persist(readies, markers);
    } else {
      this.track(Promise.all(installs.map((x) => x.replica.installSnapshot(x.rd.snapshot!)))).then(
        () => this.guarded(() => this.persist(readies, markers)),
        (e: unknown) => this.fatal(e instanceof Error ? e : new Error(String(e))),
      );
    }
    this.flushOutbox();
  }

  /** One durable append for every group's Ready (group commit); messages only after it (unless the planted bug). */
  private persist(
    readies: Array<{ replica: GroupReplica; rd: Ready }>,
    markers: ReadonlyMap<number, SnapshotMeta>,
  ): void {
    const started = this.clock.now();
    const writes: GroupLogWrite[] = [];
    let entries = 0;
    for (const { replica, rd } of readies) {
      const w: GroupLogWrite = { group: replica.group, entries: rd.entries };
      const marker = markers.get(replica.group);
      if (rd.snapshot !== undefined) {
        w.snapshot = rd.snapshot;
        w.discardLog = true;
        if (marker !== undefined) replica.compactionAbandoned(); // the installed snapshot supersedes it
      } else if (marker !== undefined) {
        w.snapshot = marker;
        w.discardLog = false;
      }
      if (rd.hardState !== undefined) {
        const last = this.persistedHard.get(replica.group);
        // Raft Figure 2: commitIndex is volatile state. A hard state that changes only the commit is
        // written when it rides along with entries or a snapshot, never alone: that would cost an
        // fdatasync per commit before applying. Recovery takes commit = max(durable commit, applied)
        // (recovery.ts), and raft re-learns the rest from the leader. Term and vote always persist.
        const commitOnly =
          last !== undefined &&
          last.term === rd.hardState.term &&
          last.vote === rd.hardState.vote &&
          rd.hardState.commit >= last.commit;
        if (!commitOnly || rd.entries.length > 0 || w.snapshot !== undefined) {
          w.hardState = rd.hardState;
          this.persistedHard.set(replica.group, rd.hardState);
        }
      }
      entries += rd.entries.length;
      if (w.entries.length > 0 || w.hardState !== undefined || w.snapshot !== undefined) writes.push(w);
    }
    for (const [group, meta] of markers) {
      if (!readies.some((x) => x.replica.group === group))
        writes.push({ group, snapshot: meta, discardLog: false, entries: [] });
    }
    // TEST-ONLY planted bug: acknowledge before the state is durable (a crash then forgets a vote or
    // an entry that a peer already counted).
    const ackEarly = this.settings.bugs.has('ack-before-persist');
    // What goes out only once this append is durable (everything, under the planted bug: nothing).
    let afterDurable: Array<{ replica: GroupReplica; rd: Ready }> = readies;
    if (ackEarly) {
      for (const { replica, rd } of readies) replica.sendMessages(rd);
      this.flushOutbox();
      afterDurable = [];
    } else if (writes.length > 0) {
      // Raft thesis §10.2.1: a leader may send AppendEntries (and heartbeats) before its own write
      // is durable, so its fsync and the followers' run in parallel. It counts itself toward a quorum
      // only for entries durable here (RaftGroup.advance), so commit still needs a durable majority.
      // Acknowledgements and votes stay behind the fsync (DESIGN.md §3 "Persistence order").
      afterDurable = [];
      for (const x of readies) {
        const early = x.rd.snapshot === undefined ? x.rd.messages.filter(isLeaderReplication) : NO_MESSAGES;
        if (early.length === 0) {
          afterDurable.push(x);
          continue;
        }
        x.replica.sendMessages({ ...x.rd, messages: early });
        afterDurable.push({
          replica: x.replica,
          rd: { ...x.rd, messages: x.rd.messages.filter((m) => !isLeaderReplication(m)) },
        });
      }
      this.flushOutbox();
    }
    const durable = () => {
      if (this.halted) return;
      for (const { replica, rd } of afterDurable) replica.sendMessages(rd);
      // A follower's acknowledgements and votes go out before it applies: a leader's commit waits
      // for them. A leader's messages here tell followers the new commit index, which no commit
      // waits for: they go out after its clients' answers (applying below answers them, and an
      // answer is written in the continuation the apply resumes, before these queued sends).
      if (readies.some((x) => !x.replica.isLeader)) this.flushOutbox();
      for (const { replica, rd } of readies)
        if (rd.snapshot !== undefined) replica.snapshotPersisted(rd.snapshot);
      for (const [group, meta] of markers) {
        const replica = this.replica(group);
        const installed = readies.some((x) => x.replica === replica && x.rd.snapshot !== undefined);
        if (!installed && replica.compactionPersisted(meta)) this.storage.release(group, meta.index);
      }
      for (const { replica, rd } of readies) replica.afterPersist(rd);
      this.persisting = false;
      if (writes.length > 0)
        this.hooks.persisted?.({ groups: writes.length, entries, ms: this.clock.now() - started });
      this.flushOutbox();
      this.schedule();
    };
    if (writes.length === 0) {
      durable();
      return;
    }
    this.storage.append(writes, (error) => {
      if (error !== null) this.fatal(error);
      else this.guarded(durable);
    });
    // The log's write is queued first (a microtask); committed entries already durable here are
    // applied and answered while its fdatasync runs (GroupReplica.admitDurable).
    for (const { replica, rd } of readies) replica.admitDurable(rd);
  }

  private flushOutbox(): void {
    if (this.outbox.size === 0) return;
    for (const [to, messages] of this.outbox) this.transport.send(to, messages);
    this.outbox.clear();
  }

  // -------------------------------------------------------------------------------------------
  // Incoming peer messages
  // -------------------------------------------------------------------------------------------

  /** The transport delivers a peer's batch here. Untrusted: each message is validated first. */
  receive(from: NodeId, messages: readonly unknown[]): void {
    this.guarded(() => {
      for (const raw of messages) {
        const v = validatePeerMessage(from, this.id, raw);
        if (!v.ok) {
          this.dropped[v.reason] = (this.dropped[v.reason] ?? 0) + 1;
          continue;
        }
        const m = v.message;
        const group = m.kind === 'raft' ? m.message.group : m.group;
        const replica = this.replicas.get(group);
        if (replica === undefined) {
          this.dropped['unknown-group'] = (this.dropped['unknown-group'] ?? 0) + 1;
          continue;
        }
        switch (m.kind) {
          case 'raft':
            replica.step(m.message);
            break;
          case 'snapshotChunk':
            replica.onSnapshotChunk(m);
            break;
          case 'snapshotAck':
            replica.onSnapshotAck(m);
            break;
          case 'forward':
            this.onForward(replica, m);
            break;
          case 'forwardReply':
            this.onForwardReply(from, m);
            break;
        }
      }
      this.schedule();
    });
  }

  private onForward(replica: GroupReplica, m: ForwardMessage): void {
    const seen = this.forwardDedup.admit(m.from, m.origin, m.id);
    if (seen.kind === 'inProgress') return; // a duplicate of a request being handled: it gets one answer
    if (seen.kind === 'answered') {
      this.send(m.from, seen.reply);
      this.schedule();
      return;
    }
    const reply = (error: NodeError | null, result?: ForwardedResult) => {
      const r: ForwardReplyMessage = {
        kind: 'forwardReply',
        group: m.group,
        from: this.id,
        to: m.from,
        origin: m.origin,
        id: m.id,
      };
      if (error !== null) {
        r.error = { code: error.code, message: error.message };
        if (error.leader !== undefined) r.error.leader = error.leader;
      } else if (result !== undefined) {
        r.result = result;
      }
      this.forwardDedup.answered(m.from, m.origin, m.id, r);
      this.send(m.from, r);
      this.schedule();
    };
    let request: ForwardedRequest;
    try {
      request = this.checkRequest(m.request);
    } catch (e) {
      reply(toNodeError(e));
      return;
    }
    // Answer a little before the forwarder gives up, so a definite answer is not lost to its timer.
    const margin = Math.min(m.timeoutMs / 10, 200);
    replica.submit(newRequest(request, this.clock.now() + m.timeoutMs - margin, true, reply));
  }

  private onForwardReply(from: NodeId, m: ForwardReplyMessage): void {
    // A reply to an earlier incarnation of this node (same ids, another origin) is not ours.
    if (m.origin !== this.incarnation) return;
    const p = this.forwards.get(m.id);
    if (p === undefined || p.to !== from) return; // timed out already, or a duplicate
    this.forwards.delete(m.id);
    p.timer.cancel();
    if (m.error !== undefined) p.done(new NodeError(m.error.code, m.error.message, m.error.leader));
    else p.done(null, m.result);
  }

  private failForwards(error: NodeError): void {
    const all = [...this.forwards.values()];
    this.forwards.clear();
    for (const f of all) {
      f.timer.cancel();
      f.done(error);
    }
  }

  /** Validates a request's contents against the limits (client input, or a peer's forwarded request). */
  private checkRequest(r: ForwardedRequest): ForwardedRequest {
    switch (r.op) {
      case 'write': {
        const txn = validateTxn(r.txn, this.settings.txnLimits);
        if (r.session === undefined || r.session === null) return { op: 'write', txn };
        const problem = new SessionTable(this.settings.sessionLimits).validate(r.session);
        if (problem !== null) throw new NodeError('invalid_request', problem);
        return { op: 'write', txn, session: { clientId: r.session.clientId, seq: r.session.seq } };
      }
      case 'confChange':
        return { op: 'confChange', change: checkMembershipRequest(r.change) };
      case 'transferLeadership':
        if (r.to === undefined || r.to === null) return { op: 'transferLeadership' };
        checkId(r.to);
        return { op: 'transferLeadership', to: r.to };
    }
  }

  // -------------------------------------------------------------------------------------------
  // Callback API (what KvService wraps; the simulator calls it directly)
  // -------------------------------------------------------------------------------------------

  submitWrite(
    txn: Txn,
    session: ClientSession | undefined,
    done: (error: NodeError | null, result?: TxnResult) => void,
    timeoutMs: number = this.settings.requestTimeoutMs,
    group: number = DATA_GROUP,
  ): void {
    this.submitRequest(
      session === undefined ? { op: 'write', txn } : { op: 'write', txn, session },
      timeoutMs,
      group,
      (error, result) => {
        if (error !== null) done(error);
        else if (result?.op === 'write') done(null, result.result);
        else done(new NodeError('internal', 'write answered with a non-write result'));
      },
    );
  }

  submitRead<T>(
    consistency: ReadConsistency,
    exec: (store: StateStore) => T,
    done: (error: NodeError | null, value?: T) => void,
    timeoutMs: number = this.settings.requestTimeoutMs,
    group: number = DATA_GROUP,
  ): void {
    if (this.halted) {
      done(new NodeError('shutting_down', 'the node is not running'));
      return;
    }
    let replica: GroupReplica;
    try {
      replica = this.replica(group);
    } catch (e) {
      done(toNodeError(e));
      return;
    }
    replica.read(consistency, exec, timeoutMs, (error, value) => done(error, value as T));
  }

  submitRequest(
    request: ForwardedRequest,
    timeoutMs: number,
    group: number,
    done: (error: NodeError | null, result?: ForwardedResult) => void,
  ): void {
    if (this.halted) {
      done(new NodeError('shutting_down', 'the node is not running'));
      return;
    }
    let checked: ForwardedRequest;
    let replica: GroupReplica;
    try {
      replica = this.replica(group);
      checked = this.checkRequest(request);
    } catch (e) {
      done(toNodeError(e));
      return;
    }
    replica.submit(newRequest(checked, this.clock.now() + timeoutMs, false, done));
  }

  // -------------------------------------------------------------------------------------------
  // KvService
  // -------------------------------------------------------------------------------------------

  write(txn: Txn, session?: ClientSession): Promise<TxnResult> {
    return new Promise((resolve, reject) =>
      this.submitWrite(txn, session, (error, result) => (error !== null ? reject(error) : resolve(result!))),
    );
  }

  get(key: Buffer, consistency: ReadConsistency): Promise<KeyValue | null> {
    if (!Buffer.isBuffer(key) || key.length === 0 || key.length > this.settings.txnLimits.maxKeyBytes) {
      return Promise.reject(
        new NodeError('invalid_request', `key must be 1..${this.settings.txnLimits.maxKeyBytes} bytes`),
      );
    }
    return this.readPromise(consistency, (store) => store.get(key));
  }

  range(options: RangeOptions, consistency: ReadConsistency): Promise<KeyValue[]> {
    return this.readPromise(consistency, (store) => store.range(options));
  }

  readTxn(txn: Txn, consistency: ReadConsistency): Promise<TxnResult> {
    let checked: Txn;
    try {
      checked = validateTxn(txn, this.settings.txnLimits);
    } catch (e) {
      return Promise.reject(toNodeError(e));
    }
    if (!isReadOnly(checked)) {
      return Promise.reject(
        new NodeError('invalid_request', 'readTxn takes compares and gets only; use write'),
      );
    }
    return this.readPromise(consistency, (store) => evaluateReadTxn(store, checked));
  }

  status(): NodeStatus {
    return this.replica(DATA_GROUP).status();
  }

  members(): MemberInfo[] {
    return this.replica(DATA_GROUP).memberList();
  }

  addMember(id: string, peerAddress: string, clientUrl: string, role: MemberRole): Promise<MemberInfo[]> {
    return this.membership({ type: 'add', id, peerAddress, clientUrl, role });
  }

  removeMember(id: string): Promise<MemberInfo[]> {
    return this.membership({ type: 'remove', id });
  }

  promoteMember(id: string): Promise<MemberInfo[]> {
    return this.membership({ type: 'promote', id });
  }

  transferLeadership(to?: string): Promise<string> {
    return new Promise((resolve, reject) =>
      this.submitRequest(
        to === undefined ? { op: 'transferLeadership' } : { op: 'transferLeadership', to },
        this.settings.requestTimeoutMs,
        DATA_GROUP,
        (error, result) => {
          if (error !== null) reject(error);
          else if (result?.op === 'transferLeadership') resolve(result.leader);
          else reject(new NodeError('internal', 'transfer answered with another result'));
        },
      ),
    );
  }

  private membership(change: MembershipRequest): Promise<MemberInfo[]> {
    return new Promise((resolve, reject) =>
      this.submitRequest(
        { op: 'confChange', change },
        this.settings.requestTimeoutMs,
        DATA_GROUP,
        (error, result) => {
          if (error !== null) reject(error);
          else if (result?.op === 'confChange') {
            resolve(
              result.members.map((m) => {
                const info: MemberInfo = {
                  id: m.id,
                  peerAddress: m.peerAddress,
                  clientUrl: m.clientUrl,
                  role: m.role,
                };
                if (m.leaving) info.leaving = true;
                return info;
              }),
            );
          } else reject(new NodeError('internal', 'membership change answered with another result'));
        },
      ),
    );
  }

  private readPromise<T>(consistency: ReadConsistency, exec: (store: StateStore) => T): Promise<T> {
    if (consistency !== 'linearizable' && consistency !== 'serializable') {
      return Promise.reject(
        new NodeError('invalid_request', `unknown read consistency ${String(consistency)}`),
      );
    }
    return new Promise((resolve, reject) =>
      this.submitRead(consistency, exec, (error, value) =>
        error !== null ? reject(error) : resolve(value as T),
      ),
    );
  }
}

/** Nothing durable yet: neither log nor store. */
function isFresh(log: RecoveredGroupLog | undefined, store: StateStore): boolean {
  if (store.appliedIndex() !== 0) return false;
  return log === undefined || (log.entries.length === 0 && log.snapshot === null && log.hardState.term === 0);
}

/** The log a founding member starts with: entry 1 (term 1, committed) adds every founding voter. */
export function bootstrapLog(members: readonly MemberAddress[]): RecoveredGroupLog {
  const sorted = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (new Set(sorted.map((m) => m.id)).size !== sorted.length)
    throw new Error('bootstrap members hold a duplicate id');
  const data = encodeConfChange({
    changes: sorted.map((m) => ({ type: 'addVoter' as const, node: m.id })),
    autoLeave: false,
    context: encodeMembersContext(sorted.map((m) => ({ ...m, promote: false }))),
  });
  return {
    hardState: { term: 1, vote: '', commit: 1 },
    snapshot: null,
    entries: [{ term: 1, index: 1, type: 'confChange', data }],
  };
}

function newRequest(
  request: ForwardedRequest,
  deadline: number,
  fromPeer: boolean,
  finish: (error: NodeError | null, result?: ForwardedResult) => void,
): ClientRequest {
  return {
    request,
    finish,
    deadline,
    fromPeer,
    state: 'queued',
    timer: null,
    proposedIndex: 0,
    proposedTerm: 0,
    hops: 0,
    hint: '',
    retryTick: 0,
    transferTarget: '',
  };
}

function checkId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id) > MAX_NODE_ID_BYTES) {
    throw new NodeError(
      'invalid_request',
      `member id must be a non-empty string of at most ${MAX_NODE_ID_BYTES} bytes`,
    );
  }
}

function checkMembershipRequest(c: MembershipRequest): MembershipRequest {
  checkId(c.id);
  if (c.type !== 'add') return { type: c.type, id: c.id };
  for (const [name, v] of [
    ['peerAddress', c.peerAddress],
    ['clientUrl', c.clientUrl],
  ] as const) {
    if (typeof v !== 'string' || Buffer.byteLength(v) > MAX_ADDRESS_BYTES) {
      throw new NodeError(
        'invalid_request',
        `${name} must be a string of at most ${MAX_ADDRESS_BYTES} bytes`,
      );
    }
  }
  if (c.peerAddress.length === 0) throw new NodeError('invalid_request', 'peerAddress is required');
  if (c.role !== 'voter' && c.role !== 'learner')
    throw new NodeError('invalid_request', "role must be 'voter' or 'learner'");
  return { type: 'add', id: c.id, peerAddress: c.peerAddress, clientUrl: c.clientUrl, role: c.role };
}

/** Fills and checks the node's tunables. */
export function resolveSettings(partial: Partial<NodeSettings> = {}): NodeSettings {
  const s: NodeSettings = { ...DEFAULT_NODE_SETTINGS, ...partial };
  const positive: Array<keyof NodeSettings> = [
    'tickMs',
    'electionTick',
    'heartbeatTick',
    'maxInflightMsgs',
    'maxMsgBytes',
    'requestTimeoutMs',
    'maxPendingRequests',
    'maxPendingReads',
    'snapshotEntries',
    'snapshotBytes',
    'learnerCatchUpLag',
    'maxForwardHops',
  ];
  for (const k of positive) {
    const v = s[k];
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v))
      throw new RangeError(`node setting ${k} must be positive`);
  }
  if (!Number.isSafeInteger(s.keepTail) || s.keepTail < 0)
    throw new RangeError('node setting keepTail must be >= 0');
  if (!Number.isSafeInteger(s.keepTailBytes) || s.keepTailBytes < 0)
    throw new RangeError('node setting keepTailBytes must be >= 0');
  const t = s.txnLimits;
  for (const k of ['maxKeyBytes', 'maxValueBytes', 'maxOpsPerTxn', 'maxTxnBytes'] as const) {
    if (!Number.isSafeInteger(t[k]) || t[k] < 1)
      throw new RangeError(`txn limit ${k} must be a positive integer`);
  }
  return s;
}
