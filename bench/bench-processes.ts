/**
 * What the cluster benchmarks (bench/compare.ts, bench/scale.ts) share: free loopback ports, server
 * processes with their output kept for a failure report, AtlasDB nodes started with `atlas start`
 * (as an operator would), small JSON calls, and the machine and commit lines a figure is quoted with.
 */
import { SERVER_V8_FLAGS } from '../src/server/server-v8-flags.js';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Output kept per process for its log file: the tail is enough to explain a failure. */
const MAX_KEPT_OUTPUT_BYTES = 256 * 1024;
/** One benchmark HTTP call (health, status, JSON answers) waits at most this long. */
const CALL_TIMEOUT_MS = 3000;

export function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** A server process of a benchmark cluster. */
export interface Member {
  name: string;
  clientUrl: string;
  child: ChildProcess;
  logFile: string;
}

/** Children never inherit the caller's ATLAS_* / ETCD_* settings (a stray ATLAS_WAL_SYNC would skew a run). */
export function withoutAtlasEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('ATLAS_') && !k.startsWith('ETCD_')) env[k] = v;
  return env;
}

/** Spawns a server; its stdout and stderr tail goes to `logFile` when it exits. */
export function spawnLogged(command: string, argv: string[], logFile: string): ChildProcess {
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: withoutAtlasEnv() });
  const chunks: Buffer[] = [];
  let size = 0;
  const keep = (b: Buffer): void => {
    chunks.push(b);
    size += b.length;
    while (size > MAX_KEPT_OUTPUT_BYTES && chunks.length > 1) size -= (chunks.shift() as Buffer).length;
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('exit', () => writeFileSync(logFile, Buffer.concat(chunks)));
  return child;
}

export async function postJson(url: string, body: string): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

export async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

/** Polls until `isLeader` holds for a member; its client URL. Throws when a member exits or at the deadline. */
export async function pollLeader(
  members: Member[],
  isLeader: (m: Member) => Promise<boolean>,
  deadlineMs: number,
): Promise<string> {
  const deadline = performance.now() + deadlineMs;
  let lastError = '';
  while (performance.now() < deadline) {
    for (const m of members) {
      if (m.child.exitCode !== null)
        throw new Error(`${m.name} exited with code ${m.child.exitCode}; log in ${m.logFile}`);
      try {
        if (await isLeader(m)) return m.clientUrl;
      } catch (e) {
        lastError = (e as Error).message;
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no leader within ${deadlineMs} ms (last error: ${lastError})`);
}

/** SIGTERM, then SIGKILL after `deadlineMs`; resolves once every member has exited. */
export async function stopMembers(members: Member[], deadlineMs: number): Promise<void> {
  await Promise.all(
    members.map(
      (m) =>
        new Promise<void>((done) => {
          if (m.child.exitCode !== null || m.child.signalCode !== null) return done();
          const timer = setTimeout(() => m.child.kill('SIGKILL'), deadlineMs);
          m.child.once('exit', () => {
            clearTimeout(timer);
            done();
          });
          m.child.kill('SIGTERM');
        }),
    ),
  );
}

/** How one AtlasDB node process is started. */
export interface AtlasNodeSpec {
  name: string;
  /** Its data directory (created by the node). */
  dataDir: string;
  clientPort: number;
  peerPort: number;
  /** `id=host:port,...` of the founding voters; exclusive with `join`. */
  initialCluster?: string;
  /** Client URLs of a running cluster to join as a learner. */
  join?: string[];
  /** Where its output tail goes when it exits. */
  logFile: string;
  /** Node.js flags before the script (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** More `atlas start` flags. */
  extraArgs?: string[];
}

/**
 * `atlas start` as a child process, fsync on every commit (wal-sync always), warnings only, with
 * the V8 flags a server runs with (SERVER_V8_FLAGS, as `atlas dev` starts its nodes).
 */
export function spawnAtlasNode(spec: AtlasNodeSpec): Member {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const membership =
    spec.join !== undefined
      ? ['--join', spec.join.join(',')]
      : spec.initialCluster !== undefined
        ? ['--initial-cluster', spec.initialCluster]
        : [];
  const child = spawnLogged(
    process.execPath,
    [
      ...SERVER_V8_FLAGS,
      ...(spec.nodeFlags ?? []),
      cli,
      'start',
      '--id',
      spec.name,
      '--data-dir',
      spec.dataDir,
      '--listen-client',
      `127.0.0.1:${spec.clientPort}`,
      '--listen-peer',
      `127.0.0.1:${spec.peerPort}`,
      ...membership,
      '--wal-sync',
      'always',
      '--log-level',
      'warn',
      ...(spec.extraArgs ?? []),
    ],
    spec.logFile,
  );
  return { name: spec.name, clientUrl: `http://127.0.0.1:${spec.clientPort}`, child, logFile: spec.logFile };
}

/** A founding AtlasDB cluster of `size` nodes n1..nN under `root`, started together (not yet ready). */
export async function spawnAtlasCluster(
  root: string,
  size: number,
  options: { cpuProfDir?: string | undefined; extraArgs?: string[] } = {},
): Promise<{ members: Member[]; specs: AtlasNodeSpec[] }> {
  const ports = await freePorts(2 * size);
  const names = Array.from({ length: size }, (_, i) => `n${i + 1}`);
  const initialCluster = names.map((n, i) => `${n}=127.0.0.1:${ports[size + i]}`).join(',');
  const specs = names.map(
    (name, i): AtlasNodeSpec => ({
      name,
      dataDir: join(root, name),
      clientPort: ports[i] as number,
      peerPort: ports[size + i] as number,
      initialCluster,
      logFile: join(root, `${name}.log`),
      nodeFlags: cpuProfFlags(options.cpuProfDir, name),
      extraArgs: options.extraArgs ?? [],
    }),
  );
  return { members: specs.map(spawnAtlasNode), specs };
}

/** `node --cpu-prof` flags writing the profile of `name` under `dir` (none when dir is undefined). */
export function cpuProfFlags(dir: string | undefined, name: string): string[] {
  return dir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(dir, name)];
}

/** Leader of an AtlasDB cluster, from GET /health. */
export function atlasLeader(members: Member[], deadlineMs: number): Promise<string> {
  return pollLeader(
    members,
    async (m) => {
      const h = (await getJson(`${m.clientUrl}/health`)) as { role?: string };
      return h.role === 'leader';
    },
    deadlineMs,
  );
}

export function machineLine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const mem = (totalmem() / 2 ** 30).toFixed(1);
  return `${availableParallelism()} cores (nproc; ${cpu}), ${mem} GiB memory, Node ${process.version}`;
}

/** The commit measured (with a mark when src/ or bench/ differ from it). */
export function commitLine(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'bench'], {
      encoding: 'utf8',
    }).trim();
    return dirty === '' ? head : `${head} + uncommitted changes`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}
