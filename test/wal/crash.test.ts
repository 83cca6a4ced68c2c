/**
 * Runs the kill -9 crash harness (test/wal/crash-harness.ts) for 30 rounds in the suite. A failure
 * names its seed; replay it with `node dist/test/wal/crash-harness.js --rounds 30 --seed <seed>`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCrashRounds } from './crash-harness.js';
import { tempDir } from './helpers.js';

const ROUNDS = 30;

describe('WAL crash test (real processes, kill -9)', () => {
  it(`loses no acknowledged write and leaves no garbage over ${ROUNDS} rounds`, {
    timeout: 240_000,
  }, async () => {
    const { dir, cleanup } = tempDir('atlas-wal-crash-');
    const seed = Date.now() % 1_000_000_007;
    try {
      const { acked, rounds } = await runCrashRounds({ rounds: ROUNDS, seed, dir });
      assert.equal(rounds.length, ROUNDS);
      assert.ok(acked > 0, `the children acknowledged nothing in ${ROUNDS} rounds (seed ${seed})`);
      assert.ok(
        rounds.some((r) => r.segments > 1),
        'the log never rolled to a second segment: the test does not exercise rolling',
      );
    } finally {
      cleanup();
    }
  });
});
