/**
 * A tiny in-process cluster for the node's unit tests: real RaftNode, real MemoryStore, the
 * in-memory crashable log, over the simulator's virtual time and network (calm unless a test says
 * otherwise), so every test is deterministic and needs no real timers.
 */
import { MemoryStore } from '../../src/kv/memory-store.js';
import type { NodeSettings } from '../../src/node/group-replica.js';
import type { NodeHooks } from '../../src/node/hooks.js';
import type { GroupLogWrite, LogStorage } from '../../src/node/log-storage.js';
import { MemoryLogStorage } from '../../src/node/memory-log-storage.js';
import type { MemberAddress } from '../../src/node/membership.js';
import { RaftNode } from '../../src/node/raft-node.js';
import type { PeerMessage, PeerTransport } from '../../src/node/transport.js';
import type { NodeId } from '../../src/raft/types.js';
import { EventQueue } from '../sim/event-queue.js';
import { undurableClaim } from '../sim/persistence-check.js';
import { Prng } from '../sim/prng.js';
import { SimNetwork } from '../sim/sim-network.js';
import { VirtualClock } from '../sim/virtual-clock.js';

export interface TestNode {
  id: NodeId;
  storage: MemoryLogStorage;
  store: MemoryStore;
  node: RaftNode | null;
  clock: VirtualClock | null;
  incarnation: number;
  bootstrap: MemberAddress[];
  /** Raft messages sent that claim state not yet durable (./persistence-check.ts). */
  sentBeforeDurable: number;
  errors: Error[];
}

export interface TestClusterOptions {
  nodes?: number;
  seed?: number;
  settings?: Partial<NodeSettings>;
  hooks?: (id: NodeId) => NodeHooks;
  diskLatencyMs?: number;
}

export const TEST_SETTINGS: Partial<NodeSettings> = {
  tickMs: 10,
  electionTick: 10,
  heartbeatTick: 1,
  requestTimeoutMs: 1000,
};

export function address(id: NodeId): MemberAddress {
  return { id, peerAddress: `${id}:7000`, clientUrl: `http://${id}:8000`, promote: false };
}

export class TestCluster {
  readonly queue = new EventQueue();
  readonly network: SimNetwork;
  readonly nodes = new Map<NodeId, TestNode>();
  private readonly rng: Prng;
  private pendingStarts = 0;
  /** Per-node log sync latency set by setDiskLatency (others: options.diskLatencyMs, default 1). */
  private readonly diskLatencies = new Map<NodeId, number>();

  constructor(private readonly options: TestClusterOptions = {}) {
    this.rng = new Prng(options.seed ?? 1);
    this.network = new SimNetwork(this.queue, this.rng.fork('net'), false);
  }

  /** Creates and starts the founding members; resolves once every one is running. */
  async boot(): Promise<void> {
    const n = this.options.nodes ?? 3;
    const bootstrap = Array.from({ length: n }, (_, i) => address(`n${i + 1}`));
    for (const m of bootstrap) this.add(m.id, bootstrap);
    for (const t of this.nodes.values()) this.start(t);
    await this.runUntil(() => this.pendingStarts === 0, 1000);
  }

  add(id: NodeId, bootstrap: MemberAddress[]): TestNode {
    const t: TestNode = {
      id,
      storage: new MemoryLogStorage({ scheduleSync: (fn) => this.queue.after(this.diskLatency(id), fn) }),
      store: new MemoryStore(),
      node: null,
      clock: null,
      incarnation: 0,
      bootstrap,
      sentBeforeDurable: 0,
      errors: [],
    };
    this.nodes.set(id, t);
    return t;
  }

  start(t: TestNode, settings: Partial<NodeSettings> = {}): void {
    const incarnation = ++t.incarnation;
    const clock = new VirtualClock(this.queue, 0);
    t.clock = clock;
    this.pendingStarts++;
    const storage: LogStorage = {
      recover: () => t.storage.recover(),
      append: (writes: GroupLogWrite[], done) => {
        if (t.incarnation !== incarnation) return;
        t.storage.append(writes, done);
      },
      release: (g, i) => t.storage.release(g, i),
      close: async () => {},
    };
    const inner = this.network.transportFor(t.id);
    const transport: PeerTransport = {
      listen: (deliver) => inner.listen(deliver),
      setPeerAddress: (id, a) => inner.setPeerAddress(id, a),
      send: (to, messages: PeerMessage[]) => {
        for (const m of messages) {
          if (m.kind === 'raft' && undurableClaim(m.message, t.storage.durable(0)) !== null)
            t.sentBeforeDurable++;
        }
        inner.send(to, messages);
      },
    };
    RaftNode.open({
      id: t.id,
      groups: [{ group: 0, store: t.store, bootstrap: t.bootstrap }],
      transport,
      storage,
      clock,
      random: this.rng.fork(`${t.id}-${incarnation}`).asFunction(),
      settings: { ...TEST_SETTINGS, ...this.options.settings, ...settings },
      hooks: this.options.hooks?.(t.id) ?? {},
      onFatal: (e) => t.errors.push(e),
    }).then(
      (node) => {
        this.pendingStarts--;
        if (t.incarnation !== incarnation) return;
        t.node = node;
        node.start();
      },
      (e: unknown) => {
        this.pendingStarts--;
        t.errors.push(e instanceof Error ? e : new Error(String(e)));
      },
    );
  }

  /** Power loss: unsynced log writes and store state since its last sync are lost. */
  crash(id: NodeId): void {
    const t = this.get(id);
    t.node?.halt();
    t.clock?.kill();
    t.clock = null;
    this.network.detach(id);
    t.storage.crash(() => 0.5);
    t.store = t.store.durableCopy();
    t.node = null;
    t.incarnation++;
  }

  async restart(id: NodeId, settings: Partial<NodeSettings> = {}): Promise<void> {
    this.start(this.get(id), settings);
    await this.runUntil(() => this.pendingStarts === 0, 1000);
  }

  get(id: NodeId): TestNode {
    const t = this.nodes.get(id);
    if (t === undefined) throw new Error(`no node ${id}`);
    return t;
  }

  node(id: NodeId): RaftNode {
    const n = this.get(id).node;
    if (n === null) throw new Error(`${id} is not running`);
    return n;
  }

  /** From now on, `id`'s log appends take `ms` of virtual time to become durable. */
  setDiskLatency(id: NodeId, ms: number): void {
    this.diskLatencies.set(id, ms);
  }

  private diskLatency(id: NodeId): number {
    return this.diskLatencies.get(id) ?? this.options.diskLatencyMs ?? 1;
  }

  get now(): number {
    return this.queue.now;
  }

  /** The running leader with the highest term, if any. */
  leader(): RaftNode | null {
    let best: RaftNode | null = null;
    let bestTerm = -1;
    for (const t of this.nodes.values()) {
      const r = t.node?.replica(0);
      if (r === undefined || !r.isLeader) continue;
      const term = r.raft.status().term;
      if (term > bestTerm) {
        best = t.node;
        bestTerm = term;
      }
    }
    return best;
  }

  followers(): RaftNode[] {
    const l = this.leader();
    return [...this.nodes.values()].map((t) => t.node).filter((n): n is RaftNode => n !== null && n !== l);
  }

  async waitForLeader(maxMs = 3000): Promise<RaftNode> {
    await this.runUntil(
      () => this.leader() !== null && this.followers().every((f) => f.replica(0).currentLeader !== ''),
      maxMs,
    );
    return this.leader()!;
  }

  /** Runs virtual time forward by `ms`. */
  async run(ms: number): Promise<void> {
    let reached = false;
    this.queue.after(ms, () => {
      reached = true;
    });
    await this.runUntil(() => reached, ms + 1);
  }

  /** Runs events until `done` holds; throws after `maxMs` of virtual time. */
  async runUntil(done: () => boolean, maxMs: number): Promise<void> {
    const deadline = this.queue.now + maxMs;
    let steps = 0;
    while (!done()) {
      if (this.queue.now > deadline)
        throw new Error(`condition not reached within ${maxMs} ms of virtual time`);
      if (!this.queue.step()) {
        // Nothing scheduled: async work (a node starting, a store import) may still be settling.
        await new Promise<void>((resolve) => setImmediate(resolve));
        this.queue.runDeferred();
        if (this.queue.size === 0 && !done()) throw new Error('event queue ran dry');
        continue;
      }
      if (++steps % 16 === 0 || this.pendingStarts > 0 || this.anyAsync()) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        this.queue.runDeferred();
      }
      for (const t of this.nodes.values()) if (t.errors.length > 0) throw t.errors[0];
    }
  }

  /** Drives virtual time until `p` settles, and returns its outcome. */
  async settle<T>(p: Promise<T>, maxMs = 5000): Promise<T> {
    let state: { ok: true; value: T } | { ok: false; error: unknown } | null = null;
    p.then(
      (value) => {
        state = { ok: true, value };
      },
      (error: unknown) => {
        state = { ok: false, error };
      },
    );
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.runUntil(() => state !== null, maxMs);
    const s = state as unknown as { ok: true; value: T } | { ok: false; error: unknown };
    if (s.ok) return s.value;
    throw s.error;
  }

  stopAll(): void {
    for (const t of this.nodes.values()) t.node?.halt();
  }

  private anyAsync(): boolean {
    for (const t of this.nodes.values()) if (t.node !== null && t.node.pendingAsync > 0) return true;
    return false;
  }
}

export function put(key: string, value: string) {
  return {
    compare: [],
    success: [{ type: 'put' as const, key: Buffer.from(key), value: Buffer.from(value) }],
    failure: [],
  };
}
