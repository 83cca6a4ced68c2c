/**
 * Real AtlasDB clusters for tests: every node is a child process running the real CLI
 * (`node dist/src/cli/main.js start ...`) on free 127.0.0.1 ports with a temporary data directory.
 * Children are always killed by `destroy()` (call it in `after`), whatever state the test left.
 *
 * Waits poll with a deadline (`waitFor`); nothing relies on a fixed sleep. Each node's stdout and
 * stderr go to <tmp>/<id>.log; a failed wait quotes the tail of every node's log.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WireClusterStatus, WireHealth } from '../../src/api/http/wire.js';
import { type Reply, call as callPort } from '../api/http-fixtures.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Timing used by the cluster tests: slower than the defaults, so a loaded machine does not flap. */
export const TEST_TIMING = ['--heartbeat-interval-ms', '100', '--election-timeout-ms', '1000', '--request-timeout-ms', '8000'];

export type { Reply };

export interface CallOptions {
  body?: Buffer | string;
  headers?: Record<string, string | number>;
  timeoutMs?: number;
}

/** One HTTP request on a fresh connection (test/api's helper); rejects after timeoutMs without an answer. */
export function call(url: string, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const { timeoutMs = 15_000, ...rest } = options;
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    callPort(Number(new URL(url).port), method, path, rest),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${method} ${url}${path}: no answer within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Polls `probe` until it returns a value other than undefined/false, or throws after `deadlineMs`. */
export async function waitFor<T>(
  what: string,
  deadlineMs: number,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  diagnostics: () => string = () => '',
): Promise<T> {
  const deadline = performance.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastError = e;
    }
    if (performance.now() > deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${cause}\n${diagnostics()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The promise's value, or null when it has not settled within `ms`. */
async function withinDeadline<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<null>((r) => {
        timer = setTimeout(() => r(null), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ports this process handed out: the kernel may offer a just-closed port again at once. */
const handedOut = new Set<number>();

/** A free 127.0.0.1 port, never one handed out before in this process (a node's client and peer ports once came out equal). */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await probePort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

function probePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export type Health = WireHealth;
export type ClusterStatus = WireClusterStatus;

interface NodeProcess {
  id: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logFile: string;
  child: ChildProcess | null;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null;
  /** Arguments and environment of the last start, for restart(). */
  args: string[];
  env: Record<string, string>;
}

export interface StartOptions {
  /** Join the cluster through these members' client URLs instead of founding it. */
  join?: string[];
  extraArgs?: string[];
  /** ATLAS_* variables for this node (the caller's own are never passed on). */
  env?: Record<string, string>;
}

export class ProcessCluster {
  readonly root: string;
  private readonly nodes = new Map<string, NodeProcess>();
  private readonly founders: string[];
  private readonly commonArgs: string[];

  private constructor(root: string, founders: string[], commonArgs: string[]) {
    this.root = root;
    this.founders = founders;
    this.commonArgs = commonArgs;
  }

  /** Allocates ports and directories for `founders` (started with --initial-cluster) and `spares` (added later). */
  static async create(founders: string[], options: { spares?: string[]; args?: string[] } = {}): Promise<ProcessCluster> {
    const root = mkdtempSync(join(tmpdir(), 'atlas-cluster-'));
    const cluster = new ProcessCluster(root, founders, options.args ?? []);
    for (const id of [...founders, ...(options.spares ?? [])]) {
      cluster.nodes.set(id, {
        id,
        clientPort: await freePort(),
        peerPort: await freePort(),
        dataDir: join(root, id),
        logFile: join(root, `${id}.log`),
        child: null,
        exit: null,
        args: [],
        env: {},
      });
    }
    return cluster;
  }

  get ids(): string[] {
    return [...this.nodes.keys()];
  }

  url(id: string): string {
    return `http://127.0.0.1:${this.node(id).clientPort}`;
  }

  peerAddress(id: string): string {
    return `127.0.0.1:${this.node(id).peerPort}`;
  }

  dataDir(id: string): string {
    return this.node(id).dataDir;
  }

  isRunning(id: string): boolean {
    const n = this.node(id);
    return n.child !== null;
  }

  running(): string[] {
    return this.ids.filter((id) => this.isRunning(id));
  }

  logText(id: string): string {
    try {
      return readFileSync(this.node(id).logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** The last lines of every node's log, for failure messages. */
  diagnostics(lines = 12): string {
    return this.ids
      .map((id) => {
        const text = this.logText(id).trimEnd().split('\n').slice(-lines).map((l) => `    ${l.slice(0, 300)}`);
        return `  --- ${id} (${this.isRunning(id) ? `pid ${this.node(id).child?.pid}` : 'not running'})\n${text.join('\n')}`;
      })
      .join('\n');
  }

  /** Spawns `atlas start` for `id` (founder: --initial-cluster; otherwise options.join). */
  start(id: string, options: StartOptions = {}): void {
    const n = this.node(id);
    if (n.child !== null) throw new Error(`${id} is already running`);
    const membership =
      options.join !== undefined
        ? ['--join', options.join.join(',')]
        : ['--initial-cluster', this.founders.map((f) => `${f}=${this.peerAddress(f)}`).join(',')];
    n.args = [
      'start',
      '--id',
      id,
      '--data-dir',
      n.dataDir,
      '--listen-client',
      `127.0.0.1:${n.clientPort}`,
      '--listen-peer',
      `127.0.0.1:${n.peerPort}`,
      ...membership,
      '--wal-segment-size',
      '4MiB',
      ...TEST_TIMING,
      ...this.commonArgs,
      ...(options.extraArgs ?? []),
    ];
    n.env = options.env ?? {};
    this.spawn(n);
  }

  /** Starts `id` again with the arguments of its last start. */
  restart(id: string): void {
    const n = this.node(id);
    if (n.child !== null) throw new Error(`${id} is still running`);
    if (n.args.length === 0) throw new Error(`${id} was never started`);
    this.spawn(n);
  }

  private spawn(n: NodeProcess): void {
    const fd = openSync(n.logFile, 'a');
    // The nodes' settings are the test's alone: ATLAS_* variables of the caller's shell do not leak in.
    const inherited = Object.entries(process.env).filter(([k]) => !k.startsWith('ATLAS_'));
    const env = { ...Object.fromEntries(inherited), ...n.env };
    const child = spawn(process.execPath, [CLI, ...n.args], { stdio: ['ignore', fd, fd], env });
    closeSync(fd);
    n.child = child;
    n.exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (n.child === child) n.child = null;
        resolve({ code, signal });
      });
    });
  }

  /** Resolves when the current process of `id` exits by itself (fails after `deadlineMs`). */
  async exited(id: string, deadlineMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const exit = this.node(id).exit;
    if (exit === null) throw new Error(`${id} was never started`);
    const result = await withinDeadline(exit, deadlineMs);
    if (result === null) throw new Error(`${id} did not exit within ${deadlineMs} ms\n${this.diagnostics()}`);
    return result;
  }

  /** kill -9 (or another signal) and wait for the process to be gone. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const n = this.node(id);
    const child = n.child;
    if (child === null || n.exit === null) throw new Error(`${id} is not running`);
    child.kill(signal);
    return n.exit;
  }

  /** Graceful stop (SIGTERM); resolves with the exit code; fails if it takes longer than `deadlineMs`. */
  async stop(id: string, deadlineMs = 30_000): Promise<number | null> {
    const n = this.node(id);
    const exit = n.exit;
    if (n.child === null || exit === null) throw new Error(`${id} is not running`);
    n.child.kill('SIGTERM');
    const result = await withinDeadline(exit, deadlineMs);
    if (result === null) {
      await this.kill(id);
      throw new Error(`${id} did not stop within ${deadlineMs} ms after SIGTERM\n${this.diagnostics()}`);
    }
    return result.code;
  }

  async health(id: string): Promise<Health | null> {
    try {
      const r = await call(this.url(id), 'GET', '/health', { timeoutMs: 3000 });
      return r.status === 200 ? r.json<Health>() : null;
    } catch {
      return null;
    }
  }

  async status(id: string): Promise<ClusterStatus> {
    const r = await call(this.url(id), 'GET', '/cluster/status', { timeoutMs: 5000 });
    if (r.status !== 200) throw new Error(`${id}: /cluster/status answered ${r.status} ${r.text()}`);
    return r.json<ClusterStatus>();
  }

  /** Waits until `id` answers /health; fails at once if its process exits. */
  async waitServing(id: string, deadlineMs = 30_000): Promise<void> {
    const outcome = await waitFor(`${id} to serve /health`, deadlineMs, async () => {
      if (!this.isRunning(id)) return 'exited';
      return (await this.health(id)) !== null ? 'serving' : undefined;
    }, () => this.diagnostics());
    if (outcome === 'exited') throw new Error(`${id} exited before it served\n${this.diagnostics()}`);
  }

  /**
   * Waits until one running node (of `among`) is leader and every other one of them follows it in
   * the same term; returns its id.
   */
  async waitForLeader(among: string[] = this.running(), deadlineMs = 30_000): Promise<string> {
    return waitFor(`a leader among ${among.join(', ')}`, deadlineMs, async () => {
      const hs = await Promise.all(among.map((id) => this.health(id)));
      const leader = hs.find((h) => h?.role === 'leader');
      if (leader === undefined || leader === null) return undefined;
      const { id, term } = leader;
      const agreed = hs.every((h) => h !== null && h.leader === id && h.term === term);
      return agreed ? id : undefined;
    }, () => this.diagnostics());
  }

  /** Kills every child (SIGKILL) and removes the temporary directory (kept when KEEP_ATLAS_TEST_DATA is set). */
  async destroy(): Promise<void> {
    const exits: Promise<unknown>[] = [];
    for (const n of this.nodes.values()) {
      if (n.child !== null && n.exit !== null) {
        n.child.kill('SIGKILL');
        exits.push(n.exit);
      }
    }
    await Promise.all(exits);
    if (process.env['KEEP_ATLAS_TEST_DATA']) {
      process.stderr.write(`cluster data and logs kept in ${this.root}\n`);
      return;
    }
    rmSync(this.root, { recursive: true, force: true });
  }

  private node(id: string): NodeProcess {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id} in this cluster`);
    return n;
  }
}

/** PUT a UTF-8 value; resolves with the status (200 = acknowledged). */
export async function put(url: string, key: string, value: string, timeoutMs = 15_000): Promise<Reply> {
  return call(url, 'PUT', `/kv/${encodeURIComponent(key)}`, { body: value, timeoutMs });
}

/** GET a key's value (null for 404); throws on any other status. */
export async function get(url: string, key: string, consistency: 'linearizable' | 'serializable'): Promise<string | null> {
  const r = await call(url, 'GET', `/kv/${encodeURIComponent(key)}?consistency=${consistency}`, { timeoutMs: 15_000 });
  if (r.status === 404 && r.code() === 'key_not_found') return null;
  if (r.status !== 200) throw new Error(`GET ${key} from ${url}: ${r.status} ${r.text()}`);
  return r.text();
}

/** Every key and value (UTF-8) as of a read at `consistency`. */
export async function dump(url: string, consistency: 'linearizable' | 'serializable'): Promise<Map<string, string>> {
  const r = await call(url, 'GET', `/kv?limit=10000&consistency=${consistency}`, { timeoutMs: 15_000 });
  if (r.status !== 200) throw new Error(`range on ${url}: ${r.status} ${r.text()}`);
  return new Map(r.json<Array<{ key: string; value: string }>>().map((kv) => [kv.key, kv.value]));
}

/** The value of one sample of a metric in Prometheus text (null when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (!ok) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) return value;
  }
  return null;
}
