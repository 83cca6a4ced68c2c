/** Shared by the seed-sweep test files: runs a range of seeds, asserting every one passes. */
import assert from 'node:assert/strict';
import { nodesForSeed, runSimulation } from './simulation.js';

export async function assertSeedsPass(
  start: number,
  count: number,
): Promise<{ bySize: Record<number, number> }> {
  const bySize: Record<number, number> = {};
  const failures: string[] = [];
  for (let seed = start; seed < start + count; seed++) {
    const nodes = nodesForSeed(seed, undefined);
    const r = await runSimulation({ seed, nodes });
    bySize[nodes] = (bySize[nodes] ?? 0) + 1;
    if (!r.passed)
      failures.push(`seed=${seed} nodes=${nodes} ${r.failure!.check}: ${r.failure!.message.split('\n')[0]}`);
  }
  assert.deepEqual(failures, [], 'failing seeds (replay: npm run sim -- --seed S --trace)');
  return { bySize };
}
