/**
 * WalLogStorage (the server's LogStorage over the real WAL) against MemoryLogStorage, the model the
 * node and the simulator are tested with: the same appends must recover to the same logs, also
 * after reopening the WAL from disk. Plus: released segments are deleted once a compaction marker
 * is durable, and a recovered snapshot marker carries the store's configuration.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { GroupLogWrite, LogStorage, RecoveredGroupLog } from '../../src/node/log-storage.js';
import { MemoryLogStorage } from '../../src/node/memory-log-storage.js';
import { WalLogStorage } from '../../src/node/wal-log-storage.js';
import type { ConfState, Entry, SnapshotMeta } from '../../src/raft/types.js';
import { WriteAheadLog } from '../../src/wal/write-ahead-log.js';

const CONF: ConfState = { voters: ['a', 'b', 'c'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

function entries(from: number, to: number, term: number, type: Entry['type'] = 'normal', size = 8): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ term, index: i, type, data: Buffer.alloc(size, i % 251) });
  return out;
}

function meta(index: number, term: number): SnapshotMeta {
  return { index, term, conf: CONF };
}

function append(storage: LogStorage, writes: GroupLogWrite[]): Promise<void> {
  return new Promise((resolve, reject) => storage.append(writes, (e) => (e === null ? resolve() : reject(e))));
}

/** The recovered logs in a comparable form (conf is checked separately: the WAL takes it from the store). */
function comparable(logs: Map<number, RecoveredGroupLog>): unknown {
  return [...logs]
    .sort(([a], [b]) => a - b)
    .map(([group, log]) => ({
      group,
      hardState: log.hardState,
      snapshot: log.snapshot === null ? null : { index: log.snapshot.index, term: log.snapshot.term },
      entries: log.entries.map((e) => ({ term: e.term, index: e.index, type: e.type, data: e.data.toString('hex') })),
    }));
}

/** Appends, in order; each step is one durable unit, as one pass of the node's Ready loop. */
const STEPS: GroupLogWrite[][] = [
  [{ group: 0, entries: entries(1, 1, 1, 'confChange'), hardState: { term: 1, vote: '', commit: 1 } }],
  [
    { group: 0, entries: entries(2, 6, 2), hardState: { term: 2, vote: 'a', commit: 3 } },
    { group: 7, entries: entries(1, 2, 1), hardState: { term: 1, vote: 'b', commit: 0 } },
  ],
  // A new leader's entries replace a suffix (Raft §5.3).
  [{ group: 0, entries: entries(5, 8, 3), hardState: { term: 3, vote: 'c', commit: 5 } }],
  // A compaction point: entries <= 4 are covered by the store.
  [{ group: 0, snapshot: meta(4, 2), discardLog: false, entries: entries(9, 9, 3), hardState: { term: 3, vote: 'c', commit: 8 } }],
  // A snapshot from the leader replaces the whole log (Raft §7).
  [{ group: 7, snapshot: meta(20, 4), discardLog: true, entries: [], hardState: { term: 4, vote: '', commit: 20 } }],
  [{ group: 7, entries: entries(21, 23, 4) }],
  // A snapshot install on a group with entries, followed by new entries in the same unit.
  [{ group: 0, snapshot: meta(30, 5), discardLog: true, entries: entries(31, 32, 5), hardState: { term: 5, vote: '', commit: 31 } }],
  // A snapshot inside the log whose term conflicts with the entry there: the old log goes first.
  [{ group: 7, snapshot: meta(22, 6), discardLog: true, entries: entries(23, 24, 6), hardState: { term: 6, vote: 'a', commit: 22 } }],
];

describe('WalLogStorage', () => {
  const root = mkdtempSync(join(tmpdir(), 'atlas-wal-storage-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('recovers exactly what MemoryLogStorage recovers, before and after reopening the WAL', async () => {
    const dir = join(root, 'model');
    const model = new MemoryLogStorage();
    await model.recover();
    const wal = new WalLogStorage(await WriteAheadLog.open(dir, { segmentSize: 64 * 1024 }), { confOf: () => CONF });
    assert.equal((await wal.recover()).size, 0);
    for (const [i, step] of STEPS.entries()) {
      await append(model, step);
      await append(wal, step);
      // A fresh adapter over the open WAL reads its index: compare after every step, then after a
      // reopen from disk.
      assert.deepEqual(comparable(await new WalLogStorage(wal.wal).recover()), comparable(await model.recover()), `after step ${i}`);
    }
    await wal.close();
    const again = new WalLogStorage(await WriteAheadLog.open(dir, { segmentSize: 64 * 1024 }), { confOf: () => CONF });
    const recovered = await again.recover();
    assert.deepEqual(comparable(recovered), comparable(await model.recover()));
    assert.deepEqual(recovered.get(0)?.snapshot?.conf, CONF, 'the marker carries the store conf');
    assert.equal(recovered.get(0)?.entries[0]?.index, 31);
    await again.close();
  });

  it('deletes segments once a durable compaction marker covers them', async () => {
    const dir = join(root, 'release');
    const segmentSize = 16 * 1024;
    const storage = new WalLogStorage(await WriteAheadLog.open(dir, { segmentSize }));
    await storage.recover();
    // 1 KiB entries: a segment holds about 15 of them.
    for (let i = 0; i < 10; i++) {
      await append(storage, [{ group: 0, entries: entries(i * 10 + 1, i * 10 + 10, 1, 'normal', 1024), hardState: { term: 1, vote: '', commit: i * 10 + 10 } }]);
    }
    const segments = () => readdirSync(dir).filter((f) => f.endsWith('.wal')).length;
    const before = segments();
    assert.ok(before >= 5, `the log spans several segments (${before})`);
    await append(storage, [{ group: 0, snapshot: meta(95, 1), discardLog: false, entries: [] }]);
    storage.release(0, 95);
    const deadline = performance.now() + 10_000;
    while (storage.releasedSegments === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(storage.releasedSegments > 0, 'segments were released');
    assert.equal(segments(), before - storage.releasedSegments);
    await storage.close();
    const reopened = new WalLogStorage(await WriteAheadLog.open(dir, { segmentSize }));
    const log = (await reopened.recover()).get(0)!;
    assert.equal(log.snapshot?.index, 95);
    assert.deepEqual(log.entries.map((e) => e.index), [96, 97, 98, 99, 100]);
    await reopened.close();
  });

  it('reports a failed append through done, never by throwing', async () => {
    const storage = new WalLogStorage(await WriteAheadLog.open(join(root, 'bad'), { segmentSize: 64 * 1024 }));
    await storage.recover();
    // A gap (entry 5 without 1..4) breaks a Raft log invariant: the WAL refuses the whole append.
    await assert.rejects(append(storage, [{ group: 0, entries: entries(5, 5, 1) }]), /gap/);
    await storage.close();
    await assert.rejects(append(storage, [{ group: 0, entries: entries(1, 1, 1) }]), /closed/);
  });
});

