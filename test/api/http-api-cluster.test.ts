import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { WireClusterStatus, WireMembers } from '../../src/api/http/wire.js';
import { type TestServer, call, startServer } from './http-fixtures.js';
import { MemoryKvService } from './memory-kv-service.js';

/** The value of one series in Prometheus text, matching labels in any order; undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line) ?? /^([a-z_]+) (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const labelText = match.length === 4 ? match[2]! : '';
    const found = Object.fromEntries([...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.keys(found).length !== Object.keys(labels).length) continue;
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[match.length - 1]);
  }
  return undefined;
}

describe('HTTP API: health, cluster and metrics', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(async () => {
    await t.server.close();
  });

  it('GET /health reports id, role, term, leader, commit index and last applied', async () => {
    const reply = await call(t.port, 'GET', '/health');
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.json(), {
      id: 'n1',
      role: 'leader',
      term: 3,
      leader: 'n1',
      commitIndex: 10,
      lastApplied: 10,
    });
    assert.equal((await call(t.port, 'GET', '/api/v1/health')).status, 200);
  });

  it('GET /cluster/status reports the node status with members, also under /api/v1', async () => {
    for (const path of ['/cluster/status', '/api/v1/cluster/status']) {
      const status = (await call(t.port, 'GET', path)).json<WireClusterStatus>();
      assert.equal(status.id, 'n1');
      assert.equal(status.role, 'leader');
      assert.equal(status.members.length, 1);
      assert.equal(status.members[0]!.id, 'n1');
      assert.equal(typeof status.revision, 'number');
    }
  });

  it('adds, lists, promotes and removes members (and /api/v1/cluster/nodes is the same list)', async () => {
    const added = await call(t.port, 'POST', '/cluster/members', {
      body: JSON.stringify({ id: 'n2', peerAddress: '127.0.0.1:7082', clientUrl: 'http://127.0.0.1:8082' }),
    });
    assert.equal(added.status, 201);
    const n2 = added.json<WireMembers>().members.find((m) => m.id === 'n2');
    assert.deepEqual(n2, {
      id: 'n2',
      peerAddress: '127.0.0.1:7082',
      clientUrl: 'http://127.0.0.1:8082',
      role: 'learner',
    });

    const viaNodes = await call(t.port, 'POST', '/api/v1/cluster/nodes', {
      body: JSON.stringify({ id: 'n3', peerAddress: '127.0.0.1:7083', role: 'voter' }),
    });
    assert.equal(viaNodes.status, 201);
    for (const path of ['/cluster/members', '/api/v1/cluster/members', '/api/v1/cluster/nodes']) {
      const list = (await call(t.port, 'GET', path)).json<WireMembers>().members;
      assert.deepEqual(
        list.map((m) => `${m.id}:${m.role}`),
        ['n1:voter', 'n2:learner', 'n3:voter'],
      );
    }

    const promoted = await call(t.port, 'POST', '/cluster/members/n2/promote');
    assert.equal(promoted.status, 200);
    assert.equal(promoted.json<WireMembers>().members.find((m) => m.id === 'n2')!.role, 'voter');
    const removed = await call(t.port, 'DELETE', '/api/v1/cluster/nodes/n3');
    assert.equal(removed.status, 200);
    assert.deepEqual(
      removed.json<WireMembers>().members.map((m) => m.id),
      ['n1', 'n2'],
    );
  });

  it('POST /cluster/leader transfers leadership, with or without a target', async () => {
    const to = await call(t.port, 'POST', '/cluster/leader', { body: JSON.stringify({ to: 'n2' }) });
    assert.equal(to.status, 200);
    assert.deepEqual(to.json(), { leader: 'n2' });
    const any = await call(t.port, 'POST', '/cluster/leader');
    assert.equal(any.status, 200);
    assert.deepEqual(any.json(), { leader: 'n1' });
  });

  it('GET /metrics serves Prometheus text from a per-node registry', async () => {
    await call(t.port, 'PUT', '/kv/m', { body: 'v' });
    await call(t.port, 'GET', '/kv/m');
    await call(t.port, 'GET', '/nope');
    t.metrics.leaderChanged();
    t.metrics.proposal('committed');
    t.metrics.observeWalFsync(0.002);
    t.metrics.setPeerSendQueue('n2', 7, 700);
    t.metrics.forwardedRequest('ok');
    const reply = await call(t.port, 'GET', '/metrics');
    assert.equal(reply.status, 200);
    assert.match(String(reply.headers['content-type']), /^text\/plain/);
    const text = reply.text();
    const n1 = { node: 'n1' };
    assert.equal(
      sample(text, 'atlas_http_request_duration_seconds_count', {
        ...n1,
        route: '/kv/{key+}',
        method: 'PUT',
        status: '200',
      }),
      1,
    );
    assert.equal(
      sample(text, 'atlas_http_request_duration_seconds_count', {
        ...n1,
        route: 'unmatched',
        method: 'GET',
        status: '404',
      }),
      1,
    );
    assert.equal(sample(text, 'atlas_raft_role', { ...n1, role: 'leader' }), 1);
    assert.equal(sample(text, 'atlas_raft_role', { ...n1, role: 'follower' }), 0);
    assert.equal(sample(text, 'atlas_raft_term', n1), 3);
    assert.equal(sample(text, 'atlas_raft_commit_index', n1), 10);
    assert.equal(sample(text, 'atlas_raft_last_applied_index', n1), 10);
    assert.equal(sample(text, 'atlas_raft_leader_changes_total', n1), 1);
    assert.equal(sample(text, 'atlas_raft_proposals_total', { ...n1, outcome: 'committed' }), 1);
    assert.equal(sample(text, 'atlas_wal_fsync_duration_seconds_count', n1), 1);
    assert.equal(sample(text, 'atlas_peer_send_queue_messages', { ...n1, peer: 'n2' }), 7);
    assert.equal(sample(text, 'atlas_peer_send_queue_bytes', { ...n1, peer: 'n2' }), 700);
    assert.equal(sample(text, 'atlas_forwarded_requests_total', { ...n1, outcome: 'ok' }), 1);
    t.metrics.removePeer('n2');
    t.metrics.proposal('committed');
    t.metrics.proposal('rejected');
    const later = (await call(t.port, 'GET', '/metrics')).text();
    assert.doesNotMatch(later, /peer="n2"/);
    // Counts kept between scrapes, never added twice.
    assert.equal(sample(later, 'atlas_raft_proposals_total', { ...n1, outcome: 'committed' }), 2);
    assert.equal(sample(later, 'atlas_raft_proposals_total', { ...n1, outcome: 'rejected' }), 1);
    assert.equal(sample(later, 'atlas_raft_proposals_total', { ...n1, outcome: 'failed' }), undefined);
  });

  it('keeps two nodes in one process in separate registries', async () => {
    const other = await startServer({ service: new MemoryKvService('n9') });
    try {
      await call(other.port, 'GET', '/health');
      const text = (await call(other.port, 'GET', '/metrics')).text();
      assert.match(text, /node="n9"/);
      assert.doesNotMatch(text, /node="n1"/);
    } finally {
      await other.server.close();
    }
  });
});
