/**
 * `runBench(options)`: drives one target with the options' workload and returns throughput,
 * latency percentiles and errors by kind. Connections are dealt round-robin to threads; with one
 * thread the loops run on the caller's event loop, otherwise each thread is a worker
 * (load-worker.ts) and their histograms are added together.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { decodeFromCompressedBase64 } from 'hdr-histogram-js';
import type { BenchOptions } from './bench-options.js';
import { type LoopPlan, type LoopResult, runLoops } from './load-loop.js';
import type { WorkerMessage, WorkerStart } from './load-worker.js';

export interface LatencySummaryMs {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface BenchResult {
  target: string;
  workload: string;
  consistency: string;
  connections: number;
  endpoints: string[];
  threads: number;
  durationS: number;
  /** Successful requests per second over the measured window. */
  opsPerSec: number;
  reads: number;
  writes: number;
  /** Reads of keys never written (AtlasDB 404); successes, counted apart. */
  notFound: number;
  errors: Record<string, number>;
  errorCount: number;
  latencyMs: LatencySummaryMs;
}

/**
 * Connections per thread above which another worker is added, up to half the cores: the servers
 * under test need the other half. Measured on the 2-core development machine against a trivial
 * server, 64 connections on one thread drove 2.6-8k req/s and on two threads 0.7-1.5k req/s (the
 * workers took the server's CPU), so there a single thread is the faster generator.
 */
const CONNECTIONS_PER_THREAD = 64;
/** Between the last worker reporting ready and the common start instant (message delivery). */
const START_DELAY_MS = 50;
/** A worker that has not loaded its modules by then is reported as failed. */
const WORKER_READY_DEADLINE_MS = 60_000;

export function threadCount(options: BenchOptions): number {
  if (options.threads > 0) return Math.min(options.threads, options.connections);
  const wanted = Math.ceil(options.connections / CONNECTIONS_PER_THREAD);
  return Math.max(1, Math.min(wanted, Math.floor(availableParallelism() / 2), options.connections));
}

/** A started worker: `ready` settles once it can run, `result` with what it measured. */
interface RunningWorker {
  ready: Promise<void>;
  result: Promise<LoopResult>;
  start(startAtEpochMs: number): void;
  stop(): void;
}

function startWorker(plan: LoopPlan): RunningWorker {
  const worker = new Worker(new URL('./load-worker.js', import.meta.url), { workerData: plan });
  let onReady!: () => void;
  let failReady!: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    failReady = reject;
  });
  const result = new Promise<LoopResult>((resolve, reject) => {
    let settled = false;
    const fail = (e: Error) => {
      settled = true;
      failReady(e);
      reject(e);
    };
    worker.on('message', (m: WorkerMessage) => {
      if ('ready' in m) return onReady();
      settled = true;
      if (m.ok) resolve(m.result);
      else fail(new Error(`bench worker failed: ${m.message}`));
    });
    worker.once('error', (e) => fail(e));
    worker.once('exit', (code) => {
      if (!settled) fail(new Error(`bench worker exited with code ${code} before reporting`));
    });
  });
  // Whoever awaits only one of the two must not leave the other's rejection unhandled.
  ready.catch(() => {});
  result.catch(() => {});
  return {
    ready,
    result,
    start: (startAtEpochMs) => worker.postMessage({ startAtEpochMs } satisfies WorkerStart),
    stop: () => void worker.terminate(),
  };
}

/** Runs the plans on worker threads that all start sending at one instant, once all are ready. */
async function runInWorkers(plans: LoopPlan[]): Promise<LoopResult[]> {
  const workers = plans.map(startWorker);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.all(workers.map((w) => w.ready)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`bench workers not ready within ${WORKER_READY_DEADLINE_MS} ms`)),
          WORKER_READY_DEADLINE_MS,
        );
      }),
    ]);
  } catch (e) {
    for (const w of workers) w.stop();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  const startAtEpochMs = Date.now() + START_DELAY_MS;
  for (const w of workers) w.start(startAtEpochMs);
  return Promise.all(workers.map((w) => w.result));
}

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const threads = threadCount(options);
  const plans: LoopPlan[] = Array.from({ length: threads }, (_, t) => ({
    options,
    loopIndexes: [],
    // Workers are told the instant when all of them are ready; one thread starts now.
    startAtEpochMs: Date.now(),
    seed: (Date.now() ^ (t * 0x5bd1e995)) >>> 0,
  }));
  for (let i = 0; i < options.connections; i++) (plans[i % threads] as LoopPlan).loopIndexes.push(i);
  const results = threads === 1 ? [await runLoops(plans[0] as LoopPlan)] : await runInWorkers(plans);

  const histogram = decodeFromCompressedBase64((results[0] as LoopResult).histogramBase64);
  for (const r of results.slice(1)) {
    const other = decodeFromCompressedBase64(r.histogramBase64);
    histogram.add(other);
    other.destroy();
  }
  const errors: Record<string, number> = {};
  let reads = 0;
  let writes = 0;
  let notFound = 0;
  for (const r of results) {
    reads += r.reads;
    writes += r.writes;
    notFound += r.notFound;
    for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  }
  const ms = (us: number): number => us / 1000;
  const latencyMs: LatencySummaryMs = {
    p50: ms(histogram.getValueAtPercentile(50)),
    p90: ms(histogram.getValueAtPercentile(90)),
    p99: ms(histogram.getValueAtPercentile(99)),
    p999: ms(histogram.getValueAtPercentile(99.9)),
    max: ms(histogram.maxValue),
    mean: ms(histogram.mean),
  };
  histogram.destroy();
  return {
    target: options.target,
    workload: options.workload.name,
    consistency: options.consistency,
    connections: options.connections,
    endpoints: options.endpoints,
    threads,
    durationS: options.durationS,
    opsPerSec: (reads + writes) / options.durationS,
    reads,
    writes,
    notFound,
    errors,
    errorCount: Object.values(errors).reduce((a, b) => a + b, 0),
    latencyMs,
  };
}

/** A human-readable report of one run. */
export function formatBenchResult(r: BenchResult): string {
  const f = (v: number): string => v.toFixed(v < 10 ? 2 : 1);
  const lines = [
    `target ${r.target}  workload ${r.workload}  consistency ${r.consistency}  connections ${r.connections}  threads ${r.threads}`,
    `endpoints ${r.endpoints.join(',')}`,
    `throughput ${r.opsPerSec.toFixed(0)} req/s over ${r.durationS} s  (reads ${r.reads}, writes ${r.writes}${r.notFound > 0 ? `, of which ${r.notFound} reads found no key` : ''})`,
    `latency ms  p50 ${f(r.latencyMs.p50)}  p90 ${f(r.latencyMs.p90)}  p99 ${f(r.latencyMs.p99)}  p99.9 ${f(r.latencyMs.p999)}  max ${f(r.latencyMs.max)}`,
    r.errorCount === 0
      ? 'errors none'
      : `errors ${r.errorCount}: ${Object.entries(r.errors)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
  ];
  return `${lines.join('\n')}\n`;
}
