/**
 * `npm run faults -- --time S --nodes 3|5 --clients C --workload register|set|bank
 *                    --nemesis kill,pause,partition,membership,leader --out DIR [--seed N]`
 * `npm run faults -- --failover --rounds N [--out DIR]`
 *
 * Prints one summary line (valid=… ops=… ok=… fail=… info=… faults=…); exit 0 iff valid.
 * Exit 2 on bad arguments. See docs/testing.md, "Fault testing of real clusters".
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { runFailover } from './failover.js';
import { WORKLOADS, type WorkloadName, runFaultTest, summaryLine } from './fault-run.js';
import { type PartitionShape, PARTITION_SHAPES, parseNemesisList, parsePartitionShapes } from './nemesis.js';

function integer(min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer ${min}..${max}`);
    return n;
  };
}

function workloadName(raw: string): WorkloadName {
  const w = WORKLOADS.find((x) => x === raw);
  if (w === undefined) throw new InvalidArgumentError(`expected one of ${WORKLOADS.join(', ')}`);
  return w;
}

function nemesisList(raw: string) {
  try {
    return parseNemesisList(raw);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

interface Flags {
  time: number;
  nodes: number;
  clients: number;
  workload: WorkloadName;
  nemesis: ReturnType<typeof parseNemesisList>;
  out?: string;
  seed?: number;
  failover?: boolean;
  rounds: number;
  writers: number;
  timeout: number;
  keys: number;
  plantedBug?: string;
  partitionShapes?: PartitionShape[];
}

const program = new Command('faults')
  .description('fault tests of real AtlasDB clusters (docs/testing.md)')
  .option('--time <seconds>', 'how long clients run while the nemesis works', integer(1, 86_400), 60)
  .option('--nodes <n>', 'cluster size (3 or 5)', integer(1, 9), 3)
  .option('--clients <n>', 'concurrent clients', integer(1, 256), 5)
  .option('--workload <name>', `workload: ${WORKLOADS.join(', ')}`, workloadName, 'register')
  .option('--nemesis <list>', 'faults: kill,pause,partition,membership,leader (or none)', nemesisList, parseNemesisList('kill,pause,partition'))
  .option('--out <dir>', 'where history.jsonl, summary.json, nemesis.log and node logs go')
  .option('--seed <n>', 'seed of the run (default: random, printed)', integer(0, 2 ** 31 - 1))
  .option('--timeout <ms>', 'client timeout per attempt', integer(100, 600_000), 4000)
  .option('--keys <n>', 'register: keys in use at a time', integer(1, 10_000), 8)
  .option('--planted-bug <names>', 'TEST-ONLY: plant a Raft bug in every node (ATLAS_TEST_PLANTED_BUG), e.g. stale-read')
  .option('--partition-shapes <list>', `partition shapes to use: ${PARTITION_SHAPES.join(', ')} (default all)`, (raw: string) => {
    try {
      return parsePartitionShapes(raw);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  })
  .option('--failover', 'measure leader failover instead of checking a workload')
  .option('--rounds <n>', 'failover rounds', integer(1, 1000), 20)
  .option('--writers <n>', 'failover: steady-load writers', integer(1, 64), 4)
  .exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : 2))
  .parse(process.argv);

const flags = program.opts<Flags>();
const seed = flags.seed ?? Math.floor(Math.random() * 2 ** 31);
const outDir = flags.out ?? join(tmpdir(), `atlas-faults-${Date.now()}`);

if (flags.failover) {
  const report = await runFailover({ rounds: flags.rounds, writers: flags.writers, outDir, seed });
  const f = (v: number) => (Number.isFinite(v) ? `${v.toFixed(0)} ms` : 'n/a');
  process.stdout.write(
    `failover rounds=${report.rounds.length} failed=${report.failedRounds} recovery p50=${f(report.recoveryMs.p50)} p99=${f(report.recoveryMs.p99)} max=${f(report.recoveryMs.max)} ` +
      `info-writes p50=${report.infoWrites.p50} p99=${report.infoWrites.p99} max=${report.infoWrites.max} total=${report.infoWrites.total} out=${outDir}\n`,
  );
  process.exit(report.failedRounds === 0 ? 0 : 1);
}

const summary = await runFaultTest({
  timeSeconds: flags.time,
  nodes: flags.nodes,
  clients: flags.clients,
  workload: flags.workload,
  nemesis: flags.nemesis,
  outDir,
  seed,
  timeoutMs: flags.timeout,
  keys: flags.keys,
  ...(flags.plantedBug ? { plantedBug: flags.plantedBug } : {}),
  ...(flags.partitionShapes ? { partitionShapes: flags.partitionShapes } : {}),
});
for (const p of summary.problems) process.stderr.write(`problem: ${p}\n`);
process.stdout.write(`${summaryLine(summary)} seed=${seed} out=${outDir}\n`);
process.exit(summary.valid ? 0 : 1);
