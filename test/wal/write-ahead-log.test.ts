import assert from 'node:assert/strict';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  WalClosedError,
  WalError,
  WalFailedError,
  WalInvalidRecordError,
  WalLimitError,
  type WalRecord,
  WriteAheadLog,
} from '../../src/wal/index.js';
import { entries, entry, hardState, snapshot, tempDir } from './helpers.js';

describe('WriteAheadLog: appends, reads and invariants', () => {
  let dir: string;
  let cleanup: () => void;
  let wal: WriteAheadLog;

  beforeEach(async () => {
    ({ dir, cleanup } = tempDir());
    wal = await WriteAheadLog.open(dir, { segmentSize: 64 * 1024 });
  });
  afterEach(async () => {
    await wal.close();
    cleanup();
  });

  it('starts empty', () => {
    assert.deepEqual(wal.groups(), []);
    assert.equal(wal.firstIndex(1), 1);
    assert.equal(wal.lastIndex(1), 0);
    assert.equal(wal.hardState(1), null);
    assert.equal(wal.snapshot(1), null);
    assert.deepEqual(wal.entries(1, 1, 1), []);
    assert.equal(wal.term(1, 0), 0);
  });

  it('appends entries of many groups and reads them back, before and after reopening', async () => {
    await wal.append([...entries(1, 1, 5), ...entries(2, 1, 3), hardState(1, 1, 'n1', 4)]);
    await wal.append([entry(1, 6, 2, Buffer.alloc(3000, 7))]);
    const check = (log: WriteAheadLog) => {
      assert.deepEqual(log.groups(), [1, 2]);
      assert.equal(log.lastIndex(1), 6);
      assert.equal(log.lastIndex(2), 3);
      assert.deepEqual(
        log.entries(1, 2, 5).map((e) => [e.index, e.term, e.data.toString()]),
        [
          [2, 1, 'e1.2'],
          [3, 1, 'e1.3'],
          [4, 1, 'e1.4'],
        ],
      );
      const big = log.entries(1, 6, 7)[0]!;
      assert.equal(big.term, 2);
      assert.deepEqual(big.data, Buffer.alloc(3000, 7));
      assert.deepEqual(log.hardState(1), { term: 1, vote: 'n1', commit: 4 });
      assert.equal(log.term(1, 6), 2);
    };
    check(wal);
    await wal.close();
    wal = await WriteAheadLog.open(dir, { segmentSize: 64 * 1024 });
    check(wal);
  });

  it('serves entries appended but not yet written, from memory', async () => {
    const pending = wal.append(entries(3, 1, 4));
    assert.deepEqual(
      wal.entries(3, 1, 5).map((e) => e.data.toString()),
      ['e3.1', 'e3.2', 'e3.3', 'e3.4'],
    );
    await pending;
    assert.deepEqual(
      wal.entries(3, 1, 5).map((e) => e.data.toString()),
      ['e3.1', 'e3.2', 'e3.3', 'e3.4'],
    );
  });

  it('limits the bytes returned by entries() but returns at least one entry', async () => {
    await wal.append([
      entry(1, 1, 1, Buffer.alloc(100)),
      entry(1, 2, 1, Buffer.alloc(100)),
      entry(1, 3, 1, Buffer.alloc(100)),
    ]);
    assert.equal(wal.entries(1, 1, 4, 250).length, 2);
    assert.equal(wal.entries(1, 1, 4, 10).length, 1);
    assert.equal(wal.entries(1, 1, 4).length, 3);
  });

  it('rejects reads outside [firstIndex, lastIndex + 1)', async () => {
    await wal.append([...entries(1, 1, 10), snapshot(1, 4)]);
    assert.throws(() => wal.entries(1, 4, 6), RangeError);
    assert.throws(() => wal.entries(1, 5, 12), RangeError);
    assert.throws(() => wal.entries(1, 7, 6), RangeError);
    assert.throws(() => wal.term(1, 3), RangeError);
    assert.equal(wal.term(1, 4), 1);
    assert.equal(wal.entries(1, 5, 11).length, 6);
  });

  it('replaces a conflicting suffix when an entry at or below lastIndex is appended (Raft §5.3)', async () => {
    await wal.append(entries(1, 1, 10));
    await wal.append([entry(1, 6, 2, 'new6'), entry(1, 7, 2, 'new7')]);
    assert.equal(wal.lastIndex(1), 7);
    assert.deepEqual(
      wal.entries(1, 5, 8).map((e) => [e.term, e.data.toString()]),
      [
        [1, 'e1.5'],
        [2, 'new6'],
        [2, 'new7'],
      ],
    );
    await wal.close();
    wal = await WriteAheadLog.open(dir, { segmentSize: 64 * 1024 });
    assert.equal(wal.lastIndex(1), 7);
    assert.equal(wal.entries(1, 6, 7)[0]!.data.toString(), 'new6');
  });

  it('truncateSuffix drops entries durably; a truncation beyond the log is a no-op', async () => {
    await wal.append(entries(1, 1, 10));
    await wal.truncateSuffix(1, 8);
    assert.equal(wal.lastIndex(1), 7);
    await wal.truncateSuffix(1, 20);
    assert.equal(wal.lastIndex(1), 7);
    await wal.append([entry(1, 8, 3, 'after')]);
    await wal.close();
    wal = await WriteAheadLog.open(dir, { segmentSize: 64 * 1024 });
    assert.equal(wal.lastIndex(1), 8);
    assert.equal(wal.entries(1, 8, 9)[0]!.data.toString(), 'after');
    await assert.rejects(wal.truncateSuffix(1, 0), WalInvalidRecordError);
  });

  it('a snapshot marker drops the entries it covers; one beyond the log empties it', async () => {
    await wal.append(entries(1, 1, 10));
    await wal.append([snapshot(1, 6)]);
    assert.equal(wal.firstIndex(1), 7);
    assert.equal(wal.lastIndex(1), 10);
    await wal.append([snapshot(1, 50, 3)]);
    assert.equal(wal.firstIndex(1), 51);
    assert.equal(wal.lastIndex(1), 50);
    assert.equal(wal.term(1, 50), 3);
    await wal.append([entry(1, 51, 3)]);
    await assert.rejects(wal.truncateSuffix(1, 50), /covered by the snapshot marker/);
    await wal.close();
    wal = await WriteAheadLog.open(dir, { segmentSize: 64 * 1024 });
    assert.deepEqual(wal.snapshot(1), { index: 50, term: 3 });
    assert.equal(wal.firstIndex(1), 51);
    assert.equal(wal.lastIndex(1), 51);
  });

  it('discards a log atomically with truncate + snapshot in one append (installing a snapshot)', async () => {
    await wal.append(entries(1, 1, 10));
    await wal.append([{ kind: 'truncate', group: 1, fromIndex: 1 }, snapshot(1, 8, 5)]);
    assert.equal(wal.firstIndex(1), 9);
    assert.equal(wal.lastIndex(1), 8);
    assert.equal(wal.term(1, 8), 5);
  });

  const invalid: Array<[string, WalRecord[], RegExp]> = [
    ['an index gap', [entry(1, 3)], /leaves a gap after last index 0/],
    ['index 0', [entry(1, 0)], /index must be a safe integer >= 1/],
    ['a term below the previous entry', [entry(1, 1, 5), entry(1, 2, 4)], /below term 5 of entry 1/],
    ['a fractional term', [entry(1, 1, 1.5)], /term must be a safe integer/],
    ['a negative group', [entry(-1, 1)], /group must be an integer/],
    ['an entryType over 255', [{ ...entry(1, 1), entryType: 256 } as WalRecord], /entryType must be/],
    [
      'data that is not a Buffer',
      [{ ...entry(1, 1), data: 'x' } as unknown as WalRecord],
      /data must be a Buffer/,
    ],
    ['a term going down', [hardState(1, 5, 'a', 0), hardState(1, 4, 'a', 0)], /below the stored term 5/],
    ['a vote changed within a term', [hardState(1, 5, 'a', 0), hardState(1, 5, 'b', 0)], /vote changed/],
    ['commit going down', [hardState(1, 5, 'a', 3), hardState(1, 6, '', 2)], /commit 2 is below/],
    ['a snapshot marker going backwards', [snapshot(1, 5), snapshot(1, 4)], /goes backwards/],
    [
      'a snapshot marker conflicting with an entry',
      [entry(1, 1, 1), entry(1, 2, 1), snapshot(1, 2, 2)],
      /conflicts with entry 2/,
    ],
    [
      'an entry covered by the snapshot',
      [snapshot(1, 5), entry(1, 5)],
      /covered by the snapshot marker at 5/,
    ],
    ['an unknown kind', [{ kind: 'bogus', group: 1 } as unknown as WalRecord], /unknown record kind "bogus"/],
  ];
  for (const [name, records, message] of invalid) {
    it(`rejects a whole append with ${name}, writing none of it`, async () => {
      await wal.append([entry(9, 1)]);
      await assert.rejects(wal.append([entry(9, 2), ...records]), (err: Error) => {
        assert.ok(err instanceof WalInvalidRecordError, `${err.name}: ${err.message}`);
        assert.match(err.message, message);
        return true;
      });
      assert.equal(wal.lastIndex(9), 1, 'the valid record before the bad one was not applied');
      assert.equal(wal.lastIndex(1), 0);
      assert.equal(wal.hardState(1), null);
    });
  }

  it('accepts a vote given in a term after none was', async () => {
    await wal.append([hardState(1, 5, '', 0), hardState(1, 5, 'n2', 0), hardState(1, 6, '', 1)]);
    assert.deepEqual(wal.hardState(1), { term: 6, vote: '', commit: 1 });
  });

  it('enforces the record size limit (half a segment) with a clear error', async () => {
    await assert.rejects(wal.append([entry(1, 1, 1, Buffer.alloc(40 * 1024))]), (err: Error) => {
      assert.ok(err instanceof WalLimitError);
      assert.match(err.message, /limit is 32768 bytes \(half the WAL segment size 65536\)/);
      return true;
    });
    await wal.append([entry(1, 1, 1, Buffer.alloc(32 * 1024 - 64))]);
    assert.equal(wal.lastIndex(1), 1);
  });

  it('enforces the vote length limit', async () => {
    await assert.rejects(wal.append([hardState(1, 1, 'x'.repeat(256), 0)]), /vote takes 256 bytes/);
  });

  it('throws on any use after close', async () => {
    await wal.append([entry(1, 1)]);
    await wal.close();
    await assert.rejects(wal.append([entry(1, 2)]), WalClosedError);
    await assert.rejects(wal.truncateSuffix(1, 1), WalClosedError);
    await assert.rejects(wal.release(), WalClosedError);
    assert.throws(() => wal.entries(1, 1, 2), WalClosedError);
    assert.throws(() => wal.lastIndex(1), WalClosedError);
    assert.throws(() => wal.groups(), WalClosedError);
    await wal.close(); // idempotent
    wal = await WriteAheadLog.open(dir, { segmentSize: 64 * 1024 });
    assert.equal(wal.lastIndex(1), 1);
  });

  it('stops for good after a failed write (fail-stop), and still closes', async () => {
    await wal.append([entry(1, 1)]);
    // Make the next write fail as a failing disk would (EIO).
    const writeSync = fs.writeSync;
    fs.writeSync = (() => {
      throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    }) as typeof fs.writeSync;
    syncBuiltinESMExports();
    try {
      await assert.rejects(
        wal.append([entry(1, 2)]),
        (err: Error) => err instanceof WalFailedError && /EIO/.test(err.message),
      );
    } finally {
      fs.writeSync = writeSync;
      syncBuiltinESMExports();
    }
    await assert.rejects(wal.append([entry(1, 3)]), WalFailedError);
    assert.throws(() => wal.lastIndex(1), WalFailedError);
    await wal.close();
    wal = await WriteAheadLog.open(dir, { segmentSize: 64 * 1024 });
    assert.equal(wal.lastIndex(1), 1, 'recovery finds what reached the disk');
  });

  it('refuses a second open of the same directory', async () => {
    await assert.rejects(
      WriteAheadLog.open(dir),
      (err: Error) => err instanceof WalError && /already open/.test(err.message),
    );
  });

  it('close waits for appends in flight', async () => {
    const appended = wal.append(entries(4, 1, 100));
    await wal.close();
    await appended;
    wal = await WriteAheadLog.open(dir, { segmentSize: 64 * 1024 });
    assert.equal(wal.lastIndex(4), 100);
  });

  it('validates options', async () => {
    const other = tempDir();
    try {
      await assert.rejects(
        WriteAheadLog.open(other.dir, { segmentSize: 1000 }),
        /invalid WAL segmentSize 1000/,
      );
      await assert.rejects(
        WriteAheadLog.open(other.dir, { syncMode: 'sometimes' }),
        /invalid WAL sync mode "sometimes"/,
      );
      await assert.rejects(WriteAheadLog.open(other.dir, { maxPendingBytes: 10 }), /maxPendingBytes/);
    } finally {
      other.cleanup();
    }
  });
});
