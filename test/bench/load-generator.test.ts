/**
 * The load generator (`atlas bench`) against in-process HTTP servers: it counts what the server
 * answered, classifies errors by kind, speaks each target's wire format, and refuses bad options.
 * No timing assertions: only counts and shapes (the machine may be loaded).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { openFileLimit } from '../../src/server/open-file-limit.js';
import {
  type BenchOptions,
  BenchUsageError,
  parseEndpoints,
  parseWorkload,
  validateBenchOptions,
} from '../../src/bench/bench-options.js';
import { runBench } from '../../src/bench/load-generator.js';

interface Seen {
  method: string;
  url: string;
  body: string;
}

async function serve(
  answer: (req: IncomingMessage, body: string) => [number, string],
): Promise<{ server: Server; url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (seen.length < 10_000) seen.push({ method: req.method ?? '', url: req.url ?? '', body });
      const [status, text] = answer(req, body);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function options(overrides: Partial<BenchOptions>): BenchOptions {
  return validateBenchOptions({
    endpoints: [],
    target: 'atlas',
    workload: parseWorkload('write'),
    consistency: 'linearizable',
    connections: 4,
    durationS: 0.5,
    warmupS: 0,
    keys: 100,
    valueSize: 10,
    rate: undefined,
    threads: 1,
    requestTimeoutMs: 10_000,
    ...overrides,
  });
}

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

describe('runBench', () => {
  it('drives AtlasDB routes and counts every answer', async () => {
    const s = await serve(() => [200, '{"revision":1}']);
    servers.push(s.server);
    const r = await runBench(
      options({ endpoints: [s.url], workload: parseWorkload('mixed:50'), consistency: 'serializable' }),
    );
    assert.ok(r.reads > 0 && r.writes > 0, `reads ${r.reads} writes ${r.writes}`);
    assert.equal(r.errorCount, 0);
    assert.ok(r.latencyMs.p50 <= r.latencyMs.p99 && r.latencyMs.p99 <= r.latencyMs.max);
    const puts = s.seen.filter((x) => x.method === 'PUT');
    const gets = s.seen.filter((x) => x.method === 'GET');
    assert.ok(puts.every((x) => /^\/kv\/bench\/[0-9]{2}$/.test(x.url) && x.body.length === 10));
    assert.ok(gets.every((x) => /^\/kv\/bench\/[0-9]{2}\?consistency=serializable$/.test(x.url)));
  });

  it('speaks etcd v3 JSON: base64 keys, serializable flag on stale reads', async () => {
    const s = await serve(() => [200, '{}']);
    servers.push(s.server);
    const r = await runBench(
      options({
        endpoints: [s.url],
        target: 'etcd',
        workload: parseWorkload('mixed:50'),
        consistency: 'serializable',
      }),
    );
    assert.ok(r.reads > 0 && r.writes > 0);
    for (const x of s.seen) {
      assert.equal(x.method, 'POST');
      const body = JSON.parse(x.body) as { key: string; value?: string; serializable?: boolean };
      assert.match(Buffer.from(body.key, 'base64').toString('utf8'), /^bench\/[0-9]{2}$/);
      if (x.url === '/v3/kv/put') assert.equal(Buffer.from(body.value ?? '', 'base64').length, 10);
      else {
        assert.equal(x.url, '/v3/kv/range');
        assert.equal(body.serializable, true);
      }
    }
  });

  it('counts error answers by kind and absent keys apart', async () => {
    let n = 0;
    const s = await serve((req) => {
      n++;
      if (req.method === 'GET') return [404, '{"error":{"code":"key_not_found"}}'];
      return n % 2 === 0 ? [503, '{"error":{"code":"overloaded"}}'] : [200, '{"revision":1}'];
    });
    servers.push(s.server);
    const r = await runBench(options({ endpoints: [s.url], workload: parseWorkload('mixed:50') }));
    assert.ok((r.errors.http_503 ?? 0) > 0, JSON.stringify(r.errors));
    assert.deepEqual(Object.keys(r.errors), ['http_503']);
    assert.ok(r.notFound > 0 && r.notFound === r.reads);
  });

  it('counts refused connections as errors, never as throughput', async () => {
    const s = await serve(() => [200, '{}']);
    const url = s.url;
    await new Promise<void>((r) => s.server.close(() => r()));
    const result = await runBench(options({ endpoints: [url], connections: 2 }));
    assert.equal(result.reads + result.writes, 0);
    assert.ok(result.errorCount > 0);
  });

  it('holds 1,000 connections, one request in flight on each, with every answer counted', async (t) => {
    const limit = openFileLimit();
    // Both ends of every connection live in this process.
    if (limit !== null && limit.soft < 2 * 1000 + 100) {
      t.skip(
        `ulimit -n is ${limit.soft}: 1,000 connections in one process need ${2 * 1000 + 100} open files`,
      );
      return;
    }
    let answered = 0;
    let mostInFlight = 0;
    const held: Array<() => void> = [];
    const sockets = new Set<unknown>();
    const s = await serve(() => [200, '{}']);
    servers.push(s.server);
    s.server.maxConnections = 2000;
    // Each request waits until 1,000 are waiting (every connection has one in flight at once); from
    // then on, answers go out at once. If the generator could not hold 1,000, the requests time out
    // and show up as errors.
    s.server.removeAllListeners('request');
    s.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      sockets.add(req.socket);
      const answer = () => {
        answered++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      };
      req.resume();
      req.on('end', () => {
        if (mostInFlight >= 1000) return answer();
        held.push(answer);
        mostInFlight = Math.max(mostInFlight, held.length);
        if (held.length === 1000) for (const release of held.splice(0)) release();
      });
    });
    const r = await runBench(
      options({
        endpoints: [s.url],
        connections: 1000,
        durationS: 1,
        warmupS: 0,
        workload: parseWorkload('read'),
        requestTimeoutMs: 120_000,
      }),
    );
    assert.deepEqual(r.errors, {});
    assert.equal(sockets.size, 1000, 'one connection per virtual client');
    assert.equal(mostInFlight, 1000, 'all 1,000 requests were in flight together');
    assert.ok(answered >= 1000 && r.reads <= answered, `reads ${r.reads}, answered ${answered}`);
  });

  it('spreads connections over endpoints and over worker threads', async () => {
    const a = await serve(() => [200, '{}']);
    const b = await serve(() => [200, '{}']);
    servers.push(a.server, b.server);
    const r = await runBench(options({ endpoints: [a.url, b.url], connections: 4, threads: 2 }));
    assert.equal(r.threads, 2);
    assert.ok(a.seen.length > 0 && b.seen.length > 0);
    assert.equal(r.errorCount, 0);
  });
});

describe('bench options', () => {
  it('parses workloads and refuses bad ones', () => {
    assert.equal(parseWorkload('read').readPercent, 100);
    assert.equal(parseWorkload('mixed:90').readPercent, 90);
    assert.throws(() => parseWorkload('mixed:101'), BenchUsageError);
    assert.throws(() => parseWorkload('scan'), BenchUsageError);
  });

  it('parses endpoints and refuses paths and other schemes', () => {
    assert.deepEqual(parseEndpoints('http://a:1, http://b:2/'), ['http://a:1', 'http://b:2']);
    assert.throws(() => parseEndpoints('https://a:1'), BenchUsageError);
    assert.throws(() => parseEndpoints('http://a:1/kv'), BenchUsageError);
    assert.throws(() => parseEndpoints(''), BenchUsageError);
  });

  it('refuses out-of-range numbers', () => {
    assert.throws(() => options({ endpoints: ['http://a:1'], connections: 0 }), /--connections/);
    assert.throws(() => options({ endpoints: ['http://a:1'], durationS: 0 }), /--duration/);
    assert.throws(() => options({ endpoints: ['http://a:1'], rate: -1 }), /--rate/);
  });
});
