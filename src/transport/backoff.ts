/**
 * Reconnect delays: exponential growth capped at a maximum, with "full jitter" (the delay is drawn
 * uniformly from [base/2, base]) so that nodes that lost a peer at the same moment do not redial it
 * in lockstep.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Injected for deterministic tests; defaults to Math.random. */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs)) {
      throw new Error('Backoff: need 0 < initialMs <= maxMs');
    }
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call doubles the ceiling up to maxMs. */
  next(): number {
    const ceiling = Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
