/**
 * bench:compare --repeat: which run a cell shows, how paired ratios are summarised, and the order
 * of the systems in each repetition.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { medianRun, pairedRatio, systemsInRepetition } from '../../bench/repeated-runs.js';
import type { BenchResult } from '../../src/bench/load-generator.js';

function run(opsPerSec: number, p50 = 1): BenchResult {
  return {
    target: 'atlas',
    workload: 'write',
    consistency: 'linearizable',
    connections: 64,
    endpoints: ['http://127.0.0.1:1'],
    threads: 1,
    durationS: 5,
    opsPerSec,
    reads: 0,
    writes: opsPerSec * 5,
    notFound: 0,
    errors: {},
    errorCount: 0,
    latencyMs: { p50, p90: p50, p99: p50, p999: p50, max: p50, mean: p50 },
  };
}

describe('medianRun', () => {
  it('picks the middle run by throughput, whatever the order they ran in', () => {
    const runs = [run(300, 3), run(100, 1), run(200, 2)];
    assert.equal(medianRun(runs).opsPerSec, 200);
    assert.equal(medianRun(runs).latencyMs.p50, 2, 'the latency shown is that same run’s');
  });

  it('takes the lower middle of an even count, and the only run of one', () => {
    assert.equal(medianRun([run(400), run(100), run(300), run(200)]).opsPerSec, 200);
    assert.equal(medianRun([run(7)]).opsPerSec, 7);
  });

  it('refuses an empty list', () => {
    assert.throws(() => medianRun([]), /no runs/);
  });
});

describe('pairedRatio', () => {
  it('is the median of the per-repetition ratios, with their range', () => {
    // Load drifts: both systems slower in the second repetition; the paired ratios stay close.
    const etcd = [run(1000), run(500), run(900)];
    const atlas = [run(2000), run(1100), run(1620)];
    const r = pairedRatio(etcd, atlas);
    assert.ok(r !== null);
    assert.equal(r.pairs, 3);
    assert.equal(r.median, 2);
    assert.equal(r.min, 1.8);
    assert.equal(r.max, 2.2);
  });

  it('leaves out pairs whose etcd run served nothing, and is null when none is left', () => {
    const r = pairedRatio([run(0), run(100)], [run(50), run(300)]);
    assert.deepEqual(r, { median: 3, min: 3, max: 3, pairs: 1 });
    assert.equal(pairedRatio([run(0)], [run(50)]), null);
  });

  it('refuses lists of different lengths', () => {
    assert.throws(() => pairedRatio([run(1)], [run(1), run(2)]), /1 etcd runs but 2 AtlasDB runs/);
  });
});

describe('systemsInRepetition', () => {
  it('alternates which system goes first', () => {
    assert.deepEqual(systemsInRepetition(['etcd', 'atlas'], 0), ['etcd', 'atlas']);
    assert.deepEqual(systemsInRepetition(['etcd', 'atlas'], 1), ['atlas', 'etcd']);
    assert.deepEqual(systemsInRepetition(['etcd', 'atlas'], 2), ['etcd', 'atlas']);
    assert.deepEqual(systemsInRepetition(['atlas'], 1), ['atlas']);
  });
});
