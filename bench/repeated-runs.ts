/**
 * What `bench:compare --repeat N` reports for one cell run N times on each system.
 *
 * On this 2-core VM two runs of the same build differ by 15-40% (steal time, other tenants), so
 * one run per cell can put a ratio anywhere in that band. Repetitions are interleaved (etcd and
 * AtlasDB alternate, the first of each pair alternating too), so each AtlasDB run has an etcd run
 * next to it in time; the ratio reported is the median of those paired ratios, which a drift in
 * background load over the run moves much less than a ratio of two separate medians.
 */
import type { BenchResult } from '../src/bench/load-generator.js';

/** The median run by throughput: the one whose latency figures are shown (lower middle if even). */
export function medianRun(runs: readonly BenchResult[]): BenchResult {
  if (runs.length === 0) throw new Error('medianRun: no runs');
  const sorted = [...runs].sort((a, b) => a.opsPerSec - b.opsPerSec);
  return sorted[Math.floor((sorted.length - 1) / 2)] as BenchResult;
}

export interface RatioSummary {
  /** Median of the per-repetition ratios AtlasDB/etcd (lower middle if even). */
  median: number;
  min: number;
  max: number;
  /** Pairs with etcd at 0 req/s are left out (no ratio). */
  pairs: number;
}

/**
 * Ratios of the i-th AtlasDB run to the i-th etcd run; null when no pair has a ratio. The two
 * lists must come from the same repetitions (same length).
 */
export function pairedRatio(
  etcd: readonly BenchResult[],
  atlas: readonly BenchResult[],
): RatioSummary | null {
  if (etcd.length !== atlas.length) {
    throw new Error(`pairedRatio: ${etcd.length} etcd runs but ${atlas.length} AtlasDB runs`);
  }
  const ratios: number[] = [];
  for (let i = 0; i < etcd.length; i++) {
    const e = (etcd[i] as BenchResult).opsPerSec;
    if (e > 0) ratios.push((atlas[i] as BenchResult).opsPerSec / e);
  }
  if (ratios.length === 0) return null;
  ratios.sort((a, b) => a - b);
  return {
    median: ratios[Math.floor((ratios.length - 1) / 2)] as number,
    min: ratios[0] as number,
    max: ratios[ratios.length - 1] as number,
    pairs: ratios.length,
  };
}

/** Order of the systems in repetition `rep`: as given on even repetitions, reversed on odd ones. */
export function systemsInRepetition<T>(systems: readonly T[], rep: number): T[] {
  return rep % 2 === 0 ? [...systems] : [...systems].reverse();
}
