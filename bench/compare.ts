/**
 * `npm run bench:compare`: AtlasDB against etcd on this machine, in one run. Starts a fresh 3-node
 * etcd (default settings: fsync on every commit) and a fresh 3-node AtlasDB (`atlas start`,
 * wal-sync always), data of both under one temporary directory on the same disk, and runs each
 * cell of the matrix against etcd and then AtlasDB (--sequential: the whole matrix on etcd, stop
 * it, then on AtlasDB). The load generator is `atlas bench`'s
 * (src/bench/), driving etcd through its v3 HTTP/JSON gateway, and its own ceiling is measured
 * first against a trivial HTTP server.
 *
 *   node dist/bench/compare.js [--duration S] [--warmup S] [--prewarm S] [--connections 1,16,64]
 *     [--workloads write,read-lin,read-ser,mixed] [--placements leader,all] [--systems etcd,atlas]
 *     [--repeat N] [--cpu-prof DIR] [--sequential] [--no-docs] [--json]
 *
 * --prewarm S (default 30; 0 for none): after the prefill, each system first serves S/2 seconds of
 * writes and S/2 of the 90/10 mix at 64 connections spread over its members, unmeasured. A Node.js process compiles
 * its hot paths in its first tens of seconds (docs/benchmarks.md, "JIT warm-up": consecutive 5 s
 * runs on a fresh cluster climb from 3,300 to 4,500-6,000 writes/s); etcd, compiled ahead of time,
 * has nothing to warm, and gets the same treatment. --prewarm 0 measures a cold start.
 *
 * --repeat N runs every cell N times on each system (interleaved: the systems alternate, and so
 * does which of them goes first); a cell shows each system's median run and the median of the
 * paired ratios with their range (bench/repeated-runs.ts). One run per cell is the default.
 *
 * Prints a table with both systems and the ratio AtlasDB/etcd per cell and appends it, with the
 * date, commit and machine, to the "Cluster throughput vs etcd" section of docs/benchmarks.md.
 * Installs nothing: without an `etcd` binary it names the package and stops (exit 3).
 * --cpu-prof starts each AtlasDB node with `node --cpu-prof` (profiles written at shutdown).
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import {
  type Member,
  atlasLeader,
  commitLine,
  freePort,
  freePorts,
  machineLine,
  pollLeader as pollLeaderUntil,
  postJson,
  say,
  spawnAtlasCluster,
  spawnLogged,
  stopMembers,
} from './bench-processes.js';
import {
  type BenchOptions,
  type BenchTarget,
  parseWorkload,
  type ReadConsistency,
} from '../src/bench/bench-options.js';
import { BenchRequestFactory, sendWireRequest } from '../src/bench/bench-target.js';
import { type BenchResult, runBench } from '../src/bench/load-generator.js';
import { medianRun, pairedRatio, systemsInRepetition } from './repeated-runs.js';

const CLUSTER_SIZE = 3;
const KEYS = 10_000;
const VALUE_SIZE = 100;
const READY_DEADLINE_MS = 60_000;
const STOP_DEADLINE_MS = 20_000;
const SECTION_TITLE = '## Cluster throughput vs etcd';
const RUNS_END_MARKER = '<!-- bench:compare runs end -->';
const MISSING_ETCD_EXIT = 3;
const MAX_REPEAT = 20;

interface WorkloadSpec {
  /** Row label. */
  label: string;
  workload: string;
  consistency: ReadConsistency;
}

const WORKLOADS: Record<string, WorkloadSpec> = {
  write: { label: 'write', workload: 'write', consistency: 'linearizable' },
  'read-lin': { label: 'read linearizable', workload: 'read', consistency: 'linearizable' },
  'read-ser': { label: 'read serializable', workload: 'read', consistency: 'serializable' },
  mixed: { label: 'mixed 90% lin. reads', workload: 'mixed:90', consistency: 'linearizable' },
};

type Placement = 'leader' | 'all';

interface Args {
  durationS: number;
  warmupS: number;
  prewarmS: number;
  repeat: number;
  connections: number[];
  workloads: string[];
  placements: Placement[];
  systems: BenchTarget[];
  cpuProfDir: string | undefined;
  docs: boolean;
  json: boolean;
  sequential: boolean;
}

const USAGE =
  'usage: compare.js [--duration S] [--warmup S] [--prewarm S] [--connections 1,16,64] [--workloads write,read-lin,read-ser,mixed] [--placements leader,all] [--systems etcd,atlas] [--repeat N] [--cpu-prof DIR] [--sequential] [--no-docs] [--json]';

function listOf<T extends string>(flag: string, text: string, allowed: readonly string[]): T[] {
  const items = text.split(',').filter((s) => s.length > 0);
  for (const item of items) {
    if (!allowed.includes(item))
      throw new Error(`${flag}: ${JSON.stringify(item)} is not one of ${allowed.join(', ')}\n${USAGE}`);
  }
  if (items.length === 0) throw new Error(`${flag} needs at least one value\n${USAGE}`);
  return items as T[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    durationS: 5,
    warmupS: 1,
    prewarmS: 30,
    repeat: 1,
    connections: [1, 16, 64],
    workloads: Object.keys(WORKLOADS),
    placements: ['leader', 'all'],
    systems: ['etcd', 'atlas'],
    cpuProfDir: undefined,
    docs: true,
    json: false,
    sequential: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    const seconds = (v: string): number => {
      const n = Number(v);
      if (!(Number.isFinite(n) && n >= 0 && n <= 3600))
        throw new Error(`${arg} must be 0-3600 seconds, got ${v}`);
      return n;
    };
    if (arg === '--duration') {
      args.durationS = seconds(next());
      if (args.durationS === 0) throw new Error('--duration must be above 0');
    } else if (arg === '--warmup') args.warmupS = seconds(next());
    else if (arg === '--prewarm') args.prewarmS = seconds(next());
    else if (arg === '--repeat') {
      const v = next();
      const n = Number(v);
      if (!(/^[0-9]+$/.test(v) && n >= 1 && n <= MAX_REPEAT))
        throw new Error(`--repeat must be an integer 1-${MAX_REPEAT}, got ${v}`);
      args.repeat = n;
    } else if (arg === '--connections') {
      args.connections = next()
        .split(',')
        .map((s) => {
          const n = Number(s);
          if (!(Number.isInteger(n) && n >= 1 && n <= 4096))
            throw new Error(`--connections: ${s} is not 1-4096`);
          return n;
        });
    } else if (arg === '--workloads') args.workloads = listOf('--workloads', next(), Object.keys(WORKLOADS));
    else if (arg === '--placements')
      args.placements = listOf<Placement>('--placements', next(), ['leader', 'all']);
    else if (arg === '--systems') args.systems = listOf<BenchTarget>('--systems', next(), ['etcd', 'atlas']);
    else if (arg === '--cpu-prof') args.cpuProfDir = resolve(next());
    else if (arg === '--no-docs') args.docs = false;
    else if (arg === '--json') args.json = true;
    else if (arg === '--sequential') args.sequential = true;
    else throw new Error(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  }
  return args;
}

/** The `etcd` binary on PATH, or null. */
function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return null;
}

interface RunningCluster {
  system: BenchTarget;
  members: Member[];
  leaderUrl: string;
}

function pollLeader(members: Member[], isLeader: (m: Member) => Promise<boolean>): Promise<string> {
  return pollLeaderUntil(members, isLeader, READY_DEADLINE_MS);
}

async function startEtcd(etcd: string, root: string): Promise<RunningCluster> {
  const ports = await freePorts(2 * CLUSTER_SIZE);
  const names = Array.from({ length: CLUSTER_SIZE }, (_, i) => `e${i + 1}`);
  const peerUrl = (i: number): string => `http://127.0.0.1:${ports[CLUSTER_SIZE + i]}`;
  const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const token = `bench-${process.pid}-${Date.now()}`;
  const members = names.map((name, i): Member => {
    const clientUrl = `http://127.0.0.1:${ports[i]}`;
    const logFile = join(root, `${name}.log`);
    const child = spawnLogged(
      etcd,
      [
        '--name',
        name,
        '--data-dir',
        join(root, name),
        '--listen-client-urls',
        clientUrl,
        '--advertise-client-urls',
        clientUrl,
        '--listen-peer-urls',
        peerUrl(i),
        '--initial-advertise-peer-urls',
        peerUrl(i),
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        token,
        '--logger',
        'zap',
        '--log-level',
        'warn',
      ],
      logFile,
    );
    return { name, clientUrl, child, logFile };
  });
  const leaderUrl = await pollLeader(members, async (m) => {
    const s = (await postJson(`${m.clientUrl}/v3/maintenance/status`, '{}')) as {
      header?: { member_id?: string };
      leader?: string;
    };
    return s.leader !== undefined && s.leader !== '0' && s.header?.member_id === s.leader;
  });
  return { system: 'etcd', members, leaderUrl };
}

async function startAtlas(root: string, cpuProfDir: string | undefined): Promise<RunningCluster> {
  const { members } = await spawnAtlasCluster(root, CLUSTER_SIZE, { cpuProfDir });
  const leaderUrl = await atlasLeader(members, READY_DEADLINE_MS);
  return { system: 'atlas', members, leaderUrl };
}

async function stopCluster(cluster: RunningCluster): Promise<void> {
  await stopMembers(cluster.members, STOP_DEADLINE_MS);
}

/** Writes every key once (64 requests in flight) so reads find data on both systems. */
async function prefill(target: BenchTarget, url: string): Promise<void> {
  const factory = new BenchRequestFactory(target, KEYS, VALUE_SIZE, 'linearizable');
  const pool = new Pool(url, { connections: 64, pipelining: 1 });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < KEYS) {
      const req = factory.write(next++);
      const status = await sendWireRequest(pool, req);
      if (status !== 200) throw new Error(`prefill ${req.path}: HTTP ${status}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: 64 }, worker));
  } finally {
    await pool.close();
  }
}

interface Cell {
  workload: string;
  connections: number;
  placement: Placement;
  /** Every run of the cell on each system, in repetition order. */
  runs: Partial<Record<BenchTarget, BenchResult[]>>;
}

function benchOptions(
  target: BenchTarget,
  endpoints: string[],
  spec: WorkloadSpec,
  connections: number,
  args: Args,
): BenchOptions {
  return {
    endpoints,
    target,
    workload: parseWorkload(spec.workload),
    consistency: spec.consistency,
    connections,
    durationS: args.durationS,
    warmupS: args.warmupS,
    keys: KEYS,
    valueSize: VALUE_SIZE,
    rate: undefined,
    threads: 0,
    requestTimeoutMs: 10_000,
  };
}

function cellsFor(args: Args): Cell[] {
  const cells: Cell[] = [];
  for (const w of args.workloads) {
    for (const c of args.connections) {
      for (const p of args.placements) cells.push({ workload: w, connections: c, placement: p, runs: {} });
    }
  }
  return cells;
}

async function startSystem(
  system: BenchTarget,
  args: Args,
  root: string,
  etcd: string,
): Promise<RunningCluster> {
  const dir = join(root, system);
  mkdirSync(dir, { recursive: true });
  say(`starting a fresh 3-node ${system} in ${dir}`);
  const cluster = system === 'etcd' ? await startEtcd(etcd, dir) : await startAtlas(dir, args.cpuProfDir);
  try {
    say(`${system}: leader ${cluster.leaderUrl}; writing ${KEYS} keys`);
    await prefill(system, cluster.leaderUrl);
    if (args.prewarmS > 0) {
      say(
        `${system}: prewarm, ${args.prewarmS} s of writes and the 90/10 mix at 64 connections over all members`,
      );
      const endpoints = cluster.members.map((m) => m.clientUrl);
      for (const spec of [WORKLOADS['write'], WORKLOADS['mixed']] as WorkloadSpec[]) {
        const options = benchOptions(system, endpoints, spec, 64, args);
        await runBench({ ...options, durationS: args.prewarmS / 2, warmupS: 0 });
      }
    }
  } catch (e) {
    await stopCluster(cluster);
    throw e;
  }
  return cluster;
}

async function runCell(cluster: RunningCluster, cell: Cell, args: Args): Promise<void> {
  const system = cluster.system;
  const spec = WORKLOADS[cell.workload] as WorkloadSpec;
  const endpoints =
    cell.placement === 'leader' ? [cluster.leaderUrl] : cluster.members.map((m) => m.clientUrl);
  const r = await runBench(benchOptions(system, endpoints, spec, cell.connections, args));
  const runs = cell.runs[system] ?? [];
  runs.push(r);
  cell.runs[system] = runs;
  say(
    `${system.padEnd(5)} ${spec.label.padEnd(22)} c=${String(cell.connections).padEnd(3)} ${cell.placement.padEnd(6)} ${r.opsPerSec.toFixed(0).padStart(6)}/s  p50 ${r.latencyMs.p50.toFixed(2)} p99 ${r.latencyMs.p99.toFixed(2)} ms${r.errorCount > 0 ? `  errors ${JSON.stringify(r.errors)}` : ''}`,
  );
}

/**
 * Interleaved (default): both clusters run side by side, idle but for heartbeats while the other
 * is measured, and each cell runs against etcd and then AtlasDB, so a change in the machine's
 * background load (other engineers' tests) falls on both sides of a ratio alike. Sequential: the
 * whole matrix on one system, stopped, then the other.
 */
async function runMatrix(cells: Cell[], args: Args, root: string, etcd: string): Promise<void> {
  if (args.sequential) {
    for (const system of args.systems) {
      const cluster = await startSystem(system, args, root, etcd);
      try {
        for (const cell of cells)
          for (let rep = 0; rep < args.repeat; rep++) await runCell(cluster, cell, args);
      } finally {
        await stopCluster(cluster);
      }
    }
    return;
  }
  const clusters: RunningCluster[] = [];
  try {
    for (const system of args.systems) clusters.push(await startSystem(system, args, root, etcd));
    for (const cell of cells) {
      for (let rep = 0; rep < args.repeat; rep++) {
        for (const cluster of systemsInRepetition(clusters, rep)) await runCell(cluster, cell, args);
      }
    }
  } finally {
    await Promise.all(clusters.map(stopCluster));
  }
}

/** The generator against a trivial HTTP server in its own process: what it can drive at most. */
async function loadgenCeiling(args: Args): Promise<BenchResult[]> {
  const port = await freePort();
  const server = spawn(
    process.execPath,
    [fileURLToPath(new URL('../src/bench/trivial-http-server.js', import.meta.url)), String(port)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((ready, reject) => {
    server.stdout?.once('data', () => ready());
    server.once('exit', (code) => reject(new Error(`trivial server exited with code ${code}`)));
  });
  try {
    const out: BenchResult[] = [];
    for (const c of args.connections) {
      out.push(
        await runBench(
          benchOptions('atlas', [`http://127.0.0.1:${port}`], WORKLOADS.write as WorkloadSpec, c, args),
        ),
      );
    }
    return out;
  } finally {
    server.kill('SIGTERM');
  }
}

function etcdVersion(etcd: string): string {
  try {
    return execFileSync(etcd, ['--version'], { encoding: 'utf8' }).split('\n')[0]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const fmtOps = (r: BenchResult | undefined): string => (r === undefined ? '-' : r.opsPerSec.toFixed(0));
const fmtLat = (r: BenchResult | undefined): string =>
  r === undefined ? '-' : `${r.latencyMs.p50.toFixed(2)} / ${r.latencyMs.p99.toFixed(1)}`;
const fmtErr = (r: BenchResult | undefined): string =>
  r === undefined || r.errorCount === 0 ? '' : ` (${r.errorCount} err)`;
/** The throughput range over repeated runs ('' for one run). */
function fmtRange(runs: readonly BenchResult[] | undefined): string {
  if (runs === undefined || runs.length < 2) return '';
  const ops = runs.map((r) => r.opsPerSec);
  return ` (${Math.min(...ops).toFixed(0)}-${Math.max(...ops).toFixed(0)})`;
}

function table(cells: Cell[], ceiling: BenchResult[]): string {
  const lines = [
    '| workload | conns | endpoints | etcd req/s | etcd p50 / p99 ms | AtlasDB req/s | AtlasDB p50 / p99 ms | AtlasDB/etcd |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const c of cells) {
    const e = c.runs.etcd === undefined ? undefined : medianRun(c.runs.etcd);
    const a = c.runs.atlas === undefined ? undefined : medianRun(c.runs.atlas);
    const paired =
      c.runs.etcd === undefined || c.runs.atlas === undefined ? null : pairedRatio(c.runs.etcd, c.runs.atlas);
    let ratio = '-';
    if (paired !== null) {
      ratio = `${paired.median.toFixed(2)}x`;
      if (paired.pairs > 1) ratio += ` (${paired.min.toFixed(2)}-${paired.max.toFixed(2)})`;
    }
    lines.push(
      `| ${(WORKLOADS[c.workload] as WorkloadSpec).label} | ${c.connections} | ${c.placement} | ${fmtOps(e)}${fmtRange(c.runs.etcd)}${fmtErr(e)} | ${fmtLat(e)} | ${fmtOps(a)}${fmtRange(c.runs.atlas)}${fmtErr(a)} | ${fmtLat(a)} | ${ratio} |`,
    );
  }
  if (ceiling.length > 0) {
    lines.push(
      '',
      `Load generator against a trivial HTTP server (its ceiling here): ${ceiling.map((r) => `${r.connections} conn ${r.opsPerSec.toFixed(0)}/s (p50 ${r.latencyMs.p50.toFixed(2)} ms)`).join('; ')}.`,
    );
  }
  return lines.join('\n');
}

function writeDocs(block: string): string {
  const file = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  if (!text.includes(RUNS_END_MARKER)) {
    if (!text.includes(SECTION_TITLE)) text = `${text.trimEnd()}\n\n${SECTION_TITLE}\n\n`;
    // The section exists but has no run list yet: the list goes at the end of the file.
    text = `${text.trimEnd()}\n\n### Runs (appended by npm run bench:compare)\n\n${RUNS_END_MARKER}\n`;
  }
  text = text.replace(RUNS_END_MARKER, `${block}\n\n${RUNS_END_MARKER}`);
  writeFileSync(file, text);
  return file;
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const etcd = findOnPath('etcd');
  if (etcd === null && args.systems.includes('etcd')) {
    process.stderr.write('bench:compare needs etcd on PATH; install it with:  apt-get install etcd-server\n');
    return MISSING_ETCD_EXIT;
  }
  const started = new Date();
  // The code measured is the code at the start (others may commit while the run goes on).
  const commit = commitLine();
  const loadBefore = loadavg();
  const root = mkdtempSync(join(tmpdir(), 'atlas-bench-compare-'));
  const cells = cellsFor(args);
  let ceiling: BenchResult[] = [];
  try {
    say(`load generator ceiling (trivial HTTP server), ${args.durationS} s per cell`);
    ceiling = await loadgenCeiling(args);
    for (const r of ceiling)
      say(`  ${r.connections} conn: ${r.opsPerSec.toFixed(0)}/s p50 ${r.latencyMs.p50.toFixed(2)} ms`);
    await runMatrix(cells, args, root, etcd ?? 'etcd');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const loadAfter = loadavg();
  const la = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' ');
  const header = [
    `#### ${started.toISOString().replace(/\.\d+Z$/, 'Z')}, commit ${commit}`,
    '',
    `Machine: ${machineLine()}. ${etcd === null ? '' : `${etcdVersion(etcd)}. `}Load average (1/5/15 min) ${la(loadBefore)} before, ${la(loadAfter)} after. ${args.prewarmS > 0 ? `Each system served ${args.prewarmS} s of writes and the 90/10 mix (64 connections, all members) before the matrix. ` : 'No prewarm (cold start). '}${args.durationS} s per cell after ${args.warmupS} s warmup${args.repeat > 1 ? `, ${args.repeat} runs per cell and system (median run shown with the range of req/s; ratio: median of the paired runs' ratios, with their range)` : ''}; ${KEYS} keys, ${VALUE_SIZE}-byte values; both with fsync on every commit; "all" spreads the connections over the 3 members; ${args.sequential ? 'sequential (one system, then the other)' : `interleaved (each cell on etcd, then on AtlasDB${args.repeat > 1 ? ', the order alternating' : ''}, both clusters up)`}.`,
    '',
  ].join('\n');
  const block = `${header}\n${table(cells, ceiling)}`;
  if (args.json)
    process.stdout.write(
      `${JSON.stringify({ started: started.toISOString(), commit, machine: machineLine(), loadBefore, loadAfter, ceiling, cells })}\n`,
    );
  else process.stdout.write(`${block}\n`);
  if (args.docs) say(`appended to ${writeDocs(block)}`);
  return 0;
}

process.exitCode = await main();
