/**
 * Http1RequestParser against mutated requests (seeded, reproducible): whatever the bytes, the
 * parser either hands out requests or throws Http1ProtocolError — never another error — and the
 * outcome does not depend on how the bytes were split; no body it hands out exceeds the limit.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Http1ParserLimits,
  Http1ProtocolError,
  type Http1Request,
  Http1RequestParser,
} from '../../src/http1/http1-request-parser.js';
import { seededRandom } from '../raft/network.js';

const LIMITS: Http1ParserLimits = { maxHeadBytes: 512, maxHeaderCount: 12, maxBodyBytes: 48, drainBytes: 64 };
const CASES = 3000;

const SEEDS = [
  'GET /kv/a HTTP/1.1\r\nHost: x\r\n\r\n',
  'PUT /kv/a%2Fb HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nIf-Match: 3\r\n\r\nhello',
  'POST /txn HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\nabcd\r\n3\r\nefg\r\n0\r\nT: v\r\n\r\n',
  'DELETE /kv/z HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
  'PUT /kv/b HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 60\r\n\r\n' + 'v'.repeat(60),
];
const INSERTS = [
  '\r\n',
  '\r',
  '\n',
  ' ',
  ':',
  '\t',
  '\x00',
  'Content-Length: 9\r\n',
  'Transfer-Encoding: chunked\r\n',
  '0\r\n\r\n',
  'ffffffff\r\n',
  '\r\n\r\n',
  'HTTP/1.1',
];

function mutate(random: () => number): Buffer {
  let text = '';
  const pipelined = 1 + Math.floor(random() * 3);
  for (let i = 0; i < pipelined; i++) text += SEEDS[Math.floor(random() * SEEDS.length)]!;
  const bytes = [...Buffer.from(text, 'latin1')];
  const edits = Math.floor(random() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(random() * (bytes.length + 1));
    const kind = random();
    if (kind < 0.3) bytes[at] = Math.floor(random() * 256);
    else if (kind < 0.6)
      bytes.splice(at, 0, ...Buffer.from(INSERTS[Math.floor(random() * INSERTS.length)]!, 'latin1'));
    else if (kind < 0.8) bytes.splice(at, 1 + Math.floor(random() * 8));
    else bytes.length = Math.min(bytes.length, at);
  }
  return Buffer.from(bytes);
}

type Outcome = { requests: unknown[]; error: string | undefined };

function run(input: Buffer, pieces: number[]): Outcome {
  const parser = new Http1RequestParser(LIMITS);
  const requests: unknown[] = [];
  let at = 0;
  try {
    for (const size of [...pieces, input.length]) {
      parser.push(Buffer.from(input.subarray(at, at + size)));
      at += size;
      for (let r: Http1Request | undefined = parser.next(); r !== undefined; r = parser.next()) {
        assert.ok(r.body.length <= LIMITS.maxBodyBytes, 'a kept body never exceeds the limit');
        if (r.overflow !== 'none') assert.equal(r.body.length, 0);
        requests.push({ ...r, headers: { ...r.headers }, body: r.body.toString('latin1') });
      }
      if (at >= input.length) break;
    }
    return { requests, error: undefined };
  } catch (error) {
    if (!(error instanceof Http1ProtocolError)) throw error;
    return { requests, error: `${error.status} ${error.message}` };
  }
}

describe('Http1RequestParser under mutated input', () => {
  it(`${CASES} seeded cases: only protocol errors, the same outcome however the bytes are split`, () => {
    const random = seededRandom(0x5eed);
    let parsed = 0;
    let refused = 0;
    for (let c = 0; c < CASES; c++) {
      const input = mutate(random);
      const whole = run(input, []);
      const pieces: number[] = [];
      for (let left = input.length; left > 0; ) {
        const size = 1 + Math.floor(random() * 16);
        pieces.push(size);
        left -= size;
      }
      const split = run(input, pieces);
      assert.deepEqual(split, whole, `case ${c}: ${JSON.stringify(input.toString('latin1'))}`);
      if (whole.error === undefined) parsed++;
      else refused++;
    }
    // Both kinds must occur, or the mutations test nothing.
    assert.ok(parsed > CASES / 10 && refused > CASES / 10, `parsed ${parsed}, refused ${refused}`);
  });
});
