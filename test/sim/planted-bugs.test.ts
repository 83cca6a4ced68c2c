/**
 * Every planted bug must be caught: for each, seeds are searched (a bounded number) until a run
 * fails, and the check that caught it must be one that the bug violates. The failing seed must then
 * replay to the same failure.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PlantedBug } from '../../src/raft/types.js';
import { runSimulation } from './simulation.js';

const MAX_SEEDS = 100;

const EXPECTED: Record<PlantedBug, readonly string[]> = {
  'ack-before-persist': [
    'persistence order',
    'election safety',
    'state machine safety',
    'leader completeness',
    'linearizability',
  ],
  'vote-any-log': ['leader completeness', 'state machine safety', 'log matching', 'linearizability'],
  'keep-conflict': ['log matching', 'state machine safety', 'leader completeness', 'linearizability'],
  'commit-old-term': ['leader commit rule', 'state machine safety', 'leader completeness', 'linearizability'],
  'stale-read': ['read index', 'linearizability'],
};

describe('planted bugs are found', () => {
  for (const bug of Object.keys(EXPECTED) as PlantedBug[]) {
    it(`${bug}: a violation within ${MAX_SEEDS} seeds`, { timeout: 300_000 }, async () => {
      for (let seed = 0; seed < MAX_SEEDS; seed++) {
        const nodes = [3, 5][seed % 2]!;
        const r = await runSimulation({ seed, nodes, operations: 300, bugs: [bug] });
        if (r.passed) continue;
        assert.ok(
          EXPECTED[bug].includes(r.failure!.check),
          `seed ${seed}: caught by "${r.failure!.check}" (${r.failure!.message}), expected one of ${EXPECTED[bug].join(', ')}`,
        );
        const again = await runSimulation({ seed, nodes, operations: 300, bugs: [bug] });
        assert.deepEqual(again.failure, r.failure, 'the failing seed replays to the same failure');
        return;
      }
      assert.fail(`no violation found with ${bug} planted in ${MAX_SEEDS} seeds`);
    });
  }
});
