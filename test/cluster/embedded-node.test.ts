/**
 * `startNode` (the package entry) runs a node inside this process: writes and reads through the
 * handle's KvService and its HTTP API, a restart recovers the data from the data directory, one
 * data directory cannot be opened twice, and bad settings are refused with every problem named.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { type AtlasNode, ConfigError, DataDirLockedError, startNode } from '../../src/index.js';
import { call } from './process-cluster.js';

const silent = pino({ level: 'silent' });

function putTxn(key: string, value: string) {
  return {
    compare: [],
    success: [{ type: 'put' as const, key: Buffer.from(key), value: Buffer.from(value) }],
    failure: [],
  };
}

describe('embedded node (startNode)', { timeout: 60_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'atlas-embedded-'));
  const open: AtlasNode[] = [];
  const settings = {
    id: 'e1',
    dataDir: join(root, 'e1'),
    listenClient: '127.0.0.1:0',
    listenPeer: '127.0.0.1:0',
    advertisePeer: '127.0.0.1:1',
    heartbeatIntervalMs: 20,
    electionTimeoutMs: 200,
    walSegmentSize: '4MiB',
    logger: silent,
    processMetrics: false,
  };

  after(async () => {
    for (const n of open) await n.close().catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });

  it('reads do not wait out the store commit delay and see held entries; a restart keeps them (WAL)', async () => {
    const node = await startNode({
      ...settings,
      id: 'e2',
      dataDir: join(root, 'e2'),
      storeCommitDelayMs: 1000,
    });
    open.push(node);
    for (let i = 0; i < 5; i++) {
      assert.equal((await node.service.write(putTxn(`d${i}`, `v${i}`))).succeeded, true);
      const t0 = performance.now();
      assert.equal((await node.service.get(Buffer.from(`d${i}`), 'linearizable'))?.value.toString(), `v${i}`);
      const ms = performance.now() - t0;
      assert.ok(ms < 700, `read ${i} took ${ms.toFixed(0)} ms: it waited for the 1 s commit delay`);
      // The write is held back from LMDB (up to 1 s), and every read on this node sees it already.
      assert.equal((await node.service.get(Buffer.from(`d${i}`), 'serializable'))?.value.toString(), `v${i}`);
      for (const consistency of ['serializable', 'linearizable'] as const) {
        const keys = (
          await node.service.range({ start: Buffer.from('d'), end: Buffer.from('e') }, consistency)
        ).map((kv) => kv.key.toString());
        assert.deepEqual(
          keys,
          Array.from({ length: i + 1 }, (_, j) => `d${j}`),
          `${consistency} range after write ${i}`,
        );
      }
    }
    await node.service.write(putTxn('last', 'held'));
    await node.close();
    const again = await startNode({
      ...settings,
      id: 'e2',
      dataDir: join(root, 'e2'),
      storeCommitDelayMs: 1000,
    });
    open.push(again);
    assert.equal((await again.service.get(Buffer.from('last'), 'linearizable'))?.value.toString(), 'held');
    await again.close();
  });

  it('serves writes and reads through the KvService and HTTP, and recovers them after a restart', async () => {
    const node = await startNode(settings);
    open.push(node);
    assert.match(node.clientUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(node.clientUrl, 'http://127.0.0.1:0');
    const result = await node.service.write(putTxn('k', 'v1'));
    assert.equal(result.succeeded, true);
    assert.equal((await node.service.get(Buffer.from('k'), 'linearizable'))?.value.toString(), 'v1');
    const viaHttp = await call(node.clientUrl, 'GET', '/kv/k');
    assert.equal(viaHttp.status, 200);
    assert.equal(viaHttp.text(), 'v1');
    const identity = JSON.parse(readFileSync(join(node.dataDir, 'node.json'), 'utf8')) as { nodeId: string };
    assert.equal(identity.nodeId, 'e1');

    await assert.rejects(startNode(settings), (e: unknown) => e instanceof DataDirLockedError);

    await node.close();
    assert.equal(await node.stopped, null);
    await assert.rejects(node.service.get(Buffer.from('k'), 'serializable'), /not running|shutting down/);

    const again = await startNode(settings);
    open.push(again);
    assert.equal((await again.service.get(Buffer.from('k'), 'linearizable'))?.value.toString(), 'v1');
    await again.service.write(putTxn('k', 'v2'));
    assert.equal((await again.service.get(Buffer.from('k'), 'linearizable'))?.value.toString(), 'v2');
    await again.close();
  });

  it('close() lets requests in flight finish: every acknowledged write survives the restart', async () => {
    const node = await startNode({ ...settings, id: 'e3', dataDir: join(root, 'e3') });
    open.push(node);
    await node.service.write(putTxn('warm', 'up'));
    const writes = Array.from({ length: 40 }, (_, i) =>
      call(node.clientUrl, 'PUT', `/kv/inflight-${i}`, { body: `v${i}` }).then(
        (r) => ({ i, status: r.status, code: r.code() }),
        (e: Error) => ({ i, status: 0, code: e.message }),
      ),
    );
    // Close once some requests are being served, so the shutdown overlaps them.
    const deadline = performance.now() + 10_000;
    const inFlight = async () => (await node.metrics.httpInFlight.get()).values[0]?.value ?? 0;
    while (performance.now() < deadline && (await inFlight()) === 0)
      await new Promise((r) => setImmediate(r));
    await node.close();
    const outcomes = await Promise.all(writes);
    const acked = outcomes.filter((o) => o.status === 200).map((o) => o.i);
    for (const o of outcomes) {
      // Answered, or refused as the node stops; a request is never cut off after it was accepted.
      assert.ok(
        o.status === 200 ||
          (o.status === 503 && o.code === 'shutting_down') ||
          /ECONNREFUSED|ECONNRESET|socket hang up/.test(String(o.code)),
        `write ${o.i}: ${o.status} ${o.code}`,
      );
    }
    assert.ok(
      acked.length > 0,
      `some writes were in flight and finished: ${outcomes.map((o) => o.status).join(' ')}`,
    );
    const again = await startNode({ ...settings, id: 'e3', dataDir: join(root, 'e3') });
    open.push(again);
    for (const i of acked) {
      assert.equal(
        (await again.service.get(Buffer.from(`inflight-${i}`), 'linearizable'))?.value.toString(),
        `v${i}`,
      );
    }
    await again.close();
  });

  it('refuses invalid settings, naming each problem', async () => {
    await assert.rejects(
      startNode({ id: 'bad id', heartbeatIntervalMs: -1, dataDir: join(root, 'bad'), logger: silent }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /id: /);
        assert.match(e.message, /heartbeat-interval-ms: /);
        return true;
      },
    );
    await assert.rejects(
      startNode({ id: 'x', dataDir: join(root, 'x'), logger: silent, ...({ heartbeat: 5 } as object) }),
      /heartbeat: unknown setting/,
    );
  });

  it('store-backend memory keeps nothing, and a clustered memory node refuses to come back under its id', async () => {
    const solo = { ...settings, id: 'm1', dataDir: join(root, 'm1'), storeBackend: 'memory' };
    const first = await startNode(solo);
    open.push(first);
    await first.service.write(putTxn('k', 'v'));
    await first.close();
    const second = await startNode(solo);
    open.push(second);
    assert.equal(await second.service.get(Buffer.from('k'), 'serializable'), null, 'volatile by design');
    await second.close();

    const member = {
      ...settings,
      id: 'm2',
      dataDir: join(root, 'm2'),
      storeBackend: 'memory',
      listenPeer: '127.0.0.1:0',
      advertisePeer: undefined,
      initialCluster: 'm2=127.0.0.1:1,m3=127.0.0.1:2,m4=127.0.0.1:3',
    };
    const founder = await startNode(member);
    open.push(founder);
    await founder.close();
    await assert.rejects(startNode(member), /could let it vote twice in one term/);
  });

  it('refuses a data directory that belongs to another node', async () => {
    await assert.rejects(startNode({ ...settings, id: 'e2' }), /belongs to node "e1", not "e2"/);
  });
});
