/**
 * Model-based property tests: random sequences of batches (puts, deletes, gets, compares, meta
 * writes), invalid batches, reads (get, ranges forward/reverse with limits, prefixes, counts) and
 * reopens, run against each store and against a plain Map model written independently of the
 * store's code. Every result and the whole observable state must match the model.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type {
  Compare,
  CompareOp,
  KeyValue,
  MetaWrite,
  RequestOp,
  StateStore,
  Txn,
  TxnResult,
} from '../../src/kv/state-store.js';
import { MemoryStore } from '../../src/kv/memory-store.js';
import { lmdbBackend } from './backends.js';
import { collect, picture } from './helpers.js';
import type { StoreBackend } from './state-store-contract.js';

const MAX_VALUE = 8;

interface ModelEntry {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
}

/** The reference: a Map and the etcd rules, spelled out as plainly as possible. */
class Model {
  kv = new Map<string, ModelEntry>();
  meta = new Map<string, Buffer>();
  appliedIndex = 0;
  revision = 0;

  apply(appliedIndex: number, txns: Txn[], meta: MetaWrite[]): unknown[] {
    const results = txns.map((txn) => this.txn(txn));
    for (const write of meta) {
      if (write.value === null) this.meta.delete(write.key);
      else this.meta.set(write.key, Buffer.from(write.value));
    }
    this.appliedIndex = appliedIndex;
    return results;
  }

  private holds(compare: Compare): boolean {
    const entry = this.kv.get(compare.key.toString('hex'));
    if (compare.target === 'exists') return (entry !== undefined) === compare.exists;
    if (compare.target === 'value') {
      if (entry === undefined) return false;
      return test(Buffer.compare(entry.value, compare.value), 0, compare.op);
    }
    return test(entry === undefined ? 0 : entry[compare.target], compare.value, compare.op);
  }

  private txn(txn: Txn): unknown {
    const succeeded = txn.compare.every((c) => this.holds(c));
    const rev = this.revision + 1;
    let wrote = false;
    const responses: { type: string; [k: string]: unknown }[] = [];
    for (const op of succeeded ? txn.success : txn.failure) {
      const id = op.key.toString('hex');
      const entry = this.kv.get(id);
      if (op.type === 'put') {
        this.kv.set(id, {
          key: Buffer.from(op.key),
          value: Buffer.from(op.value),
          createRevision: entry === undefined ? rev : entry.createRevision,
          modRevision: rev,
          version: entry === undefined ? 1 : entry.version + 1,
        });
        wrote = true;
        responses.push({ type: 'put', revision: rev });
      } else if (op.type === 'delete') {
        if (entry !== undefined) {
          this.kv.delete(id);
          wrote = true;
        }
        responses.push({ type: 'delete', deleted: entry === undefined ? 0 : 1 });
      } else {
        responses.push({ type: 'get', kv: entry === undefined ? null : picture(entry) });
      }
    }
    if (wrote) this.revision = rev;
    for (const response of responses) if (response.type === 'delete') response.revision = this.revision;
    return { succeeded, revision: this.revision, responses };
  }

  range(
    start: Buffer | undefined,
    end: Buffer | undefined,
    limit: number | undefined,
    reverse: boolean,
  ): ModelEntry[] {
    let entries = [...this.kv.values()].sort((a, b) => Buffer.compare(a.key, b.key));
    entries = entries.filter(
      (e) =>
        (start === undefined || Buffer.compare(e.key, start) >= 0) &&
        (end === undefined || Buffer.compare(e.key, end) < 0),
    );
    if (reverse) entries.reverse();
    return limit === undefined ? entries : entries.slice(0, limit);
  }
}

function test(actual: number, expected: number, op: CompareOp): boolean {
  if (op === '=') return actual === expected;
  if (op === '!=') return actual !== expected;
  if (op === '<') return actual < expected;
  return actual > expected;
}

/** Comparable form of a store's txn results. */
function normalize(results: TxnResult[]): unknown[] {
  return results.map((r) => ({
    succeeded: r.succeeded,
    revision: r.revision,
    responses: r.responses.map((op) =>
      op.type === 'get' ? { type: 'get', kv: op.kv === null ? null : picture(op.kv) } : { ...op },
    ),
  }));
}

// Few distinct bytes, short keys: many collisions, shared prefixes, 0x00 and 0xff everywhere.
const byteArb = fc.constantFrom(0x00, 0x01, 0x61, 0xfe, 0xff);
const keyByteArb = fc.constantFrom(0x00, 0x61, 0xff);
const keyArb = fc.array(keyByteArb, { minLength: 1, maxLength: 4 }).map((b) => Buffer.from(b));
const valueArb = fc.array(byteArb, { minLength: 0, maxLength: 4 }).map((b) => Buffer.from(b));
const opArb = fc.constantFrom<CompareOp>('=', '!=', '<', '>');
const compareArb: fc.Arbitrary<Compare> = fc.oneof(
  fc.record({ key: keyArb, target: fc.constant('value' as const), op: opArb, value: valueArb }),
  fc.record({
    key: keyArb,
    target: fc.constantFrom('version' as const, 'createRevision' as const, 'modRevision' as const),
    op: opArb,
    value: fc.integer({ min: 0, max: 8 }),
  }),
  fc.record({ key: keyArb, target: fc.constant('exists' as const), exists: fc.boolean() }),
);
const requestArb: fc.Arbitrary<RequestOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ type: fc.constant('put' as const), key: keyArb, value: valueArb }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('delete' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('get' as const), key: keyArb }) },
);
const txnArb: fc.Arbitrary<Txn> = fc.record({
  compare: fc.array(compareArb, { maxLength: 2 }),
  success: fc.array(requestArb, { maxLength: 4 }),
  failure: fc.array(requestArb, { maxLength: 2 }),
});
const metaArb: fc.Arbitrary<MetaWrite> = fc.record({
  key: fc.constantFrom('conf', 'sessions', 'x'),
  value: fc.option(valueArb, { nil: null }),
});
const boundArb = fc.option(fc.oneof(keyArb, fc.constant(Buffer.alloc(0))), { nil: undefined });
const limitArb = fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined });

type Command =
  | { kind: 'apply'; gap: number; txns: Txn[]; meta: MetaWrite[] }
  | { kind: 'applyInvalid'; txns: Txn[]; at: number }
  | { kind: 'get'; key: Buffer }
  | {
      kind: 'range';
      start: Buffer | undefined;
      end: Buffer | undefined;
      limit: number | undefined;
      reverse: boolean;
    }
  | { kind: 'prefix'; prefix: Buffer; limit: number | undefined; reverse: boolean }
  | { kind: 'count'; start: Buffer | undefined; end: Buffer | undefined }
  | { kind: 'reopen' };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('apply' as const),
      gap: fc.integer({ min: 1, max: 3 }),
      txns: fc.array(txnArb, { maxLength: 4 }),
      meta: fc.array(metaArb, { maxLength: 2 }),
    }),
  },
  {
    // Large batches: many keys change at once (MemoryStore merges them in one pass).
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('apply' as const),
      gap: fc.constant(1),
      txns: fc
        .array(requestArb, { minLength: 17, maxLength: 60 })
        .map((ops) => [{ compare: [], success: ops, failure: [] }]),
      meta: fc.constant<MetaWrite[]>([]),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('applyInvalid' as const),
      txns: fc.array(txnArb, { minLength: 1, maxLength: 3 }),
      at: fc.nat(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('get' as const), key: keyArb }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('range' as const),
      start: boundArb,
      end: boundArb,
      limit: limitArb,
      reverse: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('prefix' as const),
      prefix: fc.oneof(keyArb, fc.constant(Buffer.alloc(0))),
      limit: limitArb,
      reverse: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('count' as const), start: boundArb, end: boundArb }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

const pictures = (kvs: (KeyValue | ModelEntry)[]) => kvs.map(picture);

async function runCommands(
  commands: Command[],
  open: () => Promise<StateStore>,
  reopen: (store: StateStore) => Promise<StateStore>,
): Promise<void> {
  const model = new Model();
  let store = await open();
  for (const command of commands) {
    switch (command.kind) {
      case 'apply': {
        const appliedIndex = model.appliedIndex + command.gap;
        const got = store.apply({ appliedIndex, txns: command.txns, meta: command.meta });
        assert.deepEqual(normalize(got), model.apply(appliedIndex, command.txns, command.meta));
        break;
      }
      case 'applyInvalid': {
        // An over-limit value hidden in one txn: the whole batch must be rejected.
        const txns = command.txns.map((t) => ({ ...t, success: [...t.success] }));
        txns[command.at % txns.length]!.success.push({
          type: 'put',
          key: Buffer.from([0x61]),
          value: Buffer.alloc(MAX_VALUE + 1),
        });
        assert.throws(() => store.apply({ appliedIndex: model.appliedIndex + 1, txns }), /maxValueBytes/);
        break;
      }
      case 'get': {
        const kv = store.get(command.key);
        const entry = model.kv.get(command.key.toString('hex'));
        assert.deepEqual(kv === null ? null : picture(kv), entry === undefined ? null : picture(entry));
        break;
      }
      case 'range': {
        const { start, end, limit, reverse } = command;
        const got = store.range({ start, end, limit, reverse });
        const modelStart = start !== undefined && start.length === 0 ? undefined : start;
        const expected =
          end !== undefined && end.length === 0 ? [] : model.range(modelStart, end, limit, reverse);
        assert.deepEqual(pictures(got), pictures(expected));
        break;
      }
      case 'prefix': {
        const { prefix, limit, reverse } = command;
        const got = store.prefix(prefix, { limit, reverse });
        const expected = model
          .range(prefix.length === 0 ? undefined : prefix, undefined, undefined, reverse)
          .filter((e) => e.key.subarray(0, prefix.length).equals(prefix))
          .slice(0, limit);
        assert.deepEqual(pictures(got), pictures(expected));
        break;
      }
      case 'count': {
        const { start, end } = command;
        const modelStart = start !== undefined && start.length === 0 ? undefined : start;
        const expected =
          end !== undefined && end.length === 0 ? 0 : model.range(modelStart, end, undefined, false).length;
        assert.equal(store.count({ start, end }), expected);
        break;
      }
      case 'reopen':
        store = await reopen(store);
        break;
    }
    assert.equal(store.appliedIndex(), model.appliedIndex);
    assert.equal(store.revision(), model.revision);
    assert.equal(store.count(), model.kv.size);
    for (const key of ['conf', 'sessions', 'x']) {
      assert.deepEqual(store.getMeta(key), model.meta.get(key) ?? null);
    }
  }
  assert.deepEqual(pictures(store.range({})), pictures(model.range(undefined, undefined, undefined, false)));
  await store.close();
}

const limits = { maxValueBytes: MAX_VALUE };

describe('state stores against a Map model (fast-check)', () => {
  it('MemoryStore (reopen = snapshot + import into a new store)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(commandArb, { minLength: 5, maxLength: 40, size: 'max' }),
        async (commands) => {
          await runCommands(
            commands,
            async () => new MemoryStore({ limits }),
            async (store) => {
              const next = new MemoryStore({ limits });
              await next.importSnapshot(await collect(store.exportSnapshot(Buffer.alloc(0))));
              await store.close();
              return next;
            },
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  for (const [name, make] of [
    ['LmdbStore (reopen = close + open the same path)', () => lmdbBackend()],
    [
      'LmdbStore with 2-byte inline keys (long-key buckets everywhere)',
      () => lmdbBackend({ inlineKeyMaxBytes: 2 }),
    ],
  ] as [string, () => StoreBackend][]) {
    it(name, async () => {
      const backend = make();
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.array(commandArb, { minLength: 5, maxLength: 40, size: 'max' }),
            async (commands) => {
              await runCommands(
                commands,
                () => backend.create({ limits }),
                (store) => backend.reopen!(store),
              );
            },
          ),
          { numRuns: 100 },
        );
      } finally {
        await backend.cleanup();
      }
    });
  }
});
