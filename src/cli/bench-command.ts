/**
 * `atlas bench`: a closed-loop HTTP load generator against AtlasDB or etcd (its v3 JSON gateway),
 * printing throughput, latency percentiles (p50/p90/p99/p99.9/max) and errors by kind.
 *
 *   atlas bench --endpoints http://127.0.0.1:8081 --workload mixed:90 --connections 64 --duration 10
 *
 * Exit codes: 0 the run completed with at least one successful request, 1 no request succeeded
 * (the figures would be meaningless), 2 a usage error.
 */
import { Command, Option } from 'commander';
import {
  type BenchOptions,
  type BenchTarget,
  BenchUsageError,
  parseEndpoints,
  parseWorkload,
  type ReadConsistency,
  validateBenchOptions,
} from '../bench/bench-options.js';
import { formatBenchResult, runBench } from '../bench/load-generator.js';

const USAGE_EXIT = 2;

interface BenchFlags {
  endpoints: string;
  target: BenchTarget;
  workload: string;
  consistency: ReadConsistency;
  connections: string;
  duration: string;
  warmup: string;
  keys: string;
  valueSize: string;
  rate?: string;
  threads: string;
  requestTimeoutMs: string;
  json?: boolean;
}

function numberFlag(flag: string, text: string): number {
  const n = /^[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(n)) throw new BenchUsageError(`${flag} must be a number, got ${JSON.stringify(text)}`);
  return n;
}

export function benchOptionsFromFlags(f: BenchFlags): BenchOptions {
  return validateBenchOptions({
    endpoints: parseEndpoints(f.endpoints),
    target: f.target,
    workload: parseWorkload(f.workload),
    consistency: f.consistency,
    connections: numberFlag('--connections', f.connections),
    durationS: numberFlag('--duration', f.duration),
    warmupS: numberFlag('--warmup', f.warmup),
    keys: numberFlag('--keys', f.keys),
    valueSize: numberFlag('--value-size', f.valueSize),
    rate: f.rate === undefined ? undefined : numberFlag('--rate', f.rate),
    threads: numberFlag('--threads', f.threads),
    requestTimeoutMs: numberFlag('--request-timeout-ms', f.requestTimeoutMs),
  });
}

export function registerBenchCommand(program: Command): Command {
  const command = new Command('bench')
    .description('drive AtlasDB or etcd with a closed-loop HTTP load and report throughput and latency')
    .requiredOption('--endpoints <urls>', 'comma-separated client URLs; connections are spread over them')
    .addOption(
      new Option('--target <system>', 'what the endpoints serve').choices(['atlas', 'etcd']).default('atlas'),
    )
    .option('--workload <w>', 'write, read, or mixed:<read%>', 'write')
    .addOption(
      new Option('--consistency <level>', 'consistency of the reads')
        .choices(['linearizable', 'serializable'])
        .default('linearizable'),
    )
    .option('--connections <n>', 'connections in all, each with one request in flight', '16')
    .option('--duration <s>', 'measured seconds', '10')
    .option('--warmup <s>', 'unmeasured seconds before measuring', '1')
    .option('--keys <k>', 'distinct keys, drawn uniformly', '10000')
    .option('--value-size <b>', 'bytes per written value', '100')
    .option('--rate <r>', 'total requests per second (default: as fast as answers come)')
    .option(
      '--threads <n>',
      'worker threads sharing the connections (0: one per 64 connections, up to half the cores)',
      '0',
    )
    .option('--request-timeout-ms <ms>', 'a request unanswered this long counts as a timeout error', '10000')
    .option('--json', 'print one JSON object instead of the report')
    .action(async (flags: BenchFlags) => {
      let options: BenchOptions;
      try {
        options = benchOptionsFromFlags(flags);
      } catch (e) {
        if (!(e instanceof BenchUsageError)) throw e;
        process.stderr.write(`atlas bench: ${e.message}\n`);
        process.exitCode = USAGE_EXIT;
        return;
      }
      const result = await runBench(options);
      process.stdout.write(flags.json ? `${JSON.stringify(result)}\n` : formatBenchResult(result));
      process.exitCode = result.reads + result.writes > 0 ? 0 : 1;
    });
  program.addCommand(command);
  return command;
}
