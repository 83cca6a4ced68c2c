/**
 * Membership changes on a cluster of real processes: a node that starts with --join after the log
 * was compacted joins as a learner, receives a snapshot, is promoted by the leader once caught up;
 * another member is removed; the joined node restarts from its own data without joining again.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessCluster, call, dump, get, metricValue, put, waitFor } from './process-cluster.js';

/** Small, so that a few dozen writes compact the log and a new node must get a snapshot. */
const SNAPSHOT_THRESHOLD = 20;
const KEYS = 120;

describe('membership (real processes)', { timeout: 180_000 }, () => {
  let cluster: ProcessCluster;
  const diag = () => cluster.diagnostics();

  before(async () => {
    cluster = await ProcessCluster.create(['n1', 'n2', 'n3'], {
      spares: ['n4'],
      args: ['--snapshot-threshold-entries', String(SNAPSHOT_THRESHOLD)],
    });
    for (const id of ['n1', 'n2', 'n3']) cluster.start(id);
    for (const id of ['n1', 'n2', 'n3']) await cluster.waitServing(id);
    await cluster.waitForLeader();
  });

  after(async () => {
    await cluster?.destroy();
  });

  it('a node joining after compaction gets a snapshot, and the leader promotes it to voter once caught up', async () => {
    const leader = await cluster.waitForLeader();
    for (let i = 0; i < KEYS; i++) {
      const r = await put(cluster.url(leader), `key-${i}`, `value-${i}`);
      assert.equal(r.status, 200, `write ${i}: ${r.status} ${r.text()}`);
    }
    const compacted = await waitFor('the leader to compact its log', 20_000, async () => {
      const s = await cluster.status(leader);
      return s.snapshotIndex > 2 * SNAPSHOT_THRESHOLD ? s.snapshotIndex : undefined;
    }, diag);
    assert.ok(compacted > 1, 'entry 1 (the founding configuration) is compacted away');

    // Join through a follower: the member forwards the membership change to the leader. n4 also
    // takes settings from a YAML file and an ATLAS_* variable (checked at the end of this test).
    const via = cluster.running().find((id) => id !== leader)!;
    const configFile = join(cluster.root, 'n4.yaml');
    writeFileSync(configFile, '# n4\nmax-key-size: 100\nmax-value-size: 2KiB\n');
    cluster.start('n4', { join: [cluster.url(via)], extraArgs: ['--config', configFile], env: { ATLAS_MAX_VALUE_SIZE: '1000' } });
    await cluster.waitServing('n4', 60_000);

    await waitFor('n4 to be promoted to voter', 60_000, async () => {
      const members = (await cluster.status(leader)).members;
      return members.find((m) => m.id === 'n4')?.role === 'voter';
    }, diag);
    const n4 = await cluster.status('n4');
    assert.ok(n4.snapshotIndex >= compacted, `n4 starts from a snapshot (snapshotIndex ${n4.snapshotIndex})`);
    const metrics = (await call(cluster.url('n4'), 'GET', '/metrics')).text();
    assert.ok((metricValue(metrics, 'atlas_raft_snapshot_events_total', { event: 'installed' }) ?? 0) >= 1, 'n4 installed a snapshot');
    const member = (await cluster.status(leader)).members.find((m) => m.id === 'n4')!;
    assert.equal(member.peerAddress, cluster.peerAddress('n4'));
    assert.equal(member.clientUrl, cluster.url('n4'));

    assert.equal(await get(cluster.url('n4'), 'key-0', 'linearizable'), 'value-0');
    await waitFor('n4 to hold every key', 20_000, async () => {
      const state = await dump(cluster.url('n4'), 'serializable');
      return state.size === KEYS && state.get(`key-${KEYS - 1}`) === `value-${KEYS - 1}`;
    }, diag);

    // Settings from the file (max-key-size) and from the environment, which wins over the file (max-value-size).
    const longKey = await put(cluster.url('n4'), 'k'.repeat(101), 'v');
    assert.equal(longKey.status, 413);
    assert.equal(longKey.json<{ error: { limit: string; limitValue: number } }>().error.limitValue, 100);
    const bigValue = await put(cluster.url('n4'), 'small', 'v'.repeat(1001));
    assert.equal(bigValue.status, 413);
    assert.equal(bigValue.json<{ error: { limit: string; limitValue: number } }>().error.limitValue, 1000);
  });

  it('removes another member; the cluster keeps serving with the new configuration', async () => {
    const leader = await cluster.waitForLeader();
    const removed = ['n1', 'n2', 'n3'].find((id) => id !== leader)!;
    const r = await call(cluster.url(leader), 'DELETE', `/cluster/members/${removed}`);
    assert.equal(r.status, 200, `remove ${removed}: ${r.status} ${r.text()}`);
    await waitFor(`${removed} to leave the configuration`, 30_000, async () => {
      const members = (await cluster.status(leader)).members;
      return !members.some((m) => m.id === removed);
    }, diag);
    await cluster.stop(removed);

    const remaining = cluster.running();
    assert.equal(remaining.length, 3);
    const now = await cluster.waitForLeader(remaining);
    const w = await put(cluster.url('n4'), 'after-remove', 'yes');
    assert.equal(w.status, 200, `write after removing ${removed}: ${w.status} ${w.text()}`);
    for (const id of remaining) assert.equal(await get(cluster.url(id), 'after-remove', 'linearizable'), 'yes');
    const voters = (await cluster.status(now)).members.filter((m) => m.role === 'voter').map((m) => m.id).sort();
    assert.deepEqual(voters, remaining.sort());
  });

  it('a joined node restarts from its data dir without joining again', async () => {
    await cluster.kill('n4');
    cluster.restart('n4');
    await cluster.waitServing('n4');
    assert.equal(await get(cluster.url('n4'), 'after-remove', 'linearizable'), 'yes');
    assert.match(cluster.logText('n4'), /not joining again/);
    const leader = await cluster.waitForLeader();
    const members = (await cluster.status(leader)).members.filter((m) => m.id === 'n4');
    assert.equal(members.length, 1);
    assert.equal(members[0]!.role, 'voter');
  });
});
