/**
 * `atlas dev` (what `npm start` runs): a local cluster of N nodes on loopback, data under ./data.
 *
 * Each node is a child process running `atlas start` — the same code path as production, and a
 * node can be killed (kill -9 <pid>) or stopped alone to watch the others fail over, which an
 * in-process cluster cannot show: a crash there takes every node down, and all nodes would share
 * one event loop, so one busy node would delay the others' heartbeats. The cost is a Node start per
 * node (a few hundred ms, in parallel).
 *
 * The command prints each node's client URL, pid and log file, then the leader once elected, and
 * every leader change while it runs. Ctrl-C stops the cluster cleanly (the terminal signals every
 * node; each shuts down gracefully) and the data stays: the next run recovers it. A node's logs go
 * to <data-dir>/<id>.log. The layout (node count, ports) is recorded in <data-dir>/dev-cluster.json,
 * and a run with another layout over the same data is refused: node addresses live in the
 * replicated log, and a new node started as a founder next to an existing log would found a
 * different cluster.
 */
import { SERVER_V8_FLAGS } from '../server/server-v8-flags.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import { get } from 'node:http';
import type { DevReadyMessage, DevShutdownMessage } from './start-command.js';

export const MAX_DEV_NODES = 7;
const LAYOUT_FILE = 'dev-cluster.json';
const LAYOUT_FORMAT = 1;
/** Children have this long to report that they serve. */
const READY_DEADLINE_MS = 30_000;
const LEADER_DEADLINE_MS = 15_000;
/** After asking the nodes to stop, how long before they are killed. */
const STOP_DEADLINE_MS = 20_000;
const POLL_MS = 1000;
/** Smaller than the production default: a dev node pre-allocates two segments at its first start. */
const DEV_WAL_SEGMENT_SIZE = '16MiB';

export interface DevOptions {
  nodes: number;
  dataDir: string;
  host: string;
  clientPort: number;
  peerPort: number;
  logLevel: string;
}

interface DevLayout {
  format: number;
  nodes: number;
  host: string;
  clientPort: number;
  peerPort: number;
}

interface DevNode {
  id: string;
  clientUrl: string;
  listenClient: string;
  listenPeer: string;
  dataDir: string;
  logFile: string;
  child: ChildProcess | null;
  exited: boolean;
}

function integerOption(name: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
      );
    }
    return n;
  };
}

export function registerDevCommand(program: Command): Command {
  return program
    .command('dev')
    .description('run a local cluster on loopback until Ctrl-C (npm start); data is kept in --data-dir')
    .option(
      '--nodes <n>',
      `number of nodes, 1 to ${MAX_DEV_NODES}`,
      integerOption('--nodes', 1, MAX_DEV_NODES),
      3,
    )
    .option('--data-dir <dir>', 'where the nodes keep their data and logs', './data')
    .option('--host <host>', 'loopback address the nodes listen on', '127.0.0.1')
    .option(
      '--client-port <port>',
      'client port of the first node (the others follow)',
      integerOption('--client-port', 1, 65535),
      8081,
    )
    .option(
      '--peer-port <port>',
      'peer port of the first node (the others follow)',
      integerOption('--peer-port', 1, 65535),
      9081,
    )
    .option('--log-level <level>', 'log level of the nodes', 'info')
    .action(async (options: DevOptions) => {
      process.exitCode = await runDev(options);
      process.exit();
    });
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function fail(line: string): number {
  process.stderr.write(`atlas dev: ${line}\n`);
  return 1;
}

/** Runs the dev cluster until a signal; resolves with the exit code. */
export async function runDev(options: DevOptions): Promise<number> {
  const t0 = performance.now();
  const root = resolve(options.dataDir);
  const layout: DevLayout = {
    format: LAYOUT_FORMAT,
    nodes: options.nodes,
    host: options.host,
    clientPort: options.clientPort,
    peerPort: options.peerPort,
  };
  const lastPort = Math.max(options.clientPort, options.peerPort) + options.nodes - 1;
  if (lastPort > 65535) return fail(`ports run past 65535 (last port ${lastPort})`);
  const clientPorts = new Set(Array.from({ length: options.nodes }, (_, i) => options.clientPort + i));
  if (Array.from({ length: options.nodes }, (_, i) => options.peerPort + i).some((p) => clientPorts.has(p))) {
    return fail(`client ports ${options.clientPort}.. and peer ports ${options.peerPort}.. overlap`);
  }
  try {
    mkdirSync(root, { recursive: true });
    const problem = checkLayout(root, layout);
    if (problem !== null) return fail(problem);
  } catch (e) {
    return fail(`cannot use data directory ${root}: ${(e as Error).message}`);
  }

  const nodes: DevNode[] = Array.from({ length: options.nodes }, (_, i) => {
    const id = `n${i + 1}`;
    const listenClient = `${options.host}:${options.clientPort + i}`;
    return {
      id,
      clientUrl: `http://${listenClient}`,
      listenClient,
      listenPeer: `${options.host}:${options.peerPort + i}`,
      dataDir: join(root, id),
      logFile: join(root, `${id}.log`),
      child: null,
      exited: false,
    };
  });
  for (const n of nodes) {
    for (const address of [n.listenClient, n.listenPeer]) {
      const busy = await portBusy(options.host, Number(address.split(':').pop()));
      if (busy !== null)
        return fail(`cannot listen on ${address}: ${busy} (is another atlas dev or node running?)`);
    }
  }
  writeFileSync(join(root, LAYOUT_FILE), `${JSON.stringify(layout, null, 2)}\n`);

  const initialCluster = nodes.map((n) => `${n.id}=${n.listenPeer}`).join(',');
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  let stopping = false;
  const ready = new Map<string, DevReadyMessage>();
  let readyAll: () => void = () => {};
  let earlyExit: (message: string) => void = () => {};
  const allReady = new Promise<void>((resolveReady, rejectReady) => {
    readyAll = resolveReady;
    earlyExit = (m) => rejectReady(new Error(m));
  });
  const exits: Promise<void>[] = [];

  for (const n of nodes) {
    const logFd = openSync(n.logFile, 'a');
    const child = spawn(
      process.execPath,
      [
        ...SERVER_V8_FLAGS,
        main,
        'start',
        '--id',
        n.id,
        '--data-dir',
        n.dataDir,
        '--listen-client',
        n.listenClient,
        '--listen-peer',
        n.listenPeer,
        '--initial-cluster',
        initialCluster,
        '--wal-segment-size',
        DEV_WAL_SEGMENT_SIZE,
        '--log-level',
        options.logLevel,
      ],
      { stdio: ['ignore', logFd, logFd, 'ipc'] },
    );
    closeSync(logFd);
    n.child = child;
    child.on('message', (m: unknown) => {
      const msg = m as Partial<DevReadyMessage> | null;
      if (msg?.type !== 'atlas-ready' || msg.id !== n.id) return;
      ready.set(n.id, msg as DevReadyMessage);
      if (ready.size === nodes.length) readyAll();
    });
    exits.push(
      new Promise<void>((resolveExit) => {
        child.on('exit', (code, signal) => {
          n.exited = true;
          resolveExit();
          if (stopping) return;
          const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
          const message = `${n.id} (pid ${child.pid}) ${how}; see ${displayPath(n.logFile)}:\n${tail(n.logFile, 8)}`;
          if (ready.size < nodes.length) earlyExit(message);
          else say(`! ${message}`);
        });
      }),
    );
  }

  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const shutdown: DevShutdownMessage = { type: 'atlas-shutdown' };
    for (const n of nodes) {
      if (n.exited || n.child === null) continue;
      // Over IPC, not a signal: on Ctrl-C the terminal already sent every node SIGINT, and a second
      // signal would cut a node's shutdown short.
      if (n.child.connected) n.child.send(shutdown, () => {});
      else n.child.kill('SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(exits),
      new Promise<void>((r) => {
        timer = setTimeout(r, STOP_DEADLINE_MS);
      }),
    ]);
    clearTimeout(timer);
    for (const n of nodes) {
      if (!n.exited && n.child !== null) {
        say(`! ${n.id} did not stop within ${STOP_DEADLINE_MS} ms: killing it`);
        n.child.kill('SIGKILL');
      }
    }
    await Promise.all(exits);
  };

  let signalled = 0;
  let onStopped: () => void = () => {};
  const stopped = new Promise<void>((r) => {
    onStopped = r;
  });
  const onSignal = () => {
    signalled++;
    if (signalled > 1) {
      say('second signal: killing the nodes');
      for (const n of nodes) if (!n.exited) n.child?.kill('SIGKILL');
      return;
    }
    say('stopping the cluster ...');
    stopAll().then(onStopped, onStopped);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let readyTimer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      allReady,
      stopped.then(() => {
        throw new Error('stopped before the cluster was ready');
      }),
      new Promise<never>((_, reject) => {
        readyTimer = setTimeout(
          () =>
            reject(
              new Error(
                `the nodes did not all serve within ${READY_DEADLINE_MS} ms; see the logs in ${displayPath(root)}`,
              ),
            ),
          READY_DEADLINE_MS,
        );
      }),
    ]);
  } catch (e) {
    clearTimeout(readyTimer);
    await stopAll();
    return fail((e as Error).message);
  }
  clearTimeout(readyTimer);

  say(
    `AtlasDB dev cluster: ${nodes.length} node${nodes.length === 1 ? '' : 's'}, data in ${displayPath(root)}`,
  );
  for (const n of nodes) {
    say(
      `  ${n.id}  ${n.clientUrl}  peer ${n.listenPeer}  pid ${n.child?.pid}  log ${displayPath(n.logFile)}`,
    );
  }
  const leader = await waitForLeader(nodes, LEADER_DEADLINE_MS, () => stopping);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  if (stopping) {
    // Ctrl-C during the start: nothing more to announce.
  } else if (leader === null) {
    say(
      `no leader elected within ${LEADER_DEADLINE_MS / 1000} s yet (serving since ${seconds} s); watch the logs`,
    );
  } else {
    say(`leader: ${leader} (${nodes.find((n) => n.id === leader)?.clientUrl}); ready in ${seconds} s`);
  }
  const first = nodes[0]!.clientUrl;
  if (!stopping)
    say(`try:  curl -X PUT --data-binary hello ${first}/kv/greeting   then   curl ${first}/kv/greeting`);
  if (!stopping) say('Ctrl-C stops the cluster; the data stays for the next run.');

  let lastLeader = leader;
  const watcher = setInterval(() => {
    if (stopping) return;
    currentLeader(nodes).then((l) => {
      if (stopping || l === null || l === lastLeader) return;
      say(`leader is now ${l} (${nodes.find((n) => n.id === l)?.clientUrl})`);
      lastLeader = l;
    });
  }, POLL_MS);
  await stopped;
  clearInterval(watcher);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  say('cluster stopped.');
  return 0;
}

function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') ? path : `./${rel}`;
}

function checkLayout(root: string, layout: DevLayout): string | null {
  let text: string;
  try {
    text = readFileSync(join(root, LAYOUT_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let recorded: Partial<DevLayout>;
  try {
    recorded = JSON.parse(text) as Partial<DevLayout>;
  } catch {
    return `${join(root, LAYOUT_FILE)} is not valid JSON; remove ${root} to start afresh`;
  }
  const keys: Array<keyof DevLayout> = ['nodes', 'host', 'clientPort', 'peerPort'];
  const differ = keys.filter((k) => recorded[k] !== layout[k]);
  if (differ.length === 0) return null;
  return (
    `${displayPath(root)} holds a dev cluster with ${keys.map((k) => `${k} ${String(recorded[k])}`).join(', ')}; ` +
    `this run asks for ${differ.map((k) => `${k} ${String(layout[k])}`).join(', ')}. ` +
    `Run with the recorded settings, another --data-dir, or remove ${displayPath(root)} to start afresh.`
  );
}

/** null when the port can be bound, else why not. */
function portBusy(host: string, port: number): Promise<string | null> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) =>
      resolvePort(e.code === 'EADDRINUSE' ? 'the port is in use' : e.message),
    );
    server.listen(port, host, () => server.close(() => resolvePort(null)));
  });
}

function tail(file: string, lines: number): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text
      .trimEnd()
      .split('\n')
      .slice(-lines)
      .map((l) => `    ${l.length > 400 ? `${l.slice(0, 400)}...` : l}`)
      .join('\n');
  } catch {
    return '    (no log)';
  }
}

function health(url: string): Promise<{ role?: string; leader?: string } | null> {
  return new Promise((resolveHealth) => {
    const req = get(`${url}/health`, { timeout: 1000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => resolveHealth(null));
      res.on('end', () => {
        if (res.statusCode !== 200) return resolveHealth(null);
        try {
          resolveHealth(
            JSON.parse(Buffer.concat(chunks).toString('utf8')) as { role?: string; leader?: string },
          );
        } catch {
          resolveHealth(null);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolveHealth(null));
  });
}

/** The node whose /health says it leads (null while none does). */
async function currentLeader(nodes: DevNode[]): Promise<string | null> {
  const answers = await Promise.all(
    nodes.filter((n) => !n.exited).map(async (n) => ({ n, h: await health(n.clientUrl) })),
  );
  const leading = answers.find((a) => a.h?.role === 'leader');
  if (leading !== undefined) return leading.n.id;
  return null;
}

async function waitForLeader(
  nodes: DevNode[],
  deadlineMs: number,
  cancelled: () => boolean,
): Promise<string | null> {
  const deadline = performance.now() + deadlineMs;
  while (performance.now() < deadline && !cancelled()) {
    const l = await currentLeader(nodes);
    if (l !== null) return l;
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}
