/**
 * WAL throughput and latency: N concurrent appenders (1, 16, 256), each appending one entry and
 * awaiting it before the next, with 100 B and 4 KiB entries, sync mode `always` (every
 * acknowledged record is durable). Appenders write to their own Raft group, as the groups of a
 * node do; all share the log, so their appends share writes and fdatasyncs (group commit).
 *
 * All cases run on one log with the default segment size, after a warm-up that also lets the
 * first pre-allocation of the next segment finish; later pre-allocations happen during the cases,
 * as they would in service.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { WriteAheadLog } from '../src/wal/index.js';
import type { BenchRow } from './bench-row.js';
import { LatencyHistogram } from './disk-ceiling.js';

export interface WalBenchOptions {
  dir: string;
  quick?: boolean;
}

const APPENDERS = [1, 16, 256] as const;
const RECORD_SIZES = [100, 4096] as const;
/** Groups of each case are numbered from caseNumber * GROUPS_PER_CASE. */
const GROUPS_PER_CASE = 1000;

export async function runWalBench(options: WalBenchOptions): Promise<BenchRow[]> {
  const seconds = options.quick === true ? 1 : 3;
  rmSync(options.dir, { recursive: true, force: true });
  mkdirSync(options.dir, { recursive: true });
  const syncs = { count: 0 };
  const wal = await WriteAheadLog.open(options.dir, {
    onSync: () => {
      syncs.count++;
    },
  });
  const rows: BenchRow[] = [];
  try {
    await runCase(wal, 0, 100, 16, options.quick === true ? 0.5 : 1.5, syncs); // warm-up, not reported
    let caseNumber = 1;
    for (const size of RECORD_SIZES) {
      for (const appenders of APPENDERS) {
        rows.push(await runCase(wal, caseNumber++, size, appenders, seconds, syncs));
      }
    }
  } finally {
    await wal.close();
    rmSync(options.dir, { recursive: true, force: true });
  }
  return rows;
}

async function runCase(
  wal: WriteAheadLog,
  caseNumber: number,
  recordBytes: number,
  appenders: number,
  seconds: number,
  syncs: { count: number },
): Promise<BenchRow> {
  const latency = new LatencyHistogram();
  const data = Buffer.alloc(recordBytes, 0x5a);
  const syncsBefore = syncs.count;
  const started = performance.now();
  const end = started + seconds * 1000;
  const appender = async (group: number): Promise<void> => {
    for (let index = 1; ; index++) {
      const t0 = performance.now();
      if (t0 >= end) return;
      await wal.append([{ kind: 'entry', group, term: 1, index, entryType: 0, data }]);
      latency.recordMs(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: appenders }, (_, i) => appender(caseNumber * GROUPS_PER_CASE + i)));
  const elapsed = (performance.now() - started) / 1000;
  const records = latency.count;
  const syncCount = syncs.count - syncsBefore;
  const size = recordBytes === 4096 ? '4 KiB' : `${recordBytes} B`;
  return {
    section: 'wal',
    case: `append ${size} x ${appenders} appender${appenders > 1 ? 's' : ''}`,
    opsPerSec: records / elapsed,
    p50Ms: latency.percentileMs(50),
    p99Ms: latency.percentileMs(99),
    note: `${syncCount > 0 ? (records / syncCount).toFixed(1) : '-'} records/fdatasync, ${Math.round(syncCount / elapsed)} fdatasync/s`,
  };
}
