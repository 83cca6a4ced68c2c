import assert from 'node:assert/strict';
import { it } from 'node:test';
import { assertSeedsPass } from './seed-sweep.js';

it(
  'seeds 0-149 (3, 5 and 7 nodes, 500 client operations each) pass every check',
  {
    timeout: 600_000,
  },
  async () => {
    const { bySize } = await assertSeedsPass(0, 150);
    assert.deepEqual(bySize, { 3: 50, 5: 50, 7: 50 });
  },
);
