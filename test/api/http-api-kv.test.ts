import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { WireKeyValue, WireTxnResult } from '../../src/api/http/wire.js';
import { type TestServer, call, encodeKey, startServer } from './http-fixtures.js';

describe('HTTP API: keys', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(async () => {
    await t.server.close();
  });

  it('puts, gets with revision headers, and deletes a key', async () => {
    const put = await call(t.port, 'PUT', '/kv/greeting', { body: 'hello' });
    assert.equal(put.status, 200);
    const { revision } = put.json<{ revision: number }>();
    assert.equal(revision, t.service.currentRevision);
    const again = await call(t.port, 'PUT', '/kv/greeting', { body: 'hello again' });
    assert.equal(again.json<{ revision: number }>().revision, revision + 1);

    const got = await call(t.port, 'GET', '/kv/greeting');
    assert.equal(got.status, 200);
    assert.equal(got.text(), 'hello again');
    assert.equal(got.headers['content-type'], 'application/octet-stream');
    assert.equal(got.headers['x-atlas-revision'], String(revision + 1));
    assert.equal(got.headers['x-atlas-create-revision'], String(revision));
    assert.equal(got.headers['x-atlas-version'], '2');
    assert.equal(t.service.calls.at(-1)!.consistency, 'linearizable');

    const del = await call(t.port, 'DELETE', '/kv/greeting');
    assert.equal(del.status, 200);
    assert.deepEqual(del.json(), { deleted: 1, revision: revision + 2 });
    const gone = await call(t.port, 'GET', '/kv/greeting');
    assert.equal(gone.status, 404);
    assert.equal(gone.code(), 'key_not_found');
    const delAgain = await call(t.port, 'DELETE', '/kv/greeting');
    assert.equal(delAgain.status, 404);
    assert.equal(delAgain.code(), 'key_not_found');
  });

  it('passes ?consistency=serializable to the node', async () => {
    await call(t.port, 'PUT', '/kv/c', { body: '1' });
    const got = await call(t.port, 'GET', '/kv/c?consistency=serializable');
    assert.equal(got.status, 200);
    assert.equal(t.service.calls.at(-1)!.consistency, 'serializable');
  });

  it('keeps binary keys and values byte-exact, slashes included', async () => {
    const key = Buffer.from([0x00, 0xff, 0x2f, 0x25, 0x3f, 0x80, 0x20]);
    const value = Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef]);
    const put = await call(t.port, 'PUT', `/kv/${encodeKey(key)}`, { body: value });
    assert.equal(put.status, 200);
    assert.deepEqual(t.service.peek(key)!.value, value);
    const got = await call(t.port, 'GET', `/kv/${encodeKey(key)}`);
    assert.deepEqual(got.body, value);
    // Unencoded slashes are part of the key too.
    await call(t.port, 'PUT', '/kv/users/42/name', { body: 'ada' });
    assert.equal(t.service.peek('users/42/name')!.value.toString(), 'ada');
    assert.equal((await call(t.port, 'GET', '/kv/users%2F42%2Fname')).text(), 'ada');
    // An empty value is a value.
    await call(t.port, 'PUT', '/kv/empty', { body: '' });
    const empty = await call(t.port, 'GET', '/kv/empty');
    assert.equal(empty.status, 200);
    assert.equal(empty.body.length, 0);
  });

  it('supports If-None-Match: * (create only) and If-Match: <mod revision>', async () => {
    const created = await call(t.port, 'PUT', '/kv/cas', { body: 'v1', headers: { 'if-none-match': '*' } });
    assert.equal(created.status, 200);
    const rev = created.json<{ revision: number }>().revision;
    const exists = await call(t.port, 'PUT', '/kv/cas', { body: 'v2', headers: { 'if-none-match': '*' } });
    assert.equal(exists.status, 412);
    assert.equal(exists.code(), 'precondition_failed');
    assert.equal(exists.json<{ error: { modRevision: number } }>().error.modRevision, rev);
    assert.equal(exists.headers['x-atlas-revision'], String(rev));

    const stale = await call(t.port, 'PUT', '/kv/cas', {
      body: 'v2',
      headers: { 'if-match': String(rev + 100) },
    });
    assert.equal(stale.status, 412);
    const ok = await call(t.port, 'PUT', '/kv/cas', { body: 'v2', headers: { 'if-match': `"${rev}"` } });
    assert.equal(ok.status, 200);
    assert.equal(t.service.peek('cas')!.value.toString(), 'v2');

    const newRev = ok.json<{ revision: number }>().revision;
    const badDelete = await call(t.port, 'DELETE', '/kv/cas', { headers: { 'if-match': String(rev) } });
    assert.equal(badDelete.status, 412);
    assert.equal(badDelete.json<{ error: { modRevision: number } }>().error.modRevision, newRev);
    const goodDelete = await call(t.port, 'DELETE', '/kv/cas', { headers: { 'if-match': String(newRev) } });
    assert.equal(goodDelete.status, 200);

    const absent = await call(t.port, 'PUT', '/kv/cas', { body: 'v3', headers: { 'if-match': '*' } });
    assert.equal(absent.status, 412);
    assert.equal(absent.json<{ error: { modRevision: number } }>().error.modRevision, 0);
  });

  it('maps X-Atlas-Client-Id and X-Atlas-Seq to an exactly-once session', async () => {
    const headers = { 'x-atlas-client-id': 'client-7', 'x-atlas-seq': '5' };
    const before = t.service.applied;
    const first = await call(t.port, 'PUT', '/kv/once', { body: 'a', headers });
    const retry = await call(t.port, 'PUT', '/kv/once', { body: 'a', headers });
    assert.equal(first.status, 200);
    assert.deepEqual(retry.json(), first.json());
    assert.equal(t.service.applied, before + 1);
    assert.deepEqual(t.service.calls.at(-1)!.session, { clientId: 'client-7', seq: 5 });
    assert.equal(t.service.peek('once')!.version, 1);
  });

  it('lists a range: prefix, start/end, limit with X-Atlas-More, reverse, keysOnly, base64', async () => {
    for (const k of ['r/a', 'r/b', 'r/c', 'r/d', 's/a'])
      await call(t.port, 'PUT', `/kv/${k}`, { body: `v-${k}` });
    const all = await call(t.port, 'GET', '/kv?prefix=r/');
    assert.equal(all.status, 200);
    const kvs = all.json<WireKeyValue[]>();
    assert.deepEqual(
      kvs.map((kv) => kv.key),
      ['r/a', 'r/b', 'r/c', 'r/d'],
    );
    assert.equal(kvs[0]!.value, 'v-r/a');
    assert.equal(kvs[0]!.version, 1);
    assert.ok(kvs[0]!.createRevision > 0 && kvs[0]!.modRevision === kvs[0]!.createRevision);
    assert.equal(all.headers['x-atlas-more'], 'false');

    const page = await call(t.port, 'GET', '/kv?prefix=r/&limit=2');
    assert.deepEqual(
      page.json<WireKeyValue[]>().map((kv) => kv.key),
      ['r/a', 'r/b'],
    );
    assert.equal(page.headers['x-atlas-more'], 'true');
    const next = await call(t.port, 'GET', `/kv?prefix=r/&limit=2&start=${encodeKey('r/b\0')}`);
    assert.deepEqual(
      next.json<WireKeyValue[]>().map((kv) => kv.key),
      ['r/c', 'r/d'],
    );
    assert.equal(next.headers['x-atlas-more'], 'false');

    const between = await call(t.port, 'GET', '/kv?start=r/b&end=r/d&reverse=true&keysOnly=true');
    const items = between.json<WireKeyValue[]>();
    assert.deepEqual(
      items.map((kv) => kv.key),
      ['r/c', 'r/b'],
    );
    assert.equal(items[0]!.value, undefined);

    const b64 = await call(
      t.port,
      'GET',
      `/kv?prefix=${encodeURIComponent(Buffer.from('s/').toString('base64'))}&encoding=base64&consistency=serializable`,
    );
    const encoded = b64.json<WireKeyValue[]>();
    assert.equal(encoded.length, 1);
    assert.equal(Buffer.from(encoded[0]!.key, 'base64').toString(), 's/a');
    assert.equal(Buffer.from(encoded[0]!.value!, 'base64').toString(), 'v-s/a');
    assert.equal(t.service.calls.at(-1)!.consistency, 'serializable');

    const empty = await call(t.port, 'GET', '/kv?start=z&end=a');
    assert.deepEqual(empty.json(), []);
  });

  it('answers 406 not_utf8 when a listing cannot be UTF-8 text, and base64 works', async () => {
    await call(t.port, 'PUT', `/kv/bin/${encodeKey(Buffer.from([0xff, 0xfe]))}`, {
      body: Buffer.from([0xc3, 0x28]),
    });
    const text = await call(t.port, 'GET', '/kv?prefix=bin/');
    assert.equal(text.status, 406);
    assert.equal(text.code(), 'not_utf8');
    const prefix = encodeURIComponent(Buffer.from('bin/').toString('base64'));
    const b64 = await call(t.port, 'GET', `/kv?prefix=${prefix}&encoding=base64`);
    assert.equal(b64.status, 200);
    const [kv] = b64.json<WireKeyValue[]>();
    assert.deepEqual(Buffer.from(kv!.key, 'base64'), Buffer.from([0x62, 0x69, 0x6e, 0x2f, 0xff, 0xfe]));
    assert.deepEqual(Buffer.from(kv!.value!, 'base64'), Buffer.from([0xc3, 0x28]));
  });

  it('runs transactions: compares pick the branch, all writes share one revision', async () => {
    await call(t.port, 'PUT', '/kv/t/x', { body: '1' });
    const txn = {
      compare: [{ key: 't/x', target: 'value', op: '=', value: '1' }],
      success: [
        { type: 'put', key: 't/x', value: '2' },
        { type: 'put', key: 't/y', value: 'new' },
        { type: 'get', key: 't/x' },
      ],
      failure: [{ type: 'get', key: 't/x' }],
    };
    const first = await call(t.port, 'POST', '/txn', { body: JSON.stringify(txn) });
    assert.equal(first.status, 200);
    const result = first.json<WireTxnResult>();
    assert.equal(result.succeeded, true);
    assert.equal(result.encoding, 'utf8');
    const [putX, putY, getX] = result.responses;
    assert.deepEqual(putX, { type: 'put', revision: result.revision });
    assert.deepEqual(putY, { type: 'put', revision: result.revision });
    assert.equal(getX!.type === 'get' && getX.kv?.value, '2');
    assert.equal(t.service.calls.at(-1)!.method, 'write');

    const second = (await call(t.port, 'POST', '/txn', { body: JSON.stringify(txn) })).json<WireTxnResult>();
    assert.equal(second.succeeded, false);
    assert.equal(second.responses[0]!.type === 'get' && second.responses[0].kv?.value, '2');
  });

  it('sends read-only transactions through readTxn with their consistency, in base64 too', async () => {
    await call(t.port, 'PUT', '/kv/ro', { body: 'val' });
    const body = {
      encoding: 'base64',
      consistency: 'serializable',
      compare: [{ key: Buffer.from('ro').toString('base64'), target: 'version', op: '>', value: 0 }],
      success: [{ type: 'get', key: Buffer.from('ro').toString('base64') }],
    };
    const reply = await call(t.port, 'POST', '/api/v1/txn', { body: JSON.stringify(body) });
    assert.equal(reply.status, 200);
    const result = reply.json<WireTxnResult>();
    assert.equal(result.succeeded, true);
    const get = result.responses[0]!;
    assert.ok(get.type === 'get' && get.kv);
    assert.equal(Buffer.from(get.kv.value!, 'base64').toString(), 'val');
    assert.deepEqual(
      { method: t.service.calls.at(-1)!.method, consistency: t.service.calls.at(-1)!.consistency },
      { method: 'readTxn', consistency: 'serializable' },
    );
  });

  it('answers a write transaction whose read-back is binary in base64 rather than failing after the write', async () => {
    const key = Buffer.from([0x80, 0x81]).toString('base64');
    const reply = await call(t.port, 'POST', '/txn', {
      body: JSON.stringify({
        encoding: 'base64',
        success: [
          { type: 'put', key, value: Buffer.from([0xff]).toString('base64') },
          {
            type: 'put',
            key: Buffer.from('plain').toString('base64'),
            value: Buffer.from('x').toString('base64'),
          },
        ],
      }),
    });
    assert.equal(reply.status, 200);
    const utf8Txn = await call(t.port, 'POST', '/txn', {
      body: JSON.stringify({
        success: [
          { type: 'put', key: 'w', value: 'x' },
          { type: 'get', key: 'plain' },
        ],
      }),
    });
    assert.equal(utf8Txn.json<WireTxnResult>().encoding, 'utf8');
    await call(t.port, 'PUT', '/kv/binval', { body: Buffer.from([0xff, 0xfe]) });
    const fallback = await call(t.port, 'POST', '/txn', {
      body: JSON.stringify({
        success: [
          { type: 'put', key: 'w', value: 'y' },
          { type: 'get', key: 'binval' },
        ],
      }),
    });
    assert.equal(fallback.status, 200);
    const result = fallback.json<WireTxnResult>();
    assert.equal(result.encoding, 'base64');
    const get = result.responses[1]!;
    assert.ok(get.type === 'get' && get.kv);
    assert.deepEqual(Buffer.from(get.kv.value!, 'base64'), Buffer.from([0xff, 0xfe]));
    assert.equal(t.service.peek('w')!.value.toString(), 'y');
  });

  it('applies a batch atomically at one revision', async () => {
    await call(t.port, 'PUT', '/kv/b/old', { body: 'x' });
    const reply = await call(t.port, 'POST', '/batch', {
      body: JSON.stringify({
        ops: [
          { type: 'put', key: 'b/1', value: 'one' },
          { type: 'put', key: 'b/2', value: 'two' },
          { type: 'delete', key: 'b/old' },
          { type: 'delete', key: 'b/missing' },
        ],
      }),
    });
    assert.equal(reply.status, 200);
    const result = reply.json<{ revision: number; responses: unknown[] }>();
    assert.deepEqual(result.responses, [
      { type: 'put', revision: result.revision },
      { type: 'put', revision: result.revision },
      { type: 'delete', deleted: 1, revision: result.revision },
      { type: 'delete', deleted: 0, revision: result.revision },
    ]);
    assert.equal(t.service.peek('b/1')!.modRevision, t.service.peek('b/2')!.modRevision);
    assert.equal(t.service.peek('b/old'), undefined);
  });

  it('serves the key routes under /api/v1 as well', async () => {
    assert.equal((await call(t.port, 'PUT', '/api/v1/kv/v1key', { body: 'v' })).status, 200);
    assert.equal((await call(t.port, 'GET', '/api/v1/kv/v1key')).text(), 'v');
    const listed = await call(t.port, 'GET', '/api/v1/kv?prefix=v1');
    assert.equal(listed.json<WireKeyValue[]>().length, 1);
    assert.equal((await call(t.port, 'DELETE', '/api/v1/kv/v1key')).status, 200);
    assert.equal(
      (
        await call(t.port, 'POST', '/api/v1/batch', {
          body: '{"ops":[{"type":"put","key":"q","value":"1"}]}',
        })
      ).status,
      200,
    );
  });

  it('answers HEAD like GET without the body (RFC 9110 §9.3.2)', async () => {
    assert.equal((await call(t.port, 'PUT', '/kv/headkey', { body: 'twelve bytes' })).status, 200);
    const head = await call(t.port, 'HEAD', '/kv/headkey');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '12');
    assert.ok(Number(head.headers['x-atlas-revision']) > 0);
    assert.equal(head.body.length, 0);
    assert.equal((await call(t.port, 'HEAD', '/kv/absent-key')).status, 404);
    const notAllowed = await call(t.port, 'HEAD', '/txn');
    assert.equal(notAllowed.status, 405);
    assert.equal(notAllowed.headers['allow'], 'POST');
  });

  it('labels request metrics of unknown methods as other (any method token parses)', async () => {
    for (const method of ['FOO1', 'FOO2', 'BREW'])
      assert.equal((await call(t.port, method, '/kv/x')).status, 405);
    const text = await t.metrics.registry.metrics();
    assert.match(text, /atlas_http_request_duration_seconds_count\{[^}]*method="other"[^}]*\} 3/);
    assert.doesNotMatch(text, /method="FOO1"|method="BREW"/);
  });

  it('keeps connections alive between requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await call(t.port, 'GET', '/health', { agent });
      const second = await call(t.port, 'PUT', '/kv/ka', { agent, body: 'x' });
      const third = await call(t.port, 'GET', '/kv/ka', { agent });
      assert.equal(first.reusedSocket, false);
      assert.equal(second.reusedSocket, true);
      assert.equal(third.reusedSocket, true);
      assert.equal(third.headers['connection'], 'keep-alive');
    } finally {
      agent.destroy();
    }
  });
});
