#!/usr/bin/env node
/**
 * The simulator's command line (docs/testing.md):
 *
 *   npm run sim -- --seeds N [--start S] [--nodes K] [--bug NAME] [--ops N] [--jobs J]
 *   npm run sim -- --seed S [--nodes K] [--bug NAME] [--trace]
 *
 * Prints `seeds=N passed=P failed=F`, then one line per failed seed (its seed and the check that
 * failed). Exits 0 iff no seed failed. Without --nodes, seeds rotate over 3, 5 and 7 nodes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Command, InvalidArgumentError } from 'commander';
import type { PlantedBug } from '../../src/raft/types.js';
import { type SimulationResult, nodesForSeed, runSimulation } from './simulation.js';

const BUGS: readonly PlantedBug[] = [
  'commit-old-term',
  'vote-any-log',
  'ack-before-persist',
  'stale-read',
  'keep-conflict',
];
const MAX_SEEDS = 10_000_000;

interface RunPlan {
  seeds: number[];
  nodes: number | undefined;
  bug: PlantedBug | undefined;
  operations: number;
}

async function runSeeds(plan: RunPlan, onResult: (r: SimulationResult) => void): Promise<void> {
  for (const seed of plan.seeds) {
    const r = await runSimulation({
      seed,
      nodes: nodesForSeed(seed, plan.nodes),
      operations: plan.operations,
      bugs: plan.bug === undefined ? [] : [plan.bug],
    });
    onResult(r);
  }
}

function integer(name: string, min: number, max: number): (v: string) => number {
  return (v) => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    const n = Number(v);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be in [${min}, ${max}]`);
    return n;
  };
}

function formatFailure(r: SimulationResult): string {
  const message = r.failure!.message.split('\n')[0]!;
  return `FAILED seed=${r.seed} nodes=${r.nodes} check=${r.failure!.check}: ${message}`;
}

async function main(): Promise<number> {
  const program = new Command()
    .name('sim')
    .description('AtlasDB deterministic simulation: whole clusters, simulated network/disks, virtual time')
    .option('--seeds <n>', 'number of seeds to run', integer('--seeds', 1, MAX_SEEDS))
    .option('--start <s>', 'first seed', integer('--start', 0, 2 ** 32 - 1), 0)
    .option('--seed <s>', 'run one seed (replays bit-for-bit)', integer('--seed', 0, 2 ** 32 - 1))
    .option('--nodes <k>', 'cluster size (default: rotate 3/5/7 by seed)', integer('--nodes', 1, 9))
    .option('--ops <n>', 'client operations per seed', integer('--ops', 1, 1_000_000), 500)
    .option('--bug <name>', `plant one bug: ${BUGS.join(', ')}`)
    .option('--trace', 'print the event trace (with --seed)', false)
    .option('--jobs <j>', 'worker threads', integer('--jobs', 1, 64), 1)
    .option('--save <dir>', "write each failing seed's history (JSON Lines) and its replayed trace there")
    .allowExcessArguments(false);
  program.parse();
  const o = program.opts<{
    seeds?: number;
    start: number;
    seed?: number;
    nodes?: number;
    ops: number;
    bug?: string;
    trace: boolean;
    jobs: number;
    save?: string;
  }>();
  if (o.bug !== undefined && !BUGS.includes(o.bug as PlantedBug)) {
    throw new InvalidArgumentError(`--bug must be one of ${BUGS.join(', ')}`);
  }
  const bug = o.bug as PlantedBug | undefined;
  if ((o.seed === undefined) === (o.seeds === undefined))
    throw new InvalidArgumentError('give either --seed S or --seeds N');
  if (o.trace && o.seed === undefined) throw new InvalidArgumentError('--trace needs --seed S');

  if (o.seed !== undefined) {
    const r = await runSimulation({
      seed: o.seed,
      nodes: nodesForSeed(o.seed, o.nodes),
      operations: o.ops,
      bugs: bug === undefined ? [] : [bug],
      trace: o.trace,
    });
    if (o.trace) for (const line of r.trace) process.stdout.write(`${line}\n`);
    process.stdout.write(`seeds=1 passed=${r.passed ? 1 : 0} failed=${r.passed ? 0 : 1}\n`);
    if (!r.passed) process.stdout.write(`${formatFailure(r)}\n`);
    process.stdout.write(
      `virtual=${(r.virtualMs / 1000).toFixed(2)}s events=${r.stats.events} messages=${r.stats.messages} ` +
        `ops=${r.stats.historyOps} info=${r.stats.info} crashes=${r.stats.crashes} partitions=${r.stats.partitions} ` +
        `membership=${r.stats.membershipChanges} transfers=${r.stats.transfers} snapshots=${r.stats.snapshotsInstalled} ` +
        `compactions=${r.stats.compactions} leaderChanges=${r.stats.leaderChanges}\n`,
    );
    return r.passed ? 0 : 1;
  }

  const seeds = Array.from({ length: o.seeds! }, (_, i) => o.start + i);
  const started = performance.now();
  const failures: SimulationResult[] = [];
  let passed = 0;
  const onResult = (r: SimulationResult) => {
    if (r.passed) passed++;
    else failures.push(r);
  };
  if (o.jobs === 1) {
    await runSeeds({ seeds, nodes: o.nodes, bug, operations: o.ops }, onResult);
  } else {
    await Promise.all(
      Array.from({ length: o.jobs }, (_, j) => {
        const mine = seeds.filter((_, i) => i % o.jobs === j);
        return new Promise<void>((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), {
            workerData: { seeds: mine, nodes: o.nodes, bug, operations: o.ops } satisfies RunPlan,
          });
          w.on('message', (r: SimulationResult) => onResult(r));
          w.on('error', reject);
          w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`))));
        });
      }),
    );
  }
  const seconds = (performance.now() - started) / 1000;
  failures.sort((a, b) => a.seed - b.seed);
  if (o.save !== undefined) await saveFailures(o.save, failures, o.nodes, bug, o.ops);
  process.stdout.write(`seeds=${seeds.length} passed=${passed} failed=${failures.length}\n`);
  for (const r of failures) process.stdout.write(`${formatFailure(r)}\n`);
  process.stderr.write(`elapsed=${seconds.toFixed(1)}s seeds/s=${(seeds.length / seconds).toFixed(2)}\n`);
  return failures.length === 0 ? 0 : 1;
}

/**
 * Keeps what a failure needs for a post-mortem: the history as recorded in the failing run, and the
 * seed replayed with its trace (whose verdict must match: a replay that passes means the run was not
 * deterministic, which is itself a bug worth the report).
 */
async function saveFailures(
  dir: string,
  failures: SimulationResult[],
  nodes: number | undefined,
  bug: PlantedBug | undefined,
  operations: number,
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const f of failures) {
    const base = join(dir, `seed-${f.seed}`);
    writeFileSync(`${base}.history.jsonl`, f.history.map((e) => JSON.stringify(e)).join('\n') + '\n');
    const again = await runSimulation({
      seed: f.seed,
      nodes: nodesForSeed(f.seed, nodes),
      operations,
      bugs: bug === undefined ? [] : [bug],
      trace: true,
    });
    writeFileSync(`${base}.trace.txt`, again.trace.join('\n') + '\n');
    const same = JSON.stringify(again.failure) === JSON.stringify(f.failure);
    process.stdout.write(
      `saved ${base}.{history.jsonl,trace.txt}; replay ${same ? 'reproduced the failure' : 'DIFFERED'}\n`,
    );
  }
}

if (isMainThread) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`sim: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 2;
    },
  );
} else {
  const plan = workerData as RunPlan;
  runSeeds(plan, (r) =>
    parentPort!.postMessage({ ...r, trace: [], history: r.passed ? [] : r.history }),
  ).then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`sim worker: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(2);
    },
  );
}
