/**
 * A real node (child process, `atlas start`) holds 1,000 keep-alive client connections open at
 * once and answers a request on every one of them, twice: the connection limit, listen backlog,
 * keep-alive handling and file descriptors all have to allow it. No timing assertions: on a loaded
 * machine the connects and answers may take a while; only what was answered is checked.
 */
import assert from 'node:assert/strict';
import { type Socket, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { openFileLimit } from '../../src/server/open-file-limit.js';
import { ProcessCluster, call, metricValue, put } from './process-cluster.js';

const CONNECTIONS = 1000;
/** Connects started at once; the rest wait (a gentler burst than all 1,000 SYNs together). */
const CONNECT_WAVE = 250;
/** Descriptors this process needs besides the client sockets (stdio, the test runner, the node's log). */
const OWN_FILES = 100;
const KEY = 'many-connections';
const VALUE = 'held-open';

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/**
 * One raw HTTP/1.1 connection with one request at a time: the request is written as bytes, the
 * answer parsed by its Content-Length (the server always sends one). Any close while idle is
 * recorded, so the test can tell that every connection stayed open.
 */
class RawConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (a: Answer) => void; reject: (e: Error) => void } | null = null;
  closedEarly: string | null = null;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.tryParse();
    });
    const closed = (why: string) => {
      this.closedEarly ??= why;
      const w = this.waiting;
      this.waiting = null;
      w?.reject(new Error(`connection closed before the answer: ${why}`));
    };
    socket.on('end', () => closed('end'));
    socket.on('close', () => closed('close'));
    socket.on('error', (e) => closed(e.message));
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  request(method: string, path: string): Promise<Answer> {
    if (this.waiting !== null) throw new Error('one request at a time');
    if (this.closedEarly !== null) return Promise.reject(new Error(`connection already closed: ${this.closedEarly}`));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(`${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
    });
  }

  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.destroy();
  }

  private tryParse(): void {
    const headEnd = this.buffer.indexOf('\r\n\r\n');
    if (headEnd < 0 || this.waiting === null) return;
    const lines = this.buffer.subarray(0, headEnd).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 ([0-9]{3}) /.exec(lines[0] ?? '')?.[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const length = Number(headers.get('content-length'));
    if (!Number.isSafeInteger(length)) {
      const w = this.waiting;
      this.waiting = null;
      w.reject(new Error(`answer without a Content-Length: ${lines.join(' | ')}`));
      return;
    }
    if (this.buffer.length < headEnd + 4 + length) return;
    const body = Buffer.from(this.buffer.subarray(headEnd + 4, headEnd + 4 + length));
    this.buffer = this.buffer.subarray(headEnd + 4 + length);
    const w = this.waiting;
    this.waiting = null;
    w.resolve({ status, headers, body });
  }
}

describe('1,000 concurrent client connections (real process)', { timeout: 300_000 }, () => {
  let cluster: ProcessCluster;
  const connections: RawConnection[] = [];
  const limit = openFileLimit();
  const tooFewFiles = limit !== null && limit.soft < CONNECTIONS + OWN_FILES;

  before(async () => {
    cluster = await ProcessCluster.create(['solo']);
  });

  after(async () => {
    for (const c of connections) c.close();
    await cluster?.destroy();
  });

  it(
    'holds 1,000 keep-alive connections open and answers a request on each, twice',
    { skip: tooFewFiles ? `ulimit -n is ${limit?.soft}: this test needs ${CONNECTIONS + OWN_FILES} open files` : false },
    async () => {
      cluster.start('solo');
      await cluster.waitServing('solo');
      await cluster.waitForLeader(['solo']);
      const url = cluster.url('solo');
      assert.equal((await put(url, KEY, VALUE)).status, 200);
      const port = Number(new URL(url).port);

      for (let opened = 0; opened < CONNECTIONS; opened += CONNECT_WAVE) {
        const wave = Math.min(CONNECT_WAVE, CONNECTIONS - opened);
        connections.push(...(await Promise.all(Array.from({ length: wave }, () => RawConnection.open(port)))));
      }
      assert.equal(connections.length, CONNECTIONS);

      // The server holds every one of them at the same time (plus this scrape's own connection).
      const scrape = async (): Promise<string> => {
        const reply = await call(url, 'GET', '/metrics');
        assert.equal(reply.status, 200);
        return reply.text();
      };
      const opened = metricValue(await scrape(), 'atlas_http_open_connections');
      assert.ok(opened !== null && opened >= CONNECTIONS, `the node reports ${opened} open connections`);

      for (const round of [1, 2]) {
        const answers = await Promise.all(
          connections.map((c, i) =>
            c.request('GET', `/kv/${KEY}?consistency=${i % 2 === 0 ? 'linearizable' : 'serializable'}`),
          ),
        );
        const wrong = answers
          .map((a, i) => ({ i, a }))
          .filter(({ a }) => a.status !== 200 || a.body.toString() !== VALUE || a.headers.get('connection') === 'close');
        assert.deepEqual(
          wrong.slice(0, 5).map(({ i, a }) => `${i}: ${a.status} ${a.body.toString().slice(0, 100)}`),
          [],
          `round ${round}: ${wrong.length} of ${CONNECTIONS} answers were not the value on a kept-alive connection`,
        );
        const closed = connections.filter((c) => c.closedEarly !== null);
        assert.equal(closed.length, 0, `round ${round}: ${closed.length} connections closed (${closed[0]?.closedEarly})`);
      }

      const text = await scrape();
      assert.equal(metricValue(text, 'atlas_http_connections_dropped_total'), 0);
      assert.equal(
        metricValue(text, 'atlas_http_request_duration_seconds_count', {
          route: '/kv/{key+}',
          method: 'GET',
          status: '200',
        }),
        2 * CONNECTIONS,
      );
    },
  );
});
