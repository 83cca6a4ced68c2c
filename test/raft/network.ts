/**
 * A small in-memory network of RaftGroups for protocol tests (in the manner of etcd's raft test
 * network): each node has a durable "disk" written from its Ready batches, a state machine that
 * records applied entries, and the network delivers messages FIFO with drop, one-way cut and
 * partition controls. Everything is synchronous and deterministic (seeded generators).
 */
import assert from 'node:assert/strict';
import { decodeConfChange } from '../../src/raft/conf-change.js';
import { RaftGroup } from '../../src/raft/raft-group.js';
import type {
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  PlantedBug,
  RaftConfig,
  ReadState,
  Ready,
  SnapshotMeta,
} from '../../src/raft/types.js';

/** mulberry32: a tiny seeded PRNG in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface NodeOptions {
  electionTick?: number;
  heartbeatTick?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  leaseRead?: boolean;
  leaseDriftTicks?: number;
  maxInflightMsgs?: number;
  maxMsgBytes?: number;
  maxProposalQueue?: number;
  bugs?: PlantedBug[];
}

/** A RaftConfig for tests: small timeouts by default, CheckQuorum and PreVote off unless asked. */
export function testConfig(
  id: NodeId,
  o: NodeOptions,
  seed: number,
  snapshotProvider: () => SnapshotMeta,
): RaftConfig {
  return {
    id,
    group: 1,
    electionTick: o.electionTick ?? 10,
    heartbeatTick: o.heartbeatTick ?? 1,
    random: seededRandom(seed),
    maxInflightMsgs: o.maxInflightMsgs ?? 256,
    maxMsgBytes: o.maxMsgBytes ?? 1024 * 1024,
    checkQuorum: o.checkQuorum ?? false,
    preVote: o.preVote ?? false,
    leaseRead: o.leaseRead ?? false,
    leaseDriftTicks: o.leaseDriftTicks,
    maxProposalQueue: o.maxProposalQueue,
    snapshotProvider,
    bugs: new Set(o.bugs ?? []),
  };
}

/** What a node has made durable: the WAL's view. */
export interface Disk {
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  entries: Entry[];
}

export interface AppliedEntry {
  index: number;
  term: number;
  data: string;
  conf?: true;
}

export class TestNode {
  raft!: RaftGroup;
  disk: Disk = { hardState: { term: 0, vote: '', commit: 0 }, snapshot: null, entries: [] };
  /** The state machine: every applied entry (snapshot installs replace the prefix). */
  applied: AppliedEntry[] = [];
  appliedIndex = 0;
  conf: ConfState;
  readStates: ReadState[] = [];
  /** Snapshot data staged by the (simulated) driver for a snapshot message being delivered. */
  staged: AppliedEntry[] | null = null;
  readonly options: NodeOptions;

  constructor(
    readonly id: NodeId,
    conf: ConfState,
    options: NodeOptions,
    private readonly seed: number,
  ) {
    this.conf = conf;
    this.options = options;
    this.boot();
  }

  config(): RaftConfig {
    return testConfig(this.id, this.options, this.seed, () => this.snapshotMeta());
  }

  /** (Re)start from the disk and the state machine, as a driver does after a crash. */
  boot(): void {
    this.raft = new RaftGroup(this.config(), {
      hardState: { ...this.disk.hardState },
      snapshot: this.disk.snapshot,
      entries: this.disk.entries.slice(),
      conf: structuredClone(this.conf),
      applied: this.appliedIndex,
    });
  }

  snapshotMeta(): SnapshotMeta {
    const term = this.raft.term(this.appliedIndex);
    assert.ok(term !== undefined, `${this.id}: no term for applied index ${this.appliedIndex}`);
    return { index: this.appliedIndex, term, conf: structuredClone(this.conf) };
  }

  /** Persist a Ready the way the driver must: snapshot, entries, hard state; then apply. */
  handleReady(rd: Ready): void {
    if (rd.snapshot !== undefined) {
      const meta = rd.snapshot;
      assert.ok(this.staged !== null, `${this.id}: snapshot accepted without staged data`);
      this.disk.snapshot = meta;
      this.disk.entries = [];
      this.applied = this.staged;
      this.appliedIndex = meta.index;
      this.conf = structuredClone(meta.conf);
      this.staged = null;
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      this.disk.entries = this.disk.entries.filter((e) => e.index < first).concat(rd.entries);
    }
    if (rd.hardState !== undefined) this.disk.hardState = { ...rd.hardState };
    for (const e of rd.committedEntries) {
      assert.equal(e.index, this.appliedIndex + 1, `${this.id}: applied out of order`);
      if (e.type === 'confChange') this.conf = this.raft.applyConfChange(decodeConfChange(e.data));
      const applied: AppliedEntry = { index: e.index, term: e.term, data: e.data.toString('hex') };
      if (e.type === 'confChange') applied.conf = true;
      else applied.data = e.data.toString();
      this.applied.push(applied);
      this.appliedIndex = e.index;
    }
    this.readStates.push(...rd.readStates);
  }

  /** The application snapshots its state at the applied index; raft keeps `keepTail` entries. */
  compact(keepTail: number, keepTailBytes?: number): void {
    const meta = this.snapshotMeta();
    this.raft.compact(meta.index, keepTail, keepTailBytes);
    this.disk.snapshot = meta;
    const first = this.raft.status().firstIndex;
    this.disk.entries = this.disk.entries.filter((e) => e.index >= first);
  }

  /** Data of applied non-empty normal entries (not no-ops, not conf changes), in order. */
  appliedData(): string[] {
    return this.applied.filter((e) => e.conf === undefined && e.data !== '').map((e) => e.data);
  }
}

export type Filter = (m: Message) => boolean;

export interface Chaos {
  random: () => number;
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a delivered message is delivered twice. */
  duplicate: number;
}

export class TestNetwork {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Every message handed out in a Ready, in order (for assertions about what was sent). */
  readonly sent: Message[] = [];
  private queue: Message[] = [];
  private readonly cut = new Set<string>();
  private readonly down = new Set<NodeId>();
  /** Return true to drop a message. */
  filter: Filter | null = null;
  /** Random loss, duplication and reordering of every delivery batch (seeded). */
  chaos: Chaos | null = null;
  /** Rewrite a message in flight (e.g. strip entries), applied after the filters. */
  rewrite: ((m: Message) => Message) | null = null;

  constructor(ids: NodeId[], options: NodeOptions = {}, learners: NodeId[] = [], seedBase = 1) {
    const conf: ConfState = { voters: ids, learners, votersOutgoing: [], learnersNext: [], autoLeave: false };
    let seed = seedBase;
    for (const id of [...ids, ...learners]) {
      this.nodes.set(id, new TestNode(id, structuredClone(conf), options, seed++));
    }
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    assert.ok(n !== undefined, `no node ${id}`);
    return n;
  }

  raft(id: NodeId): RaftGroup {
    return this.node(id).raft;
  }

  /** Add a node that starts empty (to be added to the configuration, then caught up). */
  addNode(id: NodeId, options: NodeOptions = {}): TestNode {
    const n = new TestNode(
      id,
      { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      options,
      100 + this.nodes.size,
    );
    this.nodes.set(id, n);
    return n;
  }

  /** Cut the links between the given groups (a symmetric partition). */
  partition(...groups: NodeId[][]): void {
    for (const a of groups) {
      for (const b of groups) {
        if (a === b) continue;
        for (const x of a) for (const y of b) this.cut.add(`${x}->${y}`);
      }
    }
  }

  isolate(id: NodeId): void {
    const others = [...this.nodes.keys()].filter((x) => x !== id);
    this.partition([id], others);
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}->${to}`);
  }

  heal(): void {
    this.cut.clear();
    this.filter = null;
    this.rewrite = null;
  }

  /** Crash a node: it stops; its un-handed-out state is lost, its disk and state machine stay. */
  crash(id: NodeId): void {
    this.down.add(id);
  }

  isDown(id: NodeId): boolean {
    return this.down.has(id);
  }

  restart(id: NodeId): void {
    this.down.delete(id);
    const n = this.node(id);
    n.readStates = [];
    n.boot();
  }

  private dropped(m: Message): boolean {
    return this.down.has(m.to) || this.cut.has(`${m.from}->${m.to}`) || (this.filter?.(m) ?? false);
  }

  /** Drain one node's Ready (if any) and queue its messages. Returns whether there was one. */
  processReady(id: NodeId): boolean {
    const n = this.node(id);
    if (this.down.has(id) || !n.raft.hasReady()) return false;
    const rd = n.raft.ready();
    n.handleReady(rd);
    for (const m of rd.messages) {
      this.sent.push(m);
      this.queue.push(m);
    }
    n.raft.advance(rd);
    return true;
  }

  /** Deliver one queued message (or drop it). Snapshot messages simulate the drivers' streaming. */
  private deliver(m: Message): void {
    const from = this.nodes.get(m.from);
    const to = this.nodes.get(m.to);
    const lost = to === undefined || this.dropped(m);
    if (m.type === 'snapshot') {
      if (lost) {
        from?.raft.reportSnapshot(m.to, false);
        return;
      }
      // The leader's driver exports its state machine at the snapshot's index; the follower stages it.
      assert.ok(from !== undefined);
      to.staged = from.applied.filter((e) => e.index <= m.snapshot.index).map((e) => ({ ...e }));
      to.raft.step(m);
      if (!to.raft.hasReady()) to.staged = null;
      else this.processReady(m.to);
      from.raft.reportSnapshot(m.to, true);
      return;
    }
    if (lost) return;
    to.raft.step(this.rewrite === null ? m : this.rewrite(m));
  }

  private disorder(batch: Message[], c: Chaos): Message[] {
    const out: Message[] = [];
    for (const m of batch) {
      if (c.random() < c.drop) {
        // A lost snapshot stream is reported by the sending driver, as the contract requires.
        if (m.type === 'snapshot') this.nodes.get(m.from)?.raft.reportSnapshot(m.to, false);
        continue;
      }
      out.push(m);
      if (c.random() < c.duplicate) out.push(m);
    }
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(c.random() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** Run Ready processing and deliveries until nothing moves. */
  stabilize(maxSteps = 100_000): void {
    for (let steps = 0; steps < maxSteps; steps++) {
      let moved = false;
      for (const id of this.nodes.keys()) moved = this.processReady(id) || moved;
      if (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        for (const m of this.chaos === null ? batch : this.disorder(batch, this.chaos)) this.deliver(m);
        moved = true;
      }
      if (!moved) return;
    }
    assert.fail('network did not stabilize');
  }

  /** Messages handed out but not yet delivered; delivery is left to the caller. */
  takeQueued(): Message[] {
    for (const id of this.nodes.keys()) this.processReady(id);
    const q = this.queue;
    this.queue = [];
    return q;
  }

  deliverAll(ms: Message[]): void {
    for (const m of ms) this.deliver(m);
  }

  tick(ids: NodeId[] | NodeId, n = 1): void {
    const list = Array.isArray(ids) ? ids : [ids];
    for (let i = 0; i < n; i++) {
      for (const id of list) if (!this.down.has(id)) this.raft(id).tick();
      this.stabilize();
    }
  }

  tickAll(n = 1): void {
    this.tick([...this.nodes.keys()], n);
  }

  /** Force an election on `id` and let it run to completion. */
  elect(id: NodeId): void {
    this.raft(id).campaign();
    this.stabilize();
    assert.equal(this.raft(id).status().role, 'leader', `${id} did not become leader`);
  }

  propose(id: NodeId, data: string): { index: number; term: number } {
    const r = this.raft(id).propose(Buffer.from(data));
    this.stabilize();
    return r;
  }

  leaders(): NodeId[] {
    return [...this.nodes.keys()].filter(
      (id) => !this.down.has(id) && this.raft(id).status().role === 'leader',
    );
  }
}

/** Build an entry for preloaded logs. */
export function entry(index: number, term: number, data = ''): Entry {
  return { index, term, type: 'normal', data: Buffer.from(data) };
}

/** Preload a node's disk with a log and a term, then reboot it (etcd tests' preloaded storage). */
export function preload(n: TestNode, terms: number[], term: number, vote: NodeId | '' = ''): void {
  n.disk.entries = terms.map((t, i) => entry(i + 1, t, `e${i + 1}`));
  n.disk.hardState = { term, vote, commit: 0 };
  n.boot();
}
