import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoreCorruptionError } from '../../src/kv/errors.js';
import { StoredEntryCodec } from '../../src/kv/stored-entry.js';

const KEY = Buffer.from('k');
const EDGES = [1, 2, 127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 49, Number.MAX_SAFE_INTEGER];

describe('StoredEntryCodec', () => {
  for (const format of ['fixed', 'compact'] as const) {
    it(`${format}: round-trips every version field at the edges of each varint length`, () => {
      const codec = new StoredEntryCodec(format);
      const value = Buffer.from('value bytes');
      for (const mod of EDGES) {
        for (const create of [1, Math.max(1, Math.floor(mod / 2)), mod]) {
          for (const version of [1, 128, mod]) {
            const version3 = { createRevision: create, modRevision: mod, version };
            for (const raw of [codec.encode(value, version3), codec.encodeOwned(value, version3)]) {
              const decoded = codec.decode(raw, raw.length, KEY);
              assert.deepEqual(
                { createRevision: decoded.createRevision, modRevision: decoded.modRevision, version: decoded.version },
                version3,
              );
              assert.deepEqual(raw.subarray(decoded.valueOffset), value);
            }
          }
        }
      }
    });
  }

  it('compact: a key written once at a revision below 2^21 takes a 5-byte header; fixed takes 24', () => {
    const v = { createRevision: 1_000_000, modRevision: 1_000_000, version: 1 };
    assert.equal(new StoredEntryCodec('compact').encodeOwned(Buffer.alloc(100), v).length, 105);
    assert.equal(new StoredEntryCodec('fixed').encodeOwned(Buffer.alloc(100), v).length, 124);
  });

  it('decodes a reusable buffer longer than the entry by the given length', () => {
    const codec = new StoredEntryCodec('compact');
    const raw = Buffer.concat([codec.encodeOwned(Buffer.from('ab'), { createRevision: 3, modRevision: 5, version: 2 }), Buffer.alloc(10, 0xff)]);
    const d = codec.decode(raw, raw.length - 10, KEY);
    assert.deepEqual([d.createRevision, d.modRevision, d.version, d.valueOffset], [3, 5, 2, 3]);
  });

  it('refuses to encode an impossible version', () => {
    const codec = new StoredEntryCodec('compact');
    for (const bad of [
      { createRevision: 0, modRevision: 1, version: 1 },
      { createRevision: 5, modRevision: 4, version: 1 },
      { createRevision: 1, modRevision: 1, version: 0 },
      { createRevision: 1, modRevision: 2 ** 53, version: 1 },
      { createRevision: 1, modRevision: 1.5, version: 1 },
    ]) {
      assert.throws(() => codec.encode(Buffer.alloc(1), bad), RangeError);
    }
  });

  it('compact: refuses corrupt headers with the key and the reason', () => {
    const codec = new StoredEntryCodec('compact');
    const cases: [number[], RegExp][] = [
      [[], /0 bytes, its header ends inside the mod revision/],
      [[0x85], /header ends inside the mod revision/],
      [[0x05, 0x00], /header ends inside the version/],
      [[0x85, 0x00, 0x00, 0x01], /overlong encoding of the mod revision/],
      [[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], /mod revision is longer than 8 bytes/],
      [[0x05, 0x06, 0x01], /impossible header \(create -1, mod 5, version 1\)/],
      [[0x05, 0x00, 0x00], /impossible header \(create 5, mod 5, version 0\)/],
      [[0x00, 0x00, 0x01], /impossible header \(create 0, mod 0, version 1\)/],
      [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01], /impossible header/],
    ];
    for (const [bytes, reason] of cases) {
      const raw = Buffer.from(bytes);
      assert.throws(
        () => codec.decode(raw, raw.length, KEY),
        (e: unknown) => e instanceof StoreCorruptionError && /key 0x6b/.test(e.message) && reason.test(e.message),
        `${raw.toString('hex')} should be refused as ${reason}`,
      );
    }
  });

  it('fixed: refuses an entry shorter than its header and impossible headers', () => {
    const codec = new StoredEntryCodec('fixed');
    assert.throws(() => codec.decode(Buffer.alloc(23), 23, KEY), /23 bytes, shorter than its 24-byte header/);
    assert.throws(() => codec.decode(Buffer.alloc(24), 24, KEY), /impossible header \(create 0, mod 0, version 0\)/);
  });
});
