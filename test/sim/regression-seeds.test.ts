/**
 * Seeds outside the sweeps that once found a real bug, kept so that each bug stays fixed. The
 * simulator's schedule depends on every random draw, so a seed reproduces its bug only with the
 * code of its time; each still runs a whole cluster under faults and must pass every check.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runSimulation } from './simulation.js';

const SEEDS: ReadonlyArray<{ seed: number; nodes: number; bug: string }> = [
  {
    seed: 5058,
    nodes: 5,
    bug: 'a compaction marker queued while the store synced was written after a newer snapshot was installed',
  },
  {
    seed: 11347,
    nodes: 5,
    bug: 'installing one snapshot dropped the staging of a newer stream that completed meanwhile',
  },
  {
    seed: 20632,
    nodes: 5,
    bug: 'a follower that restarted mid snapshot stream never acknowledged the retransmitted tail (the leader waited out its whole back-off)',
  },
  {
    seed: 20360,
    nodes: 7,
    bug: 'a restarted follower ignored chunks beyond the window of a stream it had lost',
  },
  {
    seed: 50214,
    nodes: 3,
    bug: "a Ready's committed entries were admitted after a snapshot from the leader had replaced them in raft (the bootstrap conf change, re-applied on the snapshot's configuration, made it joint)",
  },
  {
    seed: 70451,
    nodes: 3,
    bug: 'a retried snapshot stream replaced the staging of a completed one that raft had accepted but the node had not installed yet (the install found nothing staged)',
  },
  {
    seed: 283,
    nodes: 5,
    bug: 'a conf change applied to raft while its Ready was still being persisted (early apply of durable committed entries, before it stopped at conf changes)',
  },
];

for (const { seed, nodes, bug } of SEEDS) {
  it(`seed ${seed} (${nodes} nodes) passes: ${bug}`, { timeout: 120_000 }, async () => {
    const r = await runSimulation({ seed, nodes });
    assert.equal(r.passed, true, r.failure === null ? '' : `${r.failure.check}: ${r.failure.message}`);
  });
}
