/**
 * The errors a node reports to clients. Each has a stable `code`; the HTTP API maps codes to
 * statuses (docs/api.md). They cross process boundaries (follower forwarding), so each carries only
 * plain data.
 */
export type NodeErrorCode =
  | 'not_leader'
  | 'no_quorum'
  | 'outcome_unknown'
  | 'overloaded'
  | 'limit_exceeded'
  | 'invalid_request'
  | 'member_not_found'
  | 'member_exists'
  | 'membership_change_in_progress'
  | 'shutting_down'
  | 'disk_full'
  | 'internal';

export class NodeError extends Error {
  constructor(
    readonly code: NodeErrorCode,
    message: string,
    /** The leader's id, when known (not_leader). */
    readonly leader?: string,
  ) {
    super(message);
    this.name = 'NodeError';
  }
}

/** Every NodeErrorCode, for validating codes that arrive from elsewhere (a peer's forwarded answer). */
export const NODE_ERROR_CODES: readonly NodeErrorCode[] = [
  'not_leader',
  'no_quorum',
  'outcome_unknown',
  'overloaded',
  'limit_exceeded',
  'invalid_request',
  'member_not_found',
  'member_exists',
  'membership_change_in_progress',
  'shutting_down',
  'disk_full',
  'internal',
];
