import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openFullGc } from '../../src/server/full-gc.js';
import { openGlibcMalloc } from '../../src/server/glibc-malloc.js';
import {
  IDLE_UTILIZATION,
  MAX_IDLE_COLLECTIONS,
  type MemoryReclaimResult,
  MemoryReclaimer,
  YOUNG_GENERATION_IDLE_BYTES,
  parseRssAnon,
  procAnonResidentBytes,
  v8YoungGenerationBytes,
} from '../../src/server/memory-reclaimer.js';

const MiB = 1024 * 1024;

/** A reclaimer with scripted utilization and RssAnon readings; counts trims and GCs. */
function scripted(utilization: number[], anon: (number | null)[] = []) {
  const calls = { trims: 0, gcs: 0 };
  const reports: MemoryReclaimResult[] = [];
  const reclaimer = new MemoryReclaimer({
    intervalMs: 1000,
    malloc: { trim: () => ++calls.trims > 0 },
    fullGc: () => {
      calls.gcs++;
    },
    utilizationSinceLastCall: () => utilization.shift() ?? 1,
    anonResidentBytes: () => (anon.length > 0 ? (anon.shift() ?? null) : null),
    sweepPauseMs: 1,
    onReclaim: (r) => reports.push(r),
  });
  return { reclaimer, calls, reports };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('MemoryReclaimer', () => {
  it('reads RssAnon from a /proc status text, and nothing from a malformed one', () => {
    assert.equal(
      parseRssAnon('VmRSS:\t  538576 kB\nRssAnon:\t  209276 kB\nRssFile:\t  329300 kB\n'),
      209_276 * 1024,
    );
    assert.equal(parseRssAnon('VmRSS:\t  538576 kB\n'), null);
    assert.equal(parseRssAnon('RssAnon:\t  lots kB\n'), null);
    assert.equal(parseRssAnon('RssAnon:\t  12 MB\n'), null);
  });

  it('only trims while the node is busy, and reports what the trim released', () => {
    const { reclaimer, calls, reports } = scripted([0.5], [300 * MiB, 200 * MiB]);
    reclaimer.tick();
    assert.deepEqual(calls, { trims: 1, gcs: 0 });
    assert.equal(reports.length, 1);
    assert.equal(reports[0]?.collected, false);
    assert.equal(reports[0]?.releasedBytes, 100 * MiB);
  });

  it('collects once per idle period, before the trim, and again only after the node was busy', async () => {
    const idle = IDLE_UTILIZATION / 2;
    const { reclaimer, calls, reports } = scripted([idle, idle, idle, 0.3, idle]);
    reclaimer.tick(); // idle: GC, trim after the sweep pause
    assert.deepEqual(calls, { trims: 0, gcs: 1 });
    await settle();
    assert.deepEqual(calls, { trims: 1, gcs: 1 });
    reclaimer.tick(); // still the same idle period: trim only
    reclaimer.tick();
    assert.deepEqual(calls, { trims: 3, gcs: 1 });
    reclaimer.tick(); // busy
    reclaimer.tick(); // a new idle period: GC again
    await settle();
    assert.deepEqual(calls, { trims: 5, gcs: 2 });
    assert.deepEqual(
      reports.map((r) => r.collected),
      [true, false, false, false, true],
    );
  });

  it('collects again in the same idle period while the young generation stays large, up to a limit', async () => {
    const idle = IDLE_UTILIZATION / 2;
    const young = [40 * MiB, 40 * MiB, 2 * MiB, 2 * MiB];
    let gcs = 0;
    const reclaimer = new MemoryReclaimer({
      intervalMs: 1000,
      malloc: { trim: () => true },
      fullGc: () => {
        gcs++;
      },
      youngGenerationBytes: () => young.shift() ?? 2 * MiB,
      utilizationSinceLastCall: () => idle,
      anonResidentBytes: () => null,
      sweepPauseMs: 1,
    });
    const tickAndSettle = async () => {
      reclaimer.tick();
      await settle();
    };
    await tickAndSettle(); // the idle period's first GC: the young generation is not even read
    assert.equal(gcs, 1);
    await tickAndSettle(); // 40 MiB: again
    await tickAndSettle(); // 40 MiB: again
    assert.equal(gcs, 3);
    await tickAndSettle(); // 2 MiB: V8 gave it back, trim only
    await tickAndSettle();
    assert.equal(gcs, 3);
    // A young generation that never shrinks costs at most MAX_IDLE_COLLECTIONS GCs per idle period.
    const stubborn = new MemoryReclaimer({
      intervalMs: 1000,
      malloc: { trim: () => true },
      fullGc: () => {
        gcs++;
      },
      youngGenerationBytes: () => YOUNG_GENERATION_IDLE_BYTES + 1,
      utilizationSinceLastCall: () => idle,
      anonResidentBytes: () => null,
      sweepPauseMs: 1,
    });
    gcs = 0;
    for (let i = 0; i < MAX_IDLE_COLLECTIONS + 3; i++) {
      stubborn.tick();
      await settle();
    }
    assert.equal(gcs, MAX_IDLE_COLLECTIONS);
  });

  it('reads the young generation from V8', () => {
    const bytes = v8YoungGenerationBytes();
    assert.ok(bytes > 0 && bytes <= 64 * MiB, `new space ${bytes} bytes`);
  });

  it('reports 0 released when memory grew during the trim or cannot be read', () => {
    const { reclaimer } = scripted([], [100, 150]);
    assert.equal(reclaimer.trimNow().releasedBytes, 0);
    assert.equal(reclaimer.trimNow().releasedBytes, 0); // both readings null now
  });

  it('reclaims on its interval until stopped, and refuses a non-positive interval', async () => {
    let trims = 0;
    const reclaimer = new MemoryReclaimer({
      malloc: { trim: () => ++trims > 0 },
      intervalMs: 5,
      anonResidentBytes: () => null,
    });
    reclaimer.start();
    assert.equal(reclaimer.running, true);
    const deadline = Date.now() + 5000;
    while (trims < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    reclaimer.stop();
    assert.ok(trims >= 3, `trimmed ${trims} times`);
    assert.equal(reclaimer.running, false);
    const after = trims;
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(trims, after);
    for (const bad of [0, -5, 1.5, Number.NaN]) {
      assert.throws(() => new MemoryReclaimer({ malloc: { trim: () => true }, intervalMs: bad }), RangeError);
    }
  });

  it(
    'hands dead Buffers back to the OS on glibc Linux: GC, then malloc_trim',
    { skip: skipUnlessGlibc() },
    async () => {
      const { binding } = openGlibcMalloc();
      assert.ok(binding !== null);
      // 64 MiB of 8 KiB Buffers (below the mmap threshold, so in glibc's heap), all dropped but the
      // last, which keeps the heap's top in use so that free() alone cannot shrink it.
      let kept: Buffer[] = [];
      for (let i = 0; i < 8192; i++) kept.push(Buffer.alloc(8 * 1024, 1));
      const last = kept[kept.length - 1];
      kept = [];
      const reports: MemoryReclaimResult[] = [];
      const reclaimer = new MemoryReclaimer({
        intervalMs: 1000,
        malloc: binding,
        fullGc: openFullGc(),
        utilizationSinceLastCall: () => 0,
        onReclaim: (r) => reports.push(r),
      });
      assert.ok(procAnonResidentBytes() !== null);
      reclaimer.tick();
      const deadline = Date.now() + 5000;
      while (reports.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const [result] = reports;
      assert.equal(result?.collected, true);
      assert.ok((result?.releasedBytes ?? 0) > 32 * MiB, `released ${result?.releasedBytes} bytes`);
      assert.equal(last?.length, 8 * 1024);
    },
  );
});

/** Why the live test cannot run here, or false. */
function skipUnlessGlibc(): string | false {
  const { binding, reason } = openGlibcMalloc();
  return binding === null ? `no malloc_trim binding: ${reason}` : false;
}
