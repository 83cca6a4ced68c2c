/**
 * Client connections: the connection limit refuses the connection past it (counted and gauged),
 * and the open-file limit check that warns when max-client-connections cannot fit under ulimit -n.
 */
import assert from 'node:assert/strict';
import { type Socket, connect } from 'node:net';
import { describe, it } from 'node:test';
import {
  NODE_RESERVED_FILES,
  openFileLimitWarning,
  parseOpenFileLimit,
} from '../../src/server/open-file-limit.js';
import { startServer } from './http-fixtures.js';

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('HTTP API: client connections', () => {
  it('closes a connection past max connections at once, counting it; the open ones keep working', async () => {
    const t = await startServer({ limits: { maxConnections: 2 } });
    const held: Socket[] = [];
    try {
      held.push(await open(t.port), await open(t.port));
      // The server counts a connection when it accepts it: wait until both are in.
      while (t.server.connectionsOpen < 2) await new Promise((r) => setTimeout(r, 5));
      const third = await open(t.port);
      const ended = await new Promise<string>((resolve) => {
        third.once('close', () => resolve('closed'));
        third.once('error', (e) => resolve(e.message));
        third.write('GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
      });
      assert.ok(ended.length > 0);
      const text = await t.metrics.registry.metrics();
      assert.equal(sample(text, 'atlas_http_connections_dropped_total'), 1);
      assert.equal(sample(text, 'atlas_http_open_connections'), 2);

      const answer = await new Promise<string>((resolve, reject) => {
        const s = held[0]!;
        let got = '';
        s.on('data', (c: Buffer) => {
          got += c.toString('latin1');
          if (got.includes('\r\n\r\n')) resolve(got);
        });
        s.once('error', reject);
        s.write('GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
      });
      assert.match(answer, /^HTTP\/1\.1 200 /);
    } finally {
      for (const s of held) s.destroy();
      await t.server.close(0);
    }
  });
});

describe('HTTP API: pipelined requests', () => {
  it('answers requests pipelined on one connection, in order, each once', async () => {
    const t = await startServer();
    try {
      const release = t.service.hold(); // the first read waits in the node while the others are parsed
      const socket = await open(t.port);
      const got: Buffer[] = [];
      const answers = new Promise<string>((resolve, reject) => {
        socket.on('data', (c: Buffer) => {
          got.push(c);
          const text = Buffer.concat(got).toString('latin1');
          if ((text.match(/HTTP\/1\.1 /g) ?? []).length === 3 && text.endsWith('}')) resolve(text);
        });
        socket.once('error', reject);
      });
      socket.write(
        'GET /kv/a HTTP/1.1\r\nhost: x\r\n\r\n' +
          'GET /health HTTP/1.1\r\nhost: x\r\n\r\n' +
          'GET /nope HTTP/1.1\r\nhost: x\r\n\r\n',
      );
      while (t.server.requestsInFlight < 1) await new Promise((r) => setTimeout(r, 5));
      release();
      const text = await answers;
      const statuses = [...text.matchAll(/HTTP\/1\.1 ([0-9]{3}) /g)].map((m) => m[1]);
      assert.deepEqual(statuses, ['404', '200', '404']);
      assert.match(text, /key_not_found[\s\S]*"role"[\s\S]*not_found/);
      socket.destroy();
    } finally {
      await t.server.close(0);
    }
  });
});

describe('open-file limit check', () => {
  const LIMITS = [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max cpu time              unlimited            unlimited            seconds   ',
    'Max open files            1024                 4096                 files     ',
  ].join('\n');

  it('reads the soft and hard limit of open files from /proc/<pid>/limits', () => {
    assert.deepEqual(parseOpenFileLimit(LIMITS), { soft: 1024, hard: 4096 });
    assert.deepEqual(parseOpenFileLimit('Max open files unlimited unlimited files'), {
      soft: Number.POSITIVE_INFINITY,
      hard: Number.POSITIVE_INFINITY,
    });
    assert.equal(parseOpenFileLimit('Max cpu time 1 2 seconds'), null);
    assert.equal(parseOpenFileLimit('Max open files lots 2 files'), null);
  });

  it('warns when the connections and the node own files exceed the soft limit, naming the fix', () => {
    assert.equal(openFileLimitWarning(1024 - NODE_RESERVED_FILES, { soft: 1024, hard: 4096 }), null);
    const raisable = openFileLimitWarning(1024, { soft: 1024, hard: 4096 });
    assert.match(raisable ?? '', /ulimit -n\) is 1024, below max-client-connections 1024/);
    assert.match(raisable ?? '', new RegExp(`ulimit -n ${1024 + NODE_RESERVED_FILES}`));
    const capped = openFileLimitWarning(10_000, { soft: 1024, hard: 4096 });
    assert.match(capped ?? '', /hard limit is 4096: raise it .* or lower max-client-connections/);
    assert.equal(openFileLimitWarning(10_000, null), null);
  });
});
