import type { NodeId } from './types.js';

export type VoteResult = 'won' | 'lost' | 'pending';

/**
 * Quorum arithmetic over a (possibly joint) voter configuration (thesis §4.3): in a joint
 * configuration every decision (election, commitment, read confirmation, CheckQuorum) needs a
 * majority of the incoming voters AND a majority of the outgoing voters. An empty outgoing set
 * (no joint configuration) imposes no constraint.
 */
export class JointQuorum {
  constructor(
    readonly incoming: readonly NodeId[],
    readonly outgoing: readonly NodeId[],
  ) {}

  isJoint(): boolean {
    return this.outgoing.length > 0;
  }

  /** Every voter of either half, without duplicates. */
  voters(): NodeId[] {
    const all = new Set<NodeId>(this.incoming);
    for (const id of this.outgoing) all.add(id);
    return [...all];
  }

  isVoter(id: NodeId): boolean {
    return this.incoming.includes(id) || this.outgoing.includes(id);
  }

  /**
   * The largest index acknowledged by a quorum, given each voter's acknowledged index (Raft §5.3/
   * §5.4: the leader's commit candidate). Infinity when there are no voters at all (never used to
   * commit: the caller checks the entry's term).
   */
  committedIndex(acked: (id: NodeId) => number): number {
    return Math.min(majorityIndex(this.incoming, acked), majorityIndex(this.outgoing, acked));
  }

  /** Election outcome given the votes received so far (true = granted). */
  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const a = majorityVote(this.incoming, votes);
    const b = majorityVote(this.outgoing, votes);
    if (a === 'won' && b === 'won') return 'won';
    if (a === 'lost' || b === 'lost') return 'lost';
    return 'pending';
  }

  /** Whether the voters for which `active` holds form a quorum (CheckQuorum, read confirmation). */
  hasQuorum(active: (id: NodeId) => boolean): boolean {
    const votes = new Map<NodeId, boolean>();
    for (const id of this.voters()) if (active(id)) votes.set(id, true);
    return this.voteResult(votes) === 'won';
  }
}

function majorityIndex(voters: readonly NodeId[], acked: (id: NodeId) => number): number {
  if (voters.length === 0) return Number.POSITIVE_INFINITY;
  const values = voters.map(acked).sort((a, b) => b - a);
  // With n voters, the value at position floor(n/2) (descending) is held by a majority (n/2 + 1).
  return values[Math.floor(voters.length / 2)];
}

function majorityVote(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = Math.floor(voters.length / 2) + 1;
  if (granted >= q) return 'won';
  if (granted + missing >= q) return 'pending';
  return 'lost';
}
