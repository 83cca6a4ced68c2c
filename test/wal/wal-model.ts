/**
 * A plain model of the write-ahead log's contents, for property and fuzz tests: what every group's
 * log must hold after a sequence of records, with none of the log's machinery (files, index,
 * batches). Also `dumpLog`, which reads a real log into the same shape.
 */
import type { WalRecord, WriteAheadLog } from '../../src/wal/index.js';

export interface ModelEntry {
  term: number;
  entryType: number;
  data: Buffer;
}

export interface ModelGroup {
  snapshot: { index: number; term: number } | null;
  hardState: { term: number; vote: string; commit: number } | null;
  /** Index of entries[0]: always snapshot index + 1. */
  first: number;
  entries: ModelEntry[];
}

export class WalModel {
  readonly groups = new Map<number, ModelGroup>();

  private group(id: number): ModelGroup {
    let g = this.groups.get(id);
    if (g === undefined) {
      g = { snapshot: null, hardState: null, first: 1, entries: [] };
      this.groups.set(id, g);
    }
    return g;
  }

  lastIndex(id: number): number {
    const g = this.groups.get(id);
    return g === undefined ? 0 : g.first + g.entries.length - 1;
  }

  firstIndex(id: number): number {
    return this.groups.get(id)?.first ?? 1;
  }

  /** Term at `index` (the snapshot's at its index, 0 at 0); undefined outside the log. */
  termAt(id: number, index: number): number | undefined {
    const g = this.groups.get(id);
    if (g === undefined) return index === 0 ? 0 : undefined;
    if (index === g.first - 1) return g.snapshot?.term ?? 0;
    return g.entries[index - g.first]?.term;
  }

  /** Highest term of the group's log and hard state (for generating valid terms). */
  maxTerm(id: number): number {
    const g = this.groups.get(id);
    if (g === undefined) return 0;
    let term = Math.max(g.snapshot?.term ?? 0, g.hardState?.term ?? 0);
    for (const e of g.entries) term = Math.max(term, e.term);
    return term;
  }

  apply(record: WalRecord): void {
    switch (record.kind) {
      case 'entry': {
        const g = this.group(record.group);
        g.entries.length = record.index - g.first; // replaces the suffix from record.index
        g.entries.push({ term: record.term, entryType: record.entryType, data: Buffer.from(record.data) });
        return;
      }
      case 'hardState':
        this.group(record.group).hardState = { term: record.term, vote: record.vote, commit: record.commit };
        return;
      case 'snapshot': {
        const g = this.group(record.group);
        const keep = g.entries.slice(Math.max(0, record.index + 1 - g.first));
        g.entries = record.index >= g.first + g.entries.length - 1 ? [] : keep;
        g.first = record.index + 1;
        g.snapshot = { index: record.index, term: record.term };
        return;
      }
      case 'truncate': {
        const g = this.groups.get(record.group);
        if (g !== undefined && record.fromIndex < g.first + g.entries.length) {
          g.entries.length = Math.max(0, record.fromIndex - g.first);
        }
        return;
      }
    }
  }

  /** Canonical text of the model's contents (groups with no state at all are left out). */
  signature(): string {
    return signatureOf(this.groups);
  }
}

export function signatureOf(groups: ReadonlyMap<number, ModelGroup>): string {
  const lines: string[] = [];
  for (const id of [...groups.keys()].sort((a, b) => a - b)) {
    const g = groups.get(id)!;
    if (g.snapshot === null && g.hardState === null && g.entries.length === 0) continue;
    const hs = g.hardState === null ? '-' : `${g.hardState.term}/${g.hardState.vote}/${g.hardState.commit}`;
    const snap = g.snapshot === null ? '-' : `${g.snapshot.index}@${g.snapshot.term}`;
    const entries = g.entries.map((e) => `${e.term}:${e.entryType}:${e.data.toString('hex')}`).join(',');
    lines.push(`g${id} snap=${snap} hs=${hs} first=${g.first} [${entries}]`);
  }
  return lines.join('\n');
}

/** Reads everything a log holds into the model's shape. */
export function dumpLog(wal: WriteAheadLog): Map<number, ModelGroup> {
  const groups = new Map<number, ModelGroup>();
  for (const id of wal.groups()) {
    const first = wal.firstIndex(id);
    const last = wal.lastIndex(id);
    const entries = wal.entries(id, first, last + 1).map((e, k) => {
      if (e.index !== first + k) throw new Error(`entries() returned index ${e.index} at position ${k}`);
      return { term: e.term, entryType: e.entryType, data: Buffer.from(e.data) };
    });
    groups.set(id, { snapshot: wal.snapshot(id), hardState: wal.hardState(id), first, entries });
  }
  return groups;
}
