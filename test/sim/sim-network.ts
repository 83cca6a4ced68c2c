/**
 * The simulated network between nodes: every message is delivered after a random delay (so
 * messages reorder), may be lost or duplicated, and is dropped when a partition blocks its
 * direction at delivery time. Partitions are sets of blocked directed links: a symmetric partition
 * blocks both directions, a one-way partition one. With `wire`, every message goes through the
 * encoding the real transport uses: the binary form of the hot Raft messages (raft-wire-codec.ts),
 * msgpackr for the rest (which checks that everything sent is plain data).
 */
import { Packr } from 'msgpackr';
import type { NodeId } from '../../src/raft/types.js';
import { encodeRaftWire } from '../../src/node/raft-wire-codec.js';
import type { PeerMessage, PeerTransport } from '../../src/node/transport.js';
import type { EventQueue } from './event-queue.js';
import type { Prng } from './prng.js';

export interface NetworkConditions {
  /** Probability that a message is lost. */
  loss: number;
  /** Probability that a message is delivered twice. */
  duplicate: number;
  minDelayMs: number;
  maxDelayMs: number;
}

export const CALM_NETWORK: NetworkConditions = { loss: 0, duplicate: 0, minDelayMs: 1, maxDelayMs: 3 };

type Receiver = (from: NodeId, messages: readonly unknown[]) => void;

const wirePackr = new Packr({ useRecords: false, moreTypes: false });

export class SimNetwork {
  conditions: NetworkConditions = { ...CALM_NETWORK };
  private readonly receivers = new Map<NodeId, Receiver>();
  /** Blocked directed links, as `${from}>${to}`. */
  private readonly blocked = new Set<string>();
  sent = 0;
  delivered = 0;
  /** Observer for the trace. */
  onDeliver: ((from: NodeId, to: NodeId, m: PeerMessage, dropped: string | null) => void) | null = null;

  constructor(
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly wire: boolean,
  ) {}

  attach(id: NodeId, receive: Receiver): void {
    this.receivers.set(id, receive);
  }

  detach(id: NodeId): void {
    this.receivers.delete(id);
  }

  transportFor(id: NodeId): PeerTransport {
    return {
      listen: (deliver) => this.attach(id, deliver as Receiver),
      send: (to, messages) => this.send(id, to, messages),
      setPeerAddress: () => {},
    };
  }

  block(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Splits the nodes into sides that cannot reach each other (symmetric). */
  partition(sides: NodeId[][]): void {
    for (let i = 0; i < sides.length; i++) {
      for (let j = 0; j < sides.length; j++) {
        if (i === j) continue;
        for (const a of sides[i]!) for (const b of sides[j]!) this.block(a, b);
      }
    }
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  get partitioned(): boolean {
    return this.blocked.size > 0;
  }

  heal(): void {
    this.blocked.clear();
  }

  send(from: NodeId, to: NodeId, messages: PeerMessage[]): void {
    const c = this.conditions;
    for (const original of messages) {
      this.sent++;
      const wired: unknown = this.wire
        ? wirePackr.unpack(wirePackr.pack(encodeRaftWire(original) ?? original))
        : original;
      if (c.loss > 0 && this.rng.chance(c.loss)) {
        this.onDeliver?.(from, to, original, 'lost');
        continue;
      }
      const copies = c.duplicate > 0 && this.rng.chance(c.duplicate) ? 2 : 1;
      for (let k = 0; k < copies; k++) {
        const delay = c.minDelayMs + this.rng.next() * (c.maxDelayMs - c.minDelayMs);
        this.queue.after(delay, () => this.deliver(from, to, original, wired));
      }
    }
  }

  /** `wired`: what the receiver gets (the wire form, when the network encodes); `m` is for the trace. */
  private deliver(from: NodeId, to: NodeId, m: PeerMessage, wired: unknown): void {
    if (this.blocked.size > 0 && this.blocked.has(`${from}>${to}`)) {
      this.onDeliver?.(from, to, m, 'partitioned');
      return;
    }
    const receive = this.receivers.get(to);
    if (receive === undefined) {
      this.onDeliver?.(from, to, m, 'down');
      return;
    }
    this.delivered++;
    this.onDeliver?.(from, to, m, null);
    receive(from, [wired]);
  }
}
