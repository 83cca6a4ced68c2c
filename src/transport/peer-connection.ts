/**
 * One TCP connection to a peer: owns the socket and its frame decoder, and reports decoded
 * envelopes and its end to the transport. The handshake and routing decisions live in
 * PeerTransport; this class only moves bytes and enforces frame limits.
 */
import type { Socket } from 'node:net';
import { type Envelope, EnvelopeError, decodeEnvelopes, encodeEnvelope } from './envelope.js';
import { FrameDecoder, FrameError, encodeFrame } from './frame-codec.js';

export type ConnectionDirection = 'inbound' | 'outbound';
export type ConnectionState = 'connecting' | 'handshaking' | 'open' | 'closed';

export interface ConnectionEvents {
  /** Envelopes of one frame, in order. May close the connection part-way; remaining ones are skipped. */
  onEnvelopes(connection: PeerConnection, envelopes: Envelope[]): void;
  /** A frame or envelope could not be decoded: the connection is being closed. */
  onProtocolError(connection: PeerConnection, reason: string, detail: string): void;
  /** The socket is gone (once per connection), with the first reason recorded. */
  onClosed(connection: PeerConnection, reason: string): void;
}

let nextConnectionSerial = 1;

export class PeerConnection {
  readonly serial = nextConnectionSerial++;
  state: ConnectionState;
  /** Known from the start for outbound connections, from the hello for inbound ones. */
  peerId: string | undefined;
  remoteIncarnation: string | undefined;
  /** The largest frame body the peer accepts (from its handshake). */
  peerMaxFrameBytes = 0;
  private readonly decoder: FrameDecoder;
  private closeReason: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  framesReceived = 0;
  bytesReceived = 0;

  constructor(
    readonly socket: Socket,
    readonly direction: ConnectionDirection,
    handshakeMaxFrameBytes: number,
    private readonly events: ConnectionEvents,
    peerId?: string,
  ) {
    this.peerId = peerId;
    this.state = direction === 'outbound' ? 'connecting' : 'handshaking';
    this.decoder = new FrameDecoder(handshakeMaxFrameBytes);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: Error) => {
      this.closeReason ??= `socket error: ${error.message}`;
    });
    socket.on('close', () => this.finish(this.closeReason ?? 'closed by peer'));
  }

  /** A method, not a field test, so TypeScript does not narrow `state` across the handlers that change it. */
  isClosed(): boolean {
    return this.state === 'closed';
  }

  get remoteAddress(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  /** Arms a deadline (connect or handshake); clear it with clearDeadline. */
  setDeadline(ms: number, reason: string): void {
    this.clearDeadline();
    this.timer = setTimeout(() => this.close(reason), ms);
  }

  clearDeadline(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Switches to the open state with the frame limit used after the handshake. */
  open(maxFrameBytes: number, peerMaxFrameBytes: number): void {
    this.clearDeadline();
    this.state = 'open';
    this.peerMaxFrameBytes = peerMaxFrameBytes;
    this.decoder.setMaxBodyBytes(maxFrameBytes);
  }

  /** Writes one envelope in its own frame (handshake traffic). */
  sendEnvelope(envelope: Envelope): void {
    if (this.state === 'closed') return;
    this.socket.write(encodeFrame(encodeEnvelope(envelope)));
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Bytes accepted by write() but not yet handed to the kernel. */
  get pendingWriteBytes(): number {
    return this.socket.writableLength;
  }

  /** Closes at once; for a reject, the reject frame is flushed first (end, then destroy shortly after). */
  close(reason: string, options: { graceful?: boolean } = {}): void {
    if (this.state === 'closed') return;
    this.closeReason ??= reason;
    if (options.graceful) {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
      this.finish(reason);
    } else {
      this.socket.destroy();
      this.finish(reason);
    }
  }

  private finish(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearDeadline();
    this.events.onClosed(this, this.closeReason ?? reason);
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.bytesReceived += chunk.length;
    this.decoder.push(chunk);
    // One frame at a time: handling a frame may open the connection (raising the frame limit) or
    // close it (the rest is then ignored).
    while (!this.isClosed()) {
      let envelopes: Envelope[];
      try {
        const body = this.decoder.next();
        if (!body) return;
        envelopes = decodeEnvelopes(body);
      } catch (error) {
        this.protocolError(error);
        return;
      }
      this.framesReceived++;
      this.events.onEnvelopes(this, envelopes);
    }
  }

  private protocolError(error: unknown): void {
    const reason =
      error instanceof FrameError
        ? error.reason
        : error instanceof EnvelopeError
          ? 'malformed_envelope'
          : 'decode_failed';
    const detail = error instanceof Error ? error.message : String(error);
    this.events.onProtocolError(this, reason, detail);
    this.close(`${reason}: ${detail}`);
  }
}
