/**
 * The fault harness can fail: with the Raft election restriction switched off in every node
 * (TEST-ONLY planted bug `vote-any-log`, set through ATLAS_TEST_PLANTED_BUG) and the `shift`
 * partition (a follower misses writes, then the cut moves to isolate the leader so that the lagging
 * node may win the election and overwrite committed entries), a short register run must report
 * valid=false: non-linearizable reads, lost writes, or members that never serve again (followers
 * holding the committed entries the usurper tries to overwrite). Bounded: at most MAX_ATTEMPTS short runs; at least one must be invalid.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type FaultRunSummary, runFaultTest, summaryLine } from './fault-run.js';

// Each shift gives the lagging node about an even chance to win the election; a 30 s attempt with
// short rests holds about six shifts, and an attempt stops the test as soon as it is invalid.
const MAX_ATTEMPTS = 6;

describe('fault harness detects a planted bug', { timeout: 600_000 }, () => {
  it('vote-any-log + shifting partitions: a short run is invalid', async () => {
    const runs: FaultRunSummary[] = [];
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const outDir = mkdtempSync(join(tmpdir(), 'atlas-faults-planted-'));
      const s = await runFaultTest({
        timeSeconds: 30,
        restMs: [500, 1500],
        holdMs: [1500, 3000],
        nodes: 3,
        clients: 6,
        workload: 'register',
        nemesis: ['partition'],
        partitionShapes: ['shift'],
        keys: 4,
        outDir,
        seed: Math.floor(Math.random() * 2 ** 31),
        plantedBug: 'vote-any-log',
        skipCheckWhenInvalid: true,
      });
      runs.push(s);
      // The nodes announced the planted bug loudly at startup.
      const log = readFileSync(join(outDir, 'n1.log'), 'utf8');
      assert.match(log, /"plantedBugs":\["vote-any-log"\].*TEST-ONLY PLANTED BUGS ARE ACTIVE/);
      if (!s.valid) break;
    }
    const invalid = runs.filter((s) => !s.valid);
    assert.ok(invalid.length >= 1, `no run was invalid:\n${runs.map((s) => `${summaryLine(s)} ${s.outDir}`).join('\n')}`);
    // What the bug breaks: reads that cannot be linearized, lost writes, or followers that refuse
    // the usurper's conflicting entries and so never serve again after healing. Never the harness.
    assert.ok(
      invalid.every((s) => s.problems.every((p) => !p.startsWith('harness error'))),
      `an invalid run failed in the harness itself: ${invalid.map((s) => s.problems.join('; ')).join(' | ')}`,
    );
  });
});
