/** One line of a benchmark table: what was measured and the figures it gave. */
export interface BenchRow {
  /** Table section, e.g. "disk", "wal", "store:lmdb". */
  section: string;
  /** The case within the section, e.g. "append 100 B x 256 appenders". */
  case: string;
  opsPerSec: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Free text: ratios to a reference, batch sizes, what bounded the figure. */
  note?: string;
}
