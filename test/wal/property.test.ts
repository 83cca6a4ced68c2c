/**
 * Property test: random operations on a real log (appends to many groups with conflicting
 * suffixes, truncations, hard states, snapshot markers, releases, concurrent appends, close and
 * reopen) against the plain model of test/wal/wal-model.ts. After every operation, and after every
 * reopen, the log must hold exactly what the model holds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type WalRecord, WriteAheadLog } from '../../src/wal/index.js';
import { tempDir } from './helpers.js';
import { dumpLog, signatureOf, WalModel } from './wal-model.js';

const SEGMENT = 4096;
const GROUPS = 5;

type AppendOp = {
  t: 'append';
  group: number;
  sizes: number[];
  back: number;
  bump: boolean;
  withHardState: boolean;
};
type Op =
  | AppendOp
  | { t: 'truncate'; group: number; back: number }
  | { t: 'snapshot'; group: number; back: number; beyond: number }
  | { t: 'hardState'; group: number; bump: boolean; vote: string; commitUp: number }
  | { t: 'concurrent'; appends: AppendOp[] }
  | { t: 'release' }
  | { t: 'reopen' };

const group = fc.integer({ min: 0, max: GROUPS - 1 });
const appendOp: fc.Arbitrary<AppendOp> = fc.record({
  t: fc.constant('append' as const),
  group,
  sizes: fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 6 }),
  back: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4 })),
  bump: fc.boolean(),
  withHardState: fc.boolean(),
});
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: appendOp },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('truncate' as const),
      group,
      back: fc.integer({ min: 0, max: 5 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('snapshot' as const),
      group,
      back: fc.integer({ min: 0, max: 6 }),
      beyond: fc.oneof(
        { weight: 4, arbitrary: fc.constant(0) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('hardState' as const),
      group,
      bump: fc.boolean(),
      vote: fc.constantFrom('', 'n1', 'node-two', 'ñ3'),
      commitUp: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('concurrent' as const),
      appends: fc.array(appendOp, { minLength: 2, maxLength: 4 }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ t: 'release' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
);

let dataCounter = 0;
function data(size: number): Buffer {
  const seed = dataCounter++;
  const buf = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) buf[i] = (seed * 31 + i * 7) & 0xff;
  return buf;
}

/** Turns an operation into records valid for the model's current state, and applies them to it. */
function appendRecords(model: WalModel, o: AppendOp): WalRecord[] {
  const last = model.lastIndex(o.group);
  const start = Math.max(model.firstIndex(o.group), last + 1 - o.back);
  const term = Math.max(model.termAt(o.group, start - 1)!, model.maxTerm(o.group)) + (o.bump ? 1 : 0);
  const records: WalRecord[] = o.sizes.map((size, k) => ({
    kind: 'entry',
    group: o.group,
    term,
    index: start + k,
    entryType: size % 3,
    data: data(size),
  }));
  if (o.withHardState) {
    const hs = model.groups.get(o.group)?.hardState ?? null;
    const hsTerm = Math.max(hs?.term ?? 0, term);
    const vote = hs !== null && hs.term === hsTerm ? hs.vote : 'n1';
    records.push({ kind: 'hardState', group: o.group, term: hsTerm, vote, commit: hs?.commit ?? 0 });
  }
  for (const r of records) model.apply(r);
  return records;
}

function recordsFor(
  model: WalModel,
  o: Exclude<Op, AppendOp | { t: 'concurrent' | 'release' | 'reopen' }>,
): WalRecord[] {
  const g = model.groups.get(o.group);
  const last = model.lastIndex(o.group);
  const first = model.firstIndex(o.group);
  let record: WalRecord;
  switch (o.t) {
    case 'truncate':
      record = { kind: 'truncate', group: o.group, fromIndex: Math.max(first, last + 1 - o.back) };
      break;
    case 'snapshot': {
      if (o.beyond > 0) {
        const term = model.maxTerm(o.group) + 1;
        // Installing a leader's snapshot: the log is discarded (Raft §7), then the marker.
        const records: WalRecord[] = [
          { kind: 'truncate', group: o.group, fromIndex: first },
          { kind: 'snapshot', group: o.group, index: last + o.beyond, term },
        ];
        for (const r of records) model.apply(r);
        return records;
      }
      const index = Math.max(first - 1, last - o.back);
      record = { kind: 'snapshot', group: o.group, index, term: model.termAt(o.group, index)! };
      break;
    }
    case 'hardState': {
      const hs = g?.hardState ?? { term: 0, vote: '', commit: 0 };
      const term = hs.term + (o.bump ? 1 : 0);
      const vote = term === hs.term && hs.vote !== '' ? hs.vote : o.vote;
      record = { kind: 'hardState', group: o.group, term, vote, commit: hs.commit + o.commitUp };
      break;
    }
  }
  model.apply(record);
  return [record];
}

async function check(wal: WriteAheadLog, model: WalModel, after: string): Promise<void> {
  assert.equal(signatureOf(dumpLog(wal)), model.signature(), `log differs from the model after ${after}`);
}

describe('WriteAheadLog against a plain model (fast-check)', () => {
  it('equals the model after every operation and every reopen', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
        const { dir, cleanup } = tempDir('atlas-wal-prop-');
        const model = new WalModel();
        let wal = await WriteAheadLog.open(dir, { segmentSize: SEGMENT });
        try {
          for (const [step, o] of ops.entries()) {
            switch (o.t) {
              case 'append':
                await wal.append(appendRecords(model, o));
                break;
              case 'concurrent':
                // Issued in one turn: validated in call order, written in one batch.
                await Promise.all(o.appends.map((a) => wal.append(appendRecords(model, a))));
                break;
              case 'release':
                await wal.release();
                break;
              case 'reopen':
                await wal.close();
                wal = await WriteAheadLog.open(dir, { segmentSize: SEGMENT });
                break;
              default:
                await wal.append(recordsFor(model, o));
            }
            await check(wal, model, `step ${step} (${o.t})`);
          }
          await wal.release();
          await wal.close();
          wal = await WriteAheadLog.open(dir, { segmentSize: SEGMENT });
          await check(wal, model, 'the final release and reopen');
        } finally {
          await wal.close();
          cleanup();
        }
      }),
      { numRuns: 60 },
    );
  });
});
