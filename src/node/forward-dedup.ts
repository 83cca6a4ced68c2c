/**
 * Remembers which forwarded requests a leader has already accepted, so a duplicated message (the
 * network may deliver one twice) is never proposed twice: a write without a client session would
 * otherwise be applied twice (and its second answer, say a failed compare, relayed instead of the
 * first).
 *
 * Per sender incarnation ("origin"), request ids only grow. The window keeps the last `window` ids
 * accepted; any id at or below the window's floor that is not in it counts as already seen (a very
 * late duplicate is dropped: its forwarder times out with outcome_unknown, which is always safe).
 * At most `maxOrigins` incarnations per peer are remembered (older ones belong to dead processes).
 */
import type { NodeId } from '../raft/types.js';
import type { ForwardReplyMessage } from './transport.js';

interface OriginWindow {
  floor: number;
  /** id → the reply once known (null while in progress); insertion order ≈ id order. */
  ids: Map<number, ForwardReplyMessage | null>;
}

export type DedupVerdict =
  | { kind: 'new' }
  | { kind: 'inProgress' }
  | { kind: 'answered'; reply: ForwardReplyMessage };

export class ForwardDedup {
  private readonly peers = new Map<NodeId, Map<string, OriginWindow>>();

  constructor(
    private readonly window = 4096,
    private readonly maxOrigins = 4,
  ) {}

  /** Registers (from, origin, id) if new; tells what to do with it otherwise. */
  admit(from: NodeId, origin: string, id: number): DedupVerdict {
    let origins = this.peers.get(from);
    if (origins === undefined) {
      origins = new Map();
      this.peers.set(from, origins);
    }
    let w = origins.get(origin);
    if (w === undefined) {
      if (origins.size >= this.maxOrigins) origins.delete(origins.keys().next().value as string);
      w = { floor: 0, ids: new Map() };
      origins.set(origin, w);
    } else {
      origins.delete(origin); // most recently used last
      origins.set(origin, w);
    }
    const known = w.ids.get(id);
    if (known !== undefined)
      return known === null ? { kind: 'inProgress' } : { kind: 'answered', reply: known };
    if (id <= w.floor) return { kind: 'inProgress' }; // too old to tell: treat as seen, never apply twice
    w.ids.set(id, null);
    while (w.ids.size > this.window) {
      const oldest = w.ids.keys().next().value as number;
      w.ids.delete(oldest);
      if (oldest > w.floor) w.floor = oldest;
    }
    return { kind: 'new' };
  }

  /** The reply for an admitted request, kept to answer a duplicate that arrives later. */
  answered(from: NodeId, origin: string, id: number, reply: ForwardReplyMessage): void {
    const w = this.peers.get(from)?.get(origin);
    if (w?.ids.has(id)) w.ids.set(id, reply);
  }
}
