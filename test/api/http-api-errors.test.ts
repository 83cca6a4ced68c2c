import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ApiError } from '../../src/api/http/api-error.js';
import { NodeError, type NodeErrorCode } from '../../src/node/errors.js';
import { type CallOptions, type TestServer, call, encodeKey, startServer } from './http-fixtures.js';

interface Case {
  name: string;
  method: string;
  path: string;
  options?: CallOptions;
  status: number;
  code: string;
  /** A fragment the message must contain. */
  message?: string;
  /** limit_exceeded: the limit the error names. */
  limit?: string;
  headers?: Record<string, string>;
}

const MiB = 1024 * 1024;
const json = (value: unknown): CallOptions => ({ body: JSON.stringify(value) });
const ops = (n: number) => Array.from({ length: n }, (_, i) => ({ type: 'put', key: `k${i}`, value: 'v' }));

const MALFORMED: Case[] = [
  { name: 'unknown route', method: 'GET', path: '/nope', status: 404, code: 'not_found' },
  { name: 'unknown v1 route', method: 'GET', path: '/api/v1/nope', status: 404, code: 'not_found' },
  {
    name: 'wrong method on a key',
    method: 'PATCH',
    path: '/kv/a',
    status: 405,
    code: 'method_not_allowed',
    headers: { allow: 'GET, PUT, DELETE, HEAD' },
  },
  { name: 'POST on a key', method: 'POST', path: '/kv/a', status: 405, code: 'method_not_allowed' },
  {
    name: 'GET /txn',
    method: 'GET',
    path: '/txn',
    status: 405,
    code: 'method_not_allowed',
    headers: { allow: 'POST' },
  },
  {
    name: 'PUT /kv',
    method: 'PUT',
    path: '/kv',
    status: 405,
    code: 'method_not_allowed',
    headers: { allow: 'GET, HEAD' },
  },
  {
    name: 'empty key',
    method: 'PUT',
    path: '/kv/',
    options: { body: 'x' },
    status: 400,
    code: 'invalid_request',
    message: 'key is empty',
  },
  {
    name: 'bad percent-encoding',
    method: 'PUT',
    path: '/kv/%zz',
    options: { body: 'x' },
    status: 400,
    code: 'invalid_request',
    message: 'percent',
  },
  {
    name: 'key over 4 KiB',
    method: 'PUT',
    path: `/kv/${'k'.repeat(4097)}`,
    options: { body: 'x' },
    status: 413,
    code: 'limit_exceeded',
    limit: 'max-key-size',
  },
  {
    name: 'encoded key over 4 KiB',
    method: 'GET',
    path: `/kv/${encodeKey(Buffer.alloc(4097, 1))}`,
    status: 413,
    code: 'limit_exceeded',
    limit: 'max-key-size',
  },
  {
    name: 'value over 1 MiB',
    method: 'PUT',
    path: '/kv/big',
    options: { body: Buffer.alloc(MiB + 1) },
    status: 413,
    code: 'limit_exceeded',
    limit: 'max-value-size',
  },
  {
    name: 'body over 2 MiB',
    method: 'PUT',
    path: '/kv/huge',
    options: { body: Buffer.alloc(3 * MiB) },
    status: 413,
    code: 'limit_exceeded',
    limit: 'max-request-size',
  },
  {
    name: 'If-Match not a number',
    method: 'PUT',
    path: '/kv/a',
    options: { body: 'x', headers: { 'if-match': 'abc' } },
    status: 400,
    code: 'invalid_request',
    message: 'If-Match',
  },
  {
    name: 'If-Match zero',
    method: 'PUT',
    path: '/kv/a',
    options: { body: 'x', headers: { 'if-match': '0' } },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'If-None-Match other than *',
    method: 'PUT',
    path: '/kv/a',
    options: { body: 'x', headers: { 'if-none-match': '"5"' } },
    status: 400,
    code: 'invalid_request',
    message: 'If-None-Match',
  },
  {
    name: 'both conditions',
    method: 'PUT',
    path: '/kv/a',
    options: { body: 'x', headers: { 'if-match': '1', 'if-none-match': '*' } },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'If-None-Match on delete',
    method: 'DELETE',
    path: '/kv/a',
    options: { headers: { 'if-none-match': '*' } },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'seq without client id',
    method: 'PUT',
    path: '/kv/a',
    options: { body: 'x', headers: { 'x-atlas-seq': '1' } },
    status: 400,
    code: 'invalid_request',
    message: 'together',
  },
  {
    name: 'bad seq',
    method: 'PUT',
    path: '/kv/a',
    options: { body: 'x', headers: { 'x-atlas-client-id': 'c', 'x-atlas-seq': '-1' } },
    status: 400,
    code: 'invalid_request',
    message: 'X-Atlas-Seq',
  },
  {
    name: 'bad client id',
    method: 'PUT',
    path: '/kv/a',
    options: { body: 'x', headers: { 'x-atlas-client-id': 'has space', 'x-atlas-seq': '1' } },
    status: 400,
    code: 'invalid_request',
    message: 'X-Atlas-Client-Id',
  },
  {
    name: 'unknown query parameter on PUT',
    method: 'PUT',
    path: '/kv/a?ttl=5',
    options: { body: 'x' },
    status: 400,
    code: 'invalid_request',
    message: 'ttl',
  },
  {
    name: 'bad consistency',
    method: 'GET',
    path: '/kv/a?consistency=strong',
    status: 400,
    code: 'invalid_request',
    message: 'consistency',
  },
  {
    name: 'limit zero',
    method: 'GET',
    path: '/kv?limit=0',
    status: 400,
    code: 'invalid_request',
    message: 'limit',
  },
  {
    name: 'limit not a number',
    method: 'GET',
    path: '/kv?limit=ten',
    status: 400,
    code: 'invalid_request',
    message: 'limit',
  },
  {
    name: 'limit over the maximum',
    method: 'GET',
    path: '/kv?limit=10001',
    status: 400,
    code: 'invalid_request',
    message: '10000',
  },
  {
    name: 'limit twice',
    method: 'GET',
    path: '/kv?limit=1&limit=2',
    status: 400,
    code: 'invalid_request',
    message: 'more than once',
  },
  {
    name: 'bad boolean',
    method: 'GET',
    path: '/kv?reverse=maybe',
    status: 400,
    code: 'invalid_request',
    message: 'reverse',
  },
  {
    name: 'bad encoding',
    method: 'GET',
    path: '/kv?encoding=hex',
    status: 400,
    code: 'invalid_request',
    message: 'encoding',
  },
  {
    name: 'bad base64 start',
    method: 'GET',
    path: '/kv?encoding=base64&start=%21%21',
    status: 400,
    code: 'invalid_request',
    message: 'base64',
  },
  {
    name: 'unknown range parameter',
    method: 'GET',
    path: '/kv?keys_only=1',
    status: 400,
    code: 'invalid_request',
    message: 'keys_only',
  },
  {
    name: 'txn not JSON',
    method: 'POST',
    path: '/txn',
    options: { body: 'not json' },
    status: 400,
    code: 'invalid_request',
    message: 'not valid JSON',
  },
  {
    name: 'txn empty body',
    method: 'POST',
    path: '/txn',
    status: 400,
    code: 'invalid_request',
    message: 'empty',
  },
  {
    name: 'txn not UTF-8',
    method: 'POST',
    path: '/txn',
    options: { body: Buffer.from([0x7b, 0xff, 0x7d]) },
    status: 400,
    code: 'invalid_request',
    message: 'UTF-8',
  },
  {
    name: 'txn is an array',
    method: 'POST',
    path: '/txn',
    options: json([]),
    status: 400,
    code: 'invalid_request',
    message: 'expected object',
  },
  {
    name: 'txn unknown field',
    method: 'POST',
    path: '/txn',
    options: json({ succes: [] }),
    status: 400,
    code: 'invalid_request',
    message: 'succes',
  },
  {
    name: 'txn bad compare target',
    method: 'POST',
    path: '/txn',
    options: json({ compare: [{ key: 'a', target: 'lease', op: '=', value: 1 }] }),
    status: 400,
    code: 'invalid_request',
    message: 'compare[0].target',
  },
  {
    name: 'txn op missing value',
    method: 'POST',
    path: '/txn',
    options: json({ success: [{ type: 'put', key: 'a' }] }),
    status: 400,
    code: 'invalid_request',
    message: 'success[0].value',
  },
  {
    name: 'txn empty key',
    method: 'POST',
    path: '/txn',
    options: json({ success: [{ type: 'get', key: '' }] }),
    status: 400,
    code: 'invalid_request',
    message: 'success[0].key is empty',
  },
  {
    name: 'txn bad base64',
    method: 'POST',
    path: '/txn',
    options: json({ encoding: 'base64', success: [{ type: 'get', key: '***' }] }),
    status: 400,
    code: 'invalid_request',
    message: 'base64',
  },
  {
    name: 'txn too many ops',
    method: 'POST',
    path: '/txn',
    options: json({ success: ops(129) }),
    status: 413,
    code: 'limit_exceeded',
    limit: 'max-txn-ops',
  },
  {
    name: 'txn value over 1 MiB',
    method: 'POST',
    path: '/txn',
    options: json({ success: [{ type: 'put', key: 'a', value: 'v'.repeat(MiB + 1) }] }),
    status: 413,
    code: 'limit_exceeded',
    limit: 'max-value-size',
  },
  {
    name: 'txn key over 4 KiB',
    method: 'POST',
    path: '/txn',
    options: json({ success: [{ type: 'delete', key: 'k'.repeat(4097) }] }),
    status: 413,
    code: 'limit_exceeded',
    limit: 'max-key-size',
  },
  {
    name: 'batch without ops',
    method: 'POST',
    path: '/batch',
    options: json({ ops: [] }),
    status: 400,
    code: 'invalid_request',
    message: 'at least one',
  },
  {
    name: 'batch with a get',
    method: 'POST',
    path: '/batch',
    options: json({ ops: [{ type: 'get', key: 'a' }] }),
    status: 400,
    code: 'invalid_request',
    message: 'ops[0].type',
  },
  {
    name: 'batch too many ops',
    method: 'POST',
    path: '/batch',
    options: json({ ops: ops(200) }),
    status: 413,
    code: 'limit_exceeded',
    limit: 'max-txn-ops',
  },
  {
    name: 'add member without id',
    method: 'POST',
    path: '/cluster/members',
    options: json({ peerAddress: '127.0.0.1:1' }),
    status: 400,
    code: 'invalid_request',
    message: 'id',
  },
  {
    name: 'add member bad address',
    method: 'POST',
    path: '/cluster/members',
    options: json({ id: 'x', peerAddress: 'nowhere' }),
    status: 400,
    code: 'invalid_request',
    message: 'peerAddress',
  },
  {
    name: 'add member bad role',
    method: 'POST',
    path: '/cluster/members',
    options: json({ id: 'x', peerAddress: '127.0.0.1:1', role: 'king' }),
    status: 400,
    code: 'invalid_request',
    message: 'role',
  },
  {
    name: 'add member unknown field',
    method: 'POST',
    path: '/cluster/members',
    options: json({ id: 'x', peerAddress: '127.0.0.1:1', weight: 3 }),
    status: 400,
    code: 'invalid_request',
    message: 'weight',
  },
  {
    name: 'remove member bad id',
    method: 'DELETE',
    path: '/cluster/members/bad%20id',
    status: 400,
    code: 'invalid_request',
    message: 'member id',
  },
  {
    name: 'transfer to a bad id',
    method: 'POST',
    path: '/cluster/leader',
    options: json({ to: 5 }),
    status: 400,
    code: 'invalid_request',
    message: 'to',
  },
  {
    name: 'DELETE /cluster/members',
    method: 'DELETE',
    path: '/cluster/members',
    status: 405,
    code: 'method_not_allowed',
    headers: { allow: 'GET, POST, HEAD' },
  },
];

describe('HTTP API: malformed and oversize requests', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
    await call(t.port, 'PUT', '/kv/a', { body: 'original' });
  });
  after(async () => {
    await t.server.close();
  });

  for (const c of MALFORMED) {
    it(`${c.name} → ${c.status} ${c.code}`, async () => {
      const revision = t.service.currentRevision;
      const members = JSON.stringify(t.service.members());
      const reply = await call(t.port, c.method, c.path, c.options);
      assert.equal(reply.status, c.status, reply.text());
      assert.match(String(reply.headers['content-type']), /^application\/json/);
      const error = reply.json<{
        error: { code: string; message: string; limit?: string; limitValue?: number };
      }>().error;
      assert.equal(error.code, c.code);
      assert.ok(error.message.length > 0);
      if (c.message)
        assert.ok(
          error.message.includes(c.message),
          `message ${JSON.stringify(error.message)} lacks ${c.message}`,
        );
      if (c.limit) {
        assert.equal(error.limit, c.limit);
        assert.ok(error.message.includes(c.limit), 'the message names the limit');
        assert.ok(typeof error.limitValue === 'number');
      }
      for (const [name, value] of Object.entries(c.headers ?? {})) assert.equal(reply.headers[name], value);
      assert.equal(t.service.currentRevision, revision, 'the store did not change');
      assert.equal(t.service.peek('a')!.value.toString(), 'original');
      assert.equal(JSON.stringify(t.service.members()), members);
    });
  }

  it('answers a declared 100 MiB body at once with 413 and closes the connection', async () => {
    const revision = t.service.currentRevision;
    const socket = connect({ host: '127.0.0.1', port: t.port });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: ${100 * MiB}\r\n\r\n`);
    socket.write(Buffer.alloc(64 * 1024));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const text = Buffer.concat(chunks).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 413 /);
    assert.match(text, /max-request-size/);
    assert.match(text, /connection: close/i);
    assert.equal(t.service.currentRevision, revision);
  });

  it('cuts a chunked body that keeps coming far past the limit, and stays healthy', async () => {
    const revision = t.service.currentRevision;
    const socket = connect({ host: '127.0.0.1', port: t.port });
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('PUT /kv/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    const framed = Buffer.concat([
      Buffer.from(`${chunk.length.toString(16)}\r\n`),
      chunk,
      Buffer.from('\r\n'),
    ]);
    let sent = 0;
    while (sent < 64 * MiB && !socket.destroyed) {
      if (!socket.write(framed))
        await new Promise<void>((resolve) =>
          socket.once('drain', () => resolve()).once('close', () => resolve()),
        );
      sent += chunk.length;
    }
    await closed;
    assert.ok(sent < 64 * MiB, 'the server closed the connection before the client finished');
    assert.equal(t.service.currentRevision, revision);
    assert.equal((await call(t.port, 'GET', '/health')).status, 200);
  });

  it('answers malformed HTTP with 400 and survives', async () => {
    const socket = connect({ host: '127.0.0.1', port: t.port });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.write('THIS IS NOT HTTP\r\n\r\n');
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 400 /);
    assert.equal((await call(t.port, 'GET', '/health')).status, 200);
  });
});

describe('HTTP API: node errors map to stable statuses', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(async () => {
    await t.server.close();
  });

  const TABLE: [NodeErrorCode, number][] = [
    ['not_leader', 503],
    ['no_quorum', 503],
    ['outcome_unknown', 504],
    ['overloaded', 503],
    ['limit_exceeded', 413],
    ['invalid_request', 400],
    ['member_not_found', 404],
    ['member_exists', 409],
    ['membership_change_in_progress', 409],
    ['shutting_down', 503],
    ['disk_full', 507],
    ['internal', 500],
  ];
  for (const [code, status] of TABLE) {
    it(`${code} → ${status}`, async () => {
      t.service.failNext('write', new NodeError(code, `injected ${code}`));
      const reply = await call(t.port, 'PUT', '/kv/x', { body: 'v' });
      assert.equal(reply.status, status);
      assert.deepEqual(reply.json(), { error: { code, message: `injected ${code}` } });
      if (code === 'overloaded' || code === 'shutting_down') assert.equal(reply.headers['retry-after'], '1');
    });
  }

  it('gives not_leader a leader hint with its client URL', async () => {
    t.service.setMembers([
      { id: 'n1', peerAddress: '127.0.0.1:7081', clientUrl: 'http://127.0.0.1:8081', role: 'voter' },
    ]);
    t.service.failNext('get', new NodeError('not_leader', 'not the leader', 'n1'));
    const reply = await call(t.port, 'GET', '/kv/x');
    assert.equal(reply.status, 503);
    assert.deepEqual(reply.json(), {
      error: {
        code: 'not_leader',
        message: 'not the leader',
        leader: 'n1',
        leaderUrl: 'http://127.0.0.1:8081',
      },
    });
    assert.equal(reply.headers['x-atlas-leader'], 'n1');
  });

  it('answers an unexpected exception with 500 internal, without details', async () => {
    t.service.failNext('range', new TypeError('secret internals'));
    const reply = await call(t.port, 'GET', '/kv');
    assert.equal(reply.status, 500);
    assert.equal(reply.code(), 'internal');
    assert.ok(!reply.text().includes('secret'));
  });

  it('maps membership errors from the node', async () => {
    const dup = await call(t.port, 'POST', '/cluster/members', {
      body: JSON.stringify({ id: 'n1', peerAddress: '127.0.0.1:1' }),
    });
    assert.equal(dup.status, 409);
    assert.equal(dup.code(), 'member_exists');
    const missing = await call(t.port, 'DELETE', '/cluster/members/zz');
    assert.equal(missing.status, 404);
    assert.equal(missing.code(), 'member_not_found');
  });
});

describe('HTTP API: deadlines and graceful close', () => {
  it('answers 504 timeout for a stuck read and 504 outcome_unknown for a stuck write', async () => {
    const t = await startServer({ limits: { requestTimeoutMs: 100 } });
    const release = t.service.hold();
    try {
      const [read, write] = await Promise.all([
        call(t.port, 'GET', '/kv/a'),
        call(t.port, 'PUT', '/kv/a', { body: 'v' }),
      ]);
      assert.equal(read.status, 504);
      assert.equal(read.code(), 'timeout');
      assert.equal(write.status, 504);
      assert.equal(write.code(), 'outcome_unknown');
    } finally {
      release();
      await t.server.close();
    }
  });

  it('stops accepting on close but finishes requests in flight', async () => {
    const t = await startServer();
    const release = t.service.hold();
    const inFlight = call(t.port, 'PUT', '/kv/slow', { body: 'v' });
    while (t.server.requestsInFlight === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const closed = t.server.close();
    await assert.rejects(call(t.port, 'GET', '/health'), /ECONNREFUSED|ECONNRESET/);
    release();
    const reply = await inFlight;
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['connection'], 'close');
    await closed;
    assert.equal(t.service.peek('slow')!.value.toString(), 'v');
  });
});

describe('ApiError', () => {
  it('captures no stack (it is an answer, not a fault) and leaves stack capture on for other errors', () => {
    const before = Error.stackTraceLimit;
    const e = new ApiError(404, 'key_not_found', 'key "k" not found');
    assert.equal(Error.stackTraceLimit, before);
    assert.equal(e.stack, 'ApiError: key "k" not found', 'no frames');
    assert.equal(e.message, 'key "k" not found');
    assert.equal(e.name, 'ApiError');
    assert.ok(e instanceof Error);
    assert.match(new Error('other').stack ?? '', /\n\s+at /);
  });
});
