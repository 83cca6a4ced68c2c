/**
 * The fault proxy: learns the dialer from the hello frame, passes the handshake frames always, and
 * drops whole frames in the cut direction only (the other direction of the same connection flows).
 */
import assert from 'node:assert/strict';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { EnvelopeType, PROTOCOL_VERSION, encodeEnvelope } from '../../src/transport/envelope.js';
import { encodeFrame } from '../../src/transport/frame-codec.js';
import { LinkFilter, PeerProxy } from './peer-proxy.js';

const hello = encodeFrame(
  encodeEnvelope({ type: EnvelopeType.Hello, version: PROTOCOL_VERSION, clusterId: 'c', from: 'a', to: 'b', incarnation: 'i', maxFrameBytes: 1 << 20 }),
);
const frame = (text: string) => encodeFrame(Buffer.from(text));

/** Collects what a socket receives. */
function collector(socket: Socket): { bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return { bytes: () => Buffer.concat(chunks) };
}

const settle = () => new Promise((r) => setTimeout(r, 200));

describe('PeerProxy', () => {
  let target: Server;
  let targetSide: Promise<Socket>;
  const filter = new LinkFilter();
  let proxy: PeerProxy;

  before(async () => {
    let accept: (s: Socket) => void = () => {};
    targetSide = new Promise((r) => {
      accept = r;
    });
    target = createServer((s) => accept(s));
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
    const port = (target.address() as { port: number }).port;
    proxy = new PeerProxy('b', port, filter);
    await proxy.listen();
  });

  after(async () => {
    await proxy.close();
    await new Promise<void>((r) => target.close(() => r()));
  });

  it('drops one direction of a connection, frame by frame, and heals', async () => {
    const dialer = connect({ host: '127.0.0.1', port: proxy.port });
    const fromTarget = collector(dialer);
    const acceptor = await targetSide;
    const fromDialer = collector(acceptor);
    filter.block('a', 'b');
    // The hello passes even though a->b is cut; the next frame a->b is dropped, whole.
    dialer.write(Buffer.concat([hello, frame('dropped')]));
    acceptor.write(Buffer.concat([frame('welcome'), frame('b-to-a')]));
    await settle();
    assert.deepEqual(fromDialer.bytes(), hello);
    assert.deepEqual(fromTarget.bytes(), Buffer.concat([frame('welcome'), frame('b-to-a')]));
    // A frame split across writes is forwarded whole once the link heals.
    filter.healAll();
    const f = frame('after heal');
    dialer.write(f.subarray(0, 5));
    await settle();
    dialer.write(f.subarray(5));
    await settle();
    assert.deepEqual(fromDialer.bytes(), Buffer.concat([hello, f]));
    filter.block('b', 'a');
    acceptor.write(frame('lost'));
    dialer.write(frame('arrives'));
    await settle();
    assert.deepEqual(fromTarget.bytes(), Buffer.concat([frame('welcome'), frame('b-to-a')]));
    assert.deepEqual(fromDialer.bytes(), Buffer.concat([hello, f, frame('arrives')]));
    assert.equal(proxy.counters.framesDropped, 2);
    dialer.destroy();
    acceptor.destroy();
  });
});
