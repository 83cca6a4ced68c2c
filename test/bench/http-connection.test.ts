import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { encodeWireRequest } from '../../src/bench/bench-target.js';
import { BenchHttpConnection, BenchRequestError, MAX_HEAD_BYTES } from '../../src/bench/http-connection.js';

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A raw TCP server: `answer` gets each request's bytes (one request per read here) and its socket. */
async function rawServer(answer: (socket: Socket, request: string) => void): Promise<number> {
  const server = createServer((socket) => {
    socket.on('data', (d) => answer(socket, d.toString('latin1')));
    socket.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Writes `parts` one socket write each, a few ms apart, so the client reads them separately. */
function writeApart(socket: Socket, parts: string[], end = false): void {
  let i = 0;
  const next = () => {
    if (i < parts.length) {
      socket.write(parts[i++]!);
      setTimeout(next, 5);
    } else if (end) socket.end();
  };
  next();
}

const GET = (host: string) =>
  encodeWireRequest({ method: 'GET', path: '/x', headers: undefined, body: undefined }, host);

async function failure(p: Promise<number>): Promise<BenchRequestError> {
  const e = await p.then(
    () => assert.fail('expected the request to fail'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof BenchRequestError, `not a BenchRequestError: ${String(e)}`);
  return e;
}

describe('BenchHttpConnection', () => {
  it('reads Content-Length answers on one keep-alive connection, split anywhere', async () => {
    let connections = 0;
    const port = await rawServer((socket, req) => {
      if (!req.startsWith('GET /x HTTP/1.1\r\nhost: ')) socket.destroy();
      writeApart(socket, ['HTTP/1.1 200 OK\r\nContent-Le', 'ngth: 5\r\n\r', '\nhe', 'llo']);
    });
    const server = servers.at(-1)!;
    server.on('connection', () => connections++);
    const c = new BenchHttpConnection('127.0.0.1', port, 5_000);
    for (let i = 0; i < 3; i++) assert.equal(await c.send(GET(`127.0.0.1:${port}`)), 200);
    assert.equal(connections, 1);
    c.close();
  });

  it('reads chunked answers with extensions and trailers, and 404s', async () => {
    const port = await rawServer((socket) => {
      writeApart(socket, [
        'HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n',
        '3;ext=1\r\nabc\r',
        '\n10\r\n0123456789abcdef\r\n0\r\n',
        'x-trailer: 1\r\n\r\n',
      ]);
    });
    const c = new BenchHttpConnection('127.0.0.1', port, 5_000);
    assert.equal(await c.send(GET('h')), 404);
    assert.equal(await c.send(GET('h')), 404);
    c.close();
  });

  it('reads a body that ends with the connection, and dials again for the next request', async () => {
    let connections = 0;
    const port = await rawServer((socket) =>
      writeApart(socket, ['HTTP/1.0 200 OK\r\n\r\n', 'body...'], true),
    );
    servers.at(-1)!.on('connection', () => connections++);
    const c = new BenchHttpConnection('127.0.0.1', port, 5_000);
    assert.equal(await c.send(GET('h')), 200);
    assert.equal(await c.send(GET('h')), 200);
    assert.equal(connections, 2);
    c.close();
  });

  it('follows Connection: close and skips interim 100 answers', async () => {
    let connections = 0;
    const port = await rawServer((socket) =>
      socket.write(
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno',
      ),
    );
    servers.at(-1)!.on('connection', () => connections++);
    const c = new BenchHttpConnection('127.0.0.1', port, 5_000);
    assert.equal(await c.send(GET('h')), 503);
    assert.equal(await c.send(GET('h')), 503);
    assert.equal(connections, 2);
    c.close();
  });

  it('fails malformed answers as bad_response and recovers on a new connection', async () => {
    let n = 0;
    const port = await rawServer((socket) => {
      n++;
      if (n === 1) socket.write('SMTP ready\r\n\r\n');
      else if (n === 2) socket.write('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n');
      else if (n === 3) socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
      else if (n === 4) socket.write(`HTTP/1.1 200 OK\r\nx: ${'a'.repeat(MAX_HEAD_BYTES + 10)}`);
      else if (n === 5) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nextra');
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
    let connections = 0;
    servers.at(-1)!.on('connection', () => connections++);
    const c = new BenchHttpConnection('127.0.0.1', port, 5_000);
    for (const why of [/status line/, /content-length/, /chunk size/, /head over/]) {
      const e = await failure(c.send(GET('h')));
      assert.equal(e.code, 'bad_response');
      assert.match(e.message, why);
    }
    // A complete answer followed by stray bytes counts; the connection is dropped and dialed again.
    assert.equal(await c.send(GET('h')), 200);
    assert.equal(await c.send(GET('h')), 200);
    assert.equal(connections, 6);
    c.close();
  });

  it('reads the framing fields in any letter case and with spaces around values, and refuses bad heads', async () => {
    const answers = [
      // A status line without a reason, names in odd cases, tabs and spaces around the value.
      'HTTP/1.1 201\r\nX-Other: a:b\r\ncOnTeNt-LeNgTh: \t3 \r\n\r\nabc',
      'HTTP/1.0 200 OK\r\nTRANSFER-ENCODING:  gzip, Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive, CLOSE\r\n\r\n',
      'HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n',
      'HTTP/1.1 200 OK\r\n: empty name\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n',
      'HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 099 Early\r\nContent-Length: 0\r\n\r\n',
    ];
    let n = 0;
    let connections = 0;
    const port = await rawServer((socket) => socket.write(answers[n++]!));
    servers.at(-1)!.on('connection', () => connections++);
    const c = new BenchHttpConnection('127.0.0.1', port, 5_000);
    assert.equal(await c.send(GET('h')), 201);
    assert.equal(await c.send(GET('h')), 200);
    assert.equal(connections, 1, 'the framed answers kept the connection');
    assert.equal(await c.send(GET('h')), 200);
    for (const why of [/status line/, /header line/, /header line/, /content-length/, /content-length/]) {
      assert.match((await failure(c.send(GET('h')))).message, why);
    }
    for (let i = 0; i < 2; i++) assert.match((await failure(c.send(GET('h')))).message, /status line/);
    // Connection: close, then every malformed answer, dropped the connection.
    assert.equal(connections, 8);
    c.close();
  });

  it('fails a request the server never answers as timeout, and one cut mid-answer', async () => {
    let n = 0;
    const port = await rawServer((socket) => {
      n++;
      if (n === 2) socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort');
    });
    const c = new BenchHttpConnection('127.0.0.1', port, 50);
    const pending = c.send(GET('h'));
    const sweep = setInterval(() => c.expireIfPast(performance.now()), 10);
    assert.equal((await failure(pending)).code, 'timeout');
    assert.equal((await failure(c.send(GET('h')))).code, 'connection_closed');
    clearInterval(sweep);
    c.close();
  });

  it('reports a refused connection by its errno code', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    const c = new BenchHttpConnection('127.0.0.1', port, 5_000);
    assert.equal((await failure(c.send(GET('h')))).code, 'ECONNREFUSED');
  });

  it("sends what node's HTTP server parses: bodies, headers and keep-alive", async () => {
    const seen: string[] = [];
    const server = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => {
        body += d.toString();
      });
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${req.headers['content-type'] ?? '-'} ${body}`);
        res.end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const host = `127.0.0.1:${port}`;
    const c = new BenchHttpConnection('127.0.0.1', port, 5_000);
    const put = encodeWireRequest(
      {
        method: 'PUT',
        path: '/kv/a',
        headers: { 'content-type': 'application/octet-stream' },
        body: Buffer.from('v1'),
      },
      host,
    );
    const post = encodeWireRequest(
      {
        method: 'POST',
        path: '/v3/kv/range',
        headers: { 'content-type': 'application/json' },
        body: '{"key":"YQ=="}',
      },
      host,
    );
    assert.equal(await c.send(put), 200);
    assert.equal(await c.send(post), 200);
    assert.equal(await c.send(GET(host)), 200);
    assert.deepEqual(seen, [
      'PUT /kv/a application/octet-stream v1',
      'POST /v3/kv/range application/json {"key":"YQ=="}',
      'GET /x - ',
    ]);
    c.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
});
