/**
 * WAL throughput and latency: N concurrent appenders (1, 16, 256), each appending one entry and
 * awaiting it before the next, with 100 B and 4 KiB entries, sync mode `always` (every
 * acknowledged record is durable). Appenders write to their own Raft group, as the groups of a
 * node do; all share the log, so their appends share writes and fdatasyncs (group commit).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { WriteAheadLog } from '../src/wal/index.js';
import type { BenchRow } from './bench-row.js';
import { LatencyHistogram } from './disk-ceiling.js';

export interface WalBenchOptions {
  dir: string;
  quick?: boolean;
}

const APPENDERS = [1, 16, 256] as const;
const RECORD_SIZES = [100, 4096] as const;

export async function runWalBench(options: WalBenchOptions): Promise<BenchRow[]> {
  const seconds = options.quick === true ? 1 : 3;
  const warmupMs = options.quick === true ? 200 : 500;
  const rows: BenchRow[] = [];
  for (const size of RECORD_SIZES) {
    for (const appenders of APPENDERS) {
      rows.push(
        await runCase(join(options.dir, `wal-${size}-${appenders}`), size, appenders, seconds, warmupMs),
      );
    }
  }
  return rows;
}

async function runCase(
  dir: string,
  recordBytes: number,
  appenders: number,
  seconds: number,
  warmupMs: number,
): Promise<BenchRow> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let syncs = 0;
  let measuring = false;
  const wal = await WriteAheadLog.open(dir, {
    onSync: () => {
      if (measuring) syncs++;
    },
  });
  const latency = new LatencyHistogram();
  const data = Buffer.alloc(recordBytes, 0x5a);
  let records = 0;
  const warmupEnd = performance.now() + warmupMs;
  const end = warmupEnd + seconds * 1000;
  const appender = async (group: number): Promise<void> => {
    for (let index = 1; ; index++) {
      const started = performance.now();
      if (started >= end) return;
      await wal.append([{ kind: 'entry', group, term: 1, index, entryType: 0, data }]);
      if (started >= warmupEnd) {
        latency.recordMs(performance.now() - started);
        records++;
      }
    }
  };
  const timer = setTimeout(() => {
    measuring = true;
  }, warmupMs);
  await Promise.all(Array.from({ length: appenders }, (_, i) => appender(i + 1)));
  clearTimeout(timer);
  await wal.close();
  rmSync(dir, { recursive: true, force: true });
  const recordsPerSync = syncs > 0 ? records / syncs : 0;
  return {
    section: 'wal',
    case: `append ${recordBytes === 4096 ? '4 KiB' : `${recordBytes} B`} x ${appenders} appender${appenders > 1 ? 's' : ''}`,
    opsPerSec: records / seconds,
    p50Ms: latency.percentileMs(50),
    p99Ms: latency.percentileMs(99),
    note: `${recordsPerSync.toFixed(1)} records/fdatasync`,
  };
}
