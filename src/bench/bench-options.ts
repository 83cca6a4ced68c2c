/**
 * What one `atlas bench` run does: the target system, the workload mix, the connection count and
 * the key/value shape. Parsed from CLI flags by src/cli/bench-command.ts and built directly by
 * bench/compare.ts; everything here is plain data so it can cross into worker threads.
 */

export type BenchTarget = 'atlas' | 'etcd';
export type ReadConsistency = 'linearizable' | 'serializable';

/** A workload: `readPercent` of requests are single-key reads, the rest single-key puts. */
export interface Workload {
  /** As written on the command line: `write`, `read`, `mixed:90`. */
  name: string;
  readPercent: number;
}

export interface BenchOptions {
  endpoints: string[];
  target: BenchTarget;
  workload: Workload;
  consistency: ReadConsistency;
  /** Connections in all, spread round-robin over the endpoints; each carries one request at a time. */
  connections: number;
  /** Measured seconds (after warmup). */
  durationS: number;
  /** Unmeasured seconds before the measurement starts (connections open, caches warm). */
  warmupS: number;
  /** Keys are drawn uniformly from `keys` distinct keys. */
  keys: number;
  valueSize: number;
  /** Total requests per second across all connections; undefined = as fast as answers come back. */
  rate: number | undefined;
  /** Worker threads that share the connections; 0 = chosen from the connection count. */
  threads: number;
  /** Per-request deadline; a request past it counts as a `timeout` error. */
  requestTimeoutMs: number;
}

/** Limits on what a run may ask for, so a typo cannot open a million sockets. */
export const BENCH_LIMITS = {
  maxConnections: 4096,
  maxDurationS: 3600,
  maxKeys: 100_000_000,
  maxValueSize: 16 * 1024 * 1024,
  maxThreads: 64,
  maxRate: 10_000_000,
} as const;

export class BenchUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchUsageError';
  }
}

/** `write`, `read` or `mixed:<read%>` (0..100). */
export function parseWorkload(text: string): Workload {
  if (text === 'write') return { name: text, readPercent: 0 };
  if (text === 'read') return { name: text, readPercent: 100 };
  const m = /^mixed:([0-9]{1,3})$/.exec(text);
  if (m !== null) {
    const readPercent = Number(m[1]);
    if (readPercent <= 100) return { name: text, readPercent };
  }
  throw new BenchUsageError(
    `--workload must be write, read or mixed:<read%> (0-100), got ${JSON.stringify(text)}`,
  );
}

/** Comma-separated http:// URLs; trailing slashes are dropped. */
export function parseEndpoints(text: string): string[] {
  const urls = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (urls.length === 0) throw new BenchUsageError('--endpoints needs at least one URL');
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new BenchUsageError(`--endpoints: ${JSON.stringify(u)} is not a URL`);
    }
    if (parsed.protocol !== 'http:') throw new BenchUsageError(`--endpoints: ${u} is not an http:// URL`);
    if (parsed.pathname !== '/' || parsed.search !== '') {
      throw new BenchUsageError(`--endpoints: ${u} must be a bare origin (no path or query)`);
    }
  }
  return urls.map((u) => new URL(u).origin);
}

/** Checks every field against BENCH_LIMITS; throws BenchUsageError naming the flag. */
export function validateBenchOptions(o: BenchOptions): BenchOptions {
  const intIn = (flag: string, v: number, min: number, max: number): void => {
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      throw new BenchUsageError(`${flag} must be an integer from ${min} to ${max}, got ${v}`);
    }
  };
  if (o.endpoints.length === 0) throw new BenchUsageError('--endpoints needs at least one URL');
  if (o.target !== 'atlas' && o.target !== 'etcd')
    throw new BenchUsageError('--target must be atlas or etcd');
  if (o.consistency !== 'linearizable' && o.consistency !== 'serializable') {
    throw new BenchUsageError('--consistency must be linearizable or serializable');
  }
  intIn('--connections', o.connections, 1, BENCH_LIMITS.maxConnections);
  if (!(o.durationS > 0 && o.durationS <= BENCH_LIMITS.maxDurationS)) {
    throw new BenchUsageError(
      `--duration must be from 0 (exclusive) to ${BENCH_LIMITS.maxDurationS} seconds`,
    );
  }
  if (!(o.warmupS >= 0 && o.warmupS <= BENCH_LIMITS.maxDurationS)) {
    throw new BenchUsageError(`--warmup must be from 0 to ${BENCH_LIMITS.maxDurationS} seconds`);
  }
  intIn('--keys', o.keys, 1, BENCH_LIMITS.maxKeys);
  intIn('--value-size', o.valueSize, 0, BENCH_LIMITS.maxValueSize);
  intIn('--threads', o.threads, 0, BENCH_LIMITS.maxThreads);
  intIn('--request-timeout-ms', o.requestTimeoutMs, 1, 600_000);
  if (o.rate !== undefined && !(o.rate > 0 && o.rate <= BENCH_LIMITS.maxRate)) {
    throw new BenchUsageError(`--rate must be from 0 (exclusive) to ${BENCH_LIMITS.maxRate} requests/s`);
  }
  return o;
}
