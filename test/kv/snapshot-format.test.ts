import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { SnapshotCorruptionError, StoreLimitError } from '../../src/kv/errors.js';
import { DEFAULT_STORE_LIMITS, resolveStoreLimits } from '../../src/kv/limits.js';
import {
  SNAPSHOT_CHUNK_TARGET_BYTES,
  SnapshotChunkReader,
  SnapshotChunkWriter,
  type SnapshotKeyValue,
} from '../../src/kv/snapshot-format.js';
import type { SnapshotHeader } from '../../src/kv/state-store.js';
import { text } from './helpers.js';

function kv(key: string, valueBytes: number, modRevision = 1): SnapshotKeyValue {
  return { key: text(key), value: Buffer.alloc(valueBytes, 1), createRevision: 1, modRevision, version: 1 };
}

function stream(header: SnapshotHeader, kvs: SnapshotKeyValue[], target?: number): Buffer[] {
  const writer = new SnapshotChunkWriter(target);
  const chunks = [writer.header(header)];
  for (const record of kvs) {
    const chunk = writer.addKeyValue(record);
    if (chunk !== null) chunks.push(chunk);
  }
  chunks.push(...writer.finish());
  return chunks;
}

function readAll(chunks: Buffer[]): { header: SnapshotHeader; keys: string[] } {
  const reader = new SnapshotChunkReader(DEFAULT_STORE_LIMITS);
  const keys: string[] = [];
  for (const chunk of chunks) {
    const piece = reader.read(chunk);
    if (piece.kind === 'data') keys.push(...piece.keyValues.map((r) => r.key.toString()));
  }
  return { header: reader.end(), keys };
}

/** Recomputes a chunk's checksum after a deliberate edit (a bug upstream, not a bit flip). */
function reseal(chunk: Buffer): Buffer {
  const copy = Buffer.from(chunk);
  copy.writeUInt32LE(crc32c(copy.subarray(0, copy.length - 4)), copy.length - 4);
  return copy;
}

const header = (keyCount: number, revision = 5): SnapshotHeader => ({
  appliedIndex: 10,
  revision,
  keyCount,
  metadata: text('m'),
});

describe('snapshot format', () => {
  it('closes a data chunk once its payload reaches the target size', () => {
    const kvs = [kv('a', 100), kv('b', 700), kv('c', 2500), kv('d', 1000), kv('e', 10)];
    const chunks = stream(header(kvs.length), kvs, 1000);
    // header, [a b c] (c crosses the target), [d] (reaches it alone), [e], trailer
    assert.equal(chunks.length, 5);
    const recordBytes = (r: SnapshotKeyValue) => 1 + 4 + r.key.length + 4 + r.value.length + 24;
    assert.deepEqual(
      chunks.slice(1, -1).map((c) => c.length - 24),
      [
        recordBytes(kvs[0]!) + recordBytes(kvs[1]!) + recordBytes(kvs[2]!),
        recordBytes(kvs[3]!),
        recordBytes(kvs[4]!),
      ],
    );
    const { header: read, keys } = readAll(chunks);
    assert.deepEqual(keys, ['a', 'b', 'c', 'd', 'e']);
    assert.equal(read.appliedIndex, 10);
    assert.deepEqual(read.metadata, text('m'));
    assert.equal(SNAPSHOT_CHUNK_TARGET_BYTES, 1024 * 1024);
  });

  it('carries an empty state as header and trailer only', () => {
    const chunks = stream(header(0, 0), []);
    assert.equal(chunks.length, 2);
    assert.deepEqual(readAll(chunks).keys, []);
  });

  it('rejects well-checksummed chunks whose content breaks the format', () => {
    const expectCorrupt = (chunks: Buffer[], chunk: number, reason: RegExp) =>
      assert.throws(
        () => readAll(chunks),
        (e: unknown) => e instanceof SnapshotCorruptionError && e.chunk === chunk && reason.test(e.message),
      );
    expectCorrupt(stream(header(2), [kv('b', 1), kv('a', 1)]), 1, /out of order/);
    expectCorrupt(stream(header(2), [kv('a', 1), kv('a', 1)]), 1, /out of order or duplicated/);
    expectCorrupt(stream(header(3), [kv('a', 1), kv('b', 1)]), 2, /header says 3/);
    expectCorrupt(
      stream(header(1), [kv('a', 1), kv('b', 1)]),
      1,
      /more key-values than the header's keyCount/,
    );
    expectCorrupt(stream(header(1, 5), [kv('a', 1, 6)]), 1, /impossible revisions/);
    const good = stream(header(1), [kv('a', 1)]);
    const versioned = Buffer.from(good[1]!);
    versioned[4] = 2;
    expectCorrupt([good[0]!, reseal(versioned), good[2]!], 1, /unsupported snapshot format version 2/);
    const kind = Buffer.from(good[1]!);
    kind[5] = 9;
    expectCorrupt([good[0]!, reseal(kind), good[2]!], 1, /unknown or misplaced kind 9/);
    const trailerCount = Buffer.from(good[2]!);
    trailerCount.writeUInt32LE(7, 20);
    expectCorrupt([good[0]!, good[1]!, reseal(trailerCount)], 2, /trailer says the stream has 7 chunks/);
    const recordType = Buffer.from(good[1]!);
    recordType[20] = 7;
    expectCorrupt([good[0]!, reseal(recordType), good[2]!], 1, /unknown record type 7/);
    const keyLength = Buffer.from(good[1]!);
    keyLength.writeUInt32LE(1000, 21);
    expectCorrupt([good[0]!, reseal(keyLength), good[2]!], 1, /runs past the end/);
  });

  it("applies the importing store's limits and refuses oversized chunks before reading them", () => {
    const chunks = stream(header(1), [kv('a', 200)]);
    const reader = new SnapshotChunkReader(resolveStoreLimits({ maxValueBytes: 100 }));
    reader.read(chunks[0]);
    assert.throws(
      () => reader.read(chunks[1]),
      (e: unknown) => e instanceof StoreLimitError && e.limit === 'maxValueBytes',
    );
    const huge = Buffer.alloc(64 * 1024 * 1024);
    huge.set(chunks[0]!.subarray(0, 20));
    assert.throws(
      () => new SnapshotChunkReader(DEFAULT_STORE_LIMITS).read(huge),
      (e: unknown) =>
        e instanceof SnapshotCorruptionError && /larger than the largest valid chunk/.test(e.message),
    );
  });
});
