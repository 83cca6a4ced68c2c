/** The replicated state machine's store (DESIGN.md §4): the StateStore interface and its backends. */
export * from './errors.js';
export { LmdbStore, type LmdbStoreOptions } from './lmdb-store.js';
export * from './limits.js';
export { MemoryStore, type MemoryStoreOptions } from './memory-store.js';
export { SNAPSHOT_CHUNK_TARGET_BYTES } from './snapshot-format.js';
export * from './state-store.js';
