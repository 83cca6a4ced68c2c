/**
 * The node's LogStorage over the write-ahead log (src/wal): the server's durable Raft log
 * (DESIGN.md §3 "Persistence order", §4 WAL). One `append` of the Ready loop becomes one
 * `WriteAheadLog.append` call, so every group's entries and hard state of one pass share one
 * fdatasync (group commit); `done` runs once the WAL says they are on stable storage.
 *
 * Mapping (the WAL stores plain numbers, Raft uses names and richer snapshot metadata):
 * - Entry type: 'normal' = 0, 'confChange' = 1. Any other number read back is corruption.
 * - Snapshot marker: the WAL keeps (index, term). The membership (`conf`) of a marker is not in the
 *   WAL; on recovery it is taken from the store (its meta space holds the conf as of its applied
 *   index, which is >= the marker: recovery refuses a store behind the marker). The node rebuilds
 *   raft's configuration from the store anyway (recovery.ts), so this conf is informational.
 * - An installed snapshot (discardLog) becomes [truncate from the old first index, snapshot marker]
 *   in one append, so the old log is discarded atomically with the marker (Raft §7).
 */
import type { ConfState, Entry, EntryType } from '../raft/types.js';
import type { WalRecord } from '../wal/types.js';
import type { WriteAheadLog } from '../wal/write-ahead-log.js';
import type { NodeLogger } from './hooks.js';
import { SILENT_LOGGER } from './hooks.js';
import {
  EMPTY_HARD_STATE,
  type GroupLogWrite,
  type LogStorage,
  type RecoveredGroupLog,
} from './log-storage.js';
import { emptyConf } from './membership.js';

const ENTRY_TYPE_CODES: Record<EntryType, number> = { normal: 0, confChange: 1 };
const ENTRY_TYPES: readonly EntryType[] = ['normal', 'confChange'];

export interface WalLogStorageOptions {
  /** The membership to attach to a recovered snapshot marker of `group` (the store's conf); null: none known. */
  confOf?: (group: number) => ConfState | null;
  logger?: NodeLogger;
}

export class WalLogStorage implements LogStorage {
  private readonly confOf: (group: number) => ConfState | null;
  private readonly logger: NodeLogger;
  private recovered = false;
  private closed = false;
  /** Release requests are coalesced: one WAL release at a time, another after it if asked meanwhile. */
  private releasing = false;
  private releaseAgain = false;
  /** Segments deleted by release(), for operators and tests. */
  releasedSegments = 0;

  constructor(
    readonly wal: WriteAheadLog,
    options: WalLogStorageOptions = {},
  ) {
    this.confOf = options.confOf ?? (() => null);
    this.logger = options.logger ?? SILENT_LOGGER;
  }

  async recover(): Promise<Map<number, RecoveredGroupLog>> {
    if (this.recovered) throw new Error('WalLogStorage.recover() called twice');
    this.recovered = true;
    const result = new Map<number, RecoveredGroupLog>();
    for (const group of this.wal.groups()) {
      const marker = this.wal.snapshot(group);
      const first = this.wal.firstIndex(group);
      const last = this.wal.lastIndex(group);
      const entries: Entry[] = [];
      if (last >= first) {
        for (const e of this.wal.entries(group, first, last + 1)) {
          const type = ENTRY_TYPES[e.entryType];
          if (type === undefined) {
            throw new Error(`WAL group ${group}: entry ${e.index} has unknown entry type ${e.entryType}`);
          }
          // Own the bytes: the WAL's Buffers may share a read span with neighbouring entries.
          entries.push({ term: e.term, index: e.index, type, data: Buffer.from(e.data) });
        }
      }
      const hs = this.wal.hardState(group);
      result.set(group, {
        hardState:
          hs === null ? { ...EMPTY_HARD_STATE } : { term: hs.term, vote: hs.vote, commit: hs.commit },
        snapshot:
          marker === null
            ? null
            : { index: marker.index, term: marker.term, conf: this.confOf(group) ?? emptyConf() },
        entries,
      });
    }
    return result;
  }

  append(writes: GroupLogWrite[], done: (error: Error | null) => void): void {
    if (this.closed) {
      done(new Error('WAL log storage is closed'));
      return;
    }
    let records: WalRecord[];
    try {
      records = this.toRecords(writes);
    } catch (e) {
      done(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    this.wal.append(records).then(
      () => done(null),
      (e: unknown) => done(e instanceof Error ? e : new Error(String(e))),
    );
  }

  release(_group: number, _index: number): void {
    // The WAL releases per segment, for all groups at once: a segment goes once every group's entries
    // in it are covered by a durable snapshot marker. The marker that allows this one is durable
    // already (the node calls release after the append that carried it completed).
    if (this.closed) return;
    if (this.releasing) {
      this.releaseAgain = true;
      return;
    }
    this.releasing = true;
    this.wal.release().then(
      (n) => {
        this.releasedSegments += n;
        if (n > 0) this.logger.debug({ segments: n }, 'released WAL segments covered by snapshots');
        this.releaseDone();
      },
      (e: unknown) => {
        // Not fatal: the space is reclaimed at a later release. A failed WAL reports itself on the next append.
        if (!this.closed)
          this.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'WAL segment release failed');
        this.releaseDone();
      },
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.wal.close();
  }

  private releaseDone(): void {
    this.releasing = false;
    if (this.releaseAgain && !this.closed) {
      this.releaseAgain = false;
      this.release(0, 0);
    }
  }

  /** The WAL records of one durable unit, per group in the order the LogStorage contract gives. */
  private toRecords(writes: GroupLogWrite[]): WalRecord[] {
    const records: WalRecord[] = [];
    for (const w of writes) {
      const group = w.group;
      if (w.snapshot !== undefined) {
        if (w.discardLog === true) {
          // Raft §7: a snapshot from the leader replaces the whole log. Truncate what the WAL holds
          // above its current marker, then write the new marker, in the same append.
          const first = this.wal.firstIndex(group);
          if (this.wal.lastIndex(group) >= first) records.push({ kind: 'truncate', group, fromIndex: first });
        }
        records.push({ kind: 'snapshot', group, index: w.snapshot.index, term: w.snapshot.term });
      }
      for (const e of w.entries) {
        const code = ENTRY_TYPE_CODES[e.type];
        if (code === undefined)
          throw new Error(`group ${group}: entry ${e.index} has unknown type ${String(e.type)}`);
        records.push({ kind: 'entry', group, term: e.term, index: e.index, entryType: code, data: e.data });
      }
      if (w.hardState !== undefined) {
        records.push({
          kind: 'hardState',
          group,
          term: w.hardState.term,
          vote: w.hardState.vote,
          commit: w.hardState.commit,
        });
      }
    }
    return records;
  }
}
