import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HttpApiServer } from '../../src/api/http/http-api-server.js';
import {
  type AtlasClient,
  AtlasError,
  InvalidRequestError,
  LimitExceededError,
  OutcomeUnknownError,
  PreconditionFailedError,
  TimeoutError,
  UnavailableError,
  connect,
} from '../../src/client/index.js';
import { NodeError } from '../../src/node/errors.js';
import type { KvService } from '../../src/node/kv-service.js';
import { type TestServer, startServer } from '../api/http-fixtures.js';
import { MemoryKvService } from '../api/memory-kv-service.js';

/** A port nothing listens on (bound a moment ago, then released). */
async function deadEndpoint(): Promise<string> {
  const t = await startServer();
  const url = t.url;
  await t.server.close();
  return url;
}

/** Fast retries so failure paths finish quickly on a loaded machine. */
const FAST = { retryBaseMs: 5, retryMaxMs: 20 };

describe('client: operations against one server', () => {
  let t: TestServer;
  let db: AtlasClient;
  before(async () => {
    t = await startServer();
    db = connect({ endpoints: [t.url], ...FAST });
  });
  after(async () => {
    await db.close();
    await t.server.close();
  });

  it('puts, gets and deletes, binary-safe', async () => {
    const key = Buffer.from([0x00, 0x2f, 0xff, 0x25, 0x20, 0x61]);
    const value = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00]);
    const { revision } = await db.put(key, value);
    const kv = await db.get(key);
    assert.ok(kv);
    assert.deepEqual(kv.key, key);
    assert.deepEqual(kv.value, value);
    assert.equal(kv.modRevision, revision);
    assert.equal(kv.createRevision, revision);
    assert.equal(kv.version, 1);
    assert.deepEqual(t.service.peek(key)!.value, value);
    assert.deepEqual(await db.delete(key), { deleted: 1, revision: revision + 1 });
    assert.equal(await db.get(key), null);
    assert.deepEqual(await db.delete(key), { deleted: 0 });
    await db.put('text', 'héllo');
    assert.equal((await db.get('text'))!.value.toString('utf8'), 'héllo');
  });

  it('passes the read consistency, per call or from the connect option', async () => {
    await db.get('text', { consistency: 'serializable' });
    assert.equal(t.service.calls.at(-1)!.consistency, 'serializable');
    await db.get('text');
    assert.equal(t.service.calls.at(-1)!.consistency, 'linearizable');
    const serial = connect({ endpoints: [t.url], consistency: 'serializable' });
    try {
      await serial.scan({ prefix: 'x' });
      assert.equal(t.service.calls.at(-1)!.consistency, 'serializable');
    } finally {
      await serial.close();
    }
  });

  it('does conditional puts and deletes, with typed precondition failures', async () => {
    const { revision } = await db.put('cond', 'v1', { ifAbsent: true });
    await assert.rejects(db.put('cond', 'v2', { ifAbsent: true }), (e: unknown) => {
      assert.ok(e instanceof PreconditionFailedError);
      assert.equal(e.modRevision, revision);
      return true;
    });
    await assert.rejects(db.put('cond', 'v2', { ifMatch: revision + 7 }), PreconditionFailedError);
    const next = await db.put('cond', 'v2', { ifMatch: revision });
    await assert.rejects(db.delete('cond', { ifMatch: revision }), PreconditionFailedError);
    assert.equal((await db.delete('cond', { ifMatch: next.revision })).deleted, 1);
  });

  it('scans with prefix, bounds, limit, reverse and keysOnly, binary-safe', async () => {
    for (const k of ['s/a', 's/b', 's/c', 't/a']) await db.put(k, `v-${k}`);
    await db.put(Buffer.from([0x73, 0x2f, 0xff]), Buffer.from([0x80]));
    const all = await db.scan({ prefix: 's/' });
    assert.deepEqual(
      all.kvs.map((kv) => kv.key.toString('latin1')),
      ['s/a', 's/b', 's/c', 's/\xff'],
    );
    assert.deepEqual(all.kvs[3]!.value, Buffer.from([0x80]));
    assert.equal(all.more, false);
    const page = await db.scan({ prefix: 's/', limit: 2 });
    assert.equal(page.kvs.length, 2);
    assert.equal(page.more, true);
    const rest = await db.scan({ prefix: 's/', start: Buffer.concat([page.kvs[1]!.key, Buffer.from([0])]) });
    assert.equal(rest.kvs.length, 2);
    const reversed = await db.scan({ start: 's/a', end: 's/c', reverse: true, keysOnly: true });
    assert.deepEqual(
      reversed.kvs.map((kv) => kv.key.toString()),
      ['s/b', 's/a'],
    );
    assert.equal(reversed.kvs[0]!.value.length, 0);
  });

  it('runs transactions and batches', async () => {
    await db.put('acct/a', '10');
    const result = await db.txn({
      compare: [{ key: 'acct/a', target: 'value', op: '=', value: '10' }],
      success: [
        { type: 'put', key: 'acct/a', value: '5' },
        { type: 'put', key: 'acct/b', value: '5' },
        { type: 'get', key: 'acct/a' },
      ],
      failure: [{ type: 'get', key: 'acct/a' }],
    });
    assert.equal(result.succeeded, true);
    const get = result.responses[2]!;
    assert.ok(get.type === 'get' && get.kv);
    assert.equal(get.kv.value.toString(), '5');
    const readOnly = await db.txn(
      {
        compare: [{ key: 'acct/a', target: 'version', op: '=', value: 2 }],
        success: [{ type: 'get', key: 'acct/b' }],
      },
      { consistency: 'serializable' },
    );
    assert.equal(readOnly.succeeded, true);
    assert.equal(t.service.calls.at(-1)!.method, 'readTxn');

    const batch = await db.batch([
      { type: 'put', key: 'b1', value: Buffer.from([1]) },
      { type: 'delete', key: 'acct/b' },
    ]);
    assert.deepEqual(batch.responses, [
      { type: 'put', revision: batch.revision },
      { type: 'delete', deleted: 1, revision: batch.revision },
    ]);
  });

  it('reports status and membership, and changes membership', async () => {
    assert.equal((await db.health()).id, 'n1');
    assert.equal((await db.status()).members.length, 1);
    const added = await db.addMember({
      id: 'n2',
      peerAddress: '127.0.0.1:7999',
      clientUrl: 'http://127.0.0.1:8999',
    });
    assert.equal(added.find((m) => m.id === 'n2')!.role, 'learner');
    assert.equal((await db.promoteMember('n2')).find((m) => m.id === 'n2')!.role, 'voter');
    await assert.rejects(db.addMember({ id: 'n2', peerAddress: '127.0.0.1:7999' }), (e: unknown) => {
      assert.ok(e instanceof AtlasError);
      assert.equal(e.code, 'member_exists');
      assert.equal(e.status, 409);
      return true;
    });
    assert.equal(await db.transferLeadership('n2'), 'n2');
    assert.deepEqual(
      (await db.removeMember('n2')).map((m) => m.id),
      ['n1'],
    );
    t.service.leader = 'n1';
  });

  it('checks limits before sending, and types the server limit errors', async () => {
    const calls = t.service.calls.length;
    await assert.rejects(
      db.put('k'.repeat(4097), 'v'),
      (e: unknown) => e instanceof LimitExceededError && e.limit === 'max-key-size',
    );
    await assert.rejects(
      db.put('k', Buffer.alloc(1024 * 1024 + 1)),
      (e: unknown) => e instanceof LimitExceededError && e.limit === 'max-value-size',
    );
    await assert.rejects(
      db.batch(Array.from({ length: 129 }, (_, i) => ({ type: 'delete' as const, key: `k${i}` }))),
      LimitExceededError,
    );
    await assert.rejects(db.get(''), InvalidRequestError);
    assert.equal(t.service.calls.length, calls, 'nothing reached the server');

    const strict = await startServer({ limits: { maxValueSize: 8 } });
    const small = connect({ endpoints: [strict.url] });
    try {
      await assert.rejects(small.put('k', 'more than eight bytes'), (e: unknown) => {
        assert.ok(e instanceof LimitExceededError);
        assert.equal(e.status, 413);
        assert.equal(e.limit, 'max-value-size');
        assert.equal(e.limitValue, 8);
        return true;
      });
    } finally {
      await small.close();
      await strict.server.close();
    }
  });
});

describe('client: exactly-once sessions and retries', () => {
  it('gives each write a session; sequential writes advance one lane, concurrent ones use several', async () => {
    const t = await startServer();
    const db = connect({ endpoints: [t.url] });
    try {
      await db.put('a', '1');
      await db.put('a', '2');
      const sessions = t.service.calls.filter((c) => c.method === 'write').map((c) => c.session!);
      assert.equal(sessions[0]!.clientId, sessions[1]!.clientId);
      assert.equal(sessions[1]!.seq, sessions[0]!.seq + 1);
      const release = t.service.hold();
      const writes = [db.put('x', '1'), db.put('y', '2'), db.put('z', '3')];
      while (t.service.calls.length < 5) await new Promise((resolve) => setTimeout(resolve, 5));
      release();
      await Promise.all(writes);
      const concurrent = t.service.calls.slice(2).map((c) => c.session!.clientId);
      assert.equal(new Set(concurrent).size, 3);
    } finally {
      await db.close();
      await t.server.close();
    }
  });

  it('retries an outcome_unknown write with the same session: applied once, answered once', async () => {
    const t = await startServer();
    const db = connect({ endpoints: [t.url], ...FAST });
    try {
      t.service.failNext('write', new NodeError('outcome_unknown', 'leader lost'), { afterApply: true });
      const applied = t.service.applied;
      const { revision } = await db.put('once', 'v');
      const writes = t.service.calls.filter((c) => c.method === 'write');
      assert.equal(writes.length, 2);
      assert.deepEqual(writes[0]!.session, writes[1]!.session);
      assert.equal(t.service.applied, applied + 1);
      assert.equal(t.service.peek('once')!.version, 1);
      assert.equal(t.service.peek('once')!.modRevision, revision);
    } finally {
      await db.close();
      await t.server.close();
    }
  });

  it('retries after an attempt times out, with the same session, without applying twice', async () => {
    const t = await startServer();
    const db = connect({ endpoints: [t.url], timeoutMs: 300, ...FAST });
    try {
      const release = t.service.hold();
      const put = db.put('slow', 'v');
      while (t.service.calls.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
      release();
      await put;
      const writes = t.service.calls.filter((c) => c.method === 'write');
      assert.ok(writes.length >= 2);
      assert.ok(
        writes.every(
          (w) =>
            w.session!.seq === writes[0]!.session!.seq &&
            w.session!.clientId === writes[0]!.session!.clientId,
        ),
      );
      assert.equal(t.service.applied, 1);
      assert.equal(t.service.peek('slow')!.version, 1);
    } finally {
      await db.close();
      await t.server.close();
    }
  });

  it('reports OutcomeUnknownError when retries cannot settle a write', async () => {
    const t = await startServer();
    const db = connect({ endpoints: [t.url], maxAttempts: 3, ...FAST });
    try {
      t.service.failNext('write', new NodeError('outcome_unknown', 'no answer'), { times: 3 });
      await assert.rejects(db.put('k', 'v'), (e: unknown) => {
        assert.ok(e instanceof OutcomeUnknownError);
        assert.equal(e.attempts.length, 3);
        return true;
      });
    } finally {
      await db.close();
      await t.server.close();
    }
  });

  it('retries overloaded and not_leader refusals; a definitive error is not retried', async () => {
    const t = await startServer();
    const db = connect({ endpoints: [t.url], ...FAST });
    try {
      t.service.failNext('write', new NodeError('overloaded', 'queue full'));
      t.service.failNext('write', new NodeError('not_leader', 'no leader yet'));
      await db.put('k', 'v');
      assert.equal(t.service.calls.filter((c) => c.method === 'write').length, 3);
      assert.equal(t.service.applied, 1);

      t.service.failNext('write', new NodeError('invalid_request', 'bad'));
      await assert.rejects(
        db.put('k', 'v'),
        (e: unknown) => e instanceof InvalidRequestError && e.status === 400,
      );
      assert.equal(t.service.calls.filter((c) => c.method === 'write').length, 4);
    } finally {
      await db.close();
      await t.server.close();
    }
  });

  it('does not retry a membership change whose answer was lost', async () => {
    const t = await startServer();
    const db = connect({ endpoints: [t.url], timeoutMs: 200, ...FAST });
    const release = t.service.hold();
    try {
      await assert.rejects(db.addMember({ id: 'n5', peerAddress: '127.0.0.1:7005' }), OutcomeUnknownError);
      // On a loaded machine the one request may reach the server after the client gave up on it.
      const seen = () => t.service.calls.filter((c) => c.method === 'addMember').length;
      const deadline = Date.now() + 10_000;
      while (seen() === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(seen(), 1, 'sent once, never retried');
    } finally {
      release();
      await db.close();
      await t.server.close();
    }
  });

  it('reports a read that keeps timing out as TimeoutError', async () => {
    const t = await startServer();
    const db = connect({ endpoints: [t.url], timeoutMs: 100, maxAttempts: 2, ...FAST });
    const release = t.service.hold();
    try {
      await assert.rejects(db.get('k'), TimeoutError);
    } finally {
      release();
      await db.close();
      await t.server.close();
    }
  });
});

describe('client: failover and leader discovery', () => {
  it('fails over to the next endpoint when one is closed, for reads and writes', async () => {
    const shared = new MemoryKvService();
    const a = await startServer({ service: shared });
    const b = await startServer({ service: shared });
    const db = connect({ endpoints: [a.url, b.url], ...FAST });
    try {
      await db.put('k', 'before');
      assert.equal(db.endpointList[0], a.url);
      await a.server.close();
      await db.put('k', 'after');
      assert.equal((await db.get('k'))!.value.toString(), 'after');
      assert.equal(shared.peek('k')!.version, 2, 'each write applied once');
    } finally {
      await db.close();
      await b.server.close();
    }
  });

  it('starts on a dead endpoint and moves on; all endpoints dead is UnavailableError', async () => {
    const dead = await deadEndpoint();
    const t = await startServer();
    const db = connect({ endpoints: [dead, t.url], ...FAST });
    try {
      await db.put('k', 'v');
      assert.equal((await db.get('k'))!.value.toString(), 'v');
    } finally {
      await db.close();
      await t.server.close();
    }
    const none = connect({ endpoints: [dead, await deadEndpoint()], maxAttempts: 4, ...FAST });
    try {
      await assert.rejects(none.put('k', 'v'), (e: unknown) => {
        assert.ok(e instanceof UnavailableError && !(e instanceof TimeoutError));
        assert.equal(e.attempts.length, 4);
        assert.match(e.attempts[0]!, /ECONNREFUSED/);
        return true;
      });
      await assert.rejects(none.get('k'), UnavailableError);
    } finally {
      await none.close();
    }
  });

  it('sends writes to the leader once it knows it, and follows not_leader hints', async () => {
    const shared = new MemoryKvService('n1');
    const handledBy: string[] = [];
    const via = (name: string): KvService =>
      new Proxy(shared, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            if (property === 'write') handledBy.push(name);
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
    const a = new HttpApiServer({ service: via('a') });
    const b = new HttpApiServer({ service: via('b') });
    await a.listen({ host: '127.0.0.1', port: 0 });
    await b.listen({ host: '127.0.0.1', port: 0 });
    shared.setMembers([
      { id: 'n1', peerAddress: '127.0.0.1:7001', clientUrl: a.url, role: 'voter' },
      { id: 'n2', peerAddress: '127.0.0.1:7002', clientUrl: b.url, role: 'voter' },
    ]);
    shared.leader = 'n2';
    const db = connect({ endpoints: [a.url], ...FAST });
    try {
      await db.put('k', '1');
      assert.deepEqual(handledBy, ['b'], 'discovered the leader from /cluster/status');
      assert.equal(db.leaderEndpoint, b.url);
      assert.deepEqual(db.endpointList, [a.url, b.url]);

      // Leadership moves to n1: b answers not_leader with a hint, the client follows it.
      shared.leader = 'n1';
      shared.failNext('write', new NodeError('not_leader', 'moved', 'n1'));
      await db.put('k', '2');
      assert.deepEqual(handledBy, ['b', 'b', 'a']);
      assert.equal(db.leaderEndpoint, a.url);
      assert.equal(shared.peek('k')!.version, 2);
    } finally {
      await db.close();
      await a.close();
      await b.close();
    }
  });

  it('rejects bad endpoints at connect', () => {
    assert.throws(() => connect({ endpoints: [] }), /at least one endpoint/);
    assert.throws(() => connect({ endpoints: ['localhost:8081'] }), /http/);
    assert.throws(() => connect({ endpoints: ['http://127.0.0.1:8081/api'] }), /path/);
  });
});
