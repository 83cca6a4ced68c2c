/**
 * A cluster of real `atlas start` processes (test/cluster/process-cluster.ts) whose peer links all
 * run through fault-injecting proxies (peer-proxy.ts): every node listens for peers on its own
 * port but advertises its proxy's address (--advertise-peer, and the initial-cluster entries), so
 * the harness decides which bytes pass between which nodes.
 *
 * Tracks what the nemesis did to each process (killed, paused), so that heal() can undo all of it.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessCluster } from '../cluster/process-cluster.js';
import { LinkFilter, PeerProxy } from './peer-proxy.js';
import { NodeHttp } from './node-http.js';

export interface FaultClusterOptions {
  nodes: number;
  /** Fresh node ids available to the membership nemesis. */
  spares: number;
  /** TEST-ONLY planted bug(s) for every node (ATLAS_TEST_PLANTED_BUG). */
  plantedBug?: string;
  /** Extra `atlas start` flags for every node. */
  args?: string[];
}

export interface HealthView {
  id: string;
  role: string;
  term: number;
  leader: string;
}

/** Limit on spare ids, so that a typo in --time cannot allocate thousands of ports. */
const MAX_SPARES = 500;

export class FaultCluster {
  readonly filter = new LinkFilter();
  /** The nodes that are (meant to be) members now, in start order. */
  readonly members: string[];
  private readonly proxies = new Map<string, PeerProxy>();
  private readonly clients = new Map<string, NodeHttp>();
  private readonly killed = new Set<string>();
  private readonly paused = new Set<string>();
  private readonly spareIds: string[];
  private readonly env: Record<string, string>;

  private constructor(
    readonly processes: ProcessCluster,
    founders: string[],
    spares: string[],
    plantedBug: string | undefined,
  ) {
    this.members = [...founders];
    this.spareIds = [...spares];
    this.env = plantedBug ? { ATLAS_TEST_PLANTED_BUG: plantedBug } : {};
  }

  static async create(options: FaultClusterOptions): Promise<FaultCluster> {
    if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 9) throw new Error(`nodes must be 1..9, got ${options.nodes}`);
    if (!Number.isInteger(options.spares) || options.spares < 0 || options.spares > MAX_SPARES)
      throw new Error(`spares must be 0..${MAX_SPARES}, got ${options.spares}`);
    const founders = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    const spares = Array.from({ length: options.spares }, (_, i) => `n${options.nodes + i + 1}`);
    const processes = await ProcessCluster.create(founders, { spares, args: options.args ?? [] });
    const cluster = new FaultCluster(processes, founders, spares, options.plantedBug);
    for (const id of processes.ids) {
      const realPort = Number(processes.peerAddress(id).split(':')[1]);
      const proxy = new PeerProxy(id, realPort, cluster.filter);
      await proxy.listen();
      cluster.proxies.set(id, proxy);
    }
    return cluster;
  }

  get root(): string {
    return this.processes.root;
  }

  /** The address every other node dials to reach `id` (its proxy). */
  proxiedPeer(id: string): string {
    return this.proxy(id).address;
  }

  url(id: string): string {
    return this.processes.url(id);
  }

  /** A keep-alive HTTP client for `id` (one per node). */
  http(id: string): NodeHttp {
    let c = this.clients.get(id);
    if (c === undefined) {
      c = new NodeHttp(this.url(id));
      this.clients.set(id, c);
    }
    return c;
  }

  /** Starts every founder and waits until they serve and agree on a leader. */
  async startAll(deadlineMs = 60_000): Promise<void> {
    const initial = this.members.map((id) => `${id}=${this.proxiedPeer(id)}`).join(',');
    for (const id of this.members) {
      // Later flags win: the initial-cluster and advertised peer address are the proxies'.
      this.processes.start(id, { env: this.env, extraArgs: ['--initial-cluster', initial, '--advertise-peer', this.proxiedPeer(id)] });
    }
    for (const id of this.members) await this.processes.waitServing(id, deadlineMs);
    await this.processes.waitForLeader(this.members, deadlineMs);
  }

  isUp(id: string): boolean {
    return this.processes.isRunning(id) && !this.paused.has(id);
  }

  isKilled(id: string): boolean {
    return this.killed.has(id);
  }

  isPaused(id: string): boolean {
    return this.paused.has(id);
  }

  /** Members whose process runs and is not paused. */
  upMembers(): string[] {
    return this.members.filter((id) => this.isUp(id));
  }

  async kill(id: string): Promise<void> {
    if (!this.processes.isRunning(id)) return;
    // A stopped process still dies on SIGKILL.
    await this.processes.kill(id, 'SIGKILL');
    this.paused.delete(id);
    this.killed.add(id);
  }

  restart(id: string): void {
    if (!this.killed.has(id)) return;
    this.processes.restart(id);
    this.killed.delete(id);
  }

  pause(id: string): void {
    if (!this.processes.isRunning(id) || this.paused.has(id)) return;
    // ProcessCluster.kill resolves on exit; a stop signal never exits, so the promise is not awaited.
    void this.processes.kill(id, 'SIGSTOP');
    this.paused.add(id);
  }

  resume(id: string): void {
    if (!this.paused.has(id)) return;
    if (this.processes.isRunning(id)) void this.processes.kill(id, 'SIGCONT');
    this.paused.delete(id);
  }

  /** /health of one node, or null (down, paused, slow). */
  async health(id: string, timeoutMs = 1500): Promise<HealthView | null> {
    if (!this.isUp(id)) return null;
    const o = await this.http(id).send('GET', '/health', timeoutMs);
    if (o.kind !== 'reply' || o.status !== 200) return null;
    try {
      return JSON.parse(o.body.toString('utf8')) as HealthView;
    } catch {
      return null;
    }
  }

  /** The leader of the highest term any reachable member reports as itself leader, or null. */
  async leader(): Promise<string | null> {
    const hs = await Promise.all(this.upMembers().map((id) => this.health(id)));
    let best: HealthView | null = null;
    for (const h of hs) if (h !== null && h.role === 'leader' && (best === null || h.term > best.term)) best = h;
    return best?.id ?? null;
  }

  /** Restarts killed members, resumes paused ones, heals every link. */
  heal(): void {
    this.filter.healAll();
    for (const id of [...this.paused]) this.resume(id);
    for (const id of [...this.killed]) if (this.members.includes(id)) this.restart(id);
  }

  hasSpare(): boolean {
    return this.spareIds.length > 0;
  }

  /** Starts the next spare with --join through the current members; returns its id. */
  startSpare(): string {
    const id = this.spareIds.shift();
    if (id === undefined) throw new Error('no spare node ids left');
    const via = this.upMembers().map((m) => this.url(m));
    this.processes.start(id, { join: via, env: this.env, extraArgs: ['--advertise-peer', this.proxiedPeer(id)] });
    this.members.push(id);
    return id;
  }

  /** Forgets `id` as a member (after its removal committed) and stops its process for good. */
  async retire(id: string): Promise<void> {
    const i = this.members.indexOf(id);
    if (i >= 0) this.members.splice(i, 1);
    this.paused.delete(id);
    this.killed.delete(id);
    if (this.processes.isRunning(id)) await this.processes.kill(id, 'SIGKILL');
  }

  /** Copies every node's log into `dir`. */
  copyLogs(dir: string): void {
    for (const id of this.processes.ids) {
      const log = join(this.root, `${id}.log`);
      if (existsSync(log)) copyFileSync(log, join(dir, `${id}.log`));
    }
  }

  async destroy(): Promise<void> {
    for (const id of [...this.paused]) this.resume(id);
    for (const c of this.clients.values()) c.close();
    await this.processes.destroy();
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
  }

  private proxy(id: string): PeerProxy {
    const p = this.proxies.get(id);
    if (p === undefined) throw new Error(`no proxy for ${id}`);
    return p;
  }
}
