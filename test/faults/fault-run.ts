/**
 * One fault run: fresh cluster, concurrent clients for `timeSeconds` while the nemesis works, heal,
 * a 10-second serving check on every member, final reads, the workload's check, and the files
 * history.jsonl, summary.json, nemesis.log and <node>.log in `outDir`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from '../raft/network.js';
import { BankWorkload } from './bank-workload.js';
import { FaultCluster } from './fault-cluster.js';
import { HistoryRecorder } from './history-recorder.js';
import { Nemesis, type NemesisKind, type PartitionShape } from './nemesis.js';
import { REGISTER_DEFAULTS, RegisterWorkload } from './register-workload.js';
import { SetWorkload } from './set-workload.js';
import { type Workload, type WorkloadContext, sleep } from './workload.js';

export const WORKLOADS = ['register', 'set', 'bank'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export interface FaultRunOptions {
  timeSeconds: number;
  nodes: number;
  clients: number;
  workload: WorkloadName;
  nemesis: NemesisKind[];
  outDir: string;
  /** Seed of the run's randomness (workload and nemesis choices; printed in the summary). */
  seed: number;
  /** TEST-ONLY planted bug for every node (ATLAS_TEST_PLANTED_BUG). */
  plantedBug?: string;
  /**
   * A run already invalid because a member did not serve again after healing skips the history
   * check. For tests that only need to know whether a run is invalid: the history of a cluster
   * broken by a planted bug can take the linearizability search minutes (163 s measured).
   */
  skipCheckWhenInvalid?: boolean;
  /** Client timeout per attempt. */
  timeoutMs?: number;
  /** Register keys in use at a time (default 8). */
  keys?: number;
  /** Partition shapes the nemesis chooses from (default: all). */
  partitionShapes?: PartitionShape[];
  /** Quiet time between faults, min..max ms (default 1000..3000). */
  restMs?: [number, number];
  /** How long a fault is held, min..max ms (default 1500..4000). */
  holdMs?: [number, number];
}

export interface FaultRunSummary {
  valid: boolean;
  ops: number;
  ok: number;
  fail: number;
  info: number;
  faults: number;
  workload: WorkloadName;
  nemesis: NemesisKind[];
  nodes: number;
  clients: number;
  seconds: number;
  seed: number;
  plantedBug: string | null;
  problems: string[];
  faultCounts: Record<string, number>;
  /** Per member: ms from the end of healing until it served a write and a linearizable read (null: never within 10 s). */
  servedAfterHealMs: Record<string, number | null>;
  details: Record<string, unknown>;
  outDir: string;
}

/** Timing of the nodes in a fault run: the cluster tests' (test/cluster), tolerant of a loaded machine. */
const ELECTION_TIMEOUT_MS = 1000;
const NODE_ARGS = ['--heartbeat-interval-ms', '100', '--election-timeout-ms', String(ELECTION_TIMEOUT_MS), '--request-timeout-ms', '5000', '--snapshot-threshold-entries', '2000'];
/** After healing, every member must serve again within this (task contract). */
const SERVE_AFTER_HEAL_MS = 10_000;

function makeWorkload(options: FaultRunOptions): Workload {
  switch (options.workload) {
    case 'register':
      return new RegisterWorkload({ ...REGISTER_DEFAULTS, keys: options.keys ?? REGISTER_DEFAULTS.keys });
    case 'set':
      return new SetWorkload(Math.max(1, Math.ceil(options.clients / 2)));
    case 'bank':
      return new BankWorkload(5);
  }
}

export function summaryLine(s: FaultRunSummary): string {
  return `valid=${s.valid} ops=${s.ops} ok=${s.ok} fail=${s.fail} info=${s.info} faults=${s.faults}`;
}

/** Waits until `id` serves a write and a linearizable read; ms taken, or null after the deadline. */
async function servesAgain(cluster: FaultCluster, id: string, started: number, timeoutMs: number): Promise<number | null> {
  const deadline = started + SERVE_AFTER_HEAL_MS;
  const key = `heal-check/${id}`;
  while (performance.now() < deadline) {
    const left = Math.max(1, Math.min(timeoutMs, deadline - performance.now()));
    const w = await cluster.http(id).send('PUT', `/kv/${encodeURIComponent(key)}`, left, `${Date.now()}`);
    if (w.kind === 'reply' && w.status === 200) {
      const r = await cluster.http(id).send('GET', `/kv/${encodeURIComponent(key)}`, Math.max(1, Math.min(timeoutMs, deadline - performance.now())));
      if (r.kind === 'reply' && r.status === 200) return Math.round(performance.now() - started);
    }
    await sleep(100);
  }
  return null;
}

export async function runFaultTest(options: FaultRunOptions): Promise<FaultRunSummary> {
  if (!(options.timeSeconds > 0 && options.timeSeconds <= 86_400)) throw new Error(`--time must be 1..86400 s, got ${options.timeSeconds}`);
  if (!Number.isInteger(options.clients) || options.clients < 1 || options.clients > 256) throw new Error(`--clients must be 1..256, got ${options.clients}`);
  mkdirSync(options.outDir, { recursive: true });
  const random = seededRandom(options.seed);
  const timeoutMs = options.timeoutMs ?? 4000;
  // Enough fresh ids for one membership change every ~10 s.
  const spares = options.nemesis.includes('membership') ? Math.min(500, Math.ceil(options.timeSeconds / 10) + 2) : 0;
  const cluster = await FaultCluster.create({
    nodes: options.nodes,
    spares,
    args: NODE_ARGS,
    ...(options.plantedBug ? { plantedBug: options.plantedBug } : {}),
  });
  const history = new HistoryRecorder();
  const workload = makeWorkload(options);
  const ctx: WorkloadContext = { cluster, history, random, timeoutMs };
  const nemesisLog = join(options.outDir, 'nemesis.log');
  writeFileSync(nemesisLog, '');
  const nemesis = new Nemesis(cluster, options.nemesis, random, nemesisLog, {
    electionTimeoutMs: ELECTION_TIMEOUT_MS,
    restMs: options.restMs ?? [1000, 3000],
    holdMs: options.holdMs ?? [1500, 4000],
    ...(options.partitionShapes ? { shapes: options.partitionShapes } : {}),
  });
  const problems: string[] = [];
  const servedAfterHealMs: Record<string, number | null> = {};
  let details: Record<string, unknown> = {};
  try {
    await cluster.startAll();
    nemesis.log(`cluster up: ${cluster.members.join(', ')} (data in ${cluster.root})`);
    await workload.setup(ctx);
    const end = performance.now() + options.timeSeconds * 1000;
    const stopped = () => performance.now() >= end;
    const clients = Array.from({ length: options.clients }, (_, i) => workload.runClient(ctx, i, stopped));
    await Promise.all([nemesis.run(stopped), ...clients]);

    cluster.heal();
    const healed = performance.now();
    nemesis.log(`heal everything: members ${cluster.members.join(', ')}`);
    const served = await Promise.all(cluster.members.map((id) => servesAgain(cluster, id, healed, timeoutMs)));
    cluster.members.forEach((id, i) => {
      servedAfterHealMs[id] = served[i]!;
      if (served[i] === null) problems.push(`${id} did not serve a write and a read within ${SERVE_AFTER_HEAL_MS} ms after healing`);
    });
    nemesis.log(`served after heal (ms): ${JSON.stringify(servedAfterHealMs)}`);
    if (options.skipCheckWhenInvalid === true && problems.length > 0) {
      nemesis.log('history check skipped: the run is already invalid');
    } else {
      const verdict = await workload.finish(ctx);
      problems.push(...verdict.problems);
      details = verdict.details;
      if (workload instanceof RegisterWorkload && verdict.problems.length > 0) {
        writeFileSync(join(options.outDir, 'check-report.txt'), workload.report());
      }
    }
  } catch (e) {
    problems.push(`harness error: ${(e as Error).stack ?? String(e)}`);
  } finally {
    history.writeJsonl(join(options.outDir, 'history.jsonl'));
    cluster.copyLogs(options.outDir);
    await cluster.destroy().catch(() => {});
  }
  const c = history.counts();
  const summary: FaultRunSummary = {
    valid: problems.length === 0,
    ops: c.ops,
    ok: c.ok,
    fail: c.fail,
    info: c.info,
    faults: nemesis.faults,
    workload: options.workload,
    nemesis: options.nemesis,
    nodes: options.nodes,
    clients: options.clients,
    seconds: options.timeSeconds,
    seed: options.seed,
    plantedBug: options.plantedBug ?? null,
    problems,
    faultCounts: nemesis.counts,
    servedAfterHealMs,
    details,
    outDir: options.outDir,
  };
  writeFileSync(join(options.outDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
