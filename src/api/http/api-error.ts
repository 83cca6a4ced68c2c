/**
 * Errors the HTTP API answers with: a status, a stable code, a message, and optional extra fields
 * and headers. Every NodeError code maps to exactly one status (docs/api.md has the table).
 */
import { NodeError, type NodeErrorCode } from '../../node/errors.js';
import type { WireError } from './wire.js';

/** Codes the API itself produces, in addition to NodeErrorCode. */
export type ApiErrorCode =
  | NodeErrorCode
  | 'not_found'
  | 'method_not_allowed'
  | 'key_not_found'
  | 'precondition_failed'
  | 'not_utf8'
  | 'timeout'
  | 'request_timeout';

export type ApiErrorDetails = Omit<WireError['error'], 'code' | 'message'>;

let savedStackTraceLimit = 10;

/** Turns V8's stack capture off for the Error constructor about to run; the caller restores it. */
function withoutStackTrace(message: string): string {
  savedStackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  return message;
}

export class ApiError extends Error {
  /** Answer with `Connection: close` and drop the connection afterwards (unread request data). */
  closeConnection = false;

  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly details: ApiErrorDetails = {},
    readonly headers: Record<string, string> = {},
  ) {
    // An ApiError is an answer (404 key_not_found, 412, 400 ...), not a fault: nothing reads its
    // stack, and capturing one took 12% of a node's CPU serving GETs of missing keys (--cpu-prof).
    super(withoutStackTrace(message));
    Error.stackTraceLimit = savedStackTraceLimit;
    this.name = 'ApiError';
  }

  toJSON(): WireError {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}

/** The HTTP status for each node error code. */
export const NODE_ERROR_STATUS: Record<NodeErrorCode, number> = {
  not_leader: 503,
  no_quorum: 503,
  outcome_unknown: 504,
  overloaded: 503,
  limit_exceeded: 413,
  invalid_request: 400,
  member_not_found: 404,
  member_exists: 409,
  membership_change_in_progress: 409,
  shutting_down: 503,
  disk_full: 507,
  internal: 500,
};

/** Seconds a client should wait before retrying an overloaded or busy node. */
const RETRY_AFTER_SECONDS = '1';

/**
 * Maps a node error. `leaderUrl` resolves a leader id to its client URL for not_leader hints.
 */
export function fromNodeError(error: NodeError, leaderUrl: (id: string) => string | undefined): ApiError {
  const status = NODE_ERROR_STATUS[error.code] ?? 500;
  const details: ApiErrorDetails = {};
  const headers: Record<string, string> = {};
  if (error.code === 'not_leader' && error.leader) {
    details.leader = error.leader;
    const url = leaderUrl(error.leader);
    if (url) details.leaderUrl = url;
    headers['x-atlas-leader'] = error.leader;
  }
  if (
    error.code === 'overloaded' ||
    error.code === 'shutting_down' ||
    error.code === 'membership_change_in_progress'
  ) {
    headers['retry-after'] = RETRY_AFTER_SECONDS;
  }
  return new ApiError(status, error.code, error.message, details, headers);
}

export function invalidRequest(message: string): ApiError {
  return new ApiError(400, 'invalid_request', message);
}

/** 413 naming the limit, e.g. limitExceeded('max-value-size', 1048576, 'value of 2000000 bytes'). */
export function limitExceeded(limit: string, limitValue: number, what: string, unit = 'bytes'): ApiError {
  return new ApiError(413, 'limit_exceeded', `${what} exceeds ${limit} (${limitValue} ${unit})`, {
    limit,
    limitValue,
  });
}

/** NodeError, also when it was rebuilt elsewhere (forwarded from the leader) as a plain error with a code. */
export function isNodeError(error: unknown): error is NodeError {
  if (error instanceof NodeError) return true;
  return (
    error instanceof Error &&
    error.name === 'NodeError' &&
    typeof (error as { code?: unknown }).code === 'string' &&
    Object.hasOwn(NODE_ERROR_STATUS, (error as unknown as { code: string }).code)
  );
}
