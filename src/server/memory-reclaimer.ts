/**
 * Hands a node's freed native memory back to the kernel, every `intervalMs`, off the request path.
 *
 * Why (measured at 1,000,000 keys, docs/benchmarks.md "Memory"): a node's Buffers (log entries,
 * peer frames, snapshot chunks, HTTP bodies) live in glibc's heap, and free() returns memory only
 * from the heap's top, so freed pages below one live Buffer stay resident: malloc_trim(0) took a
 * leader's RssAnon from 209 to 101 MB and a follower's from 171 to 84 MB. And dead Buffers are
 * freed only by a GC, which an idle node never runs (full-gc.ts).
 *
 * Each tick: if the event loop was idle for the whole last interval (utilization below
 * IDLE_UTILIZATION) and no collection ran since it was last busy, one full GC; then malloc_trim(0)
 * (after a pause when a GC ran: V8 frees array buffers on a background sweep). Like Go's scavenger,
 * or Ruby trimming after a major GC. Every reclaim is timed and reported.
 *
 * The young generation: V8 grows it to 2 x --max-semi-space-size under load and shrinks it only in a
 * GC that sees a low allocation rate, which the first idle GC often does not (its rate still counts
 * the load): after a 1,000,000-key load nodes kept 44-65 MiB of heap committed for 20-45 s. So while
 * the young generation stays above YOUNG_GENERATION_IDLE_BYTES, later idle ticks of the same idle
 * period collect again, up to MAX_IDLE_COLLECTIONS times.
 */
import { readFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
import type { GlibcMalloc } from './glibc-malloc.js';

export interface MemoryReclaimResult {
  /** Whether a full GC ran first (the node was idle). */
  collected: boolean;
  /** RssAnon before minus after, in bytes (0 if it grew meanwhile or could not be read). */
  releasedBytes: number;
  /** Time the event loop spent in the GC and the trim. */
  durationMs: number;
}

export interface MemoryReclaimerOptions {
  intervalMs: number;
  malloc: GlibcMalloc;
  /** Runs a full GC; without it, idle periods only trim. */
  fullGc?: () => void;
  /** Event loop utilization (0..1) since the previous call; default: performance.eventLoopUtilization. */
  utilizationSinceLastCall?: () => number;
  /** The process's anonymous resident memory in bytes, or null where it cannot be read. */
  anonResidentBytes?: () => number | null;
  /**
   * Committed bytes of V8's young generation (new space); without it, one GC per idle period.
   * Default: none. The server passes v8.getHeapSpaceStatistics()'s new_space size.
   */
  youngGenerationBytes?: () => number;
  /** Pause between a GC and the trim: V8 frees array buffers and unmaps heap pages in the background (default 1 s). */
  sweepPauseMs?: number;
  onReclaim?: (result: MemoryReclaimResult) => void;
}

/**
 * Below this event loop utilization over a whole interval the node counts as idle: an idle member
 * of a 3-node cluster is 2.4-3.2% busy with ticks and heartbeats (bench:scale, after its load).
 */
export const IDLE_UTILIZATION = 0.1;
const DEFAULT_SWEEP_PAUSE_MS = 1000;
/** A young generation above this after an idle GC gets another one (V8 shrinks an idle one to 1-4 MiB). */
export const YOUNG_GENERATION_IDLE_BYTES = 8 * 1024 * 1024;
/** Full GCs per idle period at most. */
export const MAX_IDLE_COLLECTIONS = 4;

/** Committed bytes of V8's new space (the young generation), from v8.getHeapSpaceStatistics(). */
export function v8YoungGenerationBytes(): number {
  for (const space of getHeapSpaceStatistics()) if (space.space_name === 'new_space') return space.space_size;
  return 0;
}

/** RssAnon of this process from /proc/self/status, in bytes; null where it cannot be read. */
export function procAnonResidentBytes(): number | null {
  let text: string;
  try {
    text = readFileSync('/proc/self/status', 'latin1');
  } catch {
    return null;
  }
  return parseRssAnon(text);
}

/** The RssAnon line of a /proc/<pid>/status text, in bytes; null if absent or malformed. */
export function parseRssAnon(statusText: string): number | null {
  const match = /^RssAnon:\s+([0-9]{1,15}) kB$/m.exec(statusText);
  return match === null ? null : Number(match[1]) * 1024;
}

/** performance.eventLoopUtilization() since the previous call of the returned function. */
export function eventLoopUtilizationMeter(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(now, last);
    last = now;
    return delta.utilization;
  };
}

export class MemoryReclaimer {
  private timer: NodeJS.Timeout | null = null;
  private sweepWait: NodeJS.Timeout | null = null;
  /** Full GCs in the current idle period (0 once the node is busy again). */
  private idleCollections = 0;
  private readonly utilization: () => number;
  private readonly anonResidentBytes: () => number | null;

  constructor(private readonly options: MemoryReclaimerOptions) {
    if (!Number.isSafeInteger(options.intervalMs) || options.intervalMs < 1) {
      throw new RangeError(
        `memory reclaim interval must be a positive integer of ms, got ${options.intervalMs}`,
      );
    }
    this.utilization = options.utilizationSinceLastCall ?? eventLoopUtilizationMeter();
    this.anonResidentBytes = options.anonResidentBytes ?? procAnonResidentBytes;
  }

  get running(): boolean {
    return this.timer !== null;
  }

  start(): void {
    if (this.timer !== null) return;
    this.utilization(); // the first interval is measured from here
    this.timer = setInterval(() => this.tick(), this.options.intervalMs);
    // Reclaiming never keeps a process alive.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.sweepWait !== null) clearTimeout(this.sweepWait);
    this.timer = null;
    this.sweepWait = null;
  }

  /** One scheduled reclaim: decides on the GC from the last interval's utilization. */
  tick(): void {
    if (this.sweepWait !== null) return; // the previous reclaim is still waiting for its sweep
    const idle = this.utilization() < IDLE_UTILIZATION;
    if (!idle) this.idleCollections = 0;
    const fullGc = this.options.fullGc;
    const young = this.options.youngGenerationBytes;
    const collect =
      idle &&
      fullGc !== undefined &&
      (this.idleCollections === 0 ||
        (young !== undefined &&
          this.idleCollections < MAX_IDLE_COLLECTIONS &&
          young() > YOUNG_GENERATION_IDLE_BYTES));
    if (!collect) {
      this.report(false, this.anonResidentBytes(), 0);
      return;
    }
    this.idleCollections++;
    const before = this.anonResidentBytes();
    const t0 = performance.now();
    fullGc();
    const gcMs = performance.now() - t0;
    this.sweepWait = setTimeout(() => {
      this.sweepWait = null;
      this.report(true, before, gcMs);
    }, this.options.sweepPauseMs ?? DEFAULT_SWEEP_PAUSE_MS);
    this.sweepWait.unref();
  }

  /** Trims now, without a GC, and reports it. */
  trimNow(): MemoryReclaimResult {
    return this.report(false, this.anonResidentBytes(), 0);
  }

  private report(collected: boolean, before: number | null, gcMs: number): MemoryReclaimResult {
    const t0 = performance.now();
    this.options.malloc.trim();
    const durationMs = gcMs + (performance.now() - t0);
    const after = this.anonResidentBytes();
    const releasedBytes = before !== null && after !== null ? Math.max(0, before - after) : 0;
    const result = { collected, releasedBytes, durationMs };
    this.options.onReclaim?.(result);
    return result;
  }
}
