/** Randomized fault runs (see ./chaos-run.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { run } from './chaos-run.js';

describe('randomized fault runs', () => {
  it('keep election, state machine and read safety, and recover', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const { violation, commits } = run(seed, 250);
      assert.equal(violation, null);
      assert.ok(commits > 20, `seed ${seed}: only ${commits} commits`);
    }
  });
});
