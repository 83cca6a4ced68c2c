/**
 * One deterministic simulation run: a whole cluster (the real raft/ and node/ code) in one process
 * over a simulated network, simulated disks and virtual time, with faults injected by a nemesis and
 * concurrent clients recording a history. Everything random comes from one seed, so a run replays
 * bit-for-bit (`npm run sim -- --seed S --trace`).
 *
 * Checks: Raft's safety properties after every step (./safety-checker.ts); at the end, the history's
 * linearizability (src/history), liveness (after the faults heal, operations complete and succeed
 * within a bounded virtual time) and convergence (every member applies the same state).
 */
import type { HistoryEvent } from '../../src/history/history-event.js';
import { checkHistory } from '../../src/history/linearizability-checker.js';
import { MemoryStore } from '../../src/kv/memory-store.js';
import type { LogStorage } from '../../src/node/log-storage.js';
import { MemoryLogStorage } from '../../src/node/memory-log-storage.js';
import type { MemberAddress } from '../../src/node/membership.js';
import { isMember } from '../../src/node/membership.js';
import { RaftNode } from '../../src/node/raft-node.js';
import type { PeerMessage, PeerTransport } from '../../src/node/transport.js';
import type { ConfState, NodeId, PlantedBug } from '../../src/raft/types.js';
import { EventQueue } from './event-queue.js';
import { undurableClaim } from './persistence-check.js';
import { Prng } from './prng.js';
import { SafetyChecker, SafetyViolation } from './safety-checker.js';
import { CALM_NETWORK, SimNetwork } from './sim-network.js';
import { VirtualClock } from './virtual-clock.js';
import { Workload } from './workload.js';

export interface SimulationOptions {
  seed: number;
  /** Voters at the start: 3, 5 or 7. */
  nodes: number;
  /** Client operations in the run (default 500). */
  operations?: number;
  /** Concurrent clients (default 5). */
  clients?: number;
  bugs?: readonly PlantedBug[];
  trace?: boolean;
  /** A run still going at this virtual time fails its liveness check. */
  maxVirtualMs?: number;
}

export interface SimulationFailure {
  check: string;
  message: string;
}

export interface SimulationStats {
  crashes: number;
  partitions: number;
  membershipChanges: number;
  transfers: number;
  snapshotsInstalled: number;
  compactions: number;
  leaderChanges: number;
  messages: number;
  events: number;
  historyOps: number;
  info: number;
}

export interface SimulationResult {
  seed: number;
  nodes: number;
  passed: boolean;
  failure: SimulationFailure | null;
  virtualMs: number;
  stats: SimulationStats;
  trace: string[];
  /** The clients' history (HISTORY.md events), for `--history` and for re-checking. */
  history: HistoryEvent[];
}

const GROUP = 0;
const SETTLE_MS = 1500;
const CONVERGE_MS = 1500;

interface SimNode {
  id: NodeId;
  storage: MemoryLogStorage;
  store: MemoryStore;
  node: RaftNode | null;
  clock: VirtualClock | null;
  incarnation: number;
  starting: boolean;
  bootstrap: MemberAddress[];
  /** Asked to leave the cluster (never re-added: a fresh id joins instead). */
  retired: boolean;
  /**
   * Store commits of this incarnation waiting for their virtual time: async work of the node that
   * cannot move before its event, so the loop need not drain for it (a fresh counter per crash).
   */
  commits: { waiting: number };
}

class Failure extends Error {
  constructor(
    readonly check: string,
    message: string,
  ) {
    super(message);
  }
}

/** Without an explicit size, seeds rotate over 3, 5 and 7 nodes. */
export function nodesForSeed(seed: number, nodes: number | undefined): number {
  return nodes ?? [3, 5, 7][seed % 3]!;
}

export async function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  const sim = new Simulation(options);
  return sim.run();
}

class Simulation {
  private readonly queue = new EventQueue();
  private readonly rng: Prng;
  private readonly faultRng: Prng;
  private readonly diskRng: Prng;
  /** When a node's deferred store batches commit (StateStore.applyDeferred). */
  private readonly storeRng: Prng;
  private readonly network: SimNetwork;
  private readonly checker = new SafetyChecker(GROUP);
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly workload: Workload;
  private readonly trace: string[] = [];
  private readonly tracing: boolean;
  private readonly bugs: ReadonlySet<PlantedBug>;
  private readonly snapshotEntries: number;
  private readonly keepTail: number;
  private readonly snapshotBytes: number;
  private readonly keepTailBytes: number;
  /** Probability that a new leader is struck at once; a third of the seeds run in leader churn. */
  private readonly leaderChurn: number;
  /** Per-seed replication shape: tiny messages and windows make more interleavings reachable. */
  private readonly maxMsgBytes: number;
  private readonly maxInflightMsgs: number;
  private diskLatency: [number, number] = [0.2, 2];
  private pendingStarts = 0;
  private healed = false;
  private healAtOps: number;
  private nextSpare: number;
  private fatal: Failure | null = null;
  private confCache: { at: number; conf: ConfState | null } = { at: Number.NEGATIVE_INFINITY, conf: null };
  private readonly stats: SimulationStats = {
    crashes: 0,
    partitions: 0,
    membershipChanges: 0,
    transfers: 0,
    snapshotsInstalled: 0,
    compactions: 0,
    leaderChanges: 0,
    messages: 0,
    events: 0,
    historyOps: 0,
    info: 0,
  };

  constructor(private readonly options: SimulationOptions) {
    if (![3, 5, 7].includes(options.nodes) && !(options.nodes >= 1 && options.nodes <= 9)) {
      throw new RangeError('nodes must be between 1 and 9');
    }
    const root = new Prng(options.seed);
    this.rng = root.fork('cluster');
    this.faultRng = root.fork('faults');
    this.diskRng = root.fork('disk');
    const netRng = root.fork('network');
    this.storeRng = root.fork('store');
    const clientRng = root.fork('clients');
    // Drawn from their own fork (after the others), so earlier seeds' runs are unchanged otherwise.
    // Half the runs compact by bytes too and keep a byte-bounded tail (entries here are ~100 bytes).
    const compactionRng = root.fork('compaction-bytes');
    this.snapshotBytes = compactionRng.chance(0.5) ? compactionRng.range(200, 2000) : 64 * 1024 * 1024;
    this.keepTailBytes = compactionRng.chance(0.5) ? compactionRng.range(0, 600) : 16 * 1024 * 1024;
    this.tracing = options.trace === true;
    this.bugs = new Set(options.bugs ?? []);
    // Small thresholds so snapshots and compaction happen often (DESIGN.md §8).
    this.snapshotEntries = this.rng.range(8, 60);
    this.keepTail = this.rng.range(0, 8);
    // 64 bytes: every command alone in its AppendEntries (one entry is always sent), so a follower
    // acknowledges old-term entries separately from the new leader's no-op.
    this.maxMsgBytes = this.rng.chance(0.4) ? 64 : this.rng.chance(0.5) ? 512 : 1024 * 1024;
    this.maxInflightMsgs = this.rng.chance(0.3) ? this.rng.range(1, 4) : 256;
    this.leaderChurn = this.rng.chance(0.33) ? 0.5 : 0.1;
    this.network = new SimNetwork(this.queue, netRng, this.rng.chance(0.1));
    if (this.tracing) {
      this.network.onDeliver = (from, to, m, dropped) =>
        this.log(`net ${from}->${to} ${describe(m)}${dropped === null ? '' : ` DROPPED(${dropped})`}`);
    }
    const operations = options.operations ?? 500;
    this.healAtOps = Math.floor(operations * 0.75);
    this.nextSpare = options.nodes + 1;
    this.workload = new Workload(
      {
        queue: this.queue,
        targets: (final) => this.clientTargets(final),
        node: (id) => this.nodes.get(id)?.node ?? null,
        incarnation: (id) => this.nodes.get(id)?.incarnation ?? -1,
        trace: this.tracing ? (line) => this.log(line) : null,
      },
      clientRng,
      {
        clients: options.clients ?? 10,
        operations,
        keys: 5,
        clientTimeoutMs: 600,
        nodeTimeoutMs: [200, 900],
        thinkMs: [0, 30],
        sessionRetries: 2,
      },
    );
  }

  private log(line: string): void {
    if (this.tracing) this.trace.push(`${this.queue.now.toFixed(3).padStart(10)} ${line}`);
  }

  async run(): Promise<SimulationResult> {
    const ids = Array.from({ length: this.options.nodes }, (_, i) => `n${i + 1}`);
    const bootstrap: MemberAddress[] = ids.map((id) => ({
      id,
      peerAddress: `${id}:7000`,
      clientUrl: `http://${id}:8000`,
      promote: false,
    }));
    let failure: SimulationFailure | null = null;
    try {
      for (const id of ids) this.addSlot(id, bootstrap);
      for (const id of ids) this.startNode(this.nodes.get(id)!);
      await this.drain();
      await this.loop(() => this.pendingStarts === 0);
      this.workload.start();
      this.scheduleFault();
      await this.loop(() => this.workload.finished);
      this.log('workload finished; letting the cluster converge');
      const convergeUntil = this.queue.now + CONVERGE_MS;
      await this.loop(() => this.queue.now >= convergeUntil);
      this.checkConvergence();
      if (this.workload.livenessFailures.length > 0) {
        const f = this.workload.livenessFailures[0]!;
        throw new Failure(
          'liveness',
          `${this.workload.livenessFailures.length} operation(s) after the faults healed did not succeed; first: ` +
            `${f.f} ${f.key} invoked at ${f.invokeTime.toFixed(1)} ms: ${f.outcome}`,
        );
      }
      const verdict = checkHistory(this.workload.history, { timeLimitMs: 30_000 });
      this.stats.historyOps = verdict.operationCount;
      for (const c of Object.values(verdict.counts)) this.stats.info += c.info;
      if (!verdict.linearizable) {
        const f = verdict.failures[0];
        const ops =
          f?.operations.map((o) => `${o.f} ${JSON.stringify(o.value)} ${o.outcome}`).join('; ') ?? '';
        throw new Failure(
          'linearizability',
          verdict.verdict === 'unknown'
            ? `checker budget ran out on keys ${verdict.unknownKeys.join(', ')}`
            : `key ${f?.key}: ${ops}`,
        );
      }
    } catch (e) {
      if (e instanceof Failure) failure = { check: e.check, message: e.message };
      else if (e instanceof SafetyViolation) failure = { check: e.check, message: e.detail };
      else
        failure = {
          check: 'simulator error',
          message: e instanceof Error ? (e.stack ?? e.message) : String(e),
        };
      this.log(`FAILED ${failure.check}: ${failure.message}`);
    }
    for (const n of this.nodes.values()) n.node?.halt();
    this.stats.events = this.queue.executed;
    this.stats.messages = this.network.sent;
    return {
      seed: this.options.seed,
      nodes: this.options.nodes,
      passed: failure === null,
      failure,
      virtualMs: this.queue.now,
      stats: this.stats,
      trace: this.trace,
      history: this.workload.history,
    };
  }

  /** Runs events until `done` holds; checks safety after every one. */
  private async loop(done: () => boolean): Promise<void> {
    const maxMs = this.options.maxVirtualMs ?? 600_000;
    while (!done()) {
      if (!this.queue.step()) throw new Failure('liveness', 'the event queue ran dry');
      if (this.checker.violation !== null) throw this.checker.violation;
      if (this.fatal !== null) throw this.fatal;
      if (this.pendingAsync() > 0) await this.drain();
      if (this.queue.now > maxMs) {
        throw new Failure(
          'liveness',
          `run still going at ${maxMs} ms virtual (${this.workload.issuedCount} ops issued)`,
        );
      }
    }
  }

  private pendingAsync(): number {
    let n = this.pendingStarts;
    for (const s of this.nodes.values()) {
      const node = s.node;
      if (node !== null) n += node.pendingAsync - s.commits.waiting;
    }
    return n;
  }

  /**
   * Lets async store work (snapshot export/import, sync, node start) run: one macrotask turn drains
   * every microtask, so this is deterministic; work that waits for virtual time (a node start's
   * first durable append) continues after later events.
   */
  private async drain(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.queue.runDeferred();
    if (this.checker.violation !== null) throw this.checker.violation;
    if (this.fatal !== null) throw this.fatal;
  }

  // -------------------------------------------------------------------------------------------
  // Nodes
  // -------------------------------------------------------------------------------------------

  private addSlot(id: NodeId, bootstrap: MemberAddress[]): SimNode {
    // Half the store batches commit at once, the rest up to a slow disk's write later, so clients,
    // reads, snapshots and crashes meet a node whose store is behind what raft counts as applied.
    const scheduleCommit = (commit: () => void): void => {
      const counter = slot.commits;
      counter.waiting++;
      this.queue.after(this.storeRng.chance(0.5) ? 0 : this.storeRng.next() * this.diskLatency[1], () => {
        counter.waiting--;
        commit();
      });
    };
    const slot: SimNode = {
      id,
      storage: new MemoryLogStorage({
        scheduleSync: (fn) =>
          this.queue.after(
            this.diskLatency[0] + this.diskRng.next() * (this.diskLatency[1] - this.diskLatency[0]),
            fn,
          ),
      }),
      store: new MemoryStore({ scheduleCommit }),
      node: null,
      clock: null,
      incarnation: 0,
      starting: false,
      bootstrap,
      retired: false,
      commits: { waiting: 0 },
    };
    this.nodes.set(id, slot);
    return slot;
  }

  private startNode(slot: SimNode): void {
    if (slot.node !== null || slot.starting) return;
    slot.starting = true;
    this.pendingStarts++;
    const incarnation = ++slot.incarnation;
    const clock = new VirtualClock(this.queue, this.rng.range(-50, 50));
    slot.clock = clock;
    this.log(`start ${slot.id} (incarnation ${incarnation})`);
    const storage = this.incarnationStorage(slot, incarnation);
    RaftNode.open({
      id: slot.id,
      groups: [{ group: GROUP, store: slot.store, bootstrap: slot.bootstrap }],
      transport: this.checkedTransport(slot),
      storage,
      clock,
      random: this.rng.fork(`raft-${slot.id}-${incarnation}`).asFunction(),
      settings: {
        tickMs: 10,
        electionTick: 10,
        heartbeatTick: 2,
        requestTimeoutMs: 1000,
        snapshotEntries: this.snapshotEntries,
        snapshotBytes: this.snapshotBytes,
        keepTail: this.keepTail,
        keepTailBytes: this.keepTailBytes,
        learnerCatchUpLag: 4,
        maxMsgBytes: this.maxMsgBytes,
        txnLimits: { maxKeyBytes: 16, maxValueBytes: 24, maxOpsPerTxn: 4, maxTxnBytes: 48 },
        maxInflightMsgs: this.maxInflightMsgs,
        snapshotLimits: {
          window: 4,
          maxMessageBytes: 512,
          retransmitMs: 60,
          maxRetransmits: 8,
          maxStagedBytes: 64 * 1024 * 1024,
        },
        bugs: this.bugs,
      },
      hooks: this.checker.hooksFor(slot.id, {
        leaderChanged: (e) => {
          this.stats.leaderChanges++;
          if (e.role === 'leader') this.onNewLeader(slot, incarnation);
          if (this.tracing) this.log(`${slot.id} role ${e.role} term ${e.term} leader ${e.leader || '-'}`);
        },
        snapshot: (e) => {
          if (e.event === 'installed') this.stats.snapshotsInstalled++;
          if (e.event === 'compacted') this.stats.compactions++;
          if (this.tracing)
            this.log(`${slot.id} snapshot ${e.event} ${e.index}${e.peer ? ` peer ${e.peer}` : ''}`);
        },
      }),
      onFatal: (error) => {
        if (this.checker.violation !== null) return;
        if (slot.incarnation !== incarnation) return;
        this.fatal = new Failure('node error', `${slot.id}: ${error.stack ?? error.message}`);
      },
    }).then(
      (node) => {
        this.pendingStarts--;
        slot.starting = false;
        if (slot.incarnation !== incarnation) {
          node.halt();
          return;
        }
        slot.node = node;
        node.start();
      },
      (e: unknown) => {
        this.pendingStarts--;
        slot.starting = false;
        if (e instanceof SafetyViolation) return; // the checker has it
        this.fatal = new Failure(
          'recovery',
          `${slot.id}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
        );
      },
    );
  }

  /** The node's transport, checking the persistence-order invariant on every raft message it sends. */
  private checkedTransport(slot: SimNode): PeerTransport {
    const inner = this.network.transportFor(slot.id);
    return {
      listen: (deliver) => inner.listen(deliver),
      setPeerAddress: (id, a) => inner.setPeerAddress(id, a),
      send: (to, messages) => {
        for (const m of messages) {
          if (m.kind !== 'raft') continue;
          const claim = undurableClaim(m.message, slot.storage.durable(GROUP));
          if (claim !== null && this.fatal === null) this.fatal = new Failure('persistence order', claim);
        }
        inner.send(to, messages);
      },
    };
  }

  /** The disk as one incarnation sees it: after its crash, a dead process writes nothing. */
  private incarnationStorage(slot: SimNode, incarnation: number): LogStorage {
    const disk = slot.storage;
    return {
      recover: () => disk.recover(),
      append: (writes, done) => {
        if (slot.incarnation !== incarnation || slot.clock === null) return;
        disk.append(writes, done);
      },
      release: (group, index) => {
        if (slot.incarnation === incarnation) disk.release(group, index);
      },
      close: async () => {},
    };
  }

  private crash(slot: SimNode): void {
    if (slot.node === null) return;
    this.stats.crashes++;
    slot.node.halt();
    slot.clock?.kill();
    slot.clock = null;
    this.network.detach(slot.id);
    const lost = slot.storage.crash(() => this.diskRng.next());
    slot.store = slot.store.durableCopy();
    slot.commits = { waiting: 0 };
    slot.node = null;
    slot.incarnation++;
    this.log(`crash ${slot.id} (disk kept ${lost.keptRecords} / lost ${lost.lostRecords} unsynced records)`);
  }

  /** A removed member is shut down for good (its id is never reused). */
  private retire(slot: SimNode): void {
    if (slot.node === null) return;
    this.log(`decommission ${slot.id}`);
    slot.node.halt();
    slot.clock?.kill();
    slot.clock = null;
    this.network.detach(slot.id);
    slot.node = null;
    slot.incarnation++;
  }

  private up(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.node !== null);
  }

  /** The configuration as the most recent leader knows it (or any running node). */
  private currentConf(): ConfState | null {
    let best: { term: number; conf: ConfState } | null = null;
    for (const n of this.up()) {
      const r = n.node!.replica(GROUP);
      const term = r.raft.status().term;
      if (r.isLeader && (best === null || term > best.term)) best = { term, conf: r.confState };
    }
    if (best !== null) return best.conf;
    const any = this.up()[0];
    return any === undefined ? null : any.node!.replica(GROUP).confState;
  }

  private clientTargets(final: boolean): NodeId[] {
    const running = this.up().map((n) => n.id);
    if (!final) return running.length > 0 && this.faultRng.chance(0.9) ? running : [...this.nodes.keys()];
    if (this.queue.now - this.confCache.at > 50)
      this.confCache = { at: this.queue.now, conf: this.currentConf() };
    const conf = this.confCache.conf;
    return running.filter((id) => conf === null || isMember(conf, id));
  }

  // -------------------------------------------------------------------------------------------
  // Nemesis
  // -------------------------------------------------------------------------------------------

  private scheduleFault(): void {
    this.queue.after(this.faultRng.range(50, 500), () => this.fault());
  }

  private fault(): void {
    if (this.healed) return;
    if (this.workload.issuedCount >= this.healAtOps) {
      this.heal();
      return;
    }
    const r = this.faultRng;
    const all = [...this.nodes.values()];
    const roll = r.next();
    if (roll < 0.22) {
      const up = this.up();
      const down = all.length - up.length;
      const maxDown = Math.floor((this.options.nodes - 1) / 2) + (r.chance(0.2) ? 1 : 0);
      if (up.length > 0 && down < maxDown) {
        const victim = r.chance(0.4) ? (this.leaderSlot() ?? r.pick(up)) : r.pick(up);
        this.crash(victim);
        // Often a quick bounce (a restart within the same election), else a longer outage.
        this.queue.after(r.chance(0.4) ? r.range(1, 30) : r.range(30, 600), () => {
          if (!this.healed && victim.node === null && !victim.retired) this.startNode(victim);
        });
      }
    } else if (roll < 0.37) {
      const ids = all.map((n) => n.id);
      const side = ids.filter(() => r.chance(0.5));
      const other = ids.filter((id) => !side.includes(id));
      if (side.length > 0 && other.length > 0) {
        this.stats.partitions++;
        // Half the time the new partition replaces the current one at once (flapping): a node cut
        // off a moment ago meets a majority that just lost its leader.
        if (r.chance(0.5)) this.network.heal();
        this.network.partition([side, other]);
        this.log(`partition {${side.join(',')}} | {${other.join(',')}}`);
        this.queue.after(r.range(100, 1500), () => this.healNetwork());
      }
    } else if (roll < 0.45) {
      const a = r.pick(all).id;
      const b = r.pick(all).id;
      if (a !== b) {
        this.stats.partitions++;
        this.network.block(a, b);
        this.log(`one-way partition ${a} -/-> ${b}`);
        this.queue.after(r.range(100, 1500), () => this.healNetwork());
      }
    } else if (roll < 0.52) {
      const leader = this.leaderSlot();
      if (leader !== null) {
        this.stats.partitions++;
        this.network.partition([[leader.id], all.filter((n) => n !== leader).map((n) => n.id)]);
        this.log(`isolate leader ${leader.id}`);
        this.queue.after(r.range(100, 1500), () => this.healNetwork());
      }
    } else if (roll < 0.62) {
      const c = {
        loss: r.chance(0.5) ? r.next() * 0.2 : 0,
        duplicate: r.chance(0.5) ? r.next() * 0.1 : 0,
        minDelayMs: r.range(0, 3),
        maxDelayMs: r.range(3, 40),
      };
      this.network.conditions = c;
      this.log(
        `network loss=${c.loss.toFixed(2)} dup=${c.duplicate.toFixed(2)} delay=${c.minDelayMs}..${c.maxDelayMs}`,
      );
      this.queue.after(r.range(100, 2000), () => {
        if (!this.healed) this.network.conditions = { ...CALM_NETWORK };
      });
    } else if (roll < 0.72) {
      this.changeMembership();
    } else if (roll < 0.8) {
      this.transferLeadership();
    } else if (roll < 0.85) {
      this.diskLatency = [r.range(1, 5), r.range(5, 40)];
      this.log(`slow disks ${this.diskLatency[0]}..${this.diskLatency[1]} ms`);
      this.queue.after(r.range(100, 1500), () => {
        this.diskLatency = [0.2, 2];
      });
    }
    this.scheduleFault();
  }

  /**
   * A reactive fault: sometimes a freshly elected leader crashes or is cut off within a few ms —
   * before its no-op commits, before the followers learn the latest commit index. These are the
   * histories of Raft's Figure 8 and of reads served by a leader that has not yet confirmed itself.
   */
  private onNewLeader(slot: SimNode, incarnation: number): void {
    if (this.healed || !this.faultRng.chance(this.leaderChurn)) return;
    const crash = this.faultRng.chance(0.6);
    const delay = this.faultRng.next() * 8;
    this.queue.after(delay, () => {
      if (this.healed || slot.incarnation !== incarnation || slot.node === null) return;
      if (crash) {
        this.crash(slot);
        this.queue.after(this.faultRng.range(1, 200), () => {
          if (!this.healed && slot.node === null && !slot.retired) this.startNode(slot);
        });
      } else {
        this.stats.partitions++;
        this.network.heal();
        this.network.partition([[slot.id], [...this.nodes.keys()].filter((id) => id !== slot.id)]);
        this.log(`isolate new leader ${slot.id}`);
        this.queue.after(this.faultRng.range(50, 600), () => this.healNetwork());
      }
    });
  }

  private healNetwork(): void {
    if (!this.network.partitioned) return;
    this.network.heal();
    this.log('network healed');
  }

  private heal(): void {
    this.healed = true;
    this.network.heal();
    this.network.conditions = { ...CALM_NETWORK };
    this.diskLatency = [0.2, 2];
    for (const n of this.nodes.values()) if (n.node === null && !n.retired) this.startNode(n);
    this.log('HEAL: every fault removed; operations from now on + settle must succeed');
    this.workload.healed(this.queue.now, SETTLE_MS);
  }

  private leaderSlot(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const n of this.up()) {
      const r = n.node!.replica(GROUP);
      if (!r.isLeader) continue;
      const term = r.raft.status().term;
      if (term > bestTerm) {
        best = n;
        bestTerm = term;
      }
    }
    return best;
  }

  private changeMembership(): void {
    const r = this.faultRng;
    const conf = this.currentConf();
    const up = this.up();
    if (conf === null || up.length === 0) return;
    const via = r.pick(up);
    const members = [...new Set([...conf.voters, ...conf.learners])];
    const removable = conf.voters.filter((id) => !this.nodes.get(id)?.retired);
    if (removable.length >= this.options.nodes && r.chance(0.5)) {
      const victim = r.pick(removable);
      this.stats.membershipChanges++;
      this.log(`membership: remove ${victim} via ${via.id}`);
      via.node!.submitRequest(
        { op: 'confChange', change: { type: 'remove', id: victim } },
        2000,
        GROUP,
        (error) => {
          this.log(`membership: remove ${victim} -> ${error === null ? 'ok' : error.code}`);
          if (error !== null) return;
          const slot = this.nodes.get(victim)!;
          slot.retired = true;
          // Decommissioned a little later (it may still be needed while the joint configuration is left).
          this.queue.after(500, () => {
            const conf = this.currentConf();
            if (conf !== null && !isMember(conf, victim)) this.retire(slot);
          });
        },
      );
      return;
    }
    if (members.length <= this.options.nodes) {
      const id = `n${this.nextSpare++}`;
      const slot = this.addSlot(id, []);
      this.startNode(slot);
      const role = r.chance(0.5) ? 'voter' : 'learner';
      this.stats.membershipChanges++;
      this.log(`membership: add ${id} as ${role} via ${via.id}`);
      via.node!.submitRequest(
        {
          op: 'confChange',
          change: { type: 'add', id, peerAddress: `${id}:7000`, clientUrl: `http://${id}:8000`, role },
        },
        2000,
        GROUP,
        (error) => this.log(`membership: add ${id} -> ${error === null ? 'ok' : error.code}`),
      );
    }
  }

  private transferLeadership(): void {
    const r = this.faultRng;
    const up = this.up();
    const conf = this.currentConf();
    if (up.length === 0 || conf === null || conf.voters.length === 0) return;
    const via = r.pick(up);
    const to = r.chance(0.3) ? undefined : r.pick(conf.voters);
    this.stats.transfers++;
    this.log(`transfer leadership to ${to ?? '(best)'} via ${via.id}`);
    via.node!.submitRequest(
      to === undefined ? { op: 'transferLeadership' } : { op: 'transferLeadership', to },
      1000,
      GROUP,
      (error, result) =>
        this.log(
          `transfer -> ${error === null ? (result?.op === 'transferLeadership' ? result.leader : '?') : error.code}`,
        ),
    );
  }

  // -------------------------------------------------------------------------------------------
  // End checks
  // -------------------------------------------------------------------------------------------

  /** After the workload and a calm period, every running member holds the same applied state. */
  private checkConvergence(): void {
    const conf = this.currentConf();
    if (conf === null) throw new Failure('liveness', 'no node is running at the end');
    const members = this.up().filter((n) => isMember(conf, n.id));
    if (members.length === 0) throw new Failure('liveness', 'no member is running at the end');
    const leader = this.leaderSlot();
    if (leader === null) throw new Failure('liveness', 'no leader at the end of a calm period');
    const target = leader.node!.replica(GROUP).appliedIndex;
    const reference = dump(leader.store);
    for (const n of members) {
      const r = n.node!.replica(GROUP);
      if (r.appliedIndex !== target) {
        throw new Failure(
          'convergence',
          `${n.id} applied ${r.appliedIndex}, leader ${leader.id} applied ${target}`,
        );
      }
      const d = dump(n.store);
      if (d !== reference)
        throw new Failure('convergence', `${n.id}'s store differs from the leader ${leader.id}'s`);
    }
  }
}

function dump(store: MemoryStore): string {
  const kvs = store.range({});
  return `${store.revision()}|${kvs.map((kv) => `${kv.key.toString()}=${kv.value.toString()}@${kv.createRevision}/${kv.modRevision}/${kv.version}`).join(',')}`;
}

function describe(p: PeerMessage): string {
  switch (p.kind) {
    case 'raft': {
      const m = p.message;
      switch (m.type) {
        case 'append':
          return `append t${m.term} prev=${m.prevLogIndex}/${m.prevLogTerm} n=${m.entries.length} commit=${m.commit}`;
        case 'appendResp':
          return `appendResp t${m.term} ${m.reject ? 'reject' : 'ok'} index=${m.index}${m.reject ? ` hint=${m.hintIndex}/${m.hintTerm}` : ''}`;
        case 'vote':
        case 'preVote':
          return `${m.type} t${m.term} last=${m.lastLogIndex}/${m.lastLogTerm}`;
        case 'voteResp':
        case 'preVoteResp':
          return `${m.type} t${m.term} ${m.reject ? 'reject' : 'grant'}`;
        case 'heartbeat':
          return `heartbeat t${m.term} commit=${m.commit}`;
        case 'snapshot':
          return `snapshot t${m.term} ${m.snapshot.index}/${m.snapshot.term}`;
        case 'readIndexResp':
          return `readIndexResp t${m.term} index=${m.index}`;
        default:
          return `${m.type} t${m.term}`;
      }
    }
    case 'snapshotChunk':
      return `snapshotChunk ${p.stream}#${p.seq} ${p.data.length}B${p.done ? ' done' : ''}`;
    case 'snapshotAck':
      return `snapshotAck ${p.stream}#${p.seq} ${p.ok ? 'ok' : 'refused'}`;
    case 'forward':
      return `forward #${p.id} ${p.request.op}`;
    case 'forwardReply':
      return `forwardReply #${p.id} ${p.error ? p.error.code : 'ok'}`;
  }
}
