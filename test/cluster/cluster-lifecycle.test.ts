/**
 * A 3-node cluster of real `atlas start` processes through its life: reads and writes on leader and
 * followers, metrics and logs, a table of bad requests, the "ghost data" experiment, kill -9 of the
 * leader under writes, and a crash of every node. A ledger of acknowledged writes is checked at the
 * end: no acknowledged write may be lost (DESIGN.md §1).
 *
 * The steps share one cluster and run in order (node:test runs a file's tests sequentially).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as connectClient } from '../../src/client/index.js';
import {
  CLI,
  ProcessCluster,
  call,
  dump,
  get,
  metricValue,
  put,
  waitFor,
} from './process-cluster.js';

const MiB = 1024 * 1024;

describe('cluster lifecycle (3 real processes)', { timeout: 240_000 }, () => {
  let cluster: ProcessCluster;
  /** Every write a node acknowledged (200): key → value. */
  const acked = new Map<string, string>();
  const diag = () => cluster.diagnostics();

  async function ackedPut(url: string, key: string, value: string): Promise<void> {
    const r = await put(url, key, value);
    assert.equal(r.status, 200, `PUT ${key} on ${url}: ${r.status} ${r.text()}\n${diag()}`);
    acked.set(key, value);
  }

  const followersOf = (leader: string) => cluster.running().filter((id) => id !== leader);

  before(async () => {
    cluster = await ProcessCluster.create(['n1', 'n2', 'n3'], { args: ['--snapshot-threshold-entries', '40'] });
    for (const id of cluster.ids) cluster.start(id);
    for (const id of cluster.ids) await cluster.waitServing(id);
    await cluster.waitForLeader();
  });

  after(async () => {
    await cluster?.destroy();
  });

  it('a write on the leader is read on a follower, linearizable at once and serializable once applied', async () => {
    const leader = await cluster.waitForLeader();
    const follower = followersOf(leader)[0]!;
    await ackedPut(cluster.url(leader), 'color', 'blue');
    assert.equal(await get(cluster.url(follower), 'color', 'linearizable'), 'blue');
    await waitFor('the follower to apply the write', 20_000, async () =>
      (await get(cluster.url(follower), 'color', 'serializable')) === 'blue',
    diag);
  });

  it('the client library finds the leader of founders (no client URL in the membership) and writes to it directly', async () => {
    const leader = await cluster.waitForLeader();
    const followers = followersOf(leader);
    const forwardedOk = async (id: string) =>
      metricValue((await call(cluster.url(id), 'GET', '/metrics')).text(), 'atlas_forwarded_requests_total', { outcome: 'ok' }) ?? 0;
    const before = await Promise.all(followers.map(forwardedOk));
    // Followers first: without leader discovery every write would be forwarded by followers[0].
    const db = connectClient({ endpoints: [...followers, leader].map((id) => cluster.url(id)) });
    try {
      for (let i = 0; i < 5; i++) {
        await db.put(`direct-${i}`, `v${i}`);
        acked.set(`direct-${i}`, `v${i}`);
      }
    } finally {
      await db.close();
    }
    const after = await Promise.all(followers.map(forwardedOk));
    assert.deepEqual(after, before, `writes were forwarded by a follower instead of going to the leader ${leader}`);
  });

  it('a write on a follower is forwarded to the leader and acknowledged', async () => {
    const leader = await cluster.waitForLeader();
    const follower = followersOf(leader)[0]!;
    await ackedPut(cluster.url(follower), 'shape', 'circle');
    assert.equal(await get(cluster.url(leader), 'shape', 'linearizable'), 'circle');
    const metrics = (await call(cluster.url(follower), 'GET', '/metrics')).text();
    assert.ok((metricValue(metrics, 'atlas_forwarded_requests_total', { outcome: 'ok' }) ?? 0) >= 1, 'forwarded ok counted');
  });

  it('serves /metrics with Raft, WAL and peer figures, and logs JSON lines with node, term and role', async () => {
    const leader = await cluster.waitForLeader();
    const text = (await call(cluster.url(leader), 'GET', '/metrics')).text();
    assert.equal(metricValue(text, 'atlas_raft_role', { role: 'leader' }), 1);
    assert.ok((metricValue(text, 'atlas_raft_term') ?? 0) >= 1);
    assert.ok((metricValue(text, 'atlas_raft_commit_index') ?? 0) >= 3);
    assert.ok((metricValue(text, 'atlas_raft_last_applied_index') ?? 0) >= 3);
    assert.ok((metricValue(text, 'atlas_wal_fsync_duration_seconds_count') ?? 0) >= 1, 'fsync histogram fed by onSync');
    assert.ok((metricValue(text, 'atlas_raft_proposals_total', { outcome: 'committed' }) ?? 0) >= 1);
    for (const peer of followersOf(leader)) {
      assert.notEqual(metricValue(text, 'atlas_peer_send_queue_messages', { peer }), null, `queue gauge for ${peer}`);
      // The leader replicated to every follower: messages went out, coalesced into no more writes than messages.
      const sent = (unit: string) => metricValue(text, 'atlas_peer_sent_total', { peer, unit }) ?? 0;
      assert.ok(sent('messages') >= 1, `messages sent to ${peer}`);
      assert.ok(sent('writes') >= 1 && sent('writes') <= sent('messages'), `writes to ${peer}: ${sent('writes')}`);
      assert.ok(sent('frames') >= sent('writes'), `frames to ${peer}`);
      assert.ok(sent('bytes') > sent('messages'), `bytes to ${peer}`);
    }
    const raftLines = cluster
      .logText(leader)
      .split('\n')
      .filter((l) => l.includes('"component":"raft"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(raftLines.length > 0, 'the leader wrote Raft log lines');
    for (const line of raftLines) {
      assert.equal(line['node'], leader);
      assert.equal(typeof line['term'], 'number');
      assert.equal(typeof line['role'], 'string');
    }
  });

  it('answers malformed and oversize requests with the exact status and code, changes nothing, keeps serving', async () => {
    const leader = await cluster.waitForLeader();
    const follower = followersOf(leader)[0]!;
    const before = await dump(cluster.url(leader), 'linearizable');
    const revisionBefore = (await cluster.status(leader)).revision;
    const json = (v: unknown) => JSON.stringify(v);
    const cases: Array<{
      name: string;
      on: 'leader' | 'follower';
      method: string;
      path: string;
      body?: Buffer | string;
      headers?: Record<string, string>;
      status: number;
      code: string;
    }> = [
      { name: 'unknown route', on: 'leader', method: 'GET', path: '/nope', status: 404, code: 'not_found' },
      { name: 'wrong method', on: 'follower', method: 'PATCH', path: '/kv/a', status: 405, code: 'method_not_allowed' },
      { name: 'empty key', on: 'leader', method: 'PUT', path: '/kv/', body: 'x', status: 400, code: 'invalid_request' },
      { name: 'bad percent-encoding', on: 'follower', method: 'PUT', path: '/kv/%zz', body: 'x', status: 400, code: 'invalid_request' },
      { name: 'key over max-key-size', on: 'follower', method: 'PUT', path: `/kv/${'k'.repeat(4097)}`, body: 'x', status: 413, code: 'limit_exceeded' },
      { name: 'value over max-value-size', on: 'follower', method: 'PUT', path: '/kv/big', body: Buffer.alloc(MiB + 1, 7), status: 413, code: 'limit_exceeded' },
      { name: 'body over max-request-size', on: 'leader', method: 'PUT', path: '/kv/huge', body: Buffer.alloc(3 * MiB, 7), status: 413, code: 'limit_exceeded' },
      { name: 'If-Match not a revision', on: 'leader', method: 'PUT', path: '/kv/color', body: 'red', headers: { 'if-match': 'abc' }, status: 400, code: 'invalid_request' },
      { name: 'stale If-Match', on: 'follower', method: 'PUT', path: '/kv/color', body: 'red', headers: { 'if-match': '999999' }, status: 412, code: 'precondition_failed' },
      { name: 'create over an existing key', on: 'leader', method: 'PUT', path: '/kv/color', body: 'red', headers: { 'if-none-match': '*' }, status: 412, code: 'precondition_failed' },
      { name: 'seq without client id', on: 'leader', method: 'PUT', path: '/kv/a', body: 'x', headers: { 'x-atlas-seq': '1' }, status: 400, code: 'invalid_request' },
      { name: 'bad consistency', on: 'follower', method: 'GET', path: '/kv/color?consistency=strong', status: 400, code: 'invalid_request' },
      { name: 'range limit over the maximum', on: 'leader', method: 'GET', path: '/kv?limit=10001', status: 400, code: 'invalid_request' },
      { name: 'txn not JSON', on: 'leader', method: 'POST', path: '/txn', body: 'not json', status: 400, code: 'invalid_request' },
      { name: 'txn not UTF-8', on: 'follower', method: 'POST', path: '/txn', body: Buffer.from([0x7b, 0xff, 0x7d]), status: 400, code: 'invalid_request' },
      { name: 'txn unknown field', on: 'leader', method: 'POST', path: '/txn', body: json({ succes: [] }), status: 400, code: 'invalid_request' },
      { name: 'txn over max-txn-ops', on: 'follower', method: 'POST', path: '/txn', body: json({ success: Array.from({ length: 129 }, (_, i) => ({ type: 'put', key: `t${i}`, value: 'v' })) }), status: 413, code: 'limit_exceeded' },
      { name: 'batch of nothing', on: 'leader', method: 'POST', path: '/batch', body: json({ ops: 'none' }), status: 400, code: 'invalid_request' },
      { name: 'add member with a bad peer address', on: 'follower', method: 'POST', path: '/cluster/members', body: json({ id: 'n9', peerAddress: 'nowhere' }), status: 400, code: 'invalid_request' },
      { name: 'add an existing member', on: 'follower', method: 'POST', path: '/cluster/members', body: json({ id: leader, peerAddress: cluster.peerAddress(leader) }), status: 409, code: 'member_exists' },
      { name: 'remove an unknown member', on: 'leader', method: 'DELETE', path: '/cluster/members/n9', status: 404, code: 'member_not_found' },
      { name: 'promote a voter', on: 'leader', method: 'POST', path: `/cluster/members/${follower}/promote`, status: 400, code: 'invalid_request' },
      { name: 'transfer to an unknown node', on: 'leader', method: 'POST', path: '/cluster/leader', body: json({ to: 'n9' }), status: 404, code: 'member_not_found' },
    ];
    const failures: string[] = [];
    for (const c of cases) {
      const id = c.on === 'leader' ? leader : follower;
      const reply = await call(cluster.url(id), c.method, c.path, {
        ...(c.body !== undefined ? { body: c.body } : {}),
        ...(c.headers !== undefined ? { headers: c.headers } : {}),
      });
      if (reply.status !== c.status || reply.code() !== c.code) {
        failures.push(`${c.name} on ${c.on}: expected ${c.status} ${c.code}, got ${reply.status} ${reply.text().slice(0, 200)}`);
      }
    }
    // A body declared far over the limit is refused at once and the connection closed.
    const declared = await rawRequest(
      cluster.url(follower),
      `PUT /kv/declared HTTP/1.1\r\nhost: x\r\ncontent-length: ${100 * MiB}\r\n\r\n`,
    );
    if (!declared.startsWith('HTTP/1.1 413')) failures.push(`declared 100 MiB body: got ${declared.slice(0, 80)}`);
    const garbage = await rawRequest(cluster.url(leader), 'NOT-HTTP\r\n\r\n');
    if (!garbage.startsWith('HTTP/1.1 400')) failures.push(`malformed HTTP: got ${garbage.slice(0, 80)}`);
    assert.deepEqual(failures, []);

    assert.equal((await cluster.status(leader)).revision, revisionBefore, 'no revision was consumed');
    assert.deepEqual(await dump(cluster.url(leader), 'linearizable'), before, 'no key changed');
    await ackedPut(cluster.url(follower), 'after-bad-input', 'still serving');
    assert.equal(await get(cluster.url(leader), 'after-bad-input', 'linearizable'), 'still serving');
  });

  it('refuses a second process on a data directory in use, and a node id that does not own the directory', async () => {
    const leader = await cluster.waitForLeader();
    const attempt = (id: string) =>
      spawnSync(process.execPath, [CLI, 'start', '--id', id, '--data-dir', cluster.dataDir(leader), '--listen-client', '127.0.0.1:0', '--listen-peer', '127.0.0.1:0', '--advertise-peer', '127.0.0.1:1'], {
        encoding: 'utf8',
        timeout: 60_000,
      });
    const same = attempt(leader);
    assert.equal(same.status, 1, same.stderr);
    assert.match(same.stderr, /is in use by process \d+/);
    const other = attempt('intruder');
    assert.equal(other.status, 1, other.stderr);
    assert.match(other.stderr, /in use by process|belongs to node/);
    assert.notEqual(await cluster.health(leader), null, 'the running node is unaffected');
  });

  it('ghost data: a node stopped during a write returns it after a restart (linearizable at once, serializable once caught up)', async () => {
    const leader = await cluster.waitForLeader();
    // "Node 2": a follower, so the write below does not wait for an election.
    const node2 = followersOf(leader)[0]!;
    assert.equal(await cluster.stop(node2), 0, 'a graceful stop exits 0');
    await ackedPut(cluster.url(leader), '999', 'ghost-free');
    cluster.restart(node2);
    await cluster.waitServing(node2);
    assert.equal(await get(cluster.url(node2), '999', 'linearizable'), 'ghost-free');
    await waitFor(`${node2} to catch up`, 20_000, async () => (await get(cluster.url(node2), '999', 'serializable')) === 'ghost-free', diag);
  });

  it('kill -9 of the leader: a new leader serves writes, no acknowledged write is lost, the old leader catches up', async () => {
    const oldLeader = await cluster.waitForLeader();
    const survivors = followersOf(oldLeader);
    // Writers keep writing through the followers while the leader dies; outcomes other than 200
    // are allowed (unknown, unavailable), only acknowledged writes are in the ledger.
    let stop = false;
    let seq = 0;
    const writer = async (via: string) => {
      while (!stop) {
        const key = `w${String(seq++).padStart(5, '0')}`;
        try {
          const r = await put(cluster.url(via), key, `v-${key}`, 10_000);
          if (r.status === 200) acked.set(key, `v-${key}`);
        } catch {
          // Connection trouble: outcome unknown, not in the ledger.
        }
      }
    };
    const writers = survivors.map((id) => writer(id));
    await waitFor('some writes before the crash', 20_000, () => acked.size >= 20, diag);
    await cluster.kill(oldLeader);
    const newLeader = await cluster.waitForLeader(survivors);
    assert.notEqual(newLeader, oldLeader);
    const ackedAtFailover = acked.size;
    await waitFor('writes acknowledged by the new leader', 30_000, () => acked.size >= ackedAtFailover + 20, diag);
    stop = true;
    await Promise.all(writers);
    await ackedPut(cluster.url(newLeader), 'after-failover', 'yes');

    const state = await dump(cluster.url(newLeader), 'linearizable');
    const lost = [...acked].filter(([k, v]) => state.get(k) !== v).map(([k]) => k);
    assert.deepEqual(lost, [], 'acknowledged writes missing after failover');

    cluster.restart(oldLeader);
    await cluster.waitServing(oldLeader);
    const target = (await cluster.status(newLeader)).commitIndex;
    await waitFor(`${oldLeader} to catch up to ${target}`, 30_000, async () => {
      const h = await cluster.health(oldLeader);
      return h !== null && h.lastApplied >= target;
    }, diag);
    const caughtUp = await dump(cluster.url(oldLeader), 'serializable');
    const missing = [...acked].filter(([k, v]) => caughtUp.get(k) !== v).map(([k]) => k);
    assert.deepEqual(missing, [], `acknowledged writes missing on the restarted ${oldLeader}`);
  });

  it('recovery: after kill -9 of every node and a restart, every acknowledged write is there', async () => {
    for (const id of cluster.running()) await cluster.kill(id);
    for (const id of cluster.ids) cluster.restart(id);
    for (const id of cluster.ids) await cluster.waitServing(id);
    const leader = await cluster.waitForLeader();
    const state = await dump(cluster.url(leader), 'linearizable');
    const lost = [...acked].filter(([k, v]) => state.get(k) !== v).map(([k]) => k);
    assert.deepEqual(lost, [], 'acknowledged writes lost in a crash of all nodes');
    assert.ok(acked.size > 40, `the ledger covers the run (${acked.size} writes)`);
    await ackedPut(cluster.url(followersOf(leader)[0]!), 'after-recovery', 'ok');
  });
});

/** Sends raw bytes on a fresh connection; resolves with what the server answered before closing (or within 5 s). */
function rawRequest(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), 5000);
    socket.on('connect', () => socket.write(text));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (e) => {
      clearTimeout(timer);
      if (chunks.length > 0) resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}
