/**
 * Short fault runs of real 3-node clusters (part of `npm test`, about 2 minutes on 2 cores):
 * `register` under kill, partition and pause, and `bank` under partition. Both must be valid.
 * Long soaks: `npm run faults` (docs/testing.md, "Fault testing of real clusters").
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runFaultTest, summaryLine } from './fault-run.js';

const explain = (s: { problems: string[]; outDir: string; seed: number }) =>
  `${s.problems.join('\n')}\n(seed ${s.seed}; history, nemesis.log and node logs in ${s.outDir})`;

describe('fault runs of real clusters (short)', { timeout: 300_000 }, () => {
  it('register with kill, partition and pause is linearizable and serves again after healing', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'atlas-faults-register-'));
    const s = await runFaultTest({
      timeSeconds: 30,
      nodes: 3,
      clients: 5,
      workload: 'register',
      nemesis: ['kill', 'partition', 'pause'],
      outDir,
      seed: Math.floor(Math.random() * 2 ** 31),
    });
    assert.ok(s.valid, `${summaryLine(s)}\n${explain(s)}`);
    assert.ok(s.faults >= 3, `the nemesis injected faults (${s.faults})`);
    assert.ok(s.ok > 50, `clients got work done (${summaryLine(s)})`);
  });

  it('bank with partitions keeps the total and no negative balance', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'atlas-faults-bank-'));
    const s = await runFaultTest({
      timeSeconds: 20,
      nodes: 3,
      clients: 4,
      workload: 'bank',
      nemesis: ['partition'],
      outDir,
      seed: Math.floor(Math.random() * 2 ** 31),
    });
    assert.ok(s.valid, `${summaryLine(s)}\n${explain(s)}`);
    assert.ok(s.faults >= 2, `the nemesis injected faults (${s.faults})`);
    assert.ok((s.details['reads'] as number) > 20, 'reads of all accounts were checked');
  });
});
