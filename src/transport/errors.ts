/** Why a peer request failed. */
export type TransportErrorCode =
  /** No response within the timeout: the request may or may not have been executed. */
  | 'timeout'
  /** The peer restarted after receiving the request: it was lost, possibly after being executed. */
  | 'peer_restarted'
  /** Dropped from the send queue before it was written (queue overflow): never executed. */
  | 'dropped'
  /** The encoded request or response exceeds the maximum frame size. */
  | 'too_large'
  /** No such peer is known. */
  | 'unknown_peer'
  /** The transport was closed, or the peer removed. */
  | 'closed'
  /** Too many requests are pending. */
  | 'overloaded'
  /** The response did not pass validation. */
  | 'invalid_response'
  /** The peer's handler failed; `remoteCode` holds its code. */
  | 'remote';

export class TransportError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    readonly peer: string,
    /** For 'remote': the error code reported by the peer. */
    readonly remoteCode?: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }

  /** True when the request certainly never reached the peer's handler. */
  get certainlyNotExecuted(): boolean {
    return (
      this.code === 'dropped' ||
      this.code === 'too_large' ||
      this.code === 'unknown_peer' ||
      this.code === 'overloaded'
    );
  }
}
