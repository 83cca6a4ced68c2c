import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/kv/memory-store.js';
import { lmdbBackend, memoryBackend } from './backends.js';
import { dump, plain, putOp, text } from './helpers.js';
import { runStateStoreContract } from './state-store-contract.js';

runStateStoreContract(memoryBackend, [memoryBackend, () => lmdbBackend()]);

describe('MemoryStore', () => {
  it('durableCopy holds exactly the state of the last sync()', async () => {
    const store = new MemoryStore();
    store.apply({
      appliedIndex: 1,
      txns: [plain(putOp(text('a'), text('1')))],
      meta: [{ key: 'm', value: text('x') }],
    });
    const empty = store.durableCopy();
    assert.equal(empty.appliedIndex(), 0);
    assert.equal(empty.count(), 0);
    await store.sync();
    const synced = dump(store, ['m']);
    store.apply({ appliedIndex: 2, txns: [plain(putOp(text('a'), text('2')), putOp(text('b'), text('3')))] });
    const copy = store.durableCopy();
    assert.deepEqual(dump(copy, ['m']), synced);
    // The copy and the original are independent from here on.
    copy.apply({ appliedIndex: 2, txns: [plain(putOp(text('c'), text('4')))] });
    assert.equal(store.get(text('c')), null);
    assert.equal(store.get(text('b'))!.value.toString(), '3');
  });
});
