/** Shared helpers of the WAL tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WalRecord } from '../../src/wal/index.js';

/** A fresh temporary directory; removed by the returned cleanup. */
export function tempDir(prefix = 'atlas-wal-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function entry(
  group: number,
  index: number,
  term = 1,
  data: Buffer | string = `e${group}.${index}`,
): WalRecord {
  return {
    kind: 'entry',
    group,
    term,
    index,
    entryType: 0,
    data: typeof data === 'string' ? Buffer.from(data) : data,
  };
}

export function hardState(group: number, term: number, vote: string, commit: number): WalRecord {
  return { kind: 'hardState', group, term, vote, commit };
}

export function snapshot(group: number, index: number, term = 1): WalRecord {
  return { kind: 'snapshot', group, index, term };
}

/** Entries from..to (inclusive) of one group, term 1, data "e<group>.<index>". */
export function entries(group: number, from: number, to: number, term = 1): WalRecord[] {
  const out: WalRecord[] = [];
  for (let i = from; i <= to; i++) out.push(entry(group, i, term));
  return out;
}
