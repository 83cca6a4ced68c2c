/**
 * The closed loop that one thread runs: `loops` virtual clients, each bound to one endpoint and
 * keeping exactly one request in flight on its own keep-alive connection (BenchHttpConnection:
 * prebuilt request bytes, answers parsed only for status and framing). With a rate, each loop starts its requests on a fixed schedule
 * and latency is measured from the scheduled start, so a stalled server is not hidden by the
 * loop waiting for it (coordinated omission).
 *
 * Latencies go into an HDR histogram in microseconds; requests that start during warmup or end
 * after the measured window are not counted.
 */
import { build, encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import type { BenchOptions } from './bench-options.js';
import { BenchRequestFactory, encodeWireRequest } from './bench-target.js';
import { BenchHttpConnection } from './http-connection.js';

/** What one thread measured; the histogram travels as HdrHistogram's compressed base64 form. */
export interface LoopResult {
  histogramBase64: string;
  reads: number;
  writes: number;
  notFound: number;
  errors: Record<string, number>;
  /** Seconds between the first measured start and the end of the window, as this thread saw them. */
  measuredS: number;
}

export interface LoopPlan {
  options: BenchOptions;
  /** Global indexes of the loops this thread runs (loop i uses endpoint i % endpoints.length). */
  loopIndexes: number[];
  /** Wall clock (Date.now()) at which every thread starts sending, so threads start together. */
  startAtEpochMs: number;
  /** Seeds this thread's key and operation draws. */
  seed: number;
}

/** Highest latency the histogram tracks (µs); longer requests are clamped, and time out well before. */
const HIGHEST_TRACKABLE_US = 600_000_000;
const MAX_ERROR_KINDS = 64;
/** How often request deadlines are checked: a timeout is reported up to this late. */
const TIMEOUT_SWEEP_MS = 100;

/** xorshift32: cheap, seeded, good enough to pick keys uniformly. */
function makeRandom(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

function errorKind(e: unknown): string {
  if (e !== null && typeof e === 'object') {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const name = (e as { name?: unknown }).name;
    if (typeof name === 'string') return name;
  }
  return 'unknown';
}

/** The check phase of this event-loop turn, shared by every loop that waits for it (one setImmediate, not one per loop). */
let turn: Promise<void> | null = null;

function nextTurn(): Promise<void> {
  if (turn === null) {
    turn = new Promise((resolve) =>
      setImmediate(() => {
        // Cleared before the waiters run: a loop that waits again gets the next turn.
        turn = null;
        resolve();
      }),
    );
  }
  return turn;
}

function sleepUntil(epochMs: number): Promise<void> {
  const wait = epochMs - Date.now();
  return wait > 0 ? new Promise((r) => setTimeout(r, wait)) : Promise.resolve();
}

export async function runLoops(plan: LoopPlan): Promise<LoopResult> {
  const o = plan.options;
  const factory = new BenchRequestFactory(o.target, o.keys, o.valueSize, o.consistency);
  const random = makeRandom(plan.seed);
  const histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_TRACKABLE_US,
    numberOfSignificantValueDigits: 3,
  });
  const errors: Record<string, number> = {};
  let errorKinds = 0;
  let reads = 0;
  let writes = 0;
  let notFound = 0;
  const countError = (kind: string): void => {
    if (errors[kind] === undefined) {
      if (errorKinds >= MAX_ERROR_KINDS) kind = 'other';
      else errorKinds++;
    }
    errors[kind] = (errors[kind] ?? 0) + 1;
  };

  /** Per endpoint: its host and port, and each key's read and write request bytes (encoded when first used). */
  const endpoints = new Map<string, { hostname: string; port: number; reads: Buffer[]; writes: Buffer[] }>();
  for (const i of plan.loopIndexes) {
    const ep = o.endpoints[i % o.endpoints.length] as string;
    if (endpoints.has(ep)) continue;
    const url = new URL(ep);
    if (url.protocol !== 'http:')
      throw new Error(`bench endpoint ${ep}: only http:// endpoints are supported`);
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === '' ? 80 : Number(url.port);
    endpoints.set(ep, {
      hostname,
      port,
      reads: new Array<Buffer>(o.keys),
      writes: new Array<Buffer>(o.keys),
    });
  }
  const connections: BenchHttpConnection[] = [];
  // One sweep for every connection's deadline instead of a timer per request.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const c of connections) c.expireIfPast(now);
  }, TIMEOUT_SWEEP_MS);

  const measureFrom = plan.startAtEpochMs + o.warmupS * 1000;
  const measureUntil = measureFrom + o.durationS * 1000;
  // Per-loop schedule when a rate is given: the loops share the rate evenly, staggered.
  const loopCount = o.connections;
  const intervalMs = o.rate === undefined ? 0 : (1000 * loopCount) / o.rate;
  const readThreshold = o.workload.readPercent;

  const loop = async (globalIndex: number): Promise<void> => {
    const ep = o.endpoints[globalIndex % o.endpoints.length] as string;
    const target = endpoints.get(ep)!;
    const host = new URL(ep).host;
    const connection = new BenchHttpConnection(target.hostname, target.port, o.requestTimeoutMs);
    connections.push(connection);
    let scheduled = plan.startAtEpochMs + (intervalMs * globalIndex) / loopCount;
    await sleepUntil(plan.startAtEpochMs);
    for (;;) {
      if (intervalMs > 0) {
        await sleepUntil(scheduled);
      } else {
        // The next request goes out in the check phase, with the others whose answers arrived in
        // this turn, not from inside the answer's socket callback: about 10% less generator CPU
        // per request against a trivial server (42 -> 38 µs), so more CPU for the servers measured.
        await nextTurn();
        scheduled = Date.now();
      }
      if (scheduled >= measureUntil) return;
      const isRead = random() * 100 < readThreshold;
      const keyIndex = Math.floor(random() * o.keys);
      const cache = isRead ? target.reads : target.writes;
      let bytes = cache[keyIndex];
      if (bytes === undefined) {
        bytes = encodeWireRequest(isRead ? factory.read(keyIndex) : factory.write(keyIndex), host);
        cache[keyIndex] = bytes;
      }
      // With a schedule, a request that starts late is charged from when it should have started.
      const lateMs = intervalMs > 0 ? Math.max(0, Date.now() - scheduled) : 0;
      const hr0 = performance.now() - lateMs;
      let kind: string | null = null;
      let absent = false;
      try {
        const status = await connection.send(bytes);
        const answer = factory.classify(isRead, status);
        if (answer === 'error') kind = `http_${status}`;
        else absent = answer === 'not_found';
      } catch (e) {
        kind = errorKind(e);
      }
      const end = Date.now();
      // Counted only if it started in the window and ended in it, like every other figure (a read
      // of an absent key that ended after the window is not one of the reads, so not one of these).
      if (scheduled >= measureFrom && end <= measureUntil) {
        if (kind === null) {
          histogram.recordValue(Math.max(1, Math.round((performance.now() - hr0) * 1000)));
          if (isRead) reads++;
          else writes++;
          if (absent) notFound++;
        } else {
          countError(kind);
        }
      }
      if (kind !== null && intervalMs === 0) {
        // A refused connection fails at once; do not spin the CPU the other loops need.
        await new Promise((r) => setTimeout(r, 10));
      }
      scheduled += intervalMs;
    }
  };

  try {
    await Promise.all(plan.loopIndexes.map((i) => loop(i)));
  } finally {
    clearInterval(sweep);
    for (const c of connections) c.close();
  }
  const result: LoopResult = {
    histogramBase64: encodeIntoCompressedBase64(histogram),
    reads,
    writes,
    notFound,
    errors,
    measuredS: o.durationS,
  };
  histogram.destroy();
  return result;
}
