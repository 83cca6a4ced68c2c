/**
 * The disk's durable-write ceiling: a bare loop of 4 KiB write + fdatasync on a pre-allocated
 * file, with nothing else in the way. The WAL benchmark's figures are read against it.
 *
 * Two loops, alternating in 100 ms slices: with synchronous calls (the raw ceiling: no event-loop
 * or thread-pool hop), and with Node's asynchronous calls (each write and fdatasync goes through
 * libuv's thread pool, as any non-blocking Node program's must).
 */
import { closeSync, fdatasyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Histogram } from 'hdr-histogram-js';
import { fdatasyncFile, writeFully } from '../src/wal/file-io.js';
import type { BenchRow } from './bench-row.js';

/**
 * Latency recording for the storage benchmarks: an HDR histogram in microseconds (3 significant
 * digits), read out in milliseconds. Samples are first kept in a flat array and added to the
 * histogram when a percentile is asked for: JsHistogram.recordValue costs about 250 ns, which
 * inside a measured loop of a few microseconds per append would be measuring the benchmark.
 */
export class LatencyHistogram {
  private readonly histogram: Histogram = build({ numberOfSignificantValueDigits: 3 });
  private samples = new Uint32Array(1 << 16);
  private pending = 0;

  recordMs(ms: number): void {
    if (this.pending === this.samples.length) {
      const grown = new Uint32Array(this.samples.length * 2);
      grown.set(this.samples);
      this.samples = grown;
    }
    this.samples[this.pending++] = Math.max(1, Math.round(ms * 1000));
  }

  percentileMs(p: number): number {
    this.flush();
    return this.histogram.getValueAtPercentile(p) / 1000;
  }

  get count(): number {
    return this.histogram.totalCount + this.pending;
  }

  private flush(): void {
    for (let i = 0; i < this.pending; i++) this.histogram.recordValue(this.samples[i]!);
    this.pending = 0;
  }
}

export interface DiskCeiling {
  /** Synchronous write + fdatasync loop. */
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Same loop through the asynchronous API (thread pool round trip per call). */
  asyncOpsPerSec: number;
  asyncP50Ms: number;
  asyncP99Ms: number;
}

const BLOCK = 4096;
const FILE_BYTES = 64 * 1024 * 1024;
const SLICE_MS = 100;

export async function measureDiskCeiling(dir: string, seconds: number): Promise<DiskCeiling> {
  const path = join(dir, 'disk-ceiling.tmp');
  const fd = openSync(path, 'w+');
  try {
    const zeros = Buffer.alloc(1024 * 1024);
    for (let offset = 0; offset < FILE_BYTES; offset += zeros.length)
      writeSync(fd, zeros, 0, zeros.length, offset);
    fdatasyncSync(fd);
    const block = Buffer.alloc(BLOCK, 0xa5);
    const slots = FILE_BYTES / BLOCK;

    // The two loops alternate in slices so that both see the same moments of a shared disk.
    const sync = new LatencyHistogram();
    const async = new LatencyHistogram();
    let syncMs = 0;
    let asyncMs = 0;
    let ops = 0;
    const deadline = performance.now() + seconds * 1000;
    while (performance.now() < deadline) {
      let now = performance.now();
      const syncEnd = now + SLICE_MS;
      while (now < syncEnd) {
        writeSync(fd, block, 0, BLOCK, (ops++ % slots) * BLOCK);
        fdatasyncSync(fd);
        const after = performance.now();
        sync.recordMs(after - now);
        syncMs += after - now;
        now = after;
      }
      const asyncEnd = now + SLICE_MS;
      while (now < asyncEnd) {
        await writeFully(fd, block, 0, BLOCK, (ops++ % slots) * BLOCK);
        await fdatasyncFile(fd);
        const after = performance.now();
        async.recordMs(after - now);
        asyncMs += after - now;
        now = after;
      }
    }
    const syncOps = sync.count / (syncMs / 1000);
    const asyncOps = async.count / (asyncMs / 1000);
    return {
      opsPerSec: syncOps,
      p50Ms: sync.percentileMs(50),
      p99Ms: sync.percentileMs(99),
      asyncOpsPerSec: asyncOps,
      asyncP50Ms: async.percentileMs(50),
      asyncP99Ms: async.percentileMs(99),
    };
  } finally {
    closeSync(fd);
    unlinkSync(path);
  }
}

export function diskCeilingRows(ceiling: DiskCeiling): BenchRow[] {
  return [
    {
      section: 'disk',
      case: '4 KiB write + fdatasync (sync calls)',
      opsPerSec: ceiling.opsPerSec,
      p50Ms: ceiling.p50Ms,
      p99Ms: ceiling.p99Ms,
      note: 'the raw ceiling: reference of the ratios',
    },
    {
      section: 'disk',
      case: '4 KiB write + fdatasync (async calls)',
      opsPerSec: ceiling.asyncOpsPerSec,
      p50Ms: ceiling.asyncP50Ms,
      p99Ms: ceiling.asyncP99Ms,
      note: 'through libuv thread pool',
    },
  ];
}
