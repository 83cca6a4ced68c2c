import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { MAX_LATENCY_SERIES, RequestLatencyHistogram } from '../../src/api/http/latency-histogram.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];

describe('RequestLatencyHistogram', () => {
  it('prints exactly what prom-client Histogram prints for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    ours.setDefaultLabels({ node: 'n1' });
    theirs.setDefaultLabels({ node: 'n1' });
    const fast = new RequestLatencyHistogram('t_seconds', 'help text', BUCKETS, ours);
    const reference = new Histogram({
      name: 't_seconds',
      help: 'help text',
      labelNames: ['route', 'method', 'status'],
      buckets: BUCKETS,
      registers: [theirs],
    });
    const observations: Array<[string, string, number, number]> = [
      ['/kv/{key+}', 'GET', 200, 0.0004],
      ['/kv/{key+}', 'GET', 200, 0.001], // on a bound: counts in that bucket (le is inclusive)
      ['/kv/{key+}', 'GET', 404, 0.02],
      ['/kv/{key+}', 'PUT', 200, 5],
      ['unmatched', 'GET', 404, 0],
      ['/kv/{key+}', 'GET', 200, 0.5],
    ];
    for (const [route, method, status, seconds] of observations) {
      fast.observe(route, method, status, seconds);
      reference.observe({ route, method, status: String(status) }, seconds);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.deepEqual(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON());
    ours.resetMetrics();
    theirs.resetMetrics();
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('refuses a negative or infinite latency and unordered buckets', () => {
    const h = new RequestLatencyHistogram('a_seconds', 'h', BUCKETS, new Registry());
    assert.throws(() => h.observe('/r', 'GET', 200, -1), /finite non-negative/);
    assert.throws(() => h.observe('/r', 'GET', 200, Number.NaN), /finite non-negative/);
    assert.throws(() => h.observe('/r', 'GET', 200, Number.POSITIVE_INFINITY), /finite non-negative/);
    assert.throws(() => new RequestLatencyHistogram('b_seconds', 'h', [1, 1], new Registry()), /increasing/);
  });

  it('folds series past the cap into one overflow series', async () => {
    const registry = new Registry();
    const h = new RequestLatencyHistogram('c_seconds', 'h', BUCKETS, registry);
    for (let i = 0; i < MAX_LATENCY_SERIES + 10; i++) h.observe(`/r${i}`, 'GET', 200, 0.002);
    const text = await registry.metrics();
    const counts = text.split('\n').filter((l) => l.startsWith('c_seconds_count'));
    assert.equal(counts.length, MAX_LATENCY_SERIES + 1);
    assert.ok(counts.includes('c_seconds_count{route="other",method="other",status="other"} 10'));
  });
});
