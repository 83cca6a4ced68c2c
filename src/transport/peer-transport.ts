/**
 * Peer transport: one TCP connection per pair of nodes, carrying framed, checksummed,
 * msgpack-encoded envelopes in both directions (DESIGN.md §2, §3 "messages to the same peer are
 * coalesced").
 *
 * - Handshake: the dialer sends hello (cluster id, its id, the id it means to reach, its
 *   incarnation); the acceptor answers welcome or reject. A cluster id or target id mismatch is
 *   rejected, so a misconfigured node never joins the wrong cluster's traffic.
 * - One connection per pair: when both nodes dial each other at once, the dial of the node with
 *   the lower id wins (compared as strings); see `acceptInbound`.
 * - Sends go into a bounded per-peer queue (drop-oldest, counted: Raft tolerates loss) and are
 *   flushed once the current callback is done (a microtask) as one socket write, packed into as
 *   few frames as the peer's maximum frame size allows. The node hands over a whole Ready's
 *   messages in one callback, so they still share a write; waiting for the next loop turn
 *   (setImmediate) instead put a full event-loop iteration on every hop of the commit path.
 * - Lost connections are redialed with exponential backoff and jitter.
 * - Requests (correlation id, timeout) carry client requests a follower forwards to the leader.
 *
 * Everything read from a socket is untrusted: oversize, corrupt or malformed frames close that
 * connection with a logged reason and a counter, never the process.
 */
import { randomBytes } from 'node:crypto';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { type HostPort, formatHostPort, parseHostPort } from './address.js';
import { Backoff } from './backoff.js';
import { type Envelope, EnvelopeType, PROTOCOL_VERSION, clipText, encodeEnvelope } from './envelope.js';
import { TransportError } from './errors.js';
import { FRAME_BODY_HARD_LIMIT, FRAME_HEADER_BYTES, frameHeader } from './frame-codec.js';
import { type PendingRequest, PendingRequests } from './pending-requests.js';
import { ID_RULE, isValidId } from './identifiers.js';
import { PeerConnection } from './peer-connection.js';
import { type QueuedEnvelope, SendQueue } from './send-queue.js';

export interface TransportLogger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

const silentLogger: TransportLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface TransportLimits {
  /** Largest frame body accepted or sent (default 16 MiB). */
  maxFrameBytes: number;
  /** Per-peer send queue bound in messages (default 4096). */
  maxQueueMessages: number;
  /** Per-peer send queue bound in bytes (default 64 MiB). */
  maxQueueBytes: number;
  /** Bytes buffered in a socket beyond which flushing waits for 'drain' (default 8 MiB). */
  maxSocketBufferBytes: number;
  /** Requests this node awaits answers to, over all peers (default 10000). */
  maxPendingRequests: number;
  /** Requests from peers being handled at once (default 1024); more are answered 'overloaded'. */
  maxInboundRequests: number;
  /** Peers known at once, including ones that only dialed in (default 256). */
  maxPeers: number;
  /** Inbound connections still in their handshake (default 64); more are closed at once. */
  maxHandshakingConnections: number;
}

export interface PeerTransportOptions<M, Req, Res> {
  id: string;
  clusterId: string;
  /** Where to listen for peers; port 0 picks an ephemeral port. */
  listen: HostPort;
  /** Initial address book: peer id → host:port. */
  peers?: Iterable<readonly [string, string]>;
  /** The receiver of messages; may instead be registered later with listen(). */
  onMessage?: (from: string, message: M) => void;
  /** Answers a peer's request; a rejection travels back as a 'remote' TransportError. */
  onRequest?: (from: string, request: Req) => Promise<Res>;
  /** Checks decoded payloads (untrusted input); a failing message closes the connection. */
  isMessage?: (value: unknown) => value is M;
  isRequest?: (value: unknown) => value is Req;
  isResponse?: (value: unknown) => value is Res;
  limits?: Partial<TransportLimits>;
  connectTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  defaultRequestTimeoutMs?: number;
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  logger?: TransportLogger;
  /** Injected for deterministic backoff in tests. */
  random?: () => number;
}

/** Cumulative counts for one peer (for metrics). */
export interface PeerCounters {
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
  framesReceived: number;
  /** Socket writes (one per flush, however many messages it carried). */
  writes: number;
  /** Messages refused or dropped for exceeding the maximum frame (ours or the peer's). */
  droppedTooLarge: number;
  connects: number;
  connectFailures: number;
  disconnects: number;
  handshakeRejects: number;
  protocolErrors: number;
}

export interface PeerStats extends PeerCounters {
  id: string;
  address: string | undefined;
  connected: boolean;
  direction: 'inbound' | 'outbound' | undefined;
  /** Current size of the send queue. */
  queueMessages: number;
  queueBytes: number;
  /** Oldest messages dropped because the send queue was full. */
  droppedQueueFull: number;
}

export interface TransportStats {
  peers: PeerStats[];
  pendingRequests: number;
  inboundRequestsInFlight: number;
  requestTimeouts: number;
  /** Frames or envelopes rejected on connections whose peer was not yet identified. */
  unidentifiedProtocolErrors: number;
  /** Inbound handshakes refused (cluster or target mismatch, duplicates, limits). */
  rejectedHandshakes: number;
}

const DEFAULT_LIMITS: TransportLimits = {
  maxFrameBytes: 16 * 1024 * 1024,
  maxQueueMessages: 4096,
  maxQueueBytes: 64 * 1024 * 1024,
  maxSocketBufferBytes: 8 * 1024 * 1024,
  maxPendingRequests: 10_000,
  maxInboundRequests: 1024,
  maxPeers: 256,
  maxHandshakingConnections: 64,
};

/** Handshake frames are tiny; an unidentified connection may not make us buffer more than this. */
const HANDSHAKE_MAX_FRAME_BYTES = 4096;

interface PeerLink {
  id: string;
  address: HostPort | undefined;
  active: PeerConnection | undefined;
  dialing: PeerConnection | undefined;
  queue: SendQueue;
  flushScheduled: boolean;
  reconnectTimer: NodeJS.Timeout | undefined;
  backoff: Backoff;
  /** Incarnation seen at the last handshake; a change means the peer restarted. */
  incarnation: string | undefined;
  counters: PeerCounters;
}

function zeroCounters(): PeerCounters {
  return {
    messagesSent: 0,
    messagesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    writes: 0,
    droppedTooLarge: 0,
    connects: 0,
    connectFailures: 0,
    disconnects: 0,
    handshakeRejects: 0,
    protocolErrors: 0,
  };
}

function positiveInteger(name: string, value: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new Error(`PeerTransport: ${name} must be an integer in [1, ${max}], got ${value}`);
  }
  return value;
}

export class PeerTransport<M, Req = M, Res = M> {
  readonly id: string;
  readonly clusterId: string;
  /** Random per process start; peers detect our restarts by it. */
  readonly incarnation = randomBytes(8).toString('hex');
  private readonly limits: TransportLimits;
  private readonly logger: TransportLogger;
  private readonly links = new Map<string, PeerLink>();
  private readonly handshaking = new Set<PeerConnection>();
  private readonly pending: PendingRequests<Res>;
  private inboundRequestsInFlight = 0;
  private unidentifiedProtocolErrors = 0;
  private rejectedHandshakes = 0;
  private server: Server | undefined;
  private closed = false;
  private deliver: ((from: string, message: M) => void) | undefined;
  private readonly connectTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly defaultRequestTimeoutMs: number;
  private readonly reconnectInitialMs: number;
  private readonly reconnectMaxMs: number;

  constructor(private readonly options: PeerTransportOptions<M, Req, Res>) {
    if (!isValidId(options.id))
      throw new Error(`PeerTransport: node id ${JSON.stringify(options.id)}: ${ID_RULE}`);
    if (!isValidId(options.clusterId)) {
      throw new Error(`PeerTransport: cluster id ${JSON.stringify(options.clusterId)}: ${ID_RULE}`);
    }
    this.id = options.id;
    this.deliver = options.onMessage;
    this.clusterId = options.clusterId;
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    positiveInteger('maxFrameBytes', limits.maxFrameBytes, FRAME_BODY_HARD_LIMIT);
    positiveInteger('maxQueueMessages', limits.maxQueueMessages);
    positiveInteger('maxQueueBytes', limits.maxQueueBytes);
    positiveInteger('maxSocketBufferBytes', limits.maxSocketBufferBytes);
    positiveInteger('maxPendingRequests', limits.maxPendingRequests);
    positiveInteger('maxInboundRequests', limits.maxInboundRequests);
    positiveInteger('maxPeers', limits.maxPeers);
    positiveInteger('maxHandshakingConnections', limits.maxHandshakingConnections);
    this.limits = limits;
    this.pending = new PendingRequests<Res>(limits.maxPendingRequests);
    this.logger = options.logger ?? silentLogger;
    this.connectTimeoutMs = positiveInteger('connectTimeoutMs', options.connectTimeoutMs ?? 3000);
    this.handshakeTimeoutMs = positiveInteger('handshakeTimeoutMs', options.handshakeTimeoutMs ?? 5000);
    this.defaultRequestTimeoutMs = positiveInteger(
      'defaultRequestTimeoutMs',
      options.defaultRequestTimeoutMs ?? 5000,
    );
    this.reconnectInitialMs = positiveInteger('reconnectInitialMs', options.reconnectInitialMs ?? 50);
    this.reconnectMaxMs = positiveInteger('reconnectMaxMs', options.reconnectMaxMs ?? 3000);
    for (const [peerId, address] of options.peers ?? []) this.setPeer(peerId, address);
  }

  /** Starts listening; resolves with the bound address (the real port when 0 was asked for). */
  async start(): Promise<HostPort> {
    if (this.server) throw new Error('PeerTransport: already started');
    if (this.closed) throw new Error('PeerTransport: closed');
    const server = createServer((socket) => this.onInboundSocket(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.listen.port, this.options.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.logger.error({ err: error.message }, 'peer listener error'));
    const address = server.address() as AddressInfo;
    this.logger.info({ address: `${address.address}:${address.port}` }, 'peer transport listening');
    return { host: address.address, port: address.port };
  }

  /** The listener's address (after start). */
  get listenAddress(): HostPort | undefined {
    const address = this.server?.address();
    return address && typeof address === 'object' ? { host: address.address, port: address.port } : undefined;
  }

  /** Registers the message receiver (once), when it was not given to the constructor. */
  listen(deliver: (from: string, message: M) => void): void {
    if (this.deliver) throw new Error('PeerTransport: a message receiver is already registered');
    this.deliver = deliver;
  }

  /** setPeer / removePeer in one call: null forgets the peer. */
  setPeerAddress(peerId: string, address: string | null): void {
    if (address === null) this.removePeer(peerId);
    else this.setPeer(peerId, address);
  }

  /** Adds or updates a peer's dialable address (host:port). */
  setPeer(peerId: string, address: string): void {
    if (!isValidId(peerId)) throw new Error(`PeerTransport: peer id ${JSON.stringify(peerId)}: ${ID_RULE}`);
    if (peerId === this.id) throw new Error('PeerTransport: a node is not its own peer');
    const parsed = parseHostPort(address);
    const link = this.linkFor(peerId);
    if (!link) throw new Error(`PeerTransport: more than ${this.limits.maxPeers} peers`);
    const changed = link.address && formatHostPort(link.address) !== formatHostPort(parsed);
    link.address = parsed;
    if (changed && link.active?.direction === 'outbound') link.active.close('peer address changed');
    if (changed && link.dialing) link.dialing.close('peer address changed');
  }

  /** Forgets a peer: closes its connection, drops its queue, fails requests awaiting it. */
  removePeer(peerId: string): void {
    const link = this.links.get(peerId);
    if (!link) return;
    this.links.delete(peerId);
    if (link.reconnectTimer) clearTimeout(link.reconnectTimer);
    link.active?.close('peer removed');
    link.dialing?.close('peer removed');
    link.queue.clear('closed');
    this.pending.failWhere((p) => p.peer === peerId, 'closed', 'peer removed');
  }

  /**
   * Queues a message for `to`; it is written on the next event-loop turn together with everything
   * else queued for that peer. Returns false when the message was not queued (unknown peer, or
   * larger than the maximum frame); a full queue drops its oldest entries instead.
   */
  send(to: string, message: M): boolean {
    if (this.closed) return false;
    const link = this.links.get(to);
    if (!link) return false;
    const bytes = encodeEnvelope({ type: EnvelopeType.Message, payload: message });
    if (bytes.length > this.limits.maxFrameBytes || bytes.length > this.limits.maxQueueBytes) {
      link.counters.droppedTooLarge++;
      this.logger.warn({ peer: to, bytes: bytes.length }, 'message larger than the maximum frame dropped');
      return false;
    }
    this.enqueue(link, { bytes });
    return true;
  }

  /**
   * Sends a request and resolves with the peer's response. Rejects with a TransportError: see its
   * codes for which failures guarantee the request was not executed.
   */
  request(to: string, request: Req, options: { timeoutMs?: number } = {}): Promise<Res> {
    const timeoutMs = positiveInteger('timeoutMs', options.timeoutMs ?? this.defaultRequestTimeoutMs);
    if (this.closed) return Promise.reject(new TransportError('closed', 'transport is closed', to));
    const link = this.links.get(to);
    if (!link) {
      return Promise.reject(new TransportError('unknown_peer', `unknown peer ${JSON.stringify(to)}`, to));
    }
    let pending: { request: PendingRequest<Res>; response: Promise<Res> };
    try {
      pending = this.pending.open(to, timeoutMs);
    } catch (error) {
      return Promise.reject(error);
    }
    const { request: entry, response } = pending;
    const bytes = encodeEnvelope({ type: EnvelopeType.Request, id: entry.id, payload: request });
    if (bytes.length > this.limits.maxFrameBytes || bytes.length > this.limits.maxQueueBytes) {
      link.counters.droppedTooLarge++;
      const limit = this.limits.maxFrameBytes;
      const message = `request of ${bytes.length} bytes exceeds the maximum frame of ${limit} bytes`;
      this.pending.reject(entry.id, new TransportError('too_large', message, to));
      return response;
    }
    this.enqueue(link, {
      bytes,
      onWrite: () => {
        entry.writtenTo = link.active?.remoteIncarnation;
      },
      onDrop: (reason) =>
        this.pending.reject(
          entry.id,
          reason === 'queue_full'
            ? new TransportError('dropped', `send queue to ${to} overflowed`, to)
            : reason === 'too_large'
              ? new TransportError('too_large', `request larger than ${to} accepts`, to)
              : new TransportError('closed', 'transport closed', to),
        ),
    });
    return response;
  }

  stats(): TransportStats {
    const peers: PeerStats[] = [];
    for (const link of this.links.values()) {
      peers.push({
        id: link.id,
        address: link.address ? formatHostPort(link.address) : undefined,
        connected: link.active?.state === 'open',
        direction: link.active?.direction,
        queueMessages: link.queue.length,
        queueBytes: link.queue.bytes,
        droppedQueueFull: link.queue.droppedQueueFull,
        ...link.counters,
        // The open connection's receive counts join the link's when it closes.
        bytesReceived: link.counters.bytesReceived + (link.active?.bytesReceived ?? 0),
        framesReceived: link.counters.framesReceived + (link.active?.framesReceived ?? 0),
      });
    }
    return {
      peers,
      pendingRequests: this.pending.size,
      inboundRequestsInFlight: this.inboundRequestsInFlight,
      requestTimeouts: this.pending.timeouts,
      unidentifiedProtocolErrors: this.unidentifiedProtocolErrors,
      rejectedHandshakes: this.rejectedHandshakes,
    };
  }

  /** Stops listening, closes every connection, drops queues and fails pending requests. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) {
      if (link.reconnectTimer) clearTimeout(link.reconnectTimer);
      link.reconnectTimer = undefined;
      link.active?.close('transport closing');
      link.dialing?.close('transport closing');
      link.queue.clear('closed');
    }
    for (const connection of this.handshaking) connection.close('transport closing');
    this.pending.failWhere(() => true, 'closed', 'transport closed');
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ---- links and dialing ----

  private linkFor(peerId: string): PeerLink | undefined {
    let link = this.links.get(peerId);
    if (link) return link;
    if (this.links.size >= this.limits.maxPeers) return undefined;
    link = {
      id: peerId,
      address: undefined,
      active: undefined,
      dialing: undefined,
      queue: new SendQueue(this.limits.maxQueueMessages, this.limits.maxQueueBytes),
      flushScheduled: false,
      reconnectTimer: undefined,
      backoff: new Backoff({
        initialMs: this.reconnectInitialMs,
        maxMs: Math.max(this.reconnectInitialMs, this.reconnectMaxMs),
        random: this.options.random,
      }),
      incarnation: undefined,
      counters: zeroCounters(),
    };
    this.links.set(peerId, link);
    return link;
  }

  private enqueue(link: PeerLink, entry: QueuedEnvelope): void {
    link.queue.push(entry);
    if (link.active?.state === 'open') this.scheduleFlush(link);
    else this.ensureDialing(link);
  }

  private ensureDialing(link: PeerLink): void {
    if (this.closed || link.active || link.dialing || link.reconnectTimer || !link.address) return;
    this.dial(link);
  }

  private scheduleReconnect(link: PeerLink): void {
    if (this.closed || link.active || link.dialing || link.reconnectTimer || !link.address) return;
    if (this.links.get(link.id) !== link) return;
    const delay = link.backoff.next();
    link.reconnectTimer = setTimeout(() => {
      link.reconnectTimer = undefined;
      this.ensureDialing(link);
    }, delay);
  }

  private dial(link: PeerLink): void {
    const address = link.address!;
    const socket: Socket = connect({ host: address.host, port: address.port });
    const connection = new PeerConnection(
      socket,
      'outbound',
      HANDSHAKE_MAX_FRAME_BYTES,
      this.connectionEvents,
      link.id,
    );
    link.dialing = connection;
    connection.setDeadline(this.connectTimeoutMs, `connect timeout after ${this.connectTimeoutMs} ms`);
    socket.once('connect', () => {
      if (connection.state === 'closed') return;
      connection.state = 'handshaking';
      connection.setDeadline(
        this.handshakeTimeoutMs,
        `no handshake answer within ${this.handshakeTimeoutMs} ms`,
      );
      connection.sendEnvelope({
        type: EnvelopeType.Hello,
        version: PROTOCOL_VERSION,
        clusterId: this.clusterId,
        from: this.id,
        to: link.id,
        incarnation: this.incarnation,
        maxFrameBytes: this.limits.maxFrameBytes,
      });
    });
  }

  private onInboundSocket(socket: Socket): void {
    if (this.closed || this.handshaking.size >= this.limits.maxHandshakingConnections) {
      this.rejectedHandshakes++;
      socket.destroy();
      return;
    }
    const connection = new PeerConnection(
      socket,
      'inbound',
      HANDSHAKE_MAX_FRAME_BYTES,
      this.connectionEvents,
    );
    this.handshaking.add(connection);
    connection.setDeadline(this.handshakeTimeoutMs, `no hello within ${this.handshakeTimeoutMs} ms`);
  }

  private readonly connectionEvents = {
    onEnvelopes: (connection: PeerConnection, envelopes: Envelope[]) => {
      for (const envelope of envelopes) {
        if (connection.state === 'closed') return;
        if (connection.state === 'open') this.onOpenEnvelope(connection, envelope);
        else if (connection.direction === 'inbound') this.onHello(connection, envelope);
        else this.onHandshakeAnswer(connection, envelope);
      }
    },
    onProtocolError: (connection: PeerConnection, reason: string, detail: string) => {
      const link = connection.peerId ? this.links.get(connection.peerId) : undefined;
      if (link && connection.state === 'open') link.counters.protocolErrors++;
      else this.unidentifiedProtocolErrors++;
      this.logger.warn(
        { peer: connection.peerId, remote: connection.remoteAddress, reason, detail },
        'closing peer connection: invalid frame',
      );
    },
    onClosed: (connection: PeerConnection, reason: string) => this.onConnectionClosed(connection, reason),
  };

  private onConnectionClosed(connection: PeerConnection, reason: string): void {
    this.handshaking.delete(connection);
    const link = connection.peerId ? this.links.get(connection.peerId) : undefined;
    if (!link) return;
    if (link.active === connection) {
      link.active = undefined;
      link.counters.disconnects++;
      if (!this.closed) this.logger.info({ peer: link.id, reason }, 'peer connection lost');
    } else if (link.dialing === connection) {
      link.dialing = undefined;
      link.counters.connectFailures++;
      this.logger.debug({ peer: link.id, reason }, 'dial failed');
    } else {
      return;
    }
    link.counters.bytesReceived += connection.bytesReceived;
    link.counters.framesReceived += connection.framesReceived;
    this.scheduleReconnect(link);
  }

  // ---- handshake ----

  private reject(connection: PeerConnection, reason: string, message: string): void {
    this.rejectedHandshakes++;
    this.logger.warn(
      { remote: connection.remoteAddress, peer: connection.peerId, reason, message },
      'peer handshake rejected',
    );
    connection.sendEnvelope({ type: EnvelopeType.Reject, reason, message: clipText(message) });
    connection.close(`rejected: ${reason}`, { graceful: true });
  }

  /** An inbound connection's first envelope must be a valid hello. */
  private onHello(connection: PeerConnection, envelope: Envelope): void {
    if (envelope.type !== EnvelopeType.Hello) {
      this.unidentifiedProtocolErrors++;
      connection.close(`expected hello, got envelope type ${envelope.type}`);
      return;
    }
    if (envelope.version !== PROTOCOL_VERSION) {
      this.reject(
        connection,
        'protocol_version',
        `protocol version ${envelope.version} is not ${PROTOCOL_VERSION}`,
      );
      return;
    }
    if (envelope.clusterId !== this.clusterId) {
      this.reject(
        connection,
        'cluster_mismatch',
        `cluster id ${JSON.stringify(envelope.clusterId)} does not match ${JSON.stringify(this.clusterId)}`,
      );
      return;
    }
    if (envelope.to !== this.id) {
      this.reject(
        connection,
        'wrong_node',
        `this is node ${JSON.stringify(this.id)}, not ${JSON.stringify(envelope.to)}`,
      );
      return;
    }
    if (envelope.from === this.id) {
      this.reject(connection, 'invalid_hello', `a peer claims this node's own id ${JSON.stringify(this.id)}`);
      return;
    }
    const link = this.linkFor(envelope.from);
    if (!link) {
      this.reject(connection, 'too_many_peers', `more than ${this.limits.maxPeers} peers`);
      return;
    }
    connection.peerId = envelope.from;
    // One connection per pair. The lower id's dial wins a simultaneous dial; a new dial from the peer
    // otherwise replaces what we had, since the peer only dials when it holds no connection to us
    // (its old one died or it restarted).
    const ourDialWins = this.id < envelope.from;
    if (link.dialing && ourDialWins) {
      link.counters.handshakeRejects++;
      this.reject(connection, 'duplicate', 'simultaneous dial: the lower id dial wins');
      return;
    }
    const active = link.active;
    if (
      active &&
      active.direction === 'outbound' &&
      ourDialWins &&
      active.remoteIncarnation === envelope.incarnation
    ) {
      link.counters.handshakeRejects++;
      this.reject(connection, 'duplicate', 'a connection dialed by the lower id already exists');
      return;
    }
    this.handshaking.delete(connection);
    link.dialing?.close('superseded by the peer dial');
    active?.close('replaced by a newer connection from the peer');
    connection.sendEnvelope({
      type: EnvelopeType.Welcome,
      version: PROTOCOL_VERSION,
      clusterId: this.clusterId,
      from: this.id,
      incarnation: this.incarnation,
      maxFrameBytes: this.limits.maxFrameBytes,
    });
    this.establish(link, connection, envelope.incarnation, envelope.maxFrameBytes);
  }

  /** An outbound connection's first envelope must be welcome or reject. */
  private onHandshakeAnswer(connection: PeerConnection, envelope: Envelope): void {
    const link = this.links.get(connection.peerId!);
    if (envelope.type === EnvelopeType.Reject) {
      if (link) link.counters.handshakeRejects++;
      const level = envelope.reason === 'duplicate' ? 'debug' : 'warn';
      this.logger[level](
        { peer: connection.peerId, reason: envelope.reason, message: envelope.message },
        'peer refused our dial',
      );
      connection.close(`refused by peer: ${envelope.reason}`);
      return;
    }
    if (envelope.type !== EnvelopeType.Welcome) {
      if (link) link.counters.protocolErrors++;
      connection.close(`expected welcome, got envelope type ${envelope.type}`);
      return;
    }
    const problem =
      envelope.version !== PROTOCOL_VERSION
        ? `protocol version ${envelope.version}`
        : envelope.clusterId !== this.clusterId
          ? `cluster id ${JSON.stringify(envelope.clusterId)}`
          : envelope.from !== connection.peerId
            ? `node id ${JSON.stringify(envelope.from)}`
            : undefined;
    if (problem || !link || link.dialing !== connection) {
      if (link) link.counters.handshakeRejects++;
      this.logger.warn({ peer: connection.peerId, problem }, 'peer welcome does not match; closing');
      connection.close(`welcome mismatch: ${problem ?? 'stale dial'}`);
      return;
    }
    link.dialing = undefined;
    if (link.active) {
      // Cannot happen under the rule in onHello (accepting an inbound dial cancels ours); keep the
      // existing connection rather than hold two.
      connection.close('a connection to this peer already exists');
      return;
    }
    this.establish(link, connection, envelope.incarnation, envelope.maxFrameBytes);
  }

  private establish(
    link: PeerLink,
    connection: PeerConnection,
    incarnation: string,
    peerMaxFrameBytes: number,
  ): void {
    connection.remoteIncarnation = incarnation;
    connection.open(this.limits.maxFrameBytes, peerMaxFrameBytes);
    link.active = connection;
    link.counters.connects++;
    link.backoff.reset();
    if (link.reconnectTimer) clearTimeout(link.reconnectTimer);
    link.reconnectTimer = undefined;
    if (link.incarnation !== undefined && link.incarnation !== incarnation) {
      this.pending.failWhere(
        (p) => p.peer === link.id && p.writtenTo !== undefined && p.writtenTo !== incarnation,
        'peer_restarted',
        `peer ${link.id} restarted before answering`,
      );
    }
    link.incarnation = incarnation;
    this.logger.info(
      { peer: link.id, direction: connection.direction, remote: connection.remoteAddress },
      'peer connected',
    );
    connection.socket.on('drain', () => this.scheduleFlush(link));
    if (link.queue.length > 0) this.scheduleFlush(link);
  }

  // ---- sending ----

  private scheduleFlush(link: PeerLink): void {
    if (link.flushScheduled) return;
    link.flushScheduled = true;
    queueMicrotask(() => this.flush(link));
  }

  /** Writes everything queued for the peer as one socket write (frames packed up to the peer's limit). */
  private flush(link: PeerLink): void {
    link.flushScheduled = false;
    const connection = link.active;
    if (connection?.state !== 'open' || link.queue.length === 0) return;
    if (connection.pendingWriteBytes >= this.limits.maxSocketBufferBytes) return; // 'drain' reschedules
    const frameLimit = Math.min(this.limits.maxFrameBytes, connection.peerMaxFrameBytes);
    const parts: Buffer[] = [];
    const written: QueuedEnvelope[] = [];
    let frame: Buffer[] = [];
    let frameBytes = 0;
    let frames = 0;
    let total = 0;
    const closeFrame = () => {
      if (frame.length === 0) return;
      const header = frameHeader(frame);
      parts.push(header, ...frame);
      total += FRAME_HEADER_BYTES + frameBytes;
      frames++;
      frame = [];
      frameBytes = 0;
    };
    for (let entry = link.queue.shift(); entry; entry = link.queue.shift()) {
      if (entry.bytes.length > frameLimit) {
        link.counters.droppedTooLarge++;
        this.logger.warn(
          { peer: link.id, bytes: entry.bytes.length, frameLimit },
          'envelope larger than the peer accepts dropped',
        );
        entry.onDrop?.('too_large');
        continue;
      }
      if (frameBytes + entry.bytes.length > frameLimit) closeFrame();
      frame.push(entry.bytes);
      frameBytes += entry.bytes.length;
      written.push(entry);
    }
    closeFrame();
    if (parts.length === 0) return;
    connection.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts, total));
    link.counters.writes++;
    link.counters.framesSent += frames;
    link.counters.bytesSent += total;
    for (const entry of written) {
      if (entry.onWrite) entry.onWrite();
    }
    link.counters.messagesSent += written.length;
  }

  // ---- receiving ----

  private onOpenEnvelope(connection: PeerConnection, envelope: Envelope): void {
    const from = connection.peerId!;
    const link = this.links.get(from);
    if (!link || link.active !== connection) {
      connection.close('connection no longer current');
      return;
    }
    switch (envelope.type) {
      case EnvelopeType.Message: {
        if (this.options.isMessage && !this.options.isMessage(envelope.payload)) {
          link.counters.protocolErrors++;
          this.logger.warn({ peer: from }, 'closing peer connection: invalid message payload');
          connection.close('invalid message payload');
          return;
        }
        link.counters.messagesReceived++;
        if (!this.deliver) {
          this.logger.warn({ peer: from }, 'message dropped: no receiver registered');
          return;
        }
        try {
          this.deliver(from, envelope.payload as M);
        } catch (error) {
          this.logger.error({ peer: from, err: (error as Error).message }, 'message handler threw');
        }
        return;
      }
      case EnvelopeType.Request:
        link.counters.messagesReceived++;
        this.onRequestEnvelope(link, envelope.id, envelope.payload);
        return;
      case EnvelopeType.Response:
      case EnvelopeType.ErrorResponse:
        link.counters.messagesReceived++;
        this.onResponseEnvelope(from, envelope);
        return;
      default:
        link.counters.protocolErrors++;
        this.logger.warn(
          { peer: from, type: envelope.type },
          'closing peer connection: handshake envelope after handshake',
        );
        connection.close(`unexpected envelope type ${envelope.type} after handshake`);
    }
  }

  private onRequestEnvelope(link: PeerLink, id: number, payload: unknown): void {
    const handler = this.options.onRequest;
    if (!handler) {
      this.respondError(link, id, 'no_handler', `node ${this.id} does not serve peer requests`);
      return;
    }
    if (this.options.isRequest && !this.options.isRequest(payload)) {
      this.respondError(link, id, 'invalid_request', 'request payload failed validation');
      return;
    }
    if (this.inboundRequestsInFlight >= this.limits.maxInboundRequests) {
      const limit = this.limits.maxInboundRequests;
      this.respondError(link, id, 'overloaded', `${limit} peer requests already in progress`);
      return;
    }
    this.inboundRequestsInFlight++;
    let outcome: Promise<Res>;
    try {
      outcome = handler(link.id, payload as Req);
    } catch (error) {
      outcome = Promise.reject(error);
    }
    outcome.then(
      (response) => {
        this.inboundRequestsInFlight--;
        this.respond(link, id, response);
      },
      (error: unknown) => {
        this.inboundRequestsInFlight--;
        const code =
          error && typeof (error as { code?: unknown }).code === 'string'
            ? (error as { code: string }).code
            : 'remote_error';
        this.respondError(link, id, code, error instanceof Error ? error.message : String(error));
      },
    );
  }

  private respond(link: PeerLink, id: number, response: Res): void {
    if (this.closed || this.links.get(link.id) !== link) return;
    const bytes = encodeEnvelope({ type: EnvelopeType.Response, id, payload: response });
    if (bytes.length > this.limits.maxFrameBytes || bytes.length > this.limits.maxQueueBytes) {
      link.counters.droppedTooLarge++;
      const limit = this.limits.maxFrameBytes;
      this.respondError(
        link,
        id,
        'response_too_large',
        `response of ${bytes.length} bytes exceeds the maximum frame of ${limit} bytes`,
      );
      return;
    }
    this.enqueue(link, { bytes });
  }

  private respondError(link: PeerLink, id: number, code: string, message: string): void {
    if (this.closed || this.links.get(link.id) !== link) return;
    this.enqueue(link, {
      bytes: encodeEnvelope({
        type: EnvelopeType.ErrorResponse,
        id,
        code: clipText(code),
        message: clipText(message),
      }),
    });
  }

  private onResponseEnvelope(
    from: string,
    envelope: Extract<Envelope, { type: typeof EnvelopeType.Response | typeof EnvelopeType.ErrorResponse }>,
  ): void {
    if (!this.pending.get(envelope.id, from)) {
      this.logger.debug({ peer: from, id: envelope.id }, 'response to an unknown or expired request ignored');
      return;
    }
    if (envelope.type === EnvelopeType.ErrorResponse) {
      const message = `${from}: ${envelope.code}: ${envelope.message}`;
      this.pending.reject(envelope.id, new TransportError('remote', message, from, envelope.code));
    } else if (this.options.isResponse && !this.options.isResponse(envelope.payload)) {
      this.pending.reject(
        envelope.id,
        new TransportError('invalid_response', `response from ${from} failed validation`, from),
      );
    } else {
      this.pending.resolve(envelope.id, envelope.payload as Res);
    }
  }
}
