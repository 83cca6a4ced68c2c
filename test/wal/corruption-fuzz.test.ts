/**
 * Corruption fuzz of recovery: a small closed log (a few segments, several groups, a truncation,
 * snapshot markers and a release) is damaged at random (byte flips, a file cut short, a zeroed
 * range, garbage after the records) and reopened, over 1,200 cases. Each reopen must either
 *   - recover a prefix of what was written (the state the model reaches after some prefix of the
 *     records: every returned record is one that was written, in order), or
 *   - raise WalCorruptionError;
 * never a wrong record and never any other exception.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WalCorruptionError, type WalRecord, WriteAheadLog } from '../../src/wal/index.js';
import { readFrame } from '../../src/wal/record-codec.js';
import { seededRandom } from './crash-harness.js';
import { tempDir } from './helpers.js';
import { dumpLog, signatureOf, WalModel } from './wal-model.js';

const SEGMENT = 4096;
const CASES = 1200;

/** The records of the base log, in order; each is appended on its own. */
function baseRecords(): Array<WalRecord | 'release'> {
  const out: Array<WalRecord | 'release'> = [];
  const data = (g: number, i: number, n: number) => Buffer.alloc(n, (g * 16 + i) & 0xff);
  for (let i = 1; i <= 45; i++) {
    for (const g of [1, 2, 3]) {
      if (g === 3 && i > 12) continue;
      out.push({
        kind: 'entry',
        group: g,
        term: i > 20 || (g === 2 && i >= 14) ? 2 : 1,
        index: i,
        entryType: i % 2,
        data: data(g, i, 40 + ((i * 37 + g * 11) % 100)),
      });
    }
    if (i % 5 === 0)
      out.push({ kind: 'hardState', group: 1, term: i > 20 ? 2 : 1, vote: 'n1', commit: i - 2 });
    if (i === 12) out.push({ kind: 'snapshot', group: 3, index: 12, term: 1 });
    if (i === 15) out.push({ kind: 'truncate', group: 2, fromIndex: 14 }); // entry 14, 15 of group 2 replaced next
    if (i === 15) {
      out.push({ kind: 'entry', group: 2, term: 2, index: 14, entryType: 0, data: data(2, 99, 40) });
      out.push({ kind: 'entry', group: 2, term: 2, index: 15, entryType: 0, data: data(2, 98, 40) });
    }
    if (i === 18) {
      out.push({ kind: 'snapshot', group: 1, index: 16, term: 1 });
      out.push({ kind: 'snapshot', group: 2, index: 16, term: 2 });
      out.push('release');
    }
  }
  return out;
}

interface BaseLog {
  files: Array<{ name: string; bytes: Buffer; used: number }>;
  /** Signatures of the model after every prefix of the records. */
  prefixes: Set<string>;
  full: string;
}

async function buildBase(dir: string): Promise<BaseLog> {
  const model = new WalModel();
  const prefixes = new Set<string>([model.signature()]);
  const wal = await WriteAheadLog.open(dir, { segmentSize: SEGMENT });
  for (const r of baseRecords()) {
    if (r === 'release') {
      assert.ok((await wal.release()) > 0, 'the base log must release a segment');
      continue;
    }
    await wal.append([r]);
    model.apply(r);
    prefixes.add(model.signature());
  }
  assert.equal(signatureOf(dumpLog(wal)), model.signature());
  await wal.close();
  const files = readdirSync(dir)
    .filter((n) => n.endsWith('.wal'))
    .sort()
    .map((name) => {
      const bytes = readFileSync(join(dir, name));
      let used = 0;
      for (;;) {
        const frame = readFrame(bytes, used, bytes.length);
        if (frame.kind !== 'record') break;
        used = frame.next;
      }
      return { name, bytes, used };
    });
  assert.ok(files.length >= 3, `base log has ${files.length} segments`);
  assert.notEqual(files[0]!.name, '0000000000000001.wal', 'the first segment was released');
  return { files, prefixes, full: model.signature() };
}

type Outcome = 'intact' | 'prefix' | 'corruption';

describe('WAL recovery corruption fuzz', () => {
  it(`recovers a written prefix or reports WalCorruptionError over ${CASES} damaged logs`, {
    timeout: 300_000,
  }, async (t) => {
    const base = tempDir('atlas-wal-fuzz-base-');
    const work = tempDir('atlas-wal-fuzz-');
    const seed = Date.now() % 1_000_000_007;
    const random = seededRandom(seed);
    const int = (n: number) => Math.floor(random() * n);
    const counts: Record<Outcome, number> = { intact: 0, prefix: 0, corruption: 0 };
    const scratch = Buffer.alloc(SEGMENT); // reused for every case
    try {
      const log = await buildBase(base.dir);
      for (let c = 0; c < CASES; c++) {
        for (const name of readdirSync(work.dir)) rmSync(join(work.dir, name));
        const victim = random() < 0.5 ? log.files.length - 1 : int(log.files.length); // torn tails live in the last
        const kind = int(4);
        let damage = '';
        for (const [k, file] of log.files.entries()) {
          file.bytes.copy(scratch);
          let length = file.bytes.length;
          if (k === victim) {
            const nearData = () => (random() < 0.85 ? int(file.used + 16) : int(SEGMENT));
            if (kind === 0) {
              const flips = 1 + int(3);
              for (let f = 0; f < flips; f++) {
                const at = nearData();
                scratch[at]! ^= 1 + int(255);
                damage += `flip@${at} `;
              }
            } else if (kind === 1) {
              length = int(SEGMENT);
              damage = `cut to ${length}`;
            } else if (kind === 2) {
              const at = nearData();
              const n = 1 + int(64);
              scratch.fill(0, at, Math.min(SEGMENT, at + n));
              damage = `zero ${at}+${n}`;
            } else {
              const at = file.used + int(SEGMENT - file.used);
              const n = 1 + int(40);
              for (let i = at; i < Math.min(SEGMENT, at + n); i++) scratch[i] = int(256);
              damage = `garbage ${at}+${n}`;
            }
          }
          writeFileSync(join(work.dir, file.name), scratch.subarray(0, length));
        }
        const where = `case ${c} (seed ${seed}): ${log.files[victim]!.name} ${damage}`;
        let wal: WriteAheadLog;
        try {
          wal = await WriteAheadLog.open(work.dir, { segmentSize: SEGMENT });
        } catch (err) {
          if (!(err instanceof WalCorruptionError)) {
            assert.fail(`${where}: open threw ${(err as Error).stack ?? String(err)}`);
          }
          counts.corruption++;
          continue;
        }
        try {
          const signature = signatureOf(dumpLog(wal));
          assert.ok(
            log.prefixes.has(signature),
            `${where}: recovered a state that was never written:\n${signature}`,
          );
          counts[signature === log.full ? 'intact' : 'prefix']++;
        } finally {
          await wal.close();
        }
      }
      t.diagnostic(`seed ${seed}: ${JSON.stringify(counts)}`);
      assert.equal(counts.intact + counts.prefix + counts.corruption, CASES);
      // The damage must exercise every path: torn tails cut, corruption reported, harmless damage.
      assert.ok(counts.prefix > 0 && counts.corruption > 0 && counts.intact > 0, JSON.stringify(counts));
    } finally {
      base.cleanup();
      work.cleanup();
    }
  });
});
