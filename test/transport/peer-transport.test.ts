import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EnvelopeType, PROTOCOL_VERSION } from '../../src/transport/envelope.js';
import { TransportError } from '../../src/transport/errors.js';
import { FRAME_HEADER_BYTES, encodeFrame } from '../../src/transport/frame-codec.js';
import { RawPeer, type TestNode, peerStats, startNode, waitFor } from './transport-fixtures.js';

interface TestMessage {
  seq: number;
  data?: Buffer;
}

async function closeAll(...nodes: (TestNode<unknown> | TestNode<TestMessage> | undefined)[]): Promise<void> {
  await Promise.all(nodes.map((node) => node?.transport.close()));
}

/** A port that was bound a moment ago and is now free. */
async function freePort(): Promise<number> {
  const probe = await startNode('probe');
  const port = Number(probe.address.split(':')[1]);
  await probe.transport.close();
  return port;
}

describe('PeerTransport', () => {
  it('delivers messages both ways over one connection, in order, with Buffers binary', async () => {
    const a = await startNode<TestMessage>('a');
    const b = await startNode<TestMessage>('b');
    try {
      a.transport.setPeer('b', b.address);
      const data = Buffer.from([0, 1, 2, 253, 254, 255]);
      for (let seq = 0; seq < 50; seq++) assert.equal(a.transport.send('b', { seq, data }), true);
      await waitFor(() => b.received.length === 50, 'b receives 50');
      assert.deepEqual(
        b.received.map((r) => r.message.seq),
        Array.from({ length: 50 }, (_, i) => i),
      );
      assert.ok(b.received.every((r) => r.from === 'a' && Buffer.isBuffer(r.message.data)));
      assert.deepEqual(b.received[0]!.message.data, data);
      // b learned a from the inbound connection and answers over it, without knowing a's address.
      assert.equal(b.transport.send('a', { seq: 1000 }), true);
      await waitFor(() => a.received.length === 1, 'a receives the answer');
      assert.equal(a.received[0]!.from, 'b');
      assert.equal(peerStats(b, 'a').address, undefined);
      assert.equal(peerStats(b, 'a').direction, 'inbound');
      assert.equal(peerStats(a, 'b').connects, 1);
    } finally {
      await closeAll(a, b);
    }
  });

  it('coalesces the messages sent in one event-loop turn into one write and one frame', async () => {
    const a = await startNode<TestMessage>('a');
    const b = await startNode<TestMessage>('b');
    try {
      a.transport.setPeer('b', b.address);
      a.transport.send('b', { seq: -1 });
      await waitFor(() => b.received.length === 1, 'warm-up message');
      const before = peerStats(a, 'b');
      const receivedBefore = peerStats(b, 'a');
      for (let seq = 0; seq < 500; seq++) a.transport.send('b', { seq });
      await waitFor(() => b.received.length === 501, 'burst delivered');
      const after = peerStats(a, 'b');
      assert.equal(after.writes - before.writes, 1);
      assert.equal(after.framesSent - before.framesSent, 1);
      assert.equal(after.messagesSent - before.messagesSent, 500);
      assert.equal(peerStats(b, 'a').framesReceived - receivedBefore.framesReceived, 1);
    } finally {
      await closeAll(a, b);
    }
  });

  it('splits a burst into several frames when it exceeds the maximum frame size', async () => {
    const limits = { maxFrameBytes: 64 * 1024 };
    const a = await startNode<TestMessage>('a', { limits });
    const b = await startNode<TestMessage>('b', { limits });
    try {
      a.transport.setPeer('b', b.address);
      const data = Buffer.alloc(20 * 1024, 1);
      for (let seq = 0; seq < 10; seq++) a.transport.send('b', { seq, data });
      await waitFor(() => b.received.length === 10, '10 large messages');
      const stats = peerStats(a, 'b');
      assert.ok(stats.framesSent >= 4, `framesSent ${stats.framesSent}`);
      assert.equal(stats.writes, 1);
    } finally {
      await closeAll(a, b);
    }
  });

  it('keeps one connection when both nodes dial at once: the lower id dial wins', async () => {
    const a = await startNode<TestMessage>('a');
    const b = await startNode<TestMessage>('b');
    try {
      a.transport.setPeer('b', b.address);
      b.transport.setPeer('a', a.address);
      for (let seq = 0; seq < 5; seq++) {
        a.transport.send('b', { seq });
        b.transport.send('a', { seq });
      }
      await waitFor(() => a.received.length === 5 && b.received.length === 5, 'both directions delivered');
      // Let any losing dial settle, then check that exactly one connection survived.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(peerStats(a, 'b').direction, 'outbound');
      assert.equal(peerStats(b, 'a').direction, 'inbound');
      assert.equal(peerStats(a, 'b').connects, 1);
      assert.equal(peerStats(b, 'a').connects, 1);
      assert.equal(peerStats(a, 'b').disconnects, 0);
      a.transport.send('b', { seq: 99 });
      await waitFor(() => b.received.length === 6, 'traffic on the surviving connection');
    } finally {
      await closeAll(a, b);
    }
  });

  it('reconnects with backoff after the peer restarts and delivers what was queued', async () => {
    const a = await startNode<TestMessage>('a');
    let b = await startNode<TestMessage>('b');
    const port = Number(b.address.split(':')[1]);
    try {
      a.transport.setPeer('b', b.address);
      a.transport.send('b', { seq: 0 });
      await waitFor(() => b.received.length === 1, 'first delivery');
      await b.transport.close();
      await waitFor(() => !peerStats(a, 'b').connected, 'a notices the loss');
      for (let seq = 1; seq <= 3; seq++) a.transport.send('b', { seq });
      await new Promise((resolve) => setTimeout(resolve, 150)); // a few failed redials
      assert.ok(peerStats(a, 'b').connectFailures >= 1);
      b = await startNode<TestMessage>('b', { port });
      await waitFor(() => b.received.length === 3, 'queued messages after restart');
      assert.deepEqual(
        b.received.map((r) => r.message.seq),
        [1, 2, 3],
      );
      assert.equal(peerStats(a, 'b').connects, 2);
    } finally {
      await closeAll(a, b);
    }
  });

  it('bounds the send queue by dropping the oldest messages, counted', async () => {
    const port = await freePort();
    const a = await startNode<TestMessage>('a', { limits: { maxQueueMessages: 10 } });
    let b: TestNode<TestMessage> | undefined;
    try {
      a.transport.setPeer('b', `127.0.0.1:${port}`);
      for (let seq = 0; seq < 25; seq++) a.transport.send('b', { seq });
      const stats = peerStats(a, 'b');
      assert.equal(stats.queueMessages, 10);
      assert.equal(stats.droppedQueueFull, 15);
      b = await startNode<TestMessage>('b', { port });
      const peerB = b;
      await waitFor(() => peerB.received.length === 10, 'the 10 newest messages');
      assert.deepEqual(
        peerB.received.map((r) => r.message.seq),
        Array.from({ length: 10 }, (_, i) => 15 + i),
      );
      assert.equal(peerStats(a, 'b').queueMessages, 0);
    } finally {
      await closeAll(a, b);
    }
  });

  it('refuses to queue a message larger than the maximum frame', async () => {
    const a = await startNode<TestMessage>('a', { limits: { maxFrameBytes: 1024 } });
    const b = await startNode<TestMessage>('b');
    try {
      a.transport.setPeer('b', b.address);
      assert.equal(a.transport.send('b', { seq: 1, data: Buffer.alloc(2000) }), false);
      assert.equal(peerStats(a, 'b').droppedTooLarge, 1);
      await assert.rejects(
        a.transport.request('b', { seq: 2, data: Buffer.alloc(2000) }),
        (e: unknown) => e instanceof TransportError && e.code === 'too_large',
      );
      assert.equal(a.transport.send('nobody', { seq: 3 }), false);
    } finally {
      await closeAll(a, b);
    }
  });

  it('respects the smaller maximum frame announced by the peer', async () => {
    const a = await startNode<TestMessage>('a', { limits: { maxFrameBytes: 1024 * 1024 } });
    const b = await startNode<TestMessage>('b', { limits: { maxFrameBytes: 4096 } });
    try {
      a.transport.setPeer('b', b.address);
      a.transport.send('b', { seq: 0 });
      await waitFor(() => b.received.length === 1, 'handshake done');
      for (let seq = 1; seq <= 6; seq++) a.transport.send('b', { seq, data: Buffer.alloc(1500) });
      a.transport.send('b', { seq: 7, data: Buffer.alloc(8000) }); // more than b accepts: dropped by a
      await waitFor(() => b.received.length === 7, 'small messages in small frames');
      assert.equal(peerStats(a, 'b').droppedTooLarge, 1);
      assert.equal(peerStats(b, 'a').protocolErrors, 0);
      assert.equal(peerStats(a, 'b').disconnects, 0);
    } finally {
      await closeAll(a, b);
    }
  });

  it('rejects a handshake from another cluster or addressed to another node', async () => {
    const a = await startNode<TestMessage>('a');
    const other = await startNode<TestMessage>('x', { clusterId: 'other-cluster' });
    try {
      other.transport.setPeer('a', a.address);
      other.transport.send('a', { seq: 1 });
      await waitFor(() => peerStats(other, 'a').handshakeRejects >= 1, 'cluster mismatch refused');
      assert.equal(a.received.length, 0);
      assert.ok(a.logger.lines.some((l) => l.level === 'warn' && l.fields['reason'] === 'cluster_mismatch'));

      const raw = await RawPeer.connect(a.address);
      const answer = await raw.handshake('z', 'not-a');
      assert.equal(answer.type, EnvelopeType.Reject);
      assert.equal((answer as { reason: string }).reason, 'wrong_node');
      await raw.closed;
      assert.ok(a.transport.stats().rejectedHandshakes >= 2);
    } finally {
      await closeAll(a, other);
    }
  });

  it('closes a connection that sends a corrupt frame, and keeps serving others', async () => {
    const a = await startNode<TestMessage>('a');
    const b = await startNode<TestMessage>('b');
    try {
      const raw = await RawPeer.connect(a.address);
      const answer = await raw.handshake('evil', 'a');
      assert.equal(answer.type, EnvelopeType.Welcome);
      raw.sendEnvelope({ type: EnvelopeType.Message, payload: { seq: 1 } });
      await waitFor(() => a.received.length === 1, 'valid message from the raw peer');
      const frame = encodeFrame(Buffer.from([0x92, 0x03, 0x01]));
      frame[FRAME_HEADER_BYTES] ^= 0x01; // corrupt the body, keep the header
      raw.write(frame);
      await raw.closed;
      assert.equal(peerStats(a, 'evil').protocolErrors, 1);
      assert.ok(a.logger.lines.some((l) => l.level === 'warn' && l.fields['reason'] === 'checksum_mismatch'));
      assert.equal(a.received.length, 1);

      b.transport.setPeer('a', a.address);
      b.transport.send('a', { seq: 2 });
      await waitFor(() => a.received.length === 2, 'a still serves b');
    } finally {
      await closeAll(a, b);
    }
  });

  it('closes a connection whose frame decodes to garbage or an invalid payload', async () => {
    const a = await startNode<TestMessage>('a', {
      isMessage: (value: unknown): value is TestMessage =>
        typeof value === 'object' && value !== null && typeof (value as { seq?: unknown }).seq === 'number',
    });
    try {
      const garbage = await RawPeer.connect(a.address);
      await garbage.handshake('g', 'a');
      garbage.write(encodeFrame(Buffer.from([0xc1, 0xc1, 0xc1])));
      await garbage.closed;
      assert.ok(a.logger.lines.some((l) => l.fields['reason'] === 'malformed_envelope'));

      const invalid = await RawPeer.connect(a.address);
      await invalid.handshake('v', 'a');
      invalid.sendEnvelope({ type: EnvelopeType.Message, payload: { seq: 'not a number' } });
      await invalid.closed;
      assert.equal(a.received.length, 0);
      assert.equal(peerStats(a, 'v').protocolErrors, 1);

      const noHello = await RawPeer.connect(a.address);
      noHello.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      await noHello.closed;
      assert.ok(a.transport.stats().unidentifiedProtocolErrors >= 1);
    } finally {
      await closeAll(a);
    }
  });

  it('closes a connection announcing an oversize frame before buffering it', async () => {
    const a = await startNode<TestMessage>('a', { limits: { maxFrameBytes: 1024 } });
    try {
      // Before the handshake the limit is a few KiB, whatever the configured maximum.
      const early = await RawPeer.connect(a.address);
      const header = Buffer.alloc(FRAME_HEADER_BYTES);
      header.writeUInt32BE(500 * 1024 * 1024, 0);
      early.write(header);
      await early.closed;

      const raw = await RawPeer.connect(a.address);
      await raw.handshake('big', 'a');
      const big = encodeFrame(Buffer.alloc(2048, 0xc0));
      raw.write(big);
      await raw.closed;
      assert.equal(peerStats(a, 'big').protocolErrors, 1);
      assert.ok(a.logger.lines.some((l) => l.fields['reason'] === 'frame_too_large'));
    } finally {
      await closeAll(a);
    }
  });

  it('answers requests, and reports handler errors, timeouts and unknown peers', async () => {
    let release: (() => void) | undefined;
    const a = await startNode<TestMessage>('a');
    const b = await startNode<TestMessage>('b', {
      onRequest: async (from, request) => {
        if (request.seq === 13) throw Object.assign(new Error('unlucky'), { code: 'not_leader' });
        if (request.seq === 99) await new Promise<void>((resolve) => {
            release = resolve;
          });
        return { seq: request.seq * 2, data: Buffer.from(from) };
      },
    });
    try {
      a.transport.setPeer('b', b.address);
      const responses = await Promise.all([1, 2, 3].map((seq) => a.transport.request('b', { seq })));
      assert.deepEqual(
        responses.map((r) => r.seq),
        [2, 4, 6],
      );
      assert.deepEqual(responses[0]!.data, Buffer.from('a'));

      await assert.rejects(
        a.transport.request('b', { seq: 13 }),
        (e: unknown) => e instanceof TransportError && e.code === 'remote' && e.remoteCode === 'not_leader',
      );
      await assert.rejects(
        a.transport.request('b', { seq: 99 }, { timeoutMs: 200 }),
        (e: unknown) => e instanceof TransportError && e.code === 'timeout' && !e.certainlyNotExecuted,
      );
      release?.();
      await assert.rejects(
        a.transport.request('nobody', { seq: 1 }),
        (e: unknown) => e instanceof TransportError && e.code === 'unknown_peer' && e.certainlyNotExecuted,
      );
      // The late answer to the timed-out request is ignored; the connection stays usable.
      assert.equal((await a.transport.request('b', { seq: 5 })).seq, 10);
      assert.equal(a.transport.stats().requestTimeouts, 1);
      assert.equal(a.transport.stats().pendingRequests, 0);

      await assert.rejects(
        b.transport.request('a', { seq: 1 }),
        (e: unknown) => e instanceof TransportError && e.remoteCode === 'no_handler',
      );
    } finally {
      release?.();
      await closeAll(a, b);
    }
  });

  it('bounds pending requests and answers overloaded beyond the inbound limit', async () => {
    const a = await startNode<TestMessage>('a', { limits: { maxPendingRequests: 2 } });
    const b = await startNode<TestMessage>('b', {
      limits: { maxInboundRequests: 1 },
      onRequest: () => new Promise<TestMessage>(() => {}),
    });
    const c = await startNode<TestMessage>('c');
    try {
      a.transport.setPeer('b', b.address);
      const first = a.transport.request('b', { seq: 1 }, { timeoutMs: 60_000 });
      const second = a.transport.request('b', { seq: 2 }, { timeoutMs: 60_000 });
      await assert.rejects(
        a.transport.request('b', { seq: 3 }),
        (e: unknown) => e instanceof TransportError && e.code === 'overloaded' && e.certainlyNotExecuted,
      );
      // b handles one request at a time: the second is refused by b itself.
      await assert.rejects(
        second,
        (e: unknown) => e instanceof TransportError && e.remoteCode === 'overloaded',
      );
      assert.equal(a.transport.stats().pendingRequests, 1);
      assert.equal(b.transport.stats().inboundRequestsInFlight, 1);
      c.transport.setPeer('b', b.address);
      await assert.rejects(
        c.transport.request('b', { seq: 4 }),
        (e: unknown) => e instanceof TransportError && e.remoteCode === 'overloaded',
      );
      void first.catch(() => {});
    } finally {
      await closeAll(a, b, c);
    }
  });

  it('fails a pending request early when the peer restarts', async () => {
    const a = await startNode<TestMessage>('a');
    let b = await startNode<TestMessage>('b', { onRequest: () => new Promise<TestMessage>(() => {}) });
    const port = Number(b.address.split(':')[1]);
    try {
      a.transport.setPeer('b', b.address);
      const pending = a.transport.request('b', { seq: 1 }, { timeoutMs: 60_000 });
      await waitFor(() => peerStats(a, 'b').messagesSent === 1, 'request written');
      await b.transport.close();
      b = await startNode<TestMessage>('b', { port, onRequest: async (_from, r) => r });
      await assert.rejects(
        pending,
        (e: unknown) => e instanceof TransportError && e.code === 'peer_restarted',
      );
      assert.equal((await a.transport.request('b', { seq: 2 })).seq, 2);
    } finally {
      await closeAll(a, b);
    }
  });

  it('fails queued requests when closed, and refuses work afterwards', async () => {
    const port = await freePort();
    const a = await startNode<TestMessage>('a');
    a.transport.setPeer('b', `127.0.0.1:${port}`);
    const pending = a.transport.request('b', { seq: 1 });
    await a.transport.close();
    await assert.rejects(pending, (e: unknown) => e instanceof TransportError && e.code === 'closed');
    assert.equal(a.transport.send('b', { seq: 2 }), false);
    await assert.rejects(a.transport.request('b', { seq: 3 }), (e: unknown) => e instanceof TransportError);
  });

  it('takes a receiver registered later with listen(), and forgets a peer set to null', async () => {
    const { PeerTransport } = await import('../../src/transport/peer-transport.js');
    const late = new PeerTransport<TestMessage>({
      id: 'b',
      clusterId: 'test-cluster',
      listen: { host: '127.0.0.1', port: 0 },
    });
    const got: TestMessage[] = [];
    late.listen((_from, message) => got.push(message));
    assert.throws(() => late.listen(() => {}), /already registered/);
    const bound = await late.start();
    const a = await startNode<TestMessage>('a');
    try {
      a.transport.setPeerAddress('b', `127.0.0.1:${bound.port}`);
      a.transport.send('b', { seq: 1 });
      await waitFor(() => got.length === 1, 'delivery to the late receiver');
      a.transport.setPeerAddress('b', null);
      assert.equal(a.transport.send('b', { seq: 2 }), false);
      assert.equal(a.transport.stats().peers.length, 0);
    } finally {
      await Promise.all([late.close(), a.transport.close()]);
    }
  });

  it('rejects invalid ids in configuration', async () => {
    const { PeerTransport } = await import('../../src/transport/peer-transport.js');
    assert.throws(
      () =>
        new PeerTransport({
          id: 'bad id',
          clusterId: 'c',
          listen: { host: '127.0.0.1', port: 0 },
          onMessage: () => {},
        }),
      /node id/,
    );
    const a = await startNode('a');
    try {
      assert.throws(() => a.transport.setPeer('a', '127.0.0.1:1'), /own peer/);
      assert.throws(() => a.transport.setPeer('b', 'nohostport'), /host:port/);
      assert.equal(PROTOCOL_VERSION, 3);
    } finally {
      await a.transport.close();
    }
  });
});
