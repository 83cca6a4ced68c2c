/**
 * Failover figures (`npm run faults -- --failover --rounds N`): a 3-node cluster with the default
 * timing (heartbeat 50 ms, election timeout 500 ms) under a steady write load; each round kills the
 * leader with SIGKILL and measures
 *   - recovery: time from the kill to the first write acknowledged through a surviving node
 *     (probes start right after the kill, one every PROBE_INTERVAL_MS, each through a random
 *     survivor, none waiting for the previous one);
 *   - info: how many writes of the steady load ended with an unknown outcome during the round.
 * Then the killed node is restarted and the cluster settles before the next round.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from '../raft/network.js';
import { FaultCluster } from './fault-cluster.js';
import { writeCompletion } from './node-http.js';
import { pick, sleep } from './workload.js';

export interface FailoverOptions {
  rounds: number;
  writers: number;
  outDir: string;
  seed: number;
}

export interface FailoverRound {
  round: number;
  killed: string;
  recoveryMs: number | null;
  infoWrites: number;
}

export interface FailoverReport {
  rounds: FailoverRound[];
  recoveryMs: { p50: number; p99: number; max: number };
  infoWrites: { p50: number; p99: number; max: number; total: number };
  failedRounds: number;
}

const PROBE_INTERVAL_MS = 10;
const PROBE_TIMEOUT_MS = 3000;
/** A round that has not recovered within this counts as failed (recoveryMs null). */
const ROUND_DEADLINE_MS = 15_000;
const WRITE_TIMEOUT_MS = 3000;
const NODE_ARGS = ['--heartbeat-interval-ms', '50', '--election-timeout-ms', '500', '--request-timeout-ms', '5000'];

/** Nearest-rank percentile. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export async function runFailover(options: FailoverOptions): Promise<FailoverReport> {
  if (!Number.isInteger(options.rounds) || options.rounds < 1 || options.rounds > 1000) throw new Error(`--rounds must be 1..1000, got ${options.rounds}`);
  mkdirSync(options.outDir, { recursive: true });
  const random = seededRandom(options.seed);
  const log = (line: string) => writeFileSync(join(options.outDir, 'nemesis.log'), `${new Date().toISOString()} ${line}\n`, { flag: 'a' });
  const cluster = await FaultCluster.create({ nodes: 3, spares: 0, args: NODE_ARGS });
  const rounds: FailoverRound[] = [];
  let infoSinceMark = 0;
  let stop = false;
  try {
    await cluster.startAll();
    // Steady load: each writer writes its own keys through a random up member, one at a time.
    const writers = Array.from({ length: options.writers }, async (_, w) => {
      let n = 0;
      while (!stop) {
        const up = cluster.upMembers();
        if (up.length === 0) {
          await sleep(20);
          continue;
        }
        const o = await cluster.http(pick(random, up)).send('PUT', `/kv/load-${w}-${n % 100}`, WRITE_TIMEOUT_MS, `v${n}`);
        n++;
        if (writeCompletion(o).type === 'info') infoSinceMark++;
        if (o.kind !== 'reply' || o.status !== 200) await sleep(10);
      }
    });
    for (let round = 1; round <= options.rounds; round++) {
      const leader = await waitLeader(cluster);
      await sleep(500); // the load runs against a settled cluster before the kill
      infoSinceMark = 0;
      const killedAt = performance.now();
      await cluster.kill(leader);
      log(`round ${round}: kill -9 leader ${leader}`);
      const recoveryMs = await firstWrite(cluster, killedAt, random);
      // Count the load's unknown outcomes until every write in flight at the kill has ended.
      await sleep(WRITE_TIMEOUT_MS + 200);
      const r: FailoverRound = { round, killed: leader, recoveryMs, infoWrites: infoSinceMark };
      rounds.push(r);
      log(`round ${round}: first write after ${recoveryMs === null ? 'never' : `${recoveryMs.toFixed(1)} ms`}; info writes ${r.infoWrites}`);
      process.stdout.write(`round ${round}: killed ${leader}, first write after ${recoveryMs === null ? 'never' : `${recoveryMs.toFixed(0)} ms`}, info writes ${r.infoWrites}\n`);
      cluster.restart(leader);
      await cluster.processes.waitServing(leader, 60_000);
      await cluster.processes.waitForLeader(cluster.members, 30_000);
    }
    stop = true;
    await Promise.all(writers);
  } finally {
    stop = true;
    cluster.copyLogs(options.outDir);
    await cluster.destroy();
  }
  const ok = rounds.map((r) => r.recoveryMs).filter((v): v is number => v !== null).sort((a, b) => a - b);
  const infos = rounds.map((r) => r.infoWrites).sort((a, b) => a - b);
  const report: FailoverReport = {
    rounds,
    recoveryMs: { p50: percentile(ok, 50), p99: percentile(ok, 99), max: ok[ok.length - 1] ?? Number.NaN },
    infoWrites: { p50: percentile(infos, 50), p99: percentile(infos, 99), max: infos[infos.length - 1] ?? 0, total: infos.reduce((a, b) => a + b, 0) },
    failedRounds: rounds.length - ok.length,
  };
  writeFileSync(join(options.outDir, 'failover.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

async function waitLeader(cluster: FaultCluster): Promise<string> {
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    const l = await cluster.leader();
    if (l !== null) return l;
    await sleep(50);
  }
  throw new Error('no leader within 30 s');
}

/** Probes writes through survivors from the kill on; ms from the kill to the first acknowledged one. */
async function firstWrite(cluster: FaultCluster, killedAt: number, random: () => number): Promise<number | null> {
  let first: number | null = null;
  const probes: Array<Promise<void>> = [];
  let i = 0;
  while (first === null && performance.now() - killedAt < ROUND_DEADLINE_MS) {
    const id = pick(random, cluster.upMembers());
    const n = i++;
    probes.push(
      cluster
        .http(id)
        .send('PUT', `/kv/probe-${n % 50}`, PROBE_TIMEOUT_MS, `p${n}`)
        .then((o) => {
          if (o.kind === 'reply' && o.status === 200 && first === null) first = performance.now() - killedAt;
        }),
    );
    await sleep(PROBE_INTERVAL_MS);
  }
  await Promise.all(probes);
  return first;
}
