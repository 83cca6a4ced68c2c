/** The write-ahead log (DESIGN.md §4; docs/storage.md, "Write-ahead log"). */
export {
  WalClosedError,
  WalCorruptionError,
  WalError,
  WalFailedError,
  WalInvalidRecordError,
  WalLimitError,
} from './errors.js';
export {
  DEFAULT_MAX_PENDING_BYTES,
  DEFAULT_SEGMENT_SIZE,
  MAX_SEGMENT_SIZE,
  MAX_VOTE_BYTES,
  MIN_SEGMENT_SIZE,
  maxRecordBytes,
} from './limits.js';
export { formatSyncMode, parseSyncMode, type SyncMode } from './sync-mode.js';
export type {
  WalEntry,
  WalHardState,
  WalOptions,
  WalRecord,
  WalSnapshotMarker,
  WalSyncStats,
} from './types.js';
export { WriteAheadLog } from './write-ahead-log.js';
