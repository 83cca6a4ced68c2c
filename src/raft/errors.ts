import type { NodeId } from './types.js';

/** propose/proposeConfChange/readIndex on a node that is not the leader (or knows none, for reads). */
export class NotLeaderError extends Error {
  constructor(
    /** The leader this node knows of, or '' when none. */
    readonly leader: NodeId | '',
    readonly group: number,
  ) {
    super(
      leader === ''
        ? `group ${group}: no leader known`
        : `group ${group}: not the leader (leader is ${leader})`,
    );
    this.name = 'NotLeaderError';
  }
}

export type ProposalDropReason =
  | 'leadership-transfer'
  | 'proposal-queue-full'
  | 'read-queue-full'
  | 'conf-change-pending'
  | 'invalid-conf-change'
  | 'entry-too-large'
  | 'invalid-transfer-target';

/** The leader refused a proposal (transfer in progress, queue full, conf change pending, ...). */
export class ProposalDroppedError extends Error {
  constructor(
    readonly reason: ProposalDropReason,
    detail: string,
  ) {
    super(`proposal dropped (${reason}): ${detail}`);
    this.name = 'ProposalDroppedError';
  }
}

/** A broken internal invariant: a bug in raft or its driver, never bad peer input. */
export class RaftInvariantError extends Error {
  constructor(message: string) {
    super(`raft invariant violated: ${message}`);
    this.name = 'RaftInvariantError';
  }
}
