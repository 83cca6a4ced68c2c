import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runSimulation } from './simulation.js';

it(
  'a seed replays bit-for-bit: the same seed twice gives an identical trace',
  {
    timeout: 120_000,
  },
  async () => {
    for (const [seed, nodes] of [
      [7, 3],
      [8, 5],
    ] as const) {
      const a = await runSimulation({ seed, nodes, trace: true });
      const b = await runSimulation({ seed, nodes, trace: true });
      assert.ok(a.trace.length > 1000, 'the trace records the run');
      assert.equal(a.trace.length, b.trace.length);
      for (let i = 0; i < a.trace.length; i++)
        assert.equal(b.trace[i], a.trace[i], `trace line ${i + 1} differs`);
      assert.deepEqual(b.stats, a.stats);
      const other = await runSimulation({ seed: seed + 1000, nodes, trace: true });
      assert.notDeepEqual(other.trace.slice(0, 200), a.trace.slice(0, 200), 'another seed runs differently');
    }
  },
);
