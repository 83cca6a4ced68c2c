/** The store backends the contract and model tests run against. */
import { join } from 'node:path';
import type { StoreLimits } from '../../src/kv/limits.js';
import { LmdbStore } from '../../src/kv/lmdb-store.js';
import { MemoryStore } from '../../src/kv/memory-store.js';
import type { StateStore } from '../../src/kv/state-store.js';
import { removeDir, tempDir } from './helpers.js';
import type { StoreBackend } from './state-store-contract.js';

/** MemoryStore; "reopen" is what a simulated crash does: back to the state of the last sync(). */
export function memoryBackend(): StoreBackend {
  const stores: MemoryStore[] = [];
  const track = (store: MemoryStore): MemoryStore => {
    stores.push(store);
    return store;
  };
  return {
    name: 'MemoryStore',
    async create(options) {
      return track(new MemoryStore(options?.limits === undefined ? {} : { limits: options.limits }));
    },
    async reopen(store) {
      const memory = store as MemoryStore;
      await memory.sync();
      const copy = memory.durableCopy();
      await memory.close();
      return track(copy);
    },
    async cleanup() {
      for (const store of stores.splice(0)) await store.close();
    },
  };
}

/** LmdbStore in a temporary directory; reopen closes the environment and opens the same path. */
export function lmdbBackend(
  options: { inlineKeyMaxBytes?: number; formatVersion?: 1 | 2; commitDelayMs?: number } = {},
): StoreBackend {
  // Created on first use: a backend made only to read its name leaves nothing behind.
  let dir: string | undefined;
  const paths = new Map<StateStore, string>();
  let created = 0;
  const openAt = (path: string, limits: Partial<StoreLimits> | undefined): LmdbStore => {
    const store = LmdbStore.open(path, {
      ...(limits === undefined ? {} : { limits }),
      ...(options.inlineKeyMaxBytes === undefined ? {} : { inlineKeyMaxBytes: options.inlineKeyMaxBytes }),
      ...(options.formatVersion === undefined ? {} : { formatVersion: options.formatVersion }),
      ...(options.commitDelayMs === undefined ? {} : { commitDelayMs: options.commitDelayMs }),
    });
    paths.set(store, path);
    return store;
  };
  return {
    name: `LmdbStore${options.inlineKeyMaxBytes === undefined ? '' : ` (inline keys <= ${options.inlineKeyMaxBytes} B)`}${
      options.formatVersion === undefined ? '' : ` (format ${options.formatVersion})`
    }${options.commitDelayMs === undefined ? '' : ` (commit delay ${options.commitDelayMs} ms)`}`,
    async create(createOptions) {
      dir ??= tempDir('kv');
      return openAt(join(dir, `store-${created++}`), createOptions?.limits);
    },
    async reopen(store) {
      const path = paths.get(store);
      if (path === undefined) throw new Error('reopen of a store this backend did not open');
      const limits = (store as LmdbStore).limits;
      await store.close();
      paths.delete(store);
      return openAt(path, limits);
    },
    async cleanup() {
      for (const store of paths.keys()) await store.close();
      paths.clear();
      if (dir !== undefined) removeDir(dir);
      dir = undefined;
    },
  };
}
