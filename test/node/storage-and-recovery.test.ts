import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/kv/memory-store.js';
import { decodeConfChange } from '../../src/raft/conf-change.js';
import type { ConfState, Entry } from '../../src/raft/types.js';
import { MemoryLogStorage } from '../../src/node/memory-log-storage.js';
import { META_CONF, decodeMembersContext, encodeConf } from '../../src/node/membership.js';
import { META_APPLIED_TERM, encodeAppliedTerm, recoverGroup } from '../../src/node/recovery.js';
import { bootstrapLog } from '../../src/node/raft-node.js';

const conf: ConfState = {
  voters: ['n1', 'n2', 'n3'],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};
const entry = (index: number, term: number): Entry => ({
  index,
  term,
  type: 'normal',
  data: Buffer.from(`e${index}`),
});

function manual(): { storage: MemoryLogStorage; sync: () => void } {
  const pending: Array<() => void> = [];
  const storage = new MemoryLogStorage({ scheduleSync: (fn) => pending.push(fn) });
  return {
    storage,
    sync: () => {
      for (const fn of pending.splice(0)) fn();
    },
  };
}

describe('MemoryLogStorage', () => {
  it('is durable only once the sync completes; completions come in order', async () => {
    const { storage, sync } = manual();
    const done: number[] = [];
    storage.append(
      [{ group: 0, entries: [entry(1, 1), entry(2, 1)], hardState: { term: 1, vote: 'n1', commit: 0 } }],
      () => done.push(1),
    );
    storage.append([{ group: 0, entries: [entry(3, 1)] }], () => done.push(2));
    assert.equal(storage.durable(0), undefined);
    sync();
    assert.deepEqual(done, [1, 2]);
    const log = (await storage.recover()).get(0)!;
    assert.deepEqual(
      log.entries.map((e) => e.index),
      [1, 2, 3],
    );
    assert.equal(log.hardState.vote, 'n1');
  });

  it('replaces a suffix; a compaction marker drops the prefix; an installed snapshot drops everything', async () => {
    const { storage, sync } = manual();
    storage.append([{ group: 0, entries: [1, 2, 3, 4].map((i) => entry(i, 1)) }], () => {});
    storage.append([{ group: 0, entries: [entry(3, 2)] }], () => {});
    sync();
    assert.deepEqual(
      storage.durable(0)!.entries.map((e) => `${e.index}/${e.term}`),
      ['1/1', '2/1', '3/2'],
    );
    storage.append(
      [{ group: 0, snapshot: { index: 2, term: 1, conf }, discardLog: false, entries: [] }],
      () => {},
    );
    sync();
    assert.deepEqual(
      storage.durable(0)!.entries.map((e) => e.index),
      [3],
    );
    storage.release(0, 2);
    assert.throws(() => storage.release(0, 3), /beyond the durable snapshot marker/);
    storage.append(
      [{ group: 0, snapshot: { index: 9, term: 3, conf }, discardLog: true, entries: [entry(10, 3)] }],
      () => {},
    );
    sync();
    const log = storage.durable(0)!;
    assert.equal(log.snapshot?.index, 9);
    assert.deepEqual(
      log.entries.map((e) => e.index),
      [10],
    );
  });

  it('a crash keeps the synced state plus a prefix of the unsynced records, never a gap', async () => {
    for (const keep of [0, 0.3, 0.6, 0.99]) {
      const { storage, sync } = manual();
      storage.append(
        [{ group: 0, entries: [entry(1, 1)], hardState: { term: 1, vote: '', commit: 1 } }],
        () => {},
      );
      sync();
      let fired = false;
      storage.append(
        [{ group: 0, entries: [entry(2, 1), entry(3, 1)], hardState: { term: 2, vote: 'n2', commit: 1 } }],
        () => {
          fired = true;
        },
      );
      const r = storage.crash(() => keep);
      sync();
      assert.equal(fired, false, 'a write lost in a crash is never acknowledged');
      const log = (await storage.recover()).get(0)!;
      assert.deepEqual(
        log.entries.map((e) => e.index),
        [1, 2, 3].slice(0, 1 + Math.min(2, r.keptRecords)),
      );
      // The hard state record is last in the batch: kept only if everything before it was.
      assert.equal(log.hardState.term, r.keptRecords === 3 ? 2 : 1);
    }
  });
});

describe('recoverGroup', () => {
  it('starts raft at the store applied index, with commit covering it', () => {
    const store = new MemoryStore();
    store.apply({
      appliedIndex: 2,
      txns: [],
      meta: [
        { key: META_APPLIED_TERM, value: encodeAppliedTerm(1) },
        { key: META_CONF, value: encodeConf(conf) },
      ],
    });
    const r = recoverGroup(
      0,
      {
        hardState: { term: 1, vote: '', commit: 1 },
        snapshot: null,
        entries: [entry(1, 1), entry(2, 1), entry(3, 1)],
      },
      store,
      conf,
    );
    assert.equal(r.repairMarker, null);
    assert.equal(r.initial.applied, 2);
    assert.equal(r.initial.hardState.commit, 2);
    assert.deepEqual(r.initial.conf, conf);
  });

  it('a store ahead of the log (snapshot imported, marker lost) becomes the snapshot the log restarts from', () => {
    const store = new MemoryStore();
    store.apply({
      appliedIndex: 50,
      txns: [],
      meta: [
        { key: META_APPLIED_TERM, value: encodeAppliedTerm(4) },
        { key: META_CONF, value: encodeConf(conf) },
      ],
    });
    const r = recoverGroup(
      0,
      {
        hardState: { term: 3, vote: 'n1', commit: 10 },
        snapshot: null,
        entries: [entry(11, 3), entry(12, 3)],
      },
      store,
      conf,
    );
    assert.deepEqual(r.repairMarker, { index: 50, term: 4, conf });
    assert.deepEqual(r.initial.entries, []);
    assert.deepEqual(r.initial.hardState, { term: 4, vote: '', commit: 50 });
  });

  it('takes the term of durable entries whose hard state record was torn off (without a vote)', () => {
    const store = new MemoryStore();
    const r = recoverGroup(
      0,
      { hardState: { term: 4, vote: 'n2', commit: 1 }, snapshot: null, entries: [entry(1, 4), entry(2, 5)] },
      store,
      conf,
    );
    assert.deepEqual(r.initial.hardState, { term: 5, vote: '', commit: 1 });
  });

  it('refuses a store behind the log snapshot marker (synced state lost)', () => {
    const store = new MemoryStore();
    assert.throws(
      () =>
        recoverGroup(
          0,
          { hardState: { term: 2, vote: '', commit: 5 }, snapshot: { index: 5, term: 2, conf }, entries: [] },
          store,
          conf,
        ),
      /behind the WAL snapshot marker 5/,
    );
  });

  it('a founder bootstraps with the membership as committed entry 1, identical on every founder', () => {
    const members = ['n3', 'n1', 'n2'].map((id) => ({
      id,
      peerAddress: `${id}:1`,
      clientUrl: '',
      promote: false,
    }));
    const a = bootstrapLog(members);
    const b = bootstrapLog([...members].reverse());
    assert.deepEqual(a, b);
    assert.equal(a.hardState.commit, 1);
    assert.equal(a.entries[0]!.type, 'confChange');
    const cc = decodeConfChange(a.entries[0]!.data);
    assert.deepEqual(
      cc.changes.map((c) => `${c.type}:${c.node}`),
      ['addVoter:n1', 'addVoter:n2', 'addVoter:n3'],
    );
    assert.deepEqual(
      decodeMembersContext(cc.context).map((m) => m.peerAddress),
      ['n1:1', 'n2:1', 'n3:1'],
    );
  });
});
