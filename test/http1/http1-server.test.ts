/**
 * Http1Server over real sockets: answers in request order whatever order they finish in, HEAD,
 * Expect: 100-continue, a client that half-closes, pipelining bounded per connection, protocol
 * errors after good requests, the head and idle timeouts, and closing idle connections.
 */
import assert from 'node:assert/strict';
import { type Socket, connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { MAX_PIPELINED_REQUESTS } from '../../src/http1/http1-connection.js';
import type { Http1Request } from '../../src/http1/http1-request-parser.js';
import type { Http1Response } from '../../src/http1/http1-response.js';
import { Http1Server, type Http1ServerOptions } from '../../src/http1/http1-server.js';

interface Received {
  request: Http1Request;
  response: Http1Response;
}

interface Harness {
  server: Http1Server;
  port: number;
  received: Received[];
  dropped: number;
}

const servers: Http1Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await server.close();
  }
});

/** A server whose handler records requests; `answerAtOnce` answers each with its target. */
async function start(options: Partial<Http1ServerOptions> = {}, answerAtOnce = true): Promise<Harness> {
  const harness: Harness = { server: undefined as unknown as Http1Server, port: 0, received: [], dropped: 0 };
  const server = new Http1Server({
    maxHeadBytes: 4096,
    maxHeaderCount: 50,
    maxBodyBytes: 1024,
    drainBytes: 4096,
    maxConnections: 100,
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    keepAliveTimeoutMs: 10_000,
    onRequest: (request, response) => {
      harness.received.push({ request, response });
      if (answerAtOnce) answer(response, `${request.method} ${request.target} ${request.body.toString()}`);
    },
    onProtocolError: (error, response) => answer(response, `error ${error.message}`, error.status),
    onConnectionDropped: () => harness.dropped++,
    ...options,
  });
  servers.push(server);
  harness.server = server;
  harness.port = (await server.listen(0, '127.0.0.1', 511)).port;
  return harness;
}

function answer(response: Http1Response, text: string, status = 200): void {
  response.writeHead(status, [
    'content-type',
    'text/plain',
    'content-length',
    String(Buffer.byteLength(text)),
  ]);
  response.end(text);
}

/** A raw client socket collecting everything it receives. */
async function open(port: number): Promise<{ socket: Socket; text: () => string; closed: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, text: () => Buffer.concat(chunks).toString('latin1'), closed };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 ([0-9]{3}) /g)].map((m) => m[1]);
const GET = (target: string) => `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`;

describe('Http1Server', () => {
  it('writes pipelined answers in request order though they finish in reverse', async () => {
    const h = await start({}, false);
    const c = await open(h.port);
    c.socket.write(GET('/1') + GET('/2') + GET('/3'));
    await until(() => h.received.length === 3, 'three requests');
    answer(h.received[2]!.response, 'third');
    answer(h.received[1]!.response, 'second');
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(c.text(), '', 'nothing goes out before the first answer');
    answer(h.received[0]!.response, 'first');
    await until(() => c.text().endsWith('third'), 'all answers');
    assert.deepEqual(
      [...c.text().matchAll(/\r\n\r\n(first|second|third)/g)].map((m) => m[1]),
      ['first', 'second', 'third'],
    );
    assert.match(c.text(), /connection: keep-alive\r\nkeep-alive: timeout=10\r\n/);
    assert.match(c.text(), /date: [A-Z][a-z]{2}, /);
    c.socket.destroy();
  });

  it('answers HEAD with the headers and no body', async () => {
    const h = await start();
    const c = await open(h.port);
    c.socket.write(`HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n${GET('/y')}`);
    await until(() => c.text().endsWith('GET /y '), 'both answers');
    const text = c.text();
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*content-length: 8\r\n[\s\S]*\r\n\r\nHTTP\/1\.1 200 OK/);
    c.socket.destroy();
  });

  it('sends 100 Continue before a body the client holds back, then the answer', async () => {
    const h = await start();
    const c = await open(h.port);
    c.socket.write('PUT /k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n');
    await until(() => c.text().length > 0, '100 Continue');
    assert.equal(c.text(), 'HTTP/1.1 100 Continue\r\n\r\n');
    c.socket.write('body');
    await until(() => c.text().endsWith('PUT /k body'), 'the answer');
    assert.deepEqual(statuses(c.text()), ['100', '200']);
    c.socket.destroy();
  });

  it('answers a client that ends its side after the request, then closes', async () => {
    const h = await start({}, false);
    const c = await open(h.port);
    c.socket.end(GET('/a'));
    await until(() => h.received.length === 1, 'the request');
    await new Promise((resolve) => setTimeout(resolve, 20));
    answer(h.received[0]!.response, 'late');
    await c.closed;
    assert.match(c.text(), /^HTTP\/1\.1 200 [\s\S]*late$/);
  });

  it('parses at most MAX_PIPELINED_REQUESTS ahead of their answers, and answers all in order', async () => {
    const h = await start({}, false);
    const c = await open(h.port);
    const total = MAX_PIPELINED_REQUESTS * 3;
    let batch = '';
    for (let i = 0; i < total; i++) batch += GET(`/${i}`);
    c.socket.write(batch);
    await until(() => h.received.length === MAX_PIPELINED_REQUESTS, 'a full pipeline');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(
      h.received.length,
      MAX_PIPELINED_REQUESTS,
      'no more are parsed while the answers are outstanding',
    );
    for (let answered = 0; answered < total; answered++) {
      await until(() => h.received.length > answered, `request ${answered}`);
      answer(h.received[answered]!.response, `#${answered};`);
    }
    await until(() => c.text().endsWith(`#${total - 1};`), 'every answer');
    const order = [...c.text().matchAll(/#([0-9]+);/g)].map((m) => Number(m[1]));
    assert.deepEqual(order, [...Array(total).keys()]);
    c.socket.destroy();
  });

  it('answers the good requests before a malformed one, then 400 and close', async () => {
    const h = await start();
    const c = await open(h.port);
    c.socket.write(`${GET('/ok')}GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n${GET('/never')}`);
    await c.closed;
    assert.deepEqual(statuses(c.text()), ['200', '400']);
    assert.match(c.text(), /connection: close\r\n\r\nerror malformed header field name/);
    assert.equal(h.received.length, 1);
  });

  it('closes after answering a request that asked to close', async () => {
    const h = await start();
    const c = await open(h.port);
    c.socket.write(`GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n${GET('/b')}`);
    await c.closed;
    assert.deepEqual(statuses(c.text()), ['200']);
    assert.match(c.text(), /connection: close\r\n/);
  });

  it('answers 408 and closes when a head does not complete in time; closes idle connections after the keep-alive timeout', async () => {
    const h = await start({ headersTimeoutMs: 200, keepAliveTimeoutMs: 300 });
    const slow = await open(h.port);
    slow.socket.write('GET / HTTP/1.1\r\nHo');
    await slow.closed;
    assert.match(slow.text(), /^HTTP\/1\.1 408 [\s\S]*request head not received within 200 ms/);

    const idle = await open(h.port);
    idle.socket.write(GET('/once'));
    await idle.closed;
    assert.deepEqual(statuses(idle.text()), ['200']);
    assert.match(
      idle.text(),
      /keep-alive: timeout=1\r\n/,
      'the idle timeout is told, in whole seconds (at least 1)',
    );
  });

  it('cuts a closing connection whose client does not read its answers after the linger time', async () => {
    const h = await start({ keepAliveTimeoutMs: 200, closeLingerMs: 300 }, false);
    const c = await open(h.port);
    c.socket.pause(); // never reads
    let batch = '';
    for (let i = 0; i < MAX_PIPELINED_REQUESTS; i++) batch += GET(`/${i}`);
    c.socket.write(batch);
    await until(() => h.received.length === MAX_PIPELINED_REQUESTS, 'the requests');
    const big = 'x'.repeat(512 * 1024);
    for (const { response } of h.received) answer(response, big);
    // 16 MiB of answers cannot all leave: the connection goes idle, is closed, cannot finish, is cut.
    await until(() => h.server.connectionCount === 0, 'the connection cut');
    c.socket.destroy();
  });

  it('answers 408 when a body does not arrive in time', async () => {
    const h = await start({ bodyTimeoutMs: 200 });
    const c = await open(h.port);
    c.socket.write('PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
    await c.closed;
    assert.match(c.text(), /^HTTP\/1\.1 408 [\s\S]*request body not received within 200 ms/);
    assert.equal(h.received.length, 0);
  });

  it('closes idle connections on request and leaves busy ones; counts dropped connections past the limit', async () => {
    const h = await start({ maxConnections: 2 }, false);
    const idle = await open(h.port);
    const busy = await open(h.port);
    busy.socket.write(GET('/busy'));
    await until(() => h.received.length === 1 && h.server.connectionCount === 2, 'both connections');
    const third = await open(h.port);
    await third.closed;
    assert.equal(h.dropped, 1);
    h.server.closeIdleConnections();
    await idle.closed;
    assert.equal(busy.socket.destroyed, false);
    answer(h.received[0]!.response, 'done');
    await until(() => busy.text().endsWith('done'), 'the busy answer');
    await until(() => h.server.connectionCount === 1, 'the idle connection gone');
    busy.socket.destroy();
  });

  it('refuses a header value with a control character in an answer, writing nothing', async () => {
    const h = await start({}, false);
    const c = await open(h.port);
    c.socket.write(GET('/'));
    await until(() => h.received.length === 1, 'the request');
    const response = h.received[0]!.response;
    assert.throws(() => response.writeHead(200, ['x-bad', 'a\r\nb']), /invalid character/);
    assert.throws(() => response.writeHead(200, ['bad name', 'v']), /invalid header name/);
    assert.throws(() => response.writeHead(200, ['x-wide', 'caf\u0113']), /invalid character/, 'past latin1');
    assert.equal(response.headersSent, false);
    answer(response, 'fine');
    await until(() => c.text().endsWith('fine'), 'the answer');
    c.socket.destroy();
  });
});
