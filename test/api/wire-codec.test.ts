import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ApiError } from '../../src/api/http/api-error.js';
import { QueryParams, percentDecode } from '../../src/api/http/wire-codec.js';

/** Percent-decoding byte by byte, the plain way: the fast path for unescaped text must agree with it. */
function reference(text: string, plusIsSpace: boolean): Buffer | 'error' {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 37) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return 'error';
      out.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (c === 43 && plusIsSpace) out.push(32);
    else if (c > 0xff) return 'error';
    else out.push(c);
  }
  return Buffer.from(out);
}

function decoded(text: string, plusIsSpace: boolean): Buffer | 'error' {
  try {
    return percentDecode(text, 'key', plusIsSpace);
  } catch (e) {
    if (e instanceof ApiError && e.status === 400) return 'error';
    throw e;
  }
}

describe('wire codec', () => {
  it('percentDecode agrees with a byte-by-byte reference, escaped or not', () => {
    const char = fc.oneof(
      fc.constantFrom('%', '+', '/', 'a', 'Z', '0', 'f', 'G', '\u00e9', '\u00ff', '\u0100', '\u20ac'),
      fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)),
    );
    const text = fc.array(char, { maxLength: 24 }).map((cs) => cs.join(''));
    fc.assert(
      fc.property(text, fc.boolean(), (t, plus) => {
        assert.deepEqual(decoded(t, plus), reference(t, plus), JSON.stringify(t));
      }),
      { numRuns: 5000 },
    );
  });

  it('QueryParams decodes names and values, refuses unknown, repeated and non-UTF-8 parameters', () => {
    const q = QueryParams.parse('consistency=serializable&&prefix=a%2Fb+c&keysOnly', [
      'consistency',
      'prefix',
      'keysOnly',
    ]);
    assert.equal(q.consistency(), 'serializable');
    assert.deepEqual(q.bytes('prefix'), Buffer.from('a/b c'));
    assert.equal(q.text('prefix'), 'a/b c');
    assert.equal(q.boolean('keysOnly'), true);
    assert.equal(q.bytes('absent'), undefined);
    assert.deepEqual(QueryParams.parse('prefix=%C3%A9', ['prefix']).text('prefix'), '\u00e9');
    assert.throws(() => QueryParams.parse('prefix=%FF', ['prefix']).text('prefix'), /not valid UTF-8/);
    assert.deepEqual(QueryParams.parse('prefix=%FF', ['prefix']).bytes('prefix'), Buffer.from([0xff]));
    assert.throws(() => QueryParams.parse('limit=1&limit=2', ['limit']), /more than once/);
    assert.throws(
      () => QueryParams.parse('consistncy=serializable', ['consistency']),
      /unknown query parameter "consistncy"/,
    );
    assert.throws(() => QueryParams.parse('prefix=%zz', ['prefix']), /malformed percent-encoding/);
    assert.equal(QueryParams.parse('', []).bytes('x'), undefined);
  });
});
