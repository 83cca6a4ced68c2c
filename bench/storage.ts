/**
 * The storage benchmark (`npm run bench:storage`): the disk's fdatasync ceiling, the WAL, then the
 * state store (bench/store-bench.ts), with every figure also given as a ratio to the disk ceiling.
 *
 *   node dist/bench/storage.js [--quick] [--json] [--dir D]
 *
 * --quick runs each case for about a second; --json prints one JSON object instead of a table;
 * --dir picks the directory to measure in (default: a new one under the OS temp directory, removed
 * afterwards). Benchmarks print figures; they assert nothing (DESIGN.md §8).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchRow } from './bench-row.js';
import { type DiskCeiling, diskCeilingRows, measureDiskCeiling } from './disk-ceiling.js';
import { runStoreBench } from './store-bench.js';
import { runWalBench } from './wal-bench.js';

interface Args {
  quick: boolean;
  json: boolean;
  dir: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, json: false, dir: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') args.quick = true;
    else if (arg === '--json') args.json = true;
    else if (arg === '--dir' && argv[i + 1] !== undefined) args.dir = argv[++i];
    else
      throw new Error(
        `usage: storage.js [--quick] [--json] [--dir D] (unknown argument ${JSON.stringify(arg)})`,
      );
  }
  return args;
}

/** Ratios of a row to the raw disk ceiling: throughput, and p50 latency where the row has one. */
function withRatios(
  row: BenchRow,
  ceiling: DiskCeiling,
): BenchRow & { opsVsDisk: number; p50VsDisk?: number } {
  const out: BenchRow & { opsVsDisk: number; p50VsDisk?: number } = {
    ...row,
    opsVsDisk: row.opsPerSec / ceiling.opsPerSec,
  };
  if (row.p50Ms !== undefined) out.p50VsDisk = row.p50Ms / ceiling.p50Ms;
  return out;
}

interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

/** The targets for the WAL on the 2-core development machine. */
function checkTargets(rows: BenchRow[], ceiling: DiskCeiling): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const many = rows.find((r) => r.section === 'wal' && r.case === 'append 100 B x 256 appenders');
  if (many !== undefined) {
    checks.push({
      target: '256 appenders of 100 B: >= 300,000 durable records/s',
      measured: `${Math.round(many.opsPerSec).toLocaleString('en-US')} records/s`,
      met: many.opsPerSec >= 300_000,
    });
  }
  const one = rows.find((r) => r.section === 'wal' && r.case === 'append 100 B x 1 appender');
  if (one?.p50Ms !== undefined) {
    const ratio = one.p50Ms / ceiling.p50Ms;
    checks.push({
      target: '1 appender: p50 append latency <= 1.5x the raw fdatasync p50',
      measured: `${one.p50Ms.toFixed(3)} ms = ${ratio.toFixed(2)}x ${ceiling.p50Ms.toFixed(3)} ms`,
      met: ratio <= 1.5,
    });
  }
  return checks;
}

function formatNumber(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);
}

function printTable(rows: Array<ReturnType<typeof withRatios>>, checks: TargetCheck[]): void {
  const header = ['section', 'case', 'ops/s', 'p50 ms', 'p99 ms', 'ops vs disk', 'p50 vs disk', 'note'];
  const lines = rows.map((r) => [
    r.section,
    r.case,
    formatNumber(r.opsPerSec),
    r.p50Ms?.toFixed(3) ?? '',
    r.p99Ms?.toFixed(3) ?? '',
    `${r.opsVsDisk.toFixed(2)}x`,
    r.p50VsDisk === undefined ? '' : `${r.p50VsDisk.toFixed(2)}x`,
    r.note ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]) =>
    cells
      .map((c, i) =>
        i >= 2 && i <= 6 ? c.padStart(widths[i]!) : i < cells.length - 1 ? c.padEnd(widths[i]!) : c,
      )
      .join('  ');
  console.log(format(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(format(l));
  console.log('');
  for (const c of checks) console.log(`${c.met ? 'MET ' : 'MISS'}  ${c.target}: ${c.measured}`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = args.dir ?? mkdtempSync(join(tmpdir(), 'atlas-bench-storage-'));
  mkdirSync(dir, { recursive: true });
  const log = (line: string) => {
    if (!args.json) console.error(line);
  };
  try {
    log(`measuring in ${dir}${args.quick ? ' (quick)' : ''}`);
    log('disk ceiling...');
    const ceiling = await measureDiskCeiling(dir, args.quick ? 1 : 4);
    log('write-ahead log...');
    const walRows = await runWalBench({ dir: join(dir, 'wal'), quick: args.quick });
    log('state store...');
    const storeDir = join(dir, 'store');
    mkdirSync(storeDir, { recursive: true });
    const storeRows = await runStoreBench({ dir: storeDir, quick: args.quick });
    const rows = [...diskCeilingRows(ceiling), ...walRows, ...storeRows].map((r) => withRatios(r, ceiling));
    const checks = checkTargets(rows, ceiling);
    if (args.json) console.log(JSON.stringify({ diskCeiling: ceiling, rows, targets: checks }, null, 2));
    else printTable(rows, checks);
  } finally {
    if (args.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
