/**
 * Errors the client throws. Every one has the server's stable `code` (docs/api.md) or a client
 * code, and `status` when a server answered. What matters most to a caller is which of three
 * situations it is in:
 *
 * - the operation certainly did not happen: UnavailableError, InvalidRequestError,
 *   PreconditionFailedError, and AtlasError for other refusals;
 * - it may or may not have happened: OutcomeUnknownError (a write whose answer was lost and whose
 *   retries could not settle it);
 * - it happened: no error.
 */

export class AtlasError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** The HTTP status, when a server answered. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'AtlasError';
  }
}

/** A conditional write found the key at another revision (or present/absent against the condition). */
export class PreconditionFailedError extends AtlasError {
  constructor(
    message: string,
    /** The key's current mod revision; 0 when it does not exist. */
    readonly modRevision: number,
  ) {
    super('precondition_failed', message, 412);
    this.name = 'PreconditionFailedError';
  }
}

/** The request is malformed or too large; retrying it unchanged cannot succeed. */
export class InvalidRequestError extends AtlasError {
  constructor(code: string, message: string, status?: number) {
    super(code, message, status);
    this.name = 'InvalidRequestError';
  }
}

/** A size or count limit was exceeded; `limit` names it (e.g. max-value-size). */
export class LimitExceededError extends InvalidRequestError {
  constructor(
    message: string,
    readonly limit: string,
    readonly limitValue: number,
    status?: number,
  ) {
    super('limit_exceeded', message, status);
    this.name = 'LimitExceededError';
  }
}

/**
 * No endpoint could serve the request within the attempts and deadline allowed. For a write, every
 * attempt failed in a way that guarantees it was not applied.
 */
export class UnavailableError extends AtlasError {
  constructor(
    message: string,
    /** One line per failed attempt. */
    readonly attempts: string[],
    code = 'unavailable',
  ) {
    super(code, message);
    this.name = 'UnavailableError';
  }
}

/** A read ran out of time (no answer within the deadline). Nothing changed. */
export class TimeoutError extends UnavailableError {
  constructor(message: string, attempts: string[]) {
    super(message, attempts, 'timeout');
    this.name = 'TimeoutError';
  }
}

/**
 * A write may or may not have been applied: an answer was lost (timeout, connection reset, 504) and
 * retrying with the same exactly-once session did not reach a server that could tell.
 */
export class OutcomeUnknownError extends AtlasError {
  constructor(
    message: string,
    readonly attempts: string[],
  ) {
    super('outcome_unknown', message);
    this.name = 'OutcomeUnknownError';
  }
}
