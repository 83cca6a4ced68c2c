/**
 * Exactly-once client sessions (Raft thesis §6.3). The server remembers the last sequence number
 * and result per client id, so one client id may have only one write in flight: a later sequence
 * number arriving first would make the earlier one stale. A client therefore writes through a
 * pool of lanes, each its own random client id with its own increasing sequence; a write holds a
 * lane until it is settled (including its retries, which reuse the lane's sequence number).
 */
import { randomBytes } from 'node:crypto';

export interface SessionLane {
  readonly clientId: string;
  /** The sequence number of the lane's latest write. */
  seq: number;
}

export class SessionLanes {
  private readonly idle: SessionLane[] = [];
  private created = 0;
  private readonly waiting: ((lane: SessionLane) => void)[] = [];

  constructor(
    private readonly maxLanes: number,
    private readonly prefix = 'c',
  ) {
    if (!Number.isInteger(maxLanes) || maxLanes < 1) throw new Error('SessionLanes: maxLanes must be >= 1');
  }

  /** A free lane, creating one while under the bound, else waiting for one. */
  acquire(): Promise<SessionLane> {
    const lane = this.idle.pop();
    if (lane) return Promise.resolve(lane);
    if (this.created < this.maxLanes) {
      this.created++;
      return Promise.resolve({ clientId: `${this.prefix}-${randomBytes(12).toString('base64url')}`, seq: 0 });
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(lane: SessionLane): void {
    const next = this.waiting.shift();
    if (next) next(lane);
    else this.idle.push(lane);
  }

  /** Lanes created so far (each is one client id at the server). */
  get size(): number {
    return this.created;
  }
}
