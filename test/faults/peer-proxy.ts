/**
 * A fault-injecting TCP proxy in front of one node's peer port (portable, no root, no iptables).
 *
 * Every node advertises its proxy's address as its peer address, so every peer connection to node T
 * runs through T's proxy. The transport keeps ONE connection per node pair (the lower id's dial
 * wins), carrying both directions, so a directed cut "A cannot reach B" must act on one direction
 * of whichever connection joins A and B. The proxy therefore understands the transport's framing
 * (u32 length | u32 crc32c | body, src/transport/frame-codec.ts): it learns the dialer's id from
 * the hello envelope in the first frame, and afterwards forwards or drops whole frames per
 * direction according to the shared LinkFilter. Dropping whole frames looks to the nodes like
 * message loss (Raft tolerates it), never like a corrupt stream. The handshake frames always pass:
 * a cut link looks like iptables DROP after the TCP handshake, i.e. the connection exists but
 * nothing arrives.
 */
import { type Server, type Socket, connect, createServer } from 'node:net';
import { decodeEnvelopes } from '../../src/transport/envelope.js';
import { EnvelopeType } from '../../src/transport/envelope.js';
import { FRAME_BODY_HARD_LIMIT, FRAME_HEADER_BYTES } from '../../src/transport/frame-codec.js';

/** Which directed node-to-node links are cut. Shared by all proxies of a cluster. */
export class LinkFilter {
  private readonly cut = new Set<string>();

  /** Drops every frame `from` sends to `to` (one direction only). */
  block(from: string, to: string): void {
    if (from === to) throw new Error(`LinkFilter.block: ${from} -> itself`);
    this.cut.add(`${from}\u0000${to}`);
  }

  isBlocked(from: string, to: string): boolean {
    return this.cut.has(`${from}\u0000${to}`);
  }

  healAll(): void {
    this.cut.clear();
  }

  /** The cut links as "a->b" strings, sorted (for logs). */
  describe(): string[] {
    return [...this.cut].map((k) => k.replace('\u0000', '->')).sort();
  }
}

/** Splits a byte stream into whole transport frames; refuses a length beyond the hard limit. */
class FrameSplitter {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Appends `chunk`; returns the frames now complete (header included), in order. */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Buffer[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) break;
      const head = this.chunks.length === 1 ? this.chunks[0]! : this.flatten();
      const bodyLength = head.readUInt32BE(0);
      if (bodyLength === 0 || bodyLength > FRAME_BODY_HARD_LIMIT) throw new Error(`frame body length ${bodyLength} out of range`);
      const total = FRAME_HEADER_BYTES + bodyLength;
      if (this.buffered < total) break;
      const all = this.flatten();
      frames.push(all.subarray(0, total));
      const rest = all.subarray(total);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
    }
    return frames;
  }

  private flatten(): Buffer {
    if (this.chunks.length !== 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0]!;
  }
}

export interface ProxyCounters {
  connections: number;
  framesForwarded: number;
  framesDropped: number;
}

export class PeerProxy {
  readonly counters: ProxyCounters = { connections: 0, framesForwarded: 0, framesDropped: 0 };
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;

  /**
   * @param target the id of the node behind this proxy
   * @param targetPort the node's real peer port on 127.0.0.1
   */
  constructor(
    readonly target: string,
    private readonly targetPort: number,
    private readonly filter: LinkFilter,
  ) {}

  get port(): number {
    if (this.boundPort === 0) throw new Error(`proxy for ${this.target} is not listening`);
    return this.boundPort;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Listens on `port` (0: any free port) on 127.0.0.1. */
  async listen(port = 0): Promise<number> {
    const server = createServer((socket) => this.onConnection(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy: no TCP address');
    this.boundPort = address.port;
    return this.boundPort;
  }

  /** Closes the listener and every proxied connection. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private onConnection(downstream: Socket): void {
    this.counters.connections++;
    const upstream = connect({ host: '127.0.0.1', port: this.targetPort });
    this.sockets.add(downstream);
    this.sockets.add(upstream);
    downstream.setNoDelay(true);
    upstream.setNoDelay(true);
    /** The dialer's node id, from its hello; '' until then. */
    let dialer = '';
    let dialerFrames = 0;
    let targetFrames = 0;
    const fromDialer = new FrameSplitter();
    const fromTarget = new FrameSplitter();
    const teardown = () => {
      downstream.destroy();
      upstream.destroy();
      this.sockets.delete(downstream);
      this.sockets.delete(upstream);
    };
    downstream.on('error', teardown);
    upstream.on('error', teardown);
    downstream.on('close', teardown);
    upstream.on('close', teardown);
    downstream.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = fromDialer.push(chunk);
      } catch {
        teardown();
        return;
      }
      for (const frame of frames) {
        dialerFrames++;
        if (dialerFrames === 1) {
          dialer = helloSender(frame);
          this.forward(upstream, frame);
        } else if (dialer !== '' && this.filter.isBlocked(dialer, this.target)) {
          this.counters.framesDropped++;
        } else {
          this.forward(upstream, frame);
        }
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = fromTarget.push(chunk);
      } catch {
        teardown();
        return;
      }
      for (const frame of frames) {
        targetFrames++;
        if (targetFrames > 1 && dialer !== '' && this.filter.isBlocked(this.target, dialer)) {
          this.counters.framesDropped++;
        } else {
          this.forward(downstream, frame);
        }
      }
    });
  }

  private forward(to: Socket, frame: Buffer): void {
    this.counters.framesForwarded++;
    if (!to.destroyed) to.write(frame);
  }
}

/** The `from` of a hello frame, or '' when the frame is not a hello (the node will refuse it). */
function helloSender(frame: Buffer): string {
  try {
    const envelopes = decodeEnvelopes(frame.subarray(FRAME_HEADER_BYTES));
    const hello = envelopes[0];
    return hello !== undefined && hello.type === EnvelopeType.Hello ? hello.from : '';
  } catch {
    return '';
  }
}
