/** Raft consensus as a pure state machine. See docs/raft.md. */
export {
  applyConfChangeTo,
  decodeConfChange,
  emptyConfState,
  encodeConfChange,
  InvalidConfChangeError,
  isJoint,
  members,
} from './conf-change.js';
export {
  NotLeaderError,
  type ProposalDropReason,
  ProposalDroppedError,
  RaftInvariantError,
} from './errors.js';
export {
  DEFAULT_ELECTION_TICK,
  DEFAULT_HEARTBEAT_TICK,
  DEFAULT_MAX_INFLIGHT_MSGS,
  DEFAULT_MAX_MSG_BYTES,
  RAFT_CONFIG_DEFAULTS,
  RaftGroup,
} from './raft-group.js';
export * from './types.js';
export { validateMessage } from './validate-message.js';
