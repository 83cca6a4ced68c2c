import type { JointQuorum } from './quorum.js';
import type { NodeId } from './types.js';

/** A ReadIndex request waiting at the leader: from itself (local) or forwarded by a follower. */
export interface PendingRead {
  from: NodeId;
  context: Buffer;
}

/** Reads confirmed safe at `index` (thesis §6.4 step 4: serve once applied >= index). */
export interface ReleasedReads {
  index: number;
  reads: PendingRead[];
}

interface HeartbeatRound {
  round: number;
  /** Leader tick at which the round's heartbeats were sent (lease reads, thesis §6.4.1). */
  sentAt: number;
  /** The commit index recorded for the reads of this round (thesis §6.4 step 1). */
  index: number;
  reads: PendingRead[];
}

/** Rounds not yet confirmed by a quorum are bounded; the oldest (and its reads) is abandoned past this. */
export const MAX_UNCONFIRMED_ROUNDS = 1024;

/**
 * The leader's batched ReadIndex and heartbeat-round bookkeeping for one term (thesis §6.4).
 *
 * Every heartbeat broadcast is a numbered round; followers echo the round number. Reads that arrive
 * between two Ready batches are assigned together to the next round, which records the commit
 * index at that moment; once a quorum (both halves of a joint configuration) has echoed a round
 * >= r, the leader was still leader after round r was sent, so every read of rounds <= r is safe
 * at its recorded index. One heartbeat round thus confirms a whole batch of reads.
 *
 * Reads arriving before the leader has committed an entry of its own term are deferred: until then
 * its commit index may lag entries committed by earlier leaders (thesis §6.4 step 1; Raft §8).
 *
 * The same rounds give the lease for lease reads: a quorum echoed a round sent at tick t, so no
 * other leader can be elected before t + electionTick on the followers' clocks (they refuse votes
 * for that long under CheckQuorum).
 */
export class LeaderReads {
  private nextRound = 1;
  private readonly rounds: HeartbeatRound[] = [];
  private readonly acked = new Map<NodeId, number>();
  private unassigned: PendingRead[] = [];
  private deferred: PendingRead[] = [];
  private pending = 0;
  /** Tick at which the newest quorum-confirmed round was sent; -Infinity when none. */
  private confirmedSentAt = Number.NEGATIVE_INFINITY;
  private confirmedRound = 0;
  /** Reads abandoned because the round queue overflowed. */
  abandoned = 0;

  constructor(private readonly self: NodeId) {}

  /** Reads accepted and not yet released. */
  get pendingCount(): number {
    return this.pending;
  }

  hasUnassigned(): boolean {
    return this.unassigned.length > 0;
  }

  /** Queue reads for the next heartbeat round (leader has committed in its term). */
  enqueue(reads: PendingRead[]): void {
    for (const r of reads) this.unassigned.push(r);
    this.pending += reads.length;
  }

  /** Hold reads until the leader commits an entry of its term. */
  defer(reads: PendingRead[]): void {
    for (const r of reads) this.deferred.push(r);
    this.pending += reads.length;
  }

  /** The leader committed in its term: deferred reads join the next round. */
  undefer(): void {
    if (this.deferred.length === 0) return;
    for (const r of this.deferred) this.unassigned.push(r);
    this.deferred = [];
  }

  /** Start a heartbeat round at tick `now`, attaching the unassigned reads at commit index `index`. */
  newRound(now: number, index: number): number {
    const round = this.nextRound++;
    this.rounds.push({ round, sentAt: now, index, reads: this.unassigned });
    this.unassigned = [];
    if (this.rounds.length > MAX_UNCONFIRMED_ROUNDS) {
      const dropped = this.rounds.shift()!;
      this.abandoned += dropped.reads.length;
      this.pending -= dropped.reads.length;
    }
    return round;
  }

  /** A follower echoed `round`; returns reads now confirmed, in round order. */
  ack(from: NodeId, round: number, quorum: JointQuorum): ReleasedReads[] {
    if (round >= this.nextRound) return []; // never sent in this term: ignore
    if (round > (this.acked.get(from) ?? 0)) this.acked.set(from, round);
    return this.release(quorum);
  }

  /** Release every round a quorum has confirmed (also after a configuration change). */
  release(quorum: JointQuorum): ReleasedReads[] {
    const latest = this.nextRound - 1;
    const q = quorum.committedIndex((id) => (id === this.self ? latest : (this.acked.get(id) ?? 0)));
    if (!Number.isFinite(q) || q <= this.confirmedRound) return [];
    this.confirmedRound = q;
    const out: ReleasedReads[] = [];
    while (this.rounds.length > 0 && this.rounds[0].round <= q) {
      const r = this.rounds.shift()!;
      if (r.round === q) this.confirmedSentAt = r.sentAt;
      if (r.reads.length > 0) {
        out.push({ index: r.index, reads: r.reads });
        this.pending -= r.reads.length;
      }
    }
    return out;
  }

  /** Lease (thesis §6.4.1): valid while `now` < confirmed round's send tick + lease length. */
  leaseValid(now: number, leaseTicks: number): boolean {
    return now < this.confirmedSentAt + leaseTicks;
  }
}
