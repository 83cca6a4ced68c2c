/** Helpers shared by the transport tests: real transports on 127.0.0.1 and a raw peer socket. */
import { type Socket, connect } from 'node:net';
import {
  type Envelope,
  EnvelopeType,
  PROTOCOL_VERSION,
  decodeEnvelopes,
  encodeEnvelope,
} from '../../src/transport/envelope.js';
import { FrameDecoder, encodeFrame } from '../../src/transport/frame-codec.js';
import {
  PeerTransport,
  type PeerTransportOptions,
  type TransportLogger,
} from '../../src/transport/peer-transport.js';

export interface Received<M> {
  from: string;
  message: M;
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  message: string;
}

export class RecordingLogger implements TransportLogger {
  readonly lines: LogLine[] = [];
  debug(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'debug', fields, message });
  }
  info(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'info', fields, message });
  }
  warn(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'warn', fields, message });
  }
  error(fields: Record<string, unknown>, message: string): void {
    this.lines.push({ level: 'error', fields, message });
  }
}

export interface TestNode<M> {
  transport: PeerTransport<M>;
  received: Received<M>[];
  logger: RecordingLogger;
  address: string;
}

/** Starts a transport on 127.0.0.1 (port 0 unless given) that records what it receives. */
export async function startNode<M = unknown>(
  id: string,
  options: Partial<PeerTransportOptions<M, M, M>> & { port?: number } = {},
): Promise<TestNode<M>> {
  const received: Received<M>[] = [];
  const logger = new RecordingLogger();
  const transport = new PeerTransport<M>({
    id,
    clusterId: 'test-cluster',
    listen: { host: '127.0.0.1', port: options.port ?? 0 },
    reconnectInitialMs: 20,
    reconnectMaxMs: 200,
    logger,
    onMessage: (from, message) => received.push({ from, message }),
    ...options,
  });
  const bound = await transport.start();
  return { transport, received, logger, address: `127.0.0.1:${bound.port}` };
}

/** Polls until `condition` holds; generous timeout for a loaded machine. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function peerStats<M>(node: TestNode<M>, peer: string) {
  const stats = node.transport.stats().peers.find((p) => p.id === peer);
  if (!stats) throw new Error(`${node.transport.id} has no stats for ${peer}`);
  return stats;
}

/**
 * A hand-driven peer socket for feeding a transport bytes no real transport would send.
 * `closed` resolves when the transport hangs up.
 */
export class RawPeer {
  readonly socket: Socket;
  readonly envelopes: Envelope[] = [];
  readonly closed: Promise<void>;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      for (let body = this.decoder.next(); body; body = this.decoder.next()) {
        this.envelopes.push(...decodeEnvelopes(body));
      }
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  static async connect(address: string): Promise<RawPeer> {
    const [host, port] = address.split(':');
    const socket = connect({ host: host!, port: Number(port) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawPeer(socket);
  }

  /** Sends a hello as node `from` to node `to`, and waits for the answer. */
  async handshake(from: string, to: string, clusterId = 'test-cluster'): Promise<Envelope> {
    this.sendEnvelope({
      type: EnvelopeType.Hello,
      version: PROTOCOL_VERSION,
      clusterId,
      from,
      to,
      incarnation: 'raw-peer',
      maxFrameBytes: 1024 * 1024,
    });
    await waitFor(() => this.envelopes.length > 0, 'handshake answer');
    return this.envelopes[0]!;
  }

  sendEnvelope(envelope: Envelope): void {
    this.socket.write(encodeFrame(encodeEnvelope(envelope)));
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
