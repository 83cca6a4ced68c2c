/**
 * The state store half of the storage benchmark (bench/storage.ts calls runStoreBench).
 *
 * For LmdbStore and MemoryStore: apply throughput (batches of 1,000 single-put transactions of
 * 100 B values, as the Raft driver applies committed entries), point gets, and range scans in pages
 * of 1,000. Against it, bare `lmdb` doing the same puts (transactions of 1,000) and gets on an
 * environment opened with the same options, measured interleaved with LmdbStore in the same run so
 * that both see the same machine; the notes give LmdbStore / bare ratios (targets: gets >= 75%,
 * apply >= 60%).
 *
 * Run alone: node dist/bench/store-bench.js [--quick] [dir]
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { open } from 'lmdb';
import {
  LMDB_COMMIT_FLAGS,
  LMDB_DEFAULT_PAGE_SIZE,
  LMDB_ENV_OPTIONS,
  LmdbStore,
} from '../src/kv/lmdb-store.js';
import { MemoryStore } from '../src/kv/memory-store.js';
import type { StateStore, Txn } from '../src/kv/state-store.js';
import type { BenchRow } from './bench-row.js';

const BATCH = 1000;
const VALUE_BYTES = 100;
const SCAN_PAGE = 1000;

interface Sizes {
  keys: number;
  getRounds: number;
  scanRounds: number;
}

/** 16-byte keys in a scattered but reproducible order (a multiplicative hash of the index). */
function makeKeys(n: number): Buffer[] {
  const keys: Buffer[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const key = Buffer.alloc(16);
    key.writeUInt32BE(Math.imul(i + 1, 0x9e3779b1) >>> 0, 0);
    key.writeUInt32BE(i, 4);
    key.writeUInt32BE(Math.imul(i, 0x85ebca6b) >>> 0, 8);
    key.writeUInt32BE(0xa5a5a5a5, 12);
    keys[i] = key;
  }
  return keys;
}

function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let state = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

function batchOf(keys: Buffer[], from: number, value: Buffer): Txn[] {
  const txns: Txn[] = [];
  for (let i = from; i < Math.min(keys.length, from + BATCH); i++) {
    txns.push({ compare: [], success: [{ type: 'put', key: keys[i]!, value }], failure: [] });
  }
  return txns;
}

interface Contender {
  name: string;
  applyBatch(from: number): void;
  get(key: Buffer): number;
}

/** Runs `contenders` batch by batch, interleaved, and returns each one's batch durations in ms. */
function interleavedApply(contenders: Contender[], keys: number): number[][] {
  const durations = contenders.map(() => [] as number[]);
  for (let from = 0; from < keys; from += BATCH) {
    // Alternate who goes first, so that neither always follows the other's flush.
    const order = contenders.map((_, i) => i);
    if ((from / BATCH) % 2 === 1) order.reverse();
    for (const i of order) {
      const start = performance.now();
      contenders[i]!.applyBatch(from);
      durations[i]!.push(performance.now() - start);
    }
  }
  return durations;
}

const GET_SLICE = 1000;

/**
 * Point gets over all keys in random order, `rounds` times. The contenders take turns slice by
 * slice (1,000 gets each, alternating who goes first), so that load from elsewhere on the machine
 * falls on all of them alike. Returns each one's slice durations in ms, in the same order.
 */
function interleavedGets(contenders: Contender[], keys: Buffer[], rounds: number): number[][] {
  const durations = contenders.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    const order = shuffled(keys, round + 1);
    for (let from = 0; from < order.length; from += GET_SLICE) {
      const slice = order.slice(from, from + GET_SLICE);
      const turn = contenders.map((_, i) => i);
      if ((from / GET_SLICE) % 2 === 1) turn.reverse();
      for (const i of turn) {
        const c = contenders[i]!;
        let bytes = 0;
        const start = performance.now();
        for (const key of slice) bytes += c.get(key);
        durations[i]!.push(performance.now() - start);
        if (bytes !== slice.length * VALUE_BYTES) throw new Error(`${c.name}: gets returned wrong values`);
      }
    }
  }
  return durations;
}

/** The median over paired turns of reference time / subject time: the subject's speed relative to it. */
function pairedRatio(subject: number[], reference: number[]): number {
  return median(subject.map((t, i) => reference[i]! / t));
}

function rate(durationsMs: number[], opsPerTurn: number): number {
  return (durationsMs.length * opsPerTurn) / (durationsMs.reduce((a, b) => a + b, 0) / 1000);
}

function scanRate(store: StateStore, expected: number, rounds: number): number {
  const rates: number[] = [];
  for (let round = 0; round < rounds; round++) {
    let seen = 0;
    let start: Buffer | undefined;
    const t0 = performance.now();
    for (;;) {
      const page = store.range({ ...(start === undefined ? {} : { start }), limit: SCAN_PAGE });
      seen += page.length;
      if (page.length < SCAN_PAGE) break;
      start = Buffer.concat([page[page.length - 1]!.key, Buffer.from([0])]);
    }
    rates.push(seen / ((performance.now() - t0) / 1000));
    if (seen !== expected) throw new Error(`scan saw ${seen} keys, expected ${expected}`);
  }
  return median(rates);
}

/** A store as a contender; its batches are built before the clock starts (bare lmdb has none to build). */
function storeContender(name: string, store: StateStore, keys: Buffer[], value: Buffer): Contender {
  const batches: Txn[][] = [];
  for (let from = 0; from < keys.length; from += BATCH) batches.push(batchOf(keys, from, value));
  return {
    name,
    applyBatch(from) {
      store.apply({ appliedIndex: from / BATCH + 1, txns: batches[from / BATCH]! });
    },
    get(key) {
      return store.get(key)!.value.length;
    },
  };
}

function applyRow(section: string, durations: number[], keys: number, note: string): BenchRow {
  const sorted = [...durations].sort((a, b) => a - b);
  const total = durations.reduce((a, b) => a + b, 0);
  return {
    section,
    case: `apply ${BATCH.toLocaleString('en-US')} puts of ${VALUE_BYTES} B per batch`,
    opsPerSec: Math.round(keys / (total / 1000)),
    p50Ms: Number(percentile(sorted, 50).toFixed(3)),
    p99Ms: Number(percentile(sorted, 99).toFixed(3)),
    note,
  };
}

export async function runStoreBench(options: { dir: string; quick?: boolean }): Promise<BenchRow[]> {
  const sizes: Sizes = options.quick
    ? { keys: 30_000, getRounds: 3, scanRounds: 2 }
    : { keys: 100_000, getRounds: 7, scanRounds: 5 };
  mkdirSync(options.dir, { recursive: true });
  const root = mkdtempSync(join(options.dir, 'store-bench-'));
  const keys = makeKeys(sizes.keys);
  const value = Buffer.alloc(VALUE_BYTES, 0x5a);
  const rows: BenchRow[] = [];
  const lmdbStore = LmdbStore.open(join(root, 'lmdb-store'));
  const memoryStore = new MemoryStore();
  // Bare lmdb: the same environment options as LmdbStore (lmdb-store.ts), one database, raw values.
  const bareEnv = open<Buffer, Buffer>({
    ...LMDB_ENV_OPTIONS,
    path: join(root, 'lmdb-bare'),
    pageSize: LMDB_DEFAULT_PAGE_SIZE,
    keyEncoding: 'binary',
    encoding: 'binary',
  });
  const bare = bareEnv.openDB<Buffer, Buffer>('bare', { keyEncoding: 'binary', encoding: 'binary' });
  try {
    const bareContender: Contender = {
      name: 'bare lmdb',
      applyBatch(from) {
        bareEnv.transactionSync(() => {
          for (let i = from; i < Math.min(keys.length, from + BATCH); i++) bare.putSync(keys[i]!, value);
        }, LMDB_COMMIT_FLAGS);
      },
      get(key) {
        return bare.getBinary(key)!.length;
      },
    };
    const lmdbContender = storeContender('LmdbStore', lmdbStore, keys, value);
    const memoryContender = storeContender('MemoryStore', memoryStore, keys, value);
    const [storeApply, bareApply] = interleavedApply([lmdbContender, bareContender], sizes.keys);
    const [memoryApply] = interleavedApply([memoryContender], sizes.keys);
    const [storeGets, bareGets, memoryGets] = interleavedGets(
      [lmdbContender, bareContender, memoryContender],
      keys,
      sizes.getRounds,
    );
    const applyRatio = pairedRatio(storeApply!, bareApply!);
    const getRatio = pairedRatio(storeGets!, bareGets!);
    const scale = `${sizes.keys.toLocaleString('en-US')} keys of 16 B`;
    rows.push(
      applyRow(
        'store:lmdb',
        storeApply!,
        sizes.keys,
        `${(applyRatio * 100).toFixed(0)}% of bare lmdb (target >= 60%; median of per-batch ratios, interleaved); one commit + flush per batch; ${scale}`,
      ),
      {
        section: 'store:lmdb',
        case: `point get, ${VALUE_BYTES} B values`,
        opsPerSec: Math.round(rate(storeGets!, GET_SLICE)),
        note: `${(getRatio * 100).toFixed(0)}% of bare lmdb (target >= 75%; median of per-slice ratios, interleaved in slices of ${GET_SLICE}); ${scale}`,
      },
      {
        section: 'store:lmdb',
        case: `range scan, pages of ${SCAN_PAGE.toLocaleString('en-US')}`,
        opsPerSec: Math.round(scanRate(lmdbStore, sizes.keys, sizes.scanRounds)),
        note: `key-values per second; ${scale}`,
      },
      applyRow(
        'store:lmdb-bare',
        bareApply!,
        sizes.keys,
        `lmdb transactions of ${BATCH} putSync, same env options`,
      ),
      {
        section: 'store:lmdb-bare',
        case: `point get, ${VALUE_BYTES} B values`,
        opsPerSec: Math.round(rate(bareGets!, GET_SLICE)),
        note: 'getBinary (a copied Buffer, like LmdbStore.get)',
      },
      applyRow('store:memory', memoryApply!, sizes.keys, scale),
      {
        section: 'store:memory',
        case: `point get, ${VALUE_BYTES} B values`,
        opsPerSec: Math.round(rate(memoryGets!, GET_SLICE)),
        note: scale,
      },
      {
        section: 'store:memory',
        case: `range scan, pages of ${SCAN_PAGE.toLocaleString('en-US')}`,
        opsPerSec: Math.round(scanRate(memoryStore, sizes.keys, sizes.scanRounds)),
        note: `key-values per second; ${scale}`,
      },
    );
  } finally {
    await lmdbStore.close();
    await memoryStore.close();
    await bareEnv.close();
    rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const dir = args.find((a) => !a.startsWith('--')) ?? tmpdir();
  const rows = await runStoreBench({ dir, quick });
  for (const row of rows) {
    const latency = row.p50Ms === undefined ? '' : `  p50 ${row.p50Ms} ms  p99 ${row.p99Ms} ms`;
    console.log(
      `${row.section.padEnd(16)} ${row.case.padEnd(38)} ${String(row.opsPerSec).padStart(10)}/s${latency}  ${row.note ?? ''}`,
    );
  }
}
