/**
 * `npm run bench:scale`: issue #6's scale targets, measured on real processes in one run.
 *
 *   1. Starts a fresh 3-node AtlasDB (`atlas start`, wal-sync always) under a temporary directory.
 *   2. Loads N keys (default 1,000,000) of 100-byte values through POST /batch (max-txn-ops puts per
 *      request, many connections to the leader), then waits until every node applied all of it.
 *   3. Memory: each node's RSS from /proc/<pid>/status (VmRSS, split into RssAnon: the JS heap,
 *      Buffers and native allocations, and RssFile: mapped file pages, the LMDB map), its peak
 *      (VmHWM), and the V8 heap and external memory from the node's /metrics.
 *   4. Restart: kill -9 of a follower, started again with the same data directory; times process
 *      start to /health answering and to the first linearizable read answered by that node.
 *   5. Join: a 4th node started with `atlas start --join` (membership add as a learner); times
 *      process start to its applied index reaching the leader's commit index (snapshot + log), and
 *      to its promotion to voter.
 *
 *   node dist/bench/scale.js [--keys N] [--connections C] [--batch OPS] [--value-size B]
 *     [--cpu-prof DIR] [--node-flags="FLAGS"] [--settle S[,S...]] [--pause S] [--keep] [--json]
 *
 * Prints the figures (or one JSON object with --json). No figure is asserted: this is a measurement.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs as parseCommandLine } from 'node:util';
import { Pool } from 'undici';
import {
  type AtlasNodeSpec,
  type Member,
  atlasLeader,
  commitLine,
  cpuProfFlags,
  freePorts,
  getJson,
  machineLine,
  say,
  spawnAtlasCluster,
  spawnAtlasNode,
  stopMembers,
} from './bench-processes.js';

const CLUSTER_SIZE = 3;
const READY_DEADLINE_MS = 60_000;
const STOP_DEADLINE_MS = 30_000;
/** Longest a phase (applying everything, a restart, a join) is waited for before the run fails. */
const PHASE_DEADLINE_MS = 15 * 60_000;
/** Restart: /health and the read are polled this often (the figure's resolution). */
const POLL_MS = 25;
/** Join: polled less often (four requests a round), so the polling itself takes little CPU from the nodes. */
const JOIN_POLL_MS = 100;
/** A batch request answered 503/504 (overloaded, outcome unknown) is retried at most this often. */
const MAX_BATCH_ATTEMPTS = 20;
const MAX_KEYS = 100_000_000;
/** Bijective mixing of the key number into the key name, so keys arrive in random order (as in real use). */
const KEY_MIX = 2654435761;

interface Args {
  keys: number;
  connections: number;
  batch: number;
  valueSize: number;
  cpuProfDir: string | undefined;
  /** More `atlas start` flags for every node (e.g. --snapshot-threshold-entries 1000). */
  nodeFlags: string[];
  /** Idle seconds after the load at which memory is sampled again, increasing (V8 shrinks an idle heap). */
  settleS: number[];
  /** Seconds to wait after the memory figures, before the restart (to inspect the loaded nodes). */
  pauseS: number;
  keep: boolean;
  json: boolean;
}

const USAGE =
  'usage: scale.js [--keys N] [--connections C] [--batch OPS] [--value-size B] [--cpu-prof DIR] [--node-flags="FLAGS"] [--settle S[,S...]] [--pause S] [--keep] [--json]';

function parseArgs(argv: string[]): Args {
  const { values } = parseCommandLine({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      keys: { type: 'string', default: '1000000' },
      connections: { type: 'string', default: '32' },
      batch: { type: 'string', default: '128' },
      'value-size': { type: 'string', default: '100' },
      'cpu-prof': { type: 'string' },
      pause: { type: 'string', default: '0' },
      settle: { type: 'string', default: '20,45' },
      'node-flags': { type: 'string', default: '' },
      keep: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  /** `--settle 20,45`: idle points in seconds after the load, increasing; `0` for none. */
  const settlePoints = (v: string): number[] => {
    if (v === '0') return [];
    const points = v.split(',').map((p) => integer('settle', p, 1, 3600));
    if (points.some((p, i) => i > 0 && p <= points[i - 1]!))
      throw new Error(`--settle must list increasing seconds (e.g. 20,45), got ${JSON.stringify(v)}`);
    return points;
  };
  const integer = (flag: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (!(Number.isSafeInteger(n) && n >= min && n <= max))
      throw new Error(`--${flag} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    return n;
  };
  return {
    keys: integer('keys', values.keys, 1, MAX_KEYS),
    connections: integer('connections', values.connections, 1, 1024),
    // The server's default max-txn-ops bounds one batch.
    batch: integer('batch', values.batch, 1, 128),
    valueSize: integer('value-size', values['value-size'], 16, 64 * 1024),
    cpuProfDir: values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']),
    nodeFlags: values['node-flags'].split(' ').filter((f) => f.length > 0),
    pauseS: integer('pause', values.pause, 0, 3600),
    settleS: settlePoints(values.settle),
    keep: values.keep,
    json: values.json,
  };
}

/** Key number i as its name: "scale/" and 8 hex digits of a bijection of i (i < 2^32). */
function keyOf(i: number): string {
  return `scale/${(Math.imul(i, KEY_MIX) >>> 0).toString(16).padStart(8, '0')}`;
}

/** The value of key number i: its number, padded to `size` bytes (so a read can be checked). */
function valueOfKey(i: number, size: number): string {
  const head = `v${i}:`;
  return head + '.'.repeat(size - head.length);
}

interface Health {
  role: string;
  leader: string;
  commitIndex: number;
  lastApplied: number;
}

async function health(m: Member): Promise<Health> {
  return (await getJson(`${m.clientUrl}/health`)) as Health;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

function assertRunning(m: Member): void {
  if (m.child.exitCode !== null || m.child.signalCode !== null)
    throw new Error(`${m.name} exited (${m.child.exitCode ?? m.child.signalCode}); log in ${m.logFile}`);
}

// ------------------------------------------------------------------------------------------------
// Load

interface LoadResult {
  keys: number;
  requests: number;
  retries: number;
  seconds: number;
  keysPerSec: number;
  /** From the end of the load until every node applied the leader's commit index. */
  applyLagSeconds: number;
}

async function load(leaderUrl: string, args: Args): Promise<Omit<LoadResult, 'applyLagSeconds'>> {
  const pool = new Pool(leaderUrl, { connections: args.connections, pipelining: 1 });
  const batches = Math.ceil(args.keys / args.batch);
  let nextBatch = 0;
  let done = 0;
  let retries = 0;
  const started = performance.now();
  let lastReport = started;
  const sendBatch = async (b: number): Promise<void> => {
    const from = b * args.batch;
    const to = Math.min(args.keys, from + args.batch);
    const ops: Array<{ type: 'put'; key: string; value: string }> = [];
    for (let i = from; i < to; i++)
      ops.push({ type: 'put', key: keyOf(i), value: valueOfKey(i, args.valueSize) });
    const body = JSON.stringify({ ops });
    for (let attempt = 1; ; attempt++) {
      const res = await pool.request({
        path: '/batch',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      });
      const text = await res.body.text();
      if (res.statusCode === 200) return;
      // Overloaded (503) is refused before proposal; a 504 outcome_unknown batch may have been
      // applied, and writing the same puts again is harmless here (same keys, same values).
      if ((res.statusCode === 503 || res.statusCode === 504) && attempt < MAX_BATCH_ATTEMPTS) {
        retries++;
        await sleep(50 * attempt);
        continue;
      }
      throw new Error(`POST /batch (keys ${from}..${to - 1}): HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
    }
  };
  const worker = async (): Promise<void> => {
    while (nextBatch < batches) {
      await sendBatch(nextBatch++);
      done++;
      const now = performance.now();
      if (now - lastReport > 10_000) {
        lastReport = now;
        const keys = Math.min(args.keys, done * args.batch);
        say(`  ${keys} keys (${((keys / (now - started)) * 1000).toFixed(0)} keys/s)`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: args.connections }, worker));
  } finally {
    await pool.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { keys: args.keys, requests: batches, retries, seconds, keysPerSec: args.keys / seconds };
}

/** The member that leads now (leadership may move between phases on a loaded machine). */
async function currentLeader(members: Member[]): Promise<Member> {
  const url = await atlasLeader(members, READY_DEADLINE_MS);
  return members.find((m) => m.clientUrl === url) as Member;
}

/** Waits until every member's applied index reaches the leader's commit index (read after). */
async function waitAllApplied(members: Member[]): Promise<void> {
  const deadline = performance.now() + PHASE_DEADLINE_MS;
  while (performance.now() < deadline) {
    for (const m of members) assertRunning(m);
    const commit = (await health(await currentLeader(members))).commitIndex;
    const applied = await Promise.all(members.map(async (m) => (await health(m)).lastApplied));
    if (applied.every((a) => a >= commit)) return;
    await sleep(200);
  }
  throw new Error(`the members did not apply everything within ${PHASE_DEADLINE_MS} ms`);
}

// ------------------------------------------------------------------------------------------------
// Memory

interface MemoryFigures {
  node: string;
  /** Its raft role when sampled. */
  role: string;
  pid: number;
  rssMiB: number;
  rssAnonMiB: number;
  rssFileMiB: number;
  rssShmemMiB: number;
  peakRssMiB: number;
  heapUsedMiB: number | null;
  heapTotalMiB: number | null;
  externalMiB: number | null;
  /** Sizes on disk: the LMDB file and the WAL segments. */
  storeFileMiB: number;
  walMiB: number;
}

/** kB figures of /proc/<pid>/status, by field name. */
function procStatus(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (m !== null) out.set(m[1] as string, Number(m[2]));
  }
  return out;
}

async function metricValues(m: Member, names: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    const res = await fetch(`${m.clientUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    for (const line of text.split('\n')) {
      for (const name of names) {
        if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
          const v = Number(line.slice(line.lastIndexOf(' ') + 1));
          if (Number.isFinite(v)) out.set(name, v);
        }
      }
    }
  } catch {
    // Metrics are an extra: the /proc figures stand without them.
  }
  return out;
}

/** atlas_raft_snapshot_events_total by event (streamStarted, streamDone, streamFailed, received, installed, compacted). */
async function snapshotEvents(m: Member): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const res = await fetch(`${m.clientUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  for (const line of (await res.text()).split('\n')) {
    const match = /^atlas_raft_snapshot_events_total\{[^}]*event="(\w+)"[^}]*\} (\d+)/.exec(line);
    if (match !== null) out[match[1] as string] = Number(match[2]);
  }
  return out;
}

const MiB = (kB: number | undefined): number => Math.round(((kB ?? 0) / 1024) * 10) / 10;
const bytesMiB = (b: number | undefined): number | null =>
  b === undefined ? null : Math.round((b / 2 ** 20) * 10) / 10;

/** Bytes of the regular files directly in `dir` (0 when it does not exist yet). */
function dirBytes(dir: string): number {
  let total = 0;
  try {
    for (const name of readdirSync(dir)) {
      const st = statSync(join(dir, name));
      if (st.isFile()) total += st.size;
    }
  } catch {
    return 0;
  }
  return total;
}

async function memoryOf(m: Member, dataDir: string): Promise<MemoryFigures> {
  const pid = m.child.pid as number;
  const metrics = await metricValues(m, [
    'atlas_nodejs_heap_size_used_bytes',
    'atlas_nodejs_heap_size_total_bytes',
    'atlas_nodejs_external_memory_bytes',
  ]);
  const s = procStatus(pid);
  const role = await health(m).then(
    (h) => h.role,
    () => 'unknown',
  );
  return {
    node: m.name,
    role,
    pid,
    rssMiB: MiB(s.get('VmRSS')),
    rssAnonMiB: MiB(s.get('RssAnon')),
    rssFileMiB: MiB(s.get('RssFile')),
    rssShmemMiB: MiB(s.get('RssShmem')),
    peakRssMiB: MiB(s.get('VmHWM')),
    heapUsedMiB: bytesMiB(metrics.get('atlas_nodejs_heap_size_used_bytes')),
    heapTotalMiB: bytesMiB(metrics.get('atlas_nodejs_heap_size_total_bytes')),
    externalMiB: bytesMiB(metrics.get('atlas_nodejs_external_memory_bytes')),
    storeFileMiB: bytesMiB(dirBytes(join(dataDir, 'store'))) ?? 0,
    walMiB: bytesMiB(dirBytes(join(dataDir, 'wal'))) ?? 0,
  };
}

// ------------------------------------------------------------------------------------------------
// Restart and join

interface RestartResult {
  node: string;
  /** Process start to the first 200 from GET /health. */
  healthSeconds: number;
  /** Process start to the first linearizable read answered by the restarted node (value checked). */
  readSeconds: number;
  memoryAfter: MemoryFigures;
}

async function restartFollower(
  members: Member[],
  specs: AtlasNodeSpec[],
  args: Args,
): Promise<RestartResult> {
  const leader = await currentLeader(members);
  const index = members.findIndex((m) => m !== leader);
  const victim = members[index] as Member;
  const spec = specs[index] as AtlasNodeSpec;
  say(`restart: kill -9 ${victim.name} (pid ${victim.child.pid})`);
  await new Promise<void>((done) => {
    victim.child.once('exit', () => done());
    victim.child.kill('SIGKILL');
  });
  const probe = Math.floor(args.keys / 2);
  const url = `${victim.clientUrl}/kv/${encodeURIComponent(keyOf(probe))}?consistency=linearizable`;
  const expected = valueOfKey(probe, args.valueSize);
  const started = performance.now();
  const restarted = spawnAtlasNode({
    ...spec,
    logFile: join(dirname(spec.logFile), `${spec.name}-restart.log`),
  });
  members[index] = restarted;
  let healthSeconds = -1;
  const deadline = started + PHASE_DEADLINE_MS;
  while (performance.now() < deadline) {
    assertRunning(restarted);
    try {
      if (healthSeconds < 0) {
        const res = await fetch(`${restarted.clientUrl}/health`, { signal: AbortSignal.timeout(3000) });
        await res.arrayBuffer();
        if (res.status === 200) healthSeconds = (performance.now() - started) / 1000;
      }
      if (healthSeconds >= 0) {
        const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
        const body = await res.text();
        if (res.status === 200) {
          if (body !== expected)
            throw new Error(
              `restarted ${restarted.name} read ${JSON.stringify(body.slice(0, 40))} for key ${probe}`,
            );
          const readSeconds = (performance.now() - started) / 1000;
          return {
            node: restarted.name,
            healthSeconds,
            readSeconds,
            memoryAfter: await memoryOf(restarted, spec.dataDir),
          };
        }
      }
    } catch (e) {
      if ((e as Error).message.startsWith('restarted')) throw e;
      // Not listening yet, or the read is not served yet: poll again.
    }
    await sleep(POLL_MS);
  }
  throw new Error(`${restarted.name} did not serve a linearizable read within ${PHASE_DEADLINE_MS} ms`);
}

interface JoinResult {
  node: string;
  /** Process start to the first 200 from its GET /health (the join request committed). */
  healthSeconds: number;
  /** Process start to its applied index reaching the leader's commit index. */
  caughtUpSeconds: number;
  /** Process start to the whole snapshot stream received (staged, checksums verified). */
  snapshotReceivedSeconds: number;
  /** Process start to its applied index first above 0 (the leader's snapshot installed). */
  snapshotInstalledSeconds: number;
  /** Process start to the leader listing it as a voter. */
  voterSeconds: number;
  /** Snapshot events of the founding members during the join (streams started, done, failed; compactions). */
  foundersSnapshotEvents: Record<string, number>;
  appliedIndex: number;
  memoryAfter: MemoryFigures;
  leaderMemoryAfter: MemoryFigures;
}

/** Snapshot events summed over `members` (whichever of them leads sends the streams). */
async function clusterSnapshotEvents(members: Member[]): Promise<Record<string, number>> {
  const sum: Record<string, number> = {};
  for (const m of members) {
    for (const [event, n] of Object.entries(await snapshotEvents(m))) sum[event] = (sum[event] ?? 0) + n;
  }
  return sum;
}

async function joinFourth(root: string, members: Member[], args: Args): Promise<JoinResult> {
  const founders = [...members];
  const [clientPort, peerPort] = (await freePorts(2)) as [number, number];
  const name = `n${CLUSTER_SIZE + 1}`;
  const eventsBefore = await clusterSnapshotEvents(founders);
  say(`join: starting ${name} with --join`);
  const started = performance.now();
  const joiner = spawnAtlasNode({
    name,
    dataDir: join(root, name),
    clientPort,
    peerPort,
    join: members.map((m) => m.clientUrl),
    logFile: join(root, `${name}.log`),
    nodeFlags: cpuProfFlags(args.cpuProfDir, name),
    extraArgs: args.nodeFlags,
  });
  members.push(joiner);
  let healthSeconds = -1;
  let caughtUpSeconds = -1;
  let voterSeconds = -1;
  let snapshotInstalledSeconds = -1;
  let snapshotReceivedSeconds = -1;
  let appliedIndex = 0;
  const deadline = started + PHASE_DEADLINE_MS;
  while (performance.now() < deadline && (caughtUpSeconds < 0 || voterSeconds < 0)) {
    assertRunning(joiner);
    try {
      const own = await health(joiner);
      // The leader the joiner follows (it may have changed since the load).
      const leader = founders.find((m) => m.name === own.leader) ?? (await currentLeader(founders));
      const leaderHealth = await health(leader);
      const now = (performance.now() - started) / 1000;
      if (healthSeconds < 0) healthSeconds = now;
      if (snapshotReceivedSeconds < 0 && ((await snapshotEvents(joiner)).received ?? 0) > 0)
        snapshotReceivedSeconds = now;
      if (snapshotInstalledSeconds < 0 && own.lastApplied > 0) snapshotInstalledSeconds = now;
      if (caughtUpSeconds < 0 && own.lastApplied >= leaderHealth.commitIndex) {
        caughtUpSeconds = now;
        appliedIndex = own.lastApplied;
      }
      if (voterSeconds < 0) {
        const list = (await getJson(`${leader.clientUrl}/cluster/members`)) as {
          members: Array<{ id: string; role: string }>;
        };
        if (list.members.some((x) => x.id === name && x.role === 'voter')) voterSeconds = now;
      }
    } catch {
      // Not listening yet (it joins before it serves): poll again.
    }
    await sleep(JOIN_POLL_MS);
  }
  if (caughtUpSeconds < 0 || voterSeconds < 0)
    throw new Error(`${name} did not catch up and become a voter within ${PHASE_DEADLINE_MS} ms`);
  const eventsAfter = await clusterSnapshotEvents(founders);
  const leader = await currentLeader(founders);
  const foundersSnapshotEvents: Record<string, number> = {};
  for (const [event, n] of Object.entries(eventsAfter))
    foundersSnapshotEvents[event] = n - (eventsBefore[event] ?? 0);
  return {
    node: name,
    healthSeconds,
    caughtUpSeconds,
    voterSeconds,
    snapshotReceivedSeconds,
    snapshotInstalledSeconds,
    foundersSnapshotEvents,
    appliedIndex,
    memoryAfter: await memoryOf(joiner, join(root, name)),
    leaderMemoryAfter: await memoryOf(leader, join(root, leader.name)),
  };
}

// ------------------------------------------------------------------------------------------------

interface ScaleReport {
  started: string;
  commit: string;
  machine: string;
  loadBefore: number[];
  loadAfter: number[];
  args: Omit<Args, 'json' | 'keep' | 'pauseS' | 'settleS'>;
  load: LoadResult;
  memory: MemoryFigures[];
  /** The same figures after each --settle point of idle time (none with --settle 0). */
  memorySettled: Array<{ idleS: number; figures: MemoryFigures[] }>;
  restart: RestartResult;
  join: JoinResult;
}

function memoryLine(f: MemoryFigures): string {
  const heap =
    f.heapUsedMiB === null
      ? ''
      : `; V8 heap ${f.heapUsedMiB}/${f.heapTotalMiB} MiB, external ${f.externalMiB} MiB`;
  return `  ${f.node} (${f.role}): RSS ${f.rssMiB} MiB = anon ${f.rssAnonMiB} + file ${f.rssFileMiB} + shmem ${f.rssShmemMiB} (peak ${f.peakRssMiB})${heap}; on disk: store ${f.storeFileMiB} MiB, WAL ${f.walMiB} MiB`;
}

/** A phase's time, or "none" when it did not happen (a join caught up from the log alone). */
const seconds = (s: number): string => (s < 0 ? 'none' : `${s.toFixed(2)} s`);

function printReport(r: ScaleReport): void {
  const la = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' ');
  const lines = [
    `bench:scale ${r.started}, commit ${r.commit}`,
    `machine: ${r.machine}${r.args.nodeFlags.length > 0 ? `; node flags ${r.args.nodeFlags.join(' ')}` : ''}; load average ${la(r.loadBefore)} before, ${la(r.loadAfter)} after`,
    `load: ${r.load.keys} keys of ${r.args.valueSize} B in ${r.load.requests} batches of ${r.args.batch}, ${r.args.connections} connections: ${r.load.seconds.toFixed(1)} s (${r.load.keysPerSec.toFixed(0)} keys/s, ${r.load.retries} retries); all applied ${r.load.applyLagSeconds.toFixed(1)} s later`,
    'memory after the load (target: RSS <= 400 MB per node):',
    ...r.memory.map(memoryLine),
    ...r.memorySettled.flatMap((s) => [`after ${s.idleS} s idle:`, ...s.figures.map(memoryLine)]),
    `restart of ${r.restart.node} after kill -9 (target: serving <= 5 s): /health ${r.restart.healthSeconds.toFixed(2)} s, first linearizable read ${r.restart.readSeconds.toFixed(2)} s`,
    memoryLine(r.restart.memoryAfter),
    `join of ${r.join.node} (target: caught up <= 60 s): /health ${r.join.healthSeconds.toFixed(2)} s, snapshot received ${seconds(r.join.snapshotReceivedSeconds)}, installed ${seconds(r.join.snapshotInstalledSeconds)}, applied = leader's commit (${r.join.appliedIndex}) ${r.join.caughtUpSeconds.toFixed(2)} s, voter ${r.join.voterSeconds.toFixed(2)} s; snapshot events meanwhile ${JSON.stringify(r.join.foundersSnapshotEvents)}`,
    memoryLine(r.join.memoryAfter),
    `${memoryLine(r.join.leaderMemoryAfter)} (after the join)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const started = new Date();
  const commit = commitLine();
  const loadBefore = loadavg();
  const root = mkdtempSync(join(tmpdir(), 'atlas-bench-scale-'));
  say(`starting a fresh ${CLUSTER_SIZE}-node AtlasDB in ${root}`);
  const { members, specs } = await spawnAtlasCluster(root, CLUSTER_SIZE, {
    cpuProfDir: args.cpuProfDir,
    extraArgs: args.nodeFlags,
  });
  let failed = true;
  // Ctrl-C or a kill of the benchmark stops its nodes too (they would otherwise outlive it).
  const interrupted = (signal: NodeJS.Signals): void => {
    say(`${signal}: stopping the nodes; data and logs kept in ${root}`);
    void stopMembers(members, STOP_DEADLINE_MS).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const leaderUrl = await atlasLeader(members, READY_DEADLINE_MS);
    const leader = members.find((m) => m.clientUrl === leaderUrl) as Member;
    say(`leader ${leader.name}; loading ${args.keys} keys`);
    const loaded = await load(leaderUrl, args);
    const applyStart = performance.now();
    await waitAllApplied(members);
    const loadResult: LoadResult = { ...loaded, applyLagSeconds: (performance.now() - applyStart) / 1000 };
    say(`loaded in ${loaded.seconds.toFixed(1)} s; measuring memory`);
    const memory = await Promise.all(members.map((m) => memoryOf(m, join(root, m.name))));
    const memorySettled: ScaleReport['memorySettled'] = [];
    let idle = 0;
    for (const point of args.settleS) {
      say(`idle until ${point} s after the load, then memory again`);
      await sleep((point - idle) * 1000);
      idle = point;
      memorySettled.push({
        idleS: point,
        figures: await Promise.all(members.map((m) => memoryOf(m, join(root, m.name)))),
      });
    }
    if (args.pauseS > 0) {
      say(
        `pausing ${args.pauseS} s: ${members.map((m) => `${m.name} pid ${m.child.pid} ${m.clientUrl}`).join(', ')}`,
      );
      await sleep(args.pauseS * 1000);
    }
    const restart = await restartFollower(members, specs, args);
    const joined = await joinFourth(root, members, args);
    const report: ScaleReport = {
      started: started.toISOString(),
      commit,
      machine: machineLine(),
      loadBefore,
      loadAfter: loadavg(),
      args: {
        keys: args.keys,
        connections: args.connections,
        batch: args.batch,
        valueSize: args.valueSize,
        cpuProfDir: args.cpuProfDir,
        nodeFlags: args.nodeFlags,
      },
      load: loadResult,
      memory,
      memorySettled,
      restart,
      join: joined,
    };
    if (args.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else printReport(report);
    failed = false;
    return 0;
  } finally {
    await stopMembers(members, STOP_DEADLINE_MS);
    if (args.keep || failed) say(`data and logs kept in ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
}

process.exitCode = await main();
