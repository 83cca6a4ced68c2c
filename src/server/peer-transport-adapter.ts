/**
 * The node's PeerTransport (src/node/transport.ts) over the TCP transport (src/transport).
 *
 * Append, heartbeat and their responses, forwarded plain puts and write replies travel in their
 * binary wire forms (src/node/raft-wire-codec.ts, forward-wire-codec.ts), everything else as
 * msgpack objects. The node hands over one batch
 * per peer per Ready pass; the TCP transport already coalesces everything queued for a peer in one
 * event-loop turn into one socket write, so each node message travels as one transport message (a
 * batch as a single message could outgrow the frame limit, and one oversize message would then
 * take the whole batch with it). Received messages go to the
 * node as they arrive; the node validates each (they are untrusted) and runs one Ready pass per turn.
 *
 * The adapter also watches the forwarded client requests that pass through it (a follower's
 * 'forward' out, the leader's 'forwardReply' back) to count their outcomes for /metrics.
 */
import type { NodeId } from '../raft/types.js';
import type { NodeLogger } from '../node/hooks.js';
import { TAG_FORWARD_REPLY, decodeForwardWire, encodeForwardWire } from '../node/forward-wire-codec.js';
import { RaftWireError, encodeRaftWire } from '../node/raft-wire-codec.js';
import type { PeerMessage, PeerTransport as NodePeerTransport } from '../node/transport.js';
import type { PeerTransport as TcpPeerTransport } from '../transport/peer-transport.js';

export type ForwardOutcome = 'ok' | 'error';

export interface PeerTransportAdapterOptions {
  logger: NodeLogger;
  /** A forwarded request finished: answered (ok), answered with an error, or never answered. */
  onForwardOutcome?: (outcome: ForwardOutcome) => void;
}

/** Forwarded requests followed at most (each lives at most its timeout); beyond, the oldest counts as an error. */
const MAX_TRACKED_FORWARDS = 65_536;
/** An unanswered forward counts as failed this long after its own timeout. */
const FORWARD_GRACE_MS = 1000;
const SWEEP_INTERVAL_MS = 1000;

interface TrackedForward {
  expiresAt: number;
}

export class PeerTransportAdapter implements NodePeerTransport {
  private readonly tracked = new Map<string, TrackedForward>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly logger: NodeLogger;
  private readonly onForwardOutcome: (outcome: ForwardOutcome) => void;
  private listening = false;

  constructor(
    readonly tcp: TcpPeerTransport<unknown>,
    options: PeerTransportAdapterOptions,
  ) {
    this.logger = options.logger;
    this.onForwardOutcome = options.onForwardOutcome ?? (() => {});
    this.sweeper = setInterval(() => this.sweep(performance.now()), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  listen(deliver: (from: NodeId, messages: readonly unknown[]) => void): void {
    if (this.listening) throw new Error('PeerTransportAdapter: listen() called twice');
    this.listening = true;
    this.tcp.listen((from, received) => {
      const message = this.decodeReply(received);
      this.observeIncoming(from, message);
      // Untrusted: the node decodes and validates every message before using it (src/node/peer-validation.ts).
      deliver(from, [message]);
    });
  }

  send(to: NodeId, messages: PeerMessage[]): void {
    for (const m of messages) {
      // The hot Raft messages go in their binary form; msgpack carries it as one byte string.
      if (!this.tcp.send(to, encodeRaftWire(m) ?? encodeForwardWire(m) ?? m)) {
        // Unknown peer or over the frame limit: lost, as the node's contract allows; Raft retries.
        this.logger.debug({ peer: to, kind: m.kind }, 'peer message not queued');
        continue;
      }
      if (m.kind === 'forward') this.track(to, m.id, m.timeoutMs);
    }
  }

  setPeerAddress(id: NodeId, address: string | null): void {
    try {
      this.tcp.setPeerAddress(id, address);
    } catch (e) {
      // A member's address comes from the replicated log; one the transport cannot dial must not
      // stop the node (it only means that peer is unreachable until its address is fixed).
      this.logger.error(
        { peer: id, address, err: e instanceof Error ? e.message : String(e) },
        'cannot use peer address',
      );
    }
  }

  /** Stops the sweeper; unanswered forwards count as errors. */
  dispose(): void {
    clearInterval(this.sweeper);
    for (let i = 0; i < this.tracked.size; i++) this.onForwardOutcome('error');
    this.tracked.clear();
  }

  private track(to: NodeId, id: number, timeoutMs: number): void {
    if (this.tracked.size >= MAX_TRACKED_FORWARDS) {
      const oldest = this.tracked.keys().next().value;
      if (oldest !== undefined) {
        this.tracked.delete(oldest);
        this.onForwardOutcome('error');
      }
    }
    this.tracked.set(`${to}\u0000${id}`, { expiresAt: performance.now() + timeoutMs + FORWARD_GRACE_MS });
  }

  /**
   * A forward reply in its wire form, decoded here so its outcome can be counted (the node validates
   * the object as it would the bytes); undecodable bytes go on as they are, for the node to count.
   */
  private decodeReply(message: unknown): unknown {
    if (!(message instanceof Uint8Array) || message[0] !== TAG_FORWARD_REPLY) return message;
    try {
      return decodeForwardWire(message);
    } catch (e) {
      if (e instanceof RaftWireError) return message;
      throw e;
    }
  }

  private observeIncoming(from: NodeId, message: unknown): void {
    if (this.tracked.size === 0 || typeof message !== 'object' || message === null) return;
    const m = message as { kind?: unknown; id?: unknown; error?: unknown };
    if (m.kind !== 'forwardReply' || typeof m.id !== 'number') return;
    // Duplicates of an answered reply find nothing here and are not counted twice.
    if (this.tracked.delete(`${from}\u0000${m.id}`))
      this.onForwardOutcome(m.error === undefined ? 'ok' : 'error');
  }

  private sweep(now: number): void {
    for (const [key, f] of this.tracked) {
      if (f.expiresAt > now) continue;
      this.tracked.delete(key);
      this.onForwardOutcome('error');
    }
  }
}
