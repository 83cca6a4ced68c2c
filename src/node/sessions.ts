/**
 * Client sessions for exactly-once writes (Raft thesis §6.3). The state machine remembers, per
 * client id, the last sequence number it applied and that request's result, and answers a retry of
 * it with the remembered result instead of applying it again.
 *
 * Everything here is a deterministic function of the applied log, so every replica holds the same
 * table: sessions expire by the leader's wall-clock times carried in the entries (the table's clock
 * is the largest time applied so far, so it never runs backwards), and when the table is full the
 * least recently used session is evicted. The table lives in the store's meta space (written in the
 * same atomic apply as the transactions), so it survives restarts and travels in snapshots.
 *
 * A request's result is only known after the store applied it, and an apply is one atomic batch, so
 * the result reaches the meta space with the next batch. A crash in between loses the result but
 * never the sequence number: the retry is then answered "applied, result unknown", never applied twice.
 *
 * An unknown client id starts a session with whatever seq it sends. An expired or evicted session
 * leaves a tombstone (itself bounded and expiring after another TTL): a request of a tombstoned
 * client is refused, because an earlier attempt of it may have been applied under the old session;
 * the client must continue under a new client id.
 */
import { crc32c } from '@node-rs/crc32';
import type { MetaWrite, TxnResult } from '../kv/state-store.js';
import type { ClientSession } from './kv-service.js';
import { packr, txnResultFromWire, txnResultToWire } from './txn-codec.js';

export interface SessionLimits {
  /** Most sessions kept (and, separately, most tombstones); the least recently used one is evicted beyond it. */
  maxSessions: number;
  /** A session unused for this long (by the times in the log) expires. */
  sessionTtlMs: number;
  maxClientIdBytes: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxSessions: 10_000,
  sessionTtlMs: 60 * 60 * 1000,
  maxClientIdBytes: 128,
};

const DIRECTORY_BUCKETS = 16;
const META_CLOCK = 'sessions/clock';
const metaDirectory = (bucket: number) => `sessions/dir/${bucket}`;
const metaSession = (clientId: string) => `sessions/id/${clientId}`;

interface Session {
  clientId: string;
  seq: number;
  /** Table-wide use counter: orders sessions (least recently used first) identically after a reload. */
  order: number;
  lastTime: number;
  /** The result of `seq`; null until known (or when lost in a crash before it was written). */
  result: TxnResult | null;
  /** Expired or evicted: requests of this client id are refused until the tombstone expires. */
  tombstone: boolean;
}

export type SessionVerdict =
  | { kind: 'apply' }
  /** A retry of the last applied request: answer with its result (null: applied, but the result was lost). */
  | { kind: 'duplicate'; result: TxnResult | null }
  /** Older than the last applied request: it was applied before, and its result is gone. */
  | { kind: 'stale'; lastSeq: number }
  /** The session expired or was evicted: an earlier attempt may have been applied; not applied now. */
  | { kind: 'unknown' };

export class SessionTable {
  /** Live sessions, least recently used first (a use re-inserts). */
  private readonly live = new Map<string, Session>();
  /** Expired or evicted sessions, oldest first. */
  private readonly tombstones = new Map<string, Session>();
  private readonly dirtySessions = new Set<string>();
  private readonly dirtyBuckets = new Set<number>();
  private clock = 0;
  private counter = 0;
  private clockDirty = false;

  constructor(private readonly limits: SessionLimits) {}

  get size(): number {
    return this.live.size;
  }

  get tombstoneCount(): number {
    return this.tombstones.size;
  }

  /** Rebuilds the table from the store's meta space (at start, and after installing a snapshot). */
  load(getMeta: (key: string) => Buffer | null): void {
    this.live.clear();
    this.tombstones.clear();
    this.dirtySessions.clear();
    this.dirtyBuckets.clear();
    this.clockDirty = false;
    const clock = getMeta(META_CLOCK);
    const c = clock === null ? [0, 0] : (packr.unpack(clock) as [number, number]);
    this.clock = c[0];
    this.counter = c[1];
    const loaded: Session[] = [];
    for (let b = 0; b < DIRECTORY_BUCKETS; b++) {
      const dir = getMeta(metaDirectory(b));
      if (dir === null) continue;
      for (const clientId of packr.unpack(dir) as string[]) {
        const raw = getMeta(metaSession(clientId));
        if (raw === null)
          throw new Error(`session table: directory names ${clientId} but its record is missing`);
        const w = packr.unpack(raw) as [number, number, number, unknown, boolean];
        loaded.push({
          clientId,
          seq: w[0],
          order: w[1],
          lastTime: w[2],
          result: w[3] === null ? null : txnResultFromWire(w[3]),
          tombstone: w[4] === true,
        });
      }
    }
    loaded.sort((a, b) => a.order - b.order);
    for (const s of loaded) (s.tombstone ? this.tombstones : this.live).set(s.clientId, s);
  }

  /** Checks a session's shape; returns an error message, or null when acceptable. */
  validate(session: ClientSession): string | null {
    if (typeof session.clientId !== 'string' || session.clientId.length === 0) {
      return 'session clientId must be a non-empty string';
    }
    if (Buffer.byteLength(session.clientId) > this.limits.maxClientIdBytes) {
      return `session clientId exceeds maxClientIdBytes (${this.limits.maxClientIdBytes})`;
    }
    if (!Number.isSafeInteger(session.seq) || session.seq < 1) return 'session seq must be an integer >= 1';
    return null;
  }

  /** The verdict for a request, without changing anything (the answer to a retry, or whether to apply). */
  check(session: ClientSession): SessionVerdict {
    const s = this.live.get(session.clientId);
    if (s === undefined)
      return this.tombstones.has(session.clientId) ? { kind: 'unknown' } : { kind: 'apply' };
    if (session.seq === s.seq) return { kind: 'duplicate', result: s.result };
    if (session.seq < s.seq) return { kind: 'stale', lastSeq: s.seq };
    return { kind: 'apply' };
  }

  /** Advances the table's clock to an applied command's time; expires idle sessions and old tombstones. */
  advanceTime(time: number): void {
    if (time > this.clock) {
      this.clock = time;
      this.clockDirty = true;
    }
    const horizon = this.clock - this.limits.sessionTtlMs;
    for (const t of this.tombstones.values()) {
      if (t.lastTime >= horizon) break; // oldest first
      this.forget(t);
    }
    for (const s of this.live.values()) {
      if (s.lastTime >= horizon) break; // least recently used first: every later one is younger
      this.bury(s);
    }
  }

  /** Records that the request `session` is applied (its result follows via setResult). */
  begin(session: ClientSession): void {
    let s = this.live.get(session.clientId);
    if (s === undefined) {
      if (this.tombstones.has(session.clientId)) throw new Error(`session ${session.clientId} is tombstoned`);
      while (this.live.size >= this.limits.maxSessions) this.bury(this.live.values().next().value as Session);
      s = { clientId: session.clientId, seq: 0, order: 0, lastTime: 0, result: null, tombstone: false };
      this.dirtyBuckets.add(bucketOf(session.clientId));
    } else {
      this.live.delete(session.clientId);
    }
    s.seq = session.seq;
    s.order = ++this.counter;
    s.lastTime = this.clock;
    s.result = null;
    this.clockDirty = true;
    this.live.set(session.clientId, s);
    this.dirtySessions.add(session.clientId);
  }

  setResult(session: ClientSession, result: TxnResult): void {
    const s = this.live.get(session.clientId);
    if (s === undefined || s.seq !== session.seq) return; // evicted or superseded within the same batch
    s.result = result;
    this.dirtySessions.add(session.clientId);
  }

  /** The meta writes that bring the store's copy up to date; to be included in the next apply batch. */
  drainWrites(): MetaWrite[] {
    const writes: MetaWrite[] = [];
    if (this.clockDirty) {
      writes.push({ key: META_CLOCK, value: packr.pack([this.clock, this.counter]) });
      this.clockDirty = false;
    }
    for (const clientId of this.dirtySessions) {
      const s = this.live.get(clientId) ?? this.tombstones.get(clientId);
      writes.push({
        key: metaSession(clientId),
        value:
          s === undefined
            ? null
            : packr.pack([
                s.seq,
                s.order,
                s.lastTime,
                s.result === null ? null : txnResultToWire(s.result),
                s.tombstone,
              ]),
      });
    }
    this.dirtySessions.clear();
    if (this.dirtyBuckets.size > 0) {
      const buckets = new Map<number, string[]>();
      for (const b of this.dirtyBuckets) buckets.set(b, []);
      for (const id of this.live.keys()) buckets.get(bucketOf(id))?.push(id);
      for (const id of this.tombstones.keys()) buckets.get(bucketOf(id))?.push(id);
      for (const [b, ids] of buckets)
        writes.push({ key: metaDirectory(b), value: ids.length === 0 ? null : packr.pack(ids) });
      this.dirtyBuckets.clear();
    }
    return writes;
  }

  /** A live session expires or is evicted: it becomes a tombstone (the oldest tombstone goes if full). */
  private bury(s: Session): void {
    this.live.delete(s.clientId);
    while (this.tombstones.size >= this.limits.maxSessions)
      this.forget(this.tombstones.values().next().value as Session);
    s.tombstone = true;
    s.result = null;
    s.order = ++this.counter;
    s.lastTime = this.clock;
    this.clockDirty = true;
    this.tombstones.set(s.clientId, s);
    this.dirtySessions.add(s.clientId);
  }

  private forget(t: Session): void {
    this.tombstones.delete(t.clientId);
    this.dirtySessions.add(t.clientId);
    this.dirtyBuckets.add(bucketOf(t.clientId));
  }
}

function bucketOf(clientId: string): number {
  return crc32c(clientId) % DIRECTORY_BUCKETS;
}
