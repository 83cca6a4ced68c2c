/**
 * Http1RequestParser: every framing rule and limit, table-driven; every valid input is also fed
 * split at every byte, and must parse the same.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Http1ParserLimits,
  Http1ProtocolError,
  type Http1Request,
  Http1RequestParser,
} from '../../src/http1/http1-request-parser.js';

const LIMITS: Http1ParserLimits = {
  maxHeadBytes: 1024,
  maxHeaderCount: 10,
  maxBodyBytes: 64,
  drainBytes: 100,
};

/** Feeds `input` in pieces of `step` bytes (0: all at once) and collects the requests. */
function parseAll(input: string | Buffer, step = 0, limits = LIMITS): Http1Request[] {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const parser = new Http1RequestParser(limits);
  const out: Http1Request[] = [];
  const pieces: Buffer[] = [];
  if (step === 0) pieces.push(bytes);
  else for (let i = 0; i < bytes.length; i += step) pieces.push(Buffer.from(bytes.subarray(i, i + step)));
  for (const piece of pieces) {
    parser.push(piece);
    for (let r = parser.next(); r !== undefined; r = parser.next()) out.push(r);
  }
  return out;
}

/** The parse of `input` in one piece; asserts that byte-by-byte and 3-byte pieces agree. */
function parseSplitAnywhere(input: string | Buffer, limits = LIMITS): Http1Request[] {
  const whole = parseAll(input, 0, limits);
  for (const step of [1, 3]) {
    const split = parseAll(input, step, limits);
    assert.deepEqual(split.map(summary), whole.map(summary), `fed in ${step}-byte pieces`);
  }
  return whole;
}

function summary(r: Http1Request): unknown {
  return { ...r, headers: { ...r.headers }, body: r.body.toString('latin1') };
}

function protocolError(input: string, limits = LIMITS): Http1ProtocolError {
  const parser = new Http1RequestParser(limits);
  parser.push(Buffer.from(input, 'latin1'));
  try {
    while (parser.next() !== undefined) {
      /* requests before the bad one */
    }
  } catch (error) {
    assert.ok(error instanceof Http1ProtocolError, String(error));
    assert.equal(parser.isDone, true, 'parsing stops at an error');
    assert.equal(parser.next(), undefined);
    return error;
  }
  assert.fail(`no error for ${JSON.stringify(input)}`);
}

describe('Http1RequestParser: valid requests', () => {
  it('parses a GET: method, target, version, lower-case headers, no body, keep-alive', () => {
    const [r] = parseSplitAnywhere(
      'GET /kv/a%2Fb?consistency=serializable HTTP/1.1\r\nHost: x\r\nX-Atlas-Seq:  7 \r\n\r\n',
    );
    assert.equal(r!.method, 'GET');
    assert.equal(r!.target, '/kv/a%2Fb?consistency=serializable');
    assert.equal(r!.versionMinor, 1);
    assert.deepEqual({ ...r!.headers }, { host: 'x', 'x-atlas-seq': '7' });
    assert.equal(r!.keepAlive, true);
    assert.equal(r!.body.length, 0);
    assert.equal(r!.overflow, 'none');
  });

  it('reads a Content-Length body and the request pipelined after it', () => {
    const rs = parseSplitAnywhere(
      'PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /health HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.deepEqual(
      rs.map((r) => [r.method, r.target, r.body.toString(), r.bodyLength]),
      [
        ['PUT', '/kv/a', 'hello', 5],
        ['GET', '/health', '', 0],
      ],
    );
  });

  it('reads a chunked body with extensions and trailers', () => {
    const [r, next] = parseSplitAnywhere(
      'POST /txn HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n' +
        'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.equal(r!.body.toString(), 'helloabcdefghijklmnopqrstuvwxyz');
    assert.equal(r!.bodyLength, 31);
    assert.equal(next!.target, '/');
  });

  it('skips empty lines before a request line (RFC 9112 §2.2)', () => {
    const rs = parseSplitAnywhere('\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(rs.length, 1);
  });

  it('keeps an HTTP/1.0 connection only when asked; Connection: close ends parsing', () => {
    assert.equal(parseAll('GET / HTTP/1.0\r\n\r\n')[0]!.keepAlive, false);
    assert.equal(parseAll('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n')[0]!.keepAlive, true);
    const rs = parseAll(
      'GET / HTTP/1.1\r\nHost: x\r\nConnection: TE, close\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.deepEqual(
      rs.map((r) => [r.target, r.keepAlive]),
      [['/', false]],
      'nothing after a closing request is parsed',
    );
  });

  it('keeps every value of a repeated header, in order', () => {
    const [r] = parseAll('GET / HTTP/1.1\r\nHost: x\r\nIf-Match: 1\r\nif-match: 2\r\n\r\n');
    assert.deepEqual(r!.headers['if-match'], ['1', '2']);
  });

  it('accepts a repeated identical Content-Length', () => {
    const [r] = parseAll('PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab');
    assert.equal(r!.body.toString(), 'ab');
  });

  it('reports Expect: 100-continue and the head while the body is awaited', () => {
    const parser = new Http1RequestParser(LIMITS);
    parser.push(
      Buffer.from('PUT /kv/a HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n'),
    );
    assert.equal(parser.next(), undefined);
    assert.equal(parser.isReadingBody, true);
    assert.equal(parser.isMidRequest, true);
    assert.deepEqual(parser.pendingHead, {
      method: 'PUT',
      versionMinor: 1,
      expectContinue: true,
      contentLength: 3,
    });
    parser.push(Buffer.from('abc'));
    const r = parser.next()!;
    assert.equal(r.expectContinue, true);
    assert.equal(r.body.toString(), 'abc');
    assert.equal(parser.isReadingBody, false);
    assert.equal(parser.isMidRequest, false);
    assert.equal(parser.pendingHead, undefined);
  });

  it('passes bytes past 0x7f in the target through as latin1 characters', () => {
    const [r] = parseAll(
      Buffer.concat([
        Buffer.from('GET /kv/'),
        Buffer.from([0xc3, 0xa9]),
        Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n'),
      ]),
    );
    assert.equal(r!.target, '/kv/\u00c3\u00a9');
  });
});

describe('Http1RequestParser: bodies past the limit', () => {
  it('reads and discards a Content-Length body over the limit; the connection can go on', () => {
    const body = 'b'.repeat(100);
    const rs = parseSplitAnywhere(
      `PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${body}GET / HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    assert.equal(rs[0]!.overflow, 'discarded');
    assert.equal(rs[0]!.body.length, 0);
    assert.equal(rs[0]!.bodyLength, 100);
    assert.equal(rs[0]!.keepAlive, true);
    assert.equal(rs[1]!.target, '/');
  });

  it('gives up at once on a declared body past the limit and the drain allowance', () => {
    const parser = new Http1RequestParser(LIMITS);
    parser.push(Buffer.from('PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 165\r\n\r\nxyz'));
    const r = parser.next()!;
    assert.equal(r.overflow, 'abandoned');
    assert.equal(r.keepAlive, false);
    assert.equal(r.bodyLength, 165);
    assert.equal(parser.isDone, true);
    parser.push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.equal(parser.next(), undefined, 'nothing more is parsed');
  });

  it('takes a declared body of exactly the limit, and of the limit plus the drain as discarded', () => {
    assert.equal(
      parseAll(`PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 64\r\n\r\n${'a'.repeat(64)}`)[0]!.overflow,
      'none',
    );
    assert.equal(
      parseAll(`PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 164\r\n\r\n${'a'.repeat(164)}`)[0]!.overflow,
      'discarded',
    );
  });

  it('discards a chunked body that passes the limit, and abandons one that passes the drain too', () => {
    const chunk = (n: number) => `${n.toString(16)}\r\n${'c'.repeat(n)}\r\n`;
    const head = 'PUT /kv/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
    const [discarded, after] = parseSplitAnywhere(
      `${head}${chunk(40)}${chunk(40)}0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    assert.equal(discarded!.overflow, 'discarded');
    assert.equal(discarded!.bodyLength, 80);
    assert.equal(after!.target, '/');
    const [abandoned, ...rest] = parseAll(
      `${head}${chunk(60)}${chunk(60)}${chunk(60)}0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    assert.equal(abandoned!.overflow, 'abandoned');
    assert.equal(abandoned!.keepAlive, false);
    assert.equal(rest.length, 0);
  });
});

describe('Http1RequestParser: malformed requests', () => {
  const HOST = 'Host: x\r\n';
  const TABLE: Array<[string, string, number, RegExp]> = [
    ['not HTTP', 'THIS IS NOT HTTP\r\n\r\n', 400, /request line/],
    ['a double space in the request line', `GET  / HTTP/1.1\r\n${HOST}\r\n`, 400, /request line/],
    ['a method that is not a token', `G(T / HTTP/1.1\r\n${HOST}\r\n`, 400, /method/],
    ['a control character in the target', `GET /a\x01b HTTP/1.1\r\n${HOST}\r\n`, 400, /target/],
    ['an unknown protocol', `GET / HTTPS/1.1\r\n${HOST}\r\n`, 400, /version/],
    ['HTTP/2.0 in text', `GET / HTTP/2.0\r\n${HOST}\r\n`, 505, /not supported/],
    ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\n\r\n', 400, /without a Host/],
    ['two Host headers', `GET / HTTP/1.1\r\n${HOST}${HOST}\r\n`, 400, /more than one Host/],
    ['whitespace before the colon', `GET / HTTP/1.1\r\n${HOST}Bad : x\r\n\r\n`, 400, /header field name/],
    ['obsolete line folding', `GET / HTTP/1.1\r\n${HOST}A: b\r\n folded\r\n\r\n`, 400, /header field/],
    ['a header line without a colon', `GET / HTTP/1.1\r\n${HOST}nocolon\r\n\r\n`, 400, /no name/],
    ['a NUL in a value', `GET / HTTP/1.1\r\n${HOST}A: b\x00c\r\n\r\n`, 400, /control character/],
    ['a bare LF inside the head', `GET / HTTP/1.1\r\n${HOST}A: b\nC: d\r\n\r\n`, 400, /control character/],
    [
      'Content-Length with Transfer-Encoding',
      `POST / HTTP/1.1\r\n${HOST}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n`,
      400,
      /cannot be combined/,
    ],
    [
      'a transfer coding other than chunked',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: gzip, chunked\r\n\r\n`,
      501,
      /unsupported Transfer-Encoding/,
    ],
    [
      'chunked twice',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked, chunked\r\n\r\n`,
      501,
      /unsupported/,
    ],
    [
      'Transfer-Encoding in HTTP/1.0',
      'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n',
      400,
      /HTTP\/1.0/,
    ],
    [
      'a Content-Length that is not digits',
      `PUT / HTTP/1.1\r\n${HOST}Content-Length: 1e3\r\n\r\n`,
      400,
      /invalid Content-Length/,
    ],
    [
      'a negative Content-Length',
      `PUT / HTTP/1.1\r\n${HOST}Content-Length: -1\r\n\r\n`,
      400,
      /invalid Content-Length/,
    ],
    [
      'a Content-Length list',
      `PUT / HTTP/1.1\r\n${HOST}Content-Length: 1, 1\r\n\r\n`,
      400,
      /invalid Content-Length/,
    ],
    [
      'an unsafe Content-Length',
      `PUT / HTTP/1.1\r\n${HOST}Content-Length: 9999999999999999\r\n\r\n`,
      400,
      /invalid Content-Length/,
    ],
    [
      'conflicting Content-Lengths',
      `PUT / HTTP/1.1\r\n${HOST}Content-Length: 1\r\nContent-Length: 2\r\n\r\n`,
      400,
      /conflicting/,
    ],
    ['an unknown expectation', `PUT / HTTP/1.1\r\n${HOST}Expect: 200-ok\r\n\r\n`, 417, /100-continue/],
    [
      'a head over the limit',
      `GET / HTTP/1.1\r\n${HOST}A: ${'a'.repeat(1100)}\r\n\r\n`,
      431,
      /larger than 1024/,
    ],
    [
      'an unfinished head over the limit',
      `GET / HTTP/1.1\r\n${HOST}A: ${'a'.repeat(1100)}`,
      431,
      /larger than 1024/,
    ],
    [
      'too many header fields',
      `GET / HTTP/1.1\r\n${HOST}${'A: b\r\n'.repeat(10)}\r\n`,
      431,
      /more than 10 header fields/,
    ],
    [
      'a chunk size that is not hex',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\nzz\r\n`,
      400,
      /invalid chunk size/,
    ],
    [
      'a chunk size of 9 hex digits',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n100000000\r\n`,
      400,
      /invalid chunk size/,
    ],
    [
      'chunk data without its CRLF',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n2\r\nabXY`,
      400,
      /not followed by CRLF/,
    ],
    [
      'a chunk-size line without end',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n1;${'e'.repeat(1100)}`,
      400,
      /chunk-size line longer/,
    ],
    [
      'a bare CR in a chunk-size line',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n1\r;x\r\n`,
      400,
      /bare CR or LF/,
    ],
    [
      'a malformed trailer',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n`,
      400,
      /trailer/,
    ],
    ['a second request that is malformed', `GET / HTTP/1.1\r\n${HOST}\r\nBAD\r\n\r\n`, 400, /request line/],
  ];
  for (const [name, input, status, message] of TABLE) {
    it(`${name} → ${status}`, () => {
      const error = protocolError(input);
      assert.equal(error.status, status);
      assert.match(error.message, message);
    });
  }

  it('refuses limits that are not non-negative integers', () => {
    assert.throws(() => new Http1RequestParser({ ...LIMITS, maxHeadBytes: -1 }), /maxHeadBytes/);
    assert.throws(() => new Http1RequestParser({ ...LIMITS, drainBytes: 1.5 }), /drainBytes/);
  });

  it('keeps nothing buffered once a request is complete and counts a partial head as mid-request', () => {
    const parser = new Http1RequestParser(LIMITS);
    assert.equal(parser.isMidRequest, false);
    parser.push(Buffer.from('GET / HT'));
    assert.equal(parser.next(), undefined);
    assert.equal(parser.isMidRequest, true);
    assert.equal(parser.isReadingBody, false);
    parser.push(Buffer.from('TP/1.1\r\nHost: x\r\n\r\n'));
    assert.ok(parser.next());
    assert.equal(parser.isMidRequest, false);
  });
});
