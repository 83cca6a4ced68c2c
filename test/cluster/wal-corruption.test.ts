/**
 * A node whose WAL holds a damaged record (not the torn tail of a crash) refuses to start, naming
 * the segment file and the offset (DESIGN.md §1.4), and exits 1 with a pointer to the runbook.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessCluster, put } from './process-cluster.js';

const MARKER = 'corrupt-me-please-0123456789';

describe('a corrupt WAL (real process)', { timeout: 90_000 }, () => {
  let cluster: ProcessCluster;

  before(async () => {
    cluster = await ProcessCluster.create(['solo']);
  });

  after(async () => {
    await cluster?.destroy();
  });

  it('stops the node at start with the file and offset of the bad record', async () => {
    cluster.start('solo');
    await cluster.waitServing('solo');
    await cluster.waitForLeader(['solo']);
    assert.equal((await put(cluster.url('solo'), 'victim', MARKER)).status, 200);
    for (let i = 0; i < 5; i++) assert.equal((await put(cluster.url('solo'), `after-${i}`, 'x')).status, 200);
    assert.equal(await cluster.stop('solo'), 0);

    // Flip one byte inside the record that holds the marker: later records stay valid, so this is
    // corruption, not a torn tail.
    const walDir = join(cluster.dataDir('solo'), 'wal');
    const segment = readdirSync(walDir)
      .filter((f) => f.endsWith('.wal'))
      .map((f) => join(walDir, f))
      .find((f) => readFileSync(f).includes(MARKER));
    assert.ok(segment !== undefined, 'the marker is in a segment');
    const bytes = readFileSync(segment);
    const at = bytes.indexOf(MARKER);
    bytes[at + 3] = bytes[at + 3]! ^ 0xff;
    writeFileSync(segment, bytes);

    cluster.restart('solo');
    const { code } = await cluster.exited('solo');
    assert.equal(code, 1);
    const log = cluster.logText('solo');
    assert.match(log, new RegExp(`WAL corruption in ${segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} at offset \\d+`));
    assert.match(log, /When a WAL is reported corrupt/);
  });
});
