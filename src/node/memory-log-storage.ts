/**
 * A LogStorage in memory, with the failure model of a real disk: a write is only durable once its
 * sync completes; a crash keeps the synced records plus a random prefix of the unsynced ones (the
 * page cache flushed part of them), the last of which may be torn — a torn record is cut off at
 * recovery, exactly as the WAL does (DESIGN.md §4), so it is simply not kept.
 *
 * Used by the node's unit tests and by the simulator, which supplies when a sync completes (its
 * virtual disk latency) and the randomness of a crash.
 */
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import {
  EMPTY_HARD_STATE,
  type GroupLogWrite,
  type LogStorage,
  type RecoveredGroupLog,
} from './log-storage.js';

/** The unit a crash keeps or loses: one WAL record. */
type LogRecord =
  | { kind: 'snapshot'; group: number; meta: SnapshotMeta; discardLog: boolean }
  | { kind: 'entry'; group: number; entry: Entry; truncate: boolean }
  | { kind: 'hardState'; group: number; hardState: HardState };

interface GroupState {
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  /** Contiguous, starting right after the snapshot marker (or at 1). */
  entries: Entry[];
  released: number;
}

interface PendingAppend {
  records: LogRecord[];
  done: (error: Error | null) => void;
}

export interface MemoryLogStorageOptions {
  /** Runs `fn` when a sync completes. Default: setImmediate (the next turn). */
  scheduleSync?: (fn: () => void) => void;
}

export class MemoryLogStorage implements LogStorage {
  private readonly groups = new Map<number, GroupState>();
  /** Written but not yet synced, in order; completions happen in this order. */
  private readonly unsynced: PendingAppend[] = [];
  private readonly scheduleSync: (fn: () => void) => void;
  /** Incremented by every crash: completions scheduled before it are void. */
  private epoch = 0;
  private closed = false;
  /** Durable appends completed (one fdatasync each), for figures. */
  syncs = 0;
  recordsWritten = 0;

  constructor(options: MemoryLogStorageOptions = {}) {
    this.scheduleSync = options.scheduleSync ?? ((fn) => setImmediate(fn));
  }

  async recover(): Promise<Map<number, RecoveredGroupLog>> {
    this.closed = false;
    const result = new Map<number, RecoveredGroupLog>();
    for (const [group, state] of this.groups) {
      result.set(group, {
        hardState: { ...state.hardState },
        snapshot: state.snapshot === null ? null : cloneMeta(state.snapshot),
        entries: state.entries.slice(),
      });
    }
    return result;
  }

  append(writes: GroupLogWrite[], done: (error: Error | null) => void): void {
    if (this.closed) {
      done(new Error('log storage is closed'));
      return;
    }
    const records: LogRecord[] = [];
    for (const w of writes) {
      if (w.snapshot !== undefined) {
        records.push({
          kind: 'snapshot',
          group: w.group,
          meta: cloneMeta(w.snapshot),
          discardLog: w.discardLog === true,
        });
      }
      for (let i = 0; i < w.entries.length; i++) {
        records.push({ kind: 'entry', group: w.group, entry: w.entries[i]!, truncate: i === 0 });
      }
      if (w.hardState !== undefined)
        records.push({ kind: 'hardState', group: w.group, hardState: { ...w.hardState } });
    }
    this.recordsWritten += records.length;
    const pending: PendingAppend = { records, done };
    this.unsynced.push(pending);
    const epoch = this.epoch;
    this.scheduleSync(() => {
      if (epoch !== this.epoch) return; // the machine crashed before this sync completed
      // Syncs complete in order: this one makes every earlier write durable too.
      while (this.unsynced.length > 0) {
        const next = this.unsynced.shift()!;
        for (const r of next.records) this.applyRecord(r);
        this.syncs++;
        next.done(null);
        if (next === pending) break;
      }
    });
  }

  release(group: number, index: number): void {
    const state = this.groups.get(group);
    if (state === undefined) return;
    const covered = state.snapshot?.index ?? 0;
    if (index > covered) {
      throw new Error(`release(${group}, ${index}) beyond the durable snapshot marker at ${covered}`);
    }
    state.released = Math.max(state.released, index);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /**
   * Simulates power loss: unsynced writes are lost except a random prefix of their records (the last
   * possibly torn, which recovery cuts off, so it is not kept either). Pending completions never fire.
   */
  crash(random: () => number): { keptRecords: number; lostRecords: number } {
    this.epoch++;
    const records: LogRecord[] = [];
    for (const p of this.unsynced) records.push(...p.records);
    this.unsynced.length = 0;
    const kept = Math.floor(random() * (records.length + 1));
    for (let i = 0; i < kept; i++) this.applyRecord(records[i]!);
    return { keptRecords: kept, lostRecords: records.length - kept };
  }

  /** The durable state of one group (tests and the simulator's checks). */
  durable(group: number): RecoveredGroupLog | undefined {
    const s = this.groups.get(group);
    if (s === undefined) return undefined;
    return { hardState: s.hardState, snapshot: s.snapshot, entries: s.entries };
  }

  private group(id: number): GroupState {
    let s = this.groups.get(id);
    if (s === undefined) {
      s = { hardState: { ...EMPTY_HARD_STATE }, snapshot: null, entries: [], released: 0 };
      this.groups.set(id, s);
    }
    return s;
  }

  /** Replays one record onto the durable state, as WAL recovery would. */
  private applyRecord(r: LogRecord): void {
    const s = this.group(r.group);
    switch (r.kind) {
      case 'snapshot': {
        const previous = s.snapshot?.index ?? 0;
        if (r.meta.index < previous) {
          throw new Error(
            `group ${r.group}: snapshot marker ${r.meta.index} below the durable one at ${previous}`,
          );
        }
        if (r.discardLog) {
          s.entries = [];
        } else {
          const first = s.entries.length > 0 ? s.entries[0]!.index : r.meta.index + 1;
          s.entries = s.entries.slice(Math.max(0, r.meta.index + 1 - first));
        }
        s.snapshot = r.meta;
        return;
      }
      case 'entry': {
        const base = s.snapshot?.index ?? 0;
        const index = r.entry.index;
        if (index <= base) {
          throw new Error(`group ${r.group}: entry ${index} at or below the snapshot marker ${base}`);
        }
        const offset = index - base - 1;
        if (offset > s.entries.length) {
          throw new Error(`group ${r.group}: entry ${index} leaves a gap after ${base + s.entries.length}`);
        }
        if (offset < s.entries.length) {
          if (!r.truncate)
            throw new Error(`group ${r.group}: entry ${index} overwrites without a truncation`);
          s.entries.length = offset;
        }
        s.entries.push(r.entry);
        return;
      }
      case 'hardState':
        s.hardState = r.hardState;
        return;
    }
  }
}

function cloneMeta(m: SnapshotMeta): SnapshotMeta {
  return {
    index: m.index,
    term: m.term,
    conf: {
      voters: m.conf.voters.slice(),
      learners: m.conf.learners.slice(),
      votersOutgoing: m.conf.votersOutgoing.slice(),
      learnersNext: m.conf.learnersNext.slice(),
      autoLeave: m.conf.autoLeave,
    },
  };
}
