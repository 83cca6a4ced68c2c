/**
 * Restart recovery of one group (DESIGN.md §4): the durable log (hard state, snapshot marker,
 * entries after it) and the store (applied index, conf and term in its meta space) become raft's
 * initial state. Entries <= the store's applied index are not applied again: raft starts with
 * applied = store.appliedIndex().
 *
 * The store may be ahead of the log in one legitimate way: a snapshot from the leader was imported
 * into the store, and the node crashed before the WAL marker for it became durable. The store's
 * applied index then names an entry the log does not hold (or holds with another term); the store's
 * state is committed by definition, so it becomes the snapshot the log restarts from.
 *
 * The store behind the log's snapshot marker would mean state the marker promised is gone (a store
 * that lost synced data): that is reported, never papered over.
 */
import type { StateStore } from '../kv/state-store.js';
import type { ConfState, Entry, HardState, RaftInitialState, SnapshotMeta } from '../raft/types.js';
import { EMPTY_HARD_STATE, type RecoveredGroupLog } from './log-storage.js';
import { META_CONF, decodeConf } from './membership.js';

/** Meta key: the term of the entry at the store's applied index (written with every apply). */
export const META_APPLIED_TERM = 'raft/applied-term';

export interface GroupRecovery {
  initial: RaftInitialState;
  /** Set when the store was ahead of the log: this marker must be made durable before anything else. */
  repairMarker: SnapshotMeta | null;
}

/** The applied term as stored: 6 bytes big-endian (written with every apply batch, so kept tiny). */
export function encodeAppliedTerm(term: number): Buffer {
  const b = Buffer.allocUnsafe(6);
  b.writeUIntBE(term, 0, 6);
  return b;
}

export function readAppliedTerm(store: StateStore): number {
  const raw = store.getMeta(META_APPLIED_TERM);
  if (raw === null) return 0;
  if (raw.length !== 6)
    throw new Error(`store meta ${META_APPLIED_TERM}: expected 6 bytes, found ${raw.length}`);
  return raw.readUIntBE(0, 6);
}

export function readStoreConf(store: StateStore): ConfState | null {
  const raw = store.getMeta(META_CONF);
  return raw === null ? null : decodeConf(raw);
}

export function recoverGroup(
  group: number,
  log: RecoveredGroupLog | undefined,
  store: StateStore,
  bootstrapConf: ConfState,
): GroupRecovery {
  const applied = store.appliedIndex();
  const storeConf = readStoreConf(store);
  let snapshot: SnapshotMeta | null = log?.snapshot ?? null;
  let entries: Entry[] = log?.entries ?? [];
  let hardState: HardState = { ...(log?.hardState ?? EMPTY_HARD_STATE) };
  const markerIndex = snapshot?.index ?? 0;
  if (applied < markerIndex) {
    throw new Error(
      `group ${group}: the store's applied index ${applied} is behind the WAL snapshot marker ${markerIndex}: ` +
        'the store lost state that was synced before the marker was written',
    );
  }
  let repairMarker: SnapshotMeta | null = null;
  if (applied > 0) {
    const appliedTerm = readAppliedTerm(store);
    const logTerm = termAt(snapshot, entries, applied);
    if (logTerm === undefined || logTerm !== appliedTerm) {
      if (storeConf === null || appliedTerm === 0) {
        throw new Error(
          `group ${group}: store applied index ${applied} has no recorded term/conf to recover from`,
        );
      }
      snapshot = { index: applied, term: appliedTerm, conf: storeConf };
      entries = [];
      repairMarker = snapshot;
      // No vote in a term above the durable one was ever sent (messages leave after persistence),
      // so raising the term without a vote is safe.
      if (hardState.term < appliedTerm) hardState = { term: appliedTerm, vote: '', commit: hardState.commit };
    }
  }
  // A crash may keep a Ready's entries but tear off the hard state record written after them (a
  // follower's term bump arrives with the leader's entries). The node persisted entries of that
  // term, so it was in it; it never voted in it (a vote is durable before it is sent, in an earlier
  // Ready), so taking the term without a vote is what the lost record said, minus nothing.
  const lastTerm = entries.length > 0 ? entries[entries.length - 1]!.term : (snapshot?.term ?? 0);
  if (lastTerm > hardState.term) hardState = { term: lastTerm, vote: '', commit: hardState.commit };
  // Everything the store applied is committed, even if the hard state's commit was not yet durable.
  if (hardState.commit < applied) hardState.commit = applied;
  const conf = storeConf ?? snapshot?.conf ?? bootstrapConf;
  return { initial: { hardState, snapshot, entries, conf, applied }, repairMarker };
}

function termAt(snapshot: SnapshotMeta | null, entries: Entry[], index: number): number | undefined {
  if (snapshot !== null && snapshot.index === index) return snapshot.term;
  if (entries.length === 0) return undefined;
  const first = entries[0]!.index;
  return entries[index - first]?.term;
}
