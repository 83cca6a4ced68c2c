/**
 * Chunked InstallSnapshot (Raft §7; DESIGN.md §4 "Snapshots"): the leader's driver streams the
 * store's export to a lagging follower, whose driver stages the chunks and steps raft's 'snapshot'
 * message only once the whole stream arrived and every chunk's CRC32C verified.
 *
 * The stream is a sliding window over an unreliable network: at most `window` chunks
 * unacknowledged; the receiver keeps chunks that arrive early (reordered) and acknowledges
 * cumulatively; on silence the sender retransmits everything unacknowledged, waiting twice as long
 * after each silent round (up to 8x retransmitMs), and gives up after `maxRetransmits` rounds (raft
 * is then told reportSnapshot(to, false) and will try again later). The backoff matters for large
 * snapshots on a busy machine: a receiver that is slow for a few seconds (CPU-starved, collecting
 * garbage) must not be buried under a window of retransmitted megabytes every half second, nor the
 * whole stream be restarted from its first chunk. Only silence while chunks are unacknowledged
 * counts: the sender waiting for its own store export is not the receiver's fault.
 *
 * The receiver hands the staged chunks to the store import one per event-loop turn
 * (stagedChunks), so the node keeps answering peers (the acknowledgement of the last chunk,
 * heartbeats) while a large snapshot is written into its store.
 */
import { crc32c } from '@node-rs/crc32';
import type { NodeId, SnapshotMeta, SnapshotRequest } from '../raft/types.js';
import type { SnapshotAckMessage, SnapshotChunkMessage } from './transport.js';
import { packr } from './txn-codec.js';

export interface SnapshotStreamLimits {
  /** Chunks in flight without acknowledgement. */
  window: number;
  /** Largest data in one message; a bigger store chunk is split into several messages. */
  maxMessageBytes: number;
  /** Silence (ms) after which unacknowledged chunks are sent again. */
  retransmitMs: number;
  maxRetransmits: number;
  /** Largest snapshot a follower stages (bytes); a bigger one is refused. */
  maxStagedBytes: number;
}

/** The wait before a retransmit doubles after each silent round, up to this factor of retransmitMs. */
export const MAX_RETRANSMIT_BACKOFF = 8;

export const DEFAULT_SNAPSHOT_LIMITS: SnapshotStreamLimits = {
  window: 8,
  maxMessageBytes: 1024 * 1024,
  retransmitMs: 500,
  maxRetransmits: 10,
  maxStagedBytes: 1024 * 1024 * 1024,
};

/** The metadata blob a store export carries: the Raft identity of the snapshot. */
export function encodeSnapshotMeta(meta: SnapshotMeta): Buffer {
  const c = meta.conf;
  return packr.pack([
    meta.index,
    meta.term,
    [c.voters, c.learners, c.votersOutgoing, c.learnersNext, c.autoLeave],
  ]);
}

export function decodeSnapshotMeta(data: Buffer): SnapshotMeta {
  const w: unknown = packr.unpack(data);
  if (
    !Array.isArray(w) ||
    w.length !== 3 ||
    typeof w[0] !== 'number' ||
    typeof w[1] !== 'number' ||
    !Array.isArray(w[2])
  ) {
    throw new Error('snapshot metadata: expected [index, term, conf]');
  }
  const c = w[2] as unknown[];
  const ids = (x: unknown): string[] => {
    if (!Array.isArray(x) || x.some((v) => typeof v !== 'string'))
      throw new Error('snapshot metadata: bad conf');
    return x as string[];
  };
  return {
    index: w[0],
    term: w[1],
    conf: {
      voters: ids(c[0]),
      learners: ids(c[1]),
      votersOutgoing: ids(c[2]),
      learnersNext: ids(c[3]),
      autoLeave: c[4] === true,
    },
  };
}

export interface SnapshotSenderHost {
  now(): number;
  send(to: NodeId, m: SnapshotChunkMessage): void;
  /** The stream ended: acknowledged completely (ok) or abandoned. */
  finished(to: NodeId, ok: boolean, index: number): void;
  /** Tracks an async store operation (the simulator waits for these to settle). */
  track<T>(p: Promise<T>): Promise<T>;
  failed(error: Error): void;
}

/** One outgoing snapshot stream, leader side. */
export class SnapshotSender {
  private readonly unacked: SnapshotChunkMessage[] = [];
  /** Pieces of the last store chunk pulled, not yet sent: [data, more]. */
  private readonly pieces: Array<[Buffer, boolean]> = [];
  private nextSeq = 0;
  private acked = -1;
  private exhausted = false;
  private pulling = false;
  private lastProgress: number;
  private retransmits = 0;
  private ended = false;
  /** Sequence number of the final (empty, `done`) message once sent. */
  private finalSeq = -1;

  constructor(
    readonly group: number,
    readonly from: NodeId,
    readonly to: NodeId,
    readonly stream: string,
    readonly request: SnapshotRequest,
    private readonly chunks: AsyncGenerator<Buffer>,
    private readonly limits: SnapshotStreamLimits,
    private readonly host: SnapshotSenderHost,
  ) {
    this.lastProgress = host.now();
  }

  get index(): number {
    return this.request.snapshot.index;
  }

  get done(): boolean {
    return this.ended;
  }

  /** Sends while the window has room, pulling the next store chunk when the pieces run out. */
  pump(): void {
    while (!this.ended && this.unacked.length < this.limits.window) {
      const piece = this.pieces.shift();
      if (piece !== undefined) {
        this.emit(piece[0], piece[1], undefined);
        continue;
      }
      if (this.exhausted) {
        if (this.finalSeq < 0) {
          this.finalSeq = this.nextSeq;
          this.emit(Buffer.alloc(0), false, this.request);
        }
        return;
      }
      if (!this.pulling) this.pull();
      return;
    }
  }

  private pull(): void {
    this.pulling = true;
    this.host.track(this.chunks.next()).then(
      (r) => {
        this.pulling = false;
        if (this.ended) return;
        if (r.done === true) {
          this.exhausted = true;
        } else {
          const chunk = r.value;
          const max = this.limits.maxMessageBytes;
          for (let at = 0; at < chunk.length; at += max) {
            const end = Math.min(chunk.length, at + max);
            this.pieces.push([chunk.subarray(at, end), end < chunk.length]);
          }
        }
        this.pump();
      },
      (e: unknown) => {
        this.pulling = false;
        this.abort(true);
        this.host.failed(e instanceof Error ? e : new Error(String(e)));
      },
    );
  }

  onAck(m: SnapshotAckMessage): void {
    if (this.ended || m.stream !== this.stream) return;
    if (!m.ok || (m.seq < 0 && this.acked >= 0)) {
      this.abort(true); // refused, or the receiver lost what it had acknowledged (restarted)
      return;
    }
    if (m.seq <= this.acked) return;
    if (m.seq >= this.nextSeq) return; // acknowledges something never sent: ignore
    while (this.unacked.length > 0 && this.unacked[0]!.seq <= m.seq) this.unacked.shift();
    this.acked = m.seq;
    this.lastProgress = this.host.now();
    this.retransmits = 0;
    if (this.finalSeq >= 0 && this.acked >= this.finalSeq) {
      this.ended = true;
      void this.chunks.return(undefined);
      this.host.finished(this.to, true, this.index);
      return;
    }
    this.pump();
  }

  /** Called on every tick: retransmits after silence (backing off), gives up after too many rounds. */
  onTick(): void {
    if (this.ended) return;
    if (this.unacked.length === 0) {
      // Nothing in flight: the stream waits for its own export, not for the receiver.
      this.lastProgress = this.host.now();
      return;
    }
    const backoff = Math.min(2 ** this.retransmits, MAX_RETRANSMIT_BACKOFF);
    if (this.host.now() - this.lastProgress < this.limits.retransmitMs * backoff) return;
    if (this.retransmits >= this.limits.maxRetransmits) {
      this.abort(true);
      return;
    }
    this.retransmits++;
    this.lastProgress = this.host.now();
    for (const c of this.unacked) this.host.send(this.to, c);
  }

  /** Ends the stream early; `report`: tell raft it failed (not when leadership was lost). */
  abort(report: boolean): void {
    if (this.ended) return;
    this.ended = true;
    void this.chunks.return(undefined).catch(() => {});
    if (report) this.host.finished(this.to, false, this.index);
  }

  private emit(data: Buffer, more: boolean, done: SnapshotRequest | undefined): void {
    const m: SnapshotChunkMessage = {
      kind: 'snapshotChunk',
      group: this.group,
      from: this.from,
      to: this.to,
      stream: this.stream,
      seq: this.nextSeq++,
      data,
      crc: crc32c(data),
      more,
    };
    if (done !== undefined) m.done = done;
    this.unacked.push(m);
    this.host.send(this.to, m);
  }
}

export type ReceiveOutcome =
  | { kind: 'ack'; ack: SnapshotAckMessage }
  | { kind: 'complete'; ack: SnapshotAckMessage; request: SnapshotRequest }
  | { kind: 'ignore' };

/** The follower's staging area for one incoming stream. */
export class SnapshotReceiver {
  private stream = '';
  private leader: NodeId = '';
  private chunks: Buffer[] = [];
  /** Pieces of a store chunk split over several messages. */
  private partial: Buffer[] = [];
  /** Verified chunks that arrived ahead of a gap (at most `window` of them). */
  private readonly ahead = new Map<number, SnapshotChunkMessage>();
  private bytes = 0;
  private expected = 0;
  /** The stream is complete and its 'snapshot' message was stepped into raft. */
  private completed: SnapshotRequest | null = null;
  /**
   * The last stream received whole (kept across reset()): a chunk of it sent again, because its
   * final ack was lost, is acknowledged again, or the sender would retransmit it forever and the
   * leader never learn that this follower has the snapshot.
   */
  private finished: { stream: string; leader: NodeId; lastSeq: number } | null = null;

  constructor(
    readonly group: number,
    readonly self: NodeId,
    private readonly limits: SnapshotStreamLimits,
  ) {}

  onChunk(m: SnapshotChunkMessage): ReceiveOutcome {
    const f = this.finished;
    if (f !== null && m.stream === f.stream && m.stream !== this.stream) {
      if (m.from !== f.leader || m.seq > f.lastSeq) return { kind: 'ignore' };
      return { kind: 'ack', ack: this.ack(m.from, m.stream, f.lastSeq, true) };
    }
    if (m.stream !== this.stream) {
      // A new stream replaces the staged one. A chunk far from its start belongs to a stream this
      // node lost (it restarted mid-stream): refused, so the sender gives it up at once and raft
      // retries with a new stream (staying silent left the leader retransmitting for its whole
      // back-off, the follower without a snapshot meanwhile).
      if (m.seq >= this.limits.window) return { kind: 'ack', ack: this.ack(m.from, m.stream, -1, false) };
      // A completed stream waits for raft's next Ready (installed, or dropped if raft declined it):
      // its staging must stay until then, or the install finds nothing (simulator seed 70451/3: a
      // retried stream of the same snapshot began while the node was still persisting). The new
      // stream is refused; raft retries once this node has answered.
      if (this.completed !== null) return { kind: 'ack', ack: this.ack(m.from, m.stream, -1, false) };
      this.reset();
      this.stream = m.stream;
      this.leader = m.from;
    }
    if (m.from !== this.leader) return { kind: 'ignore' };
    if (m.seq < this.expected)
      return { kind: 'ack', ack: this.ack(m.from, m.stream, this.expected - 1, true) };
    if (this.completed !== null || m.seq >= this.expected + this.limits.window) return { kind: 'ignore' };
    if (crc32c(m.data) !== m.crc) return { kind: 'ignore' }; // corrupt: the sender retransmits
    if (m.seq > this.expected) {
      this.ahead.set(m.seq, m); // arrived early (reordered): kept until the gap before it fills
      // Holding nothing of the stream's start: say so (seq -1, ok). A sender that already had
      // chunks acknowledged learns that this node lost them (it restarted) and gives the stream up;
      // one that had not (a reordered start) ignores it.
      if (this.expected === 0) return { kind: 'ack', ack: this.ack(m.from, m.stream, -1, true) };
      return { kind: 'ignore' };
    }
    let next: SnapshotChunkMessage | undefined = m;
    let outcome: ReceiveOutcome = { kind: 'ignore' };
    while (next !== undefined) {
      outcome = this.accept(next);
      if (outcome.kind !== 'ack' || !outcome.ack.ok) return outcome;
      next = this.ahead.get(this.expected);
      this.ahead.delete(this.expected);
    }
    return outcome;
  }

  /** Appends the next chunk in order; the stream completes with its `done` chunk. */
  private accept(m: SnapshotChunkMessage): ReceiveOutcome {
    if (this.bytes + m.data.length > this.limits.maxStagedBytes) {
      const stream = this.stream;
      this.reset();
      return { kind: 'ack', ack: this.ack(m.from, stream, -1, false) };
    }
    if (m.data.length > 0) this.partial.push(m.data);
    if (m.more !== true && this.partial.length > 0) {
      this.chunks.push(this.partial.length === 1 ? this.partial[0]! : Buffer.concat(this.partial));
      this.partial = [];
    }
    this.bytes += m.data.length;
    this.expected++;
    const ack = this.ack(m.from, m.stream, m.seq, true);
    if (m.done === undefined) return { kind: 'ack', ack };
    if (this.partial.length > 0) {
      const stream = this.stream;
      this.reset();
      return { kind: 'ack', ack: this.ack(m.from, stream, -1, false) };
    }
    this.completed = m.done;
    this.finished = { stream: m.stream, leader: m.from, lastSeq: m.seq };
    this.ahead.clear();
    return { kind: 'complete', ack, request: m.done };
  }

  /**
   * The staged chunks of a completed stream for `meta`, or null: fed to the store import one per
   * event-loop turn (a store import of synchronous chunks would otherwise hold the loop for the
   * whole snapshot).
   */
  staged(meta: SnapshotMeta): AsyncIterable<Buffer> | null {
    const c = this.completed;
    if (c === null || c.snapshot.index !== meta.index || c.snapshot.term !== meta.term) return null;
    return stagedChunks(this.chunks);
  }

  /** Drops the staging if it holds the completed stream of `meta` (installed now); else keeps it. */
  release(meta: SnapshotMeta): void {
    const c = this.completed;
    if (c !== null && c.snapshot.index === meta.index && c.snapshot.term === meta.term) this.reset();
  }

  get hasCompleted(): boolean {
    return this.completed !== null;
  }

  get stagedBytes(): number {
    return this.bytes;
  }

  reset(): void {
    this.stream = '';
    this.leader = '';
    this.chunks = [];
    this.partial = [];
    this.ahead.clear();
    this.bytes = 0;
    this.expected = 0;
    this.completed = null;
  }

  private ack(to: NodeId, stream: string, seq: number, ok: boolean): SnapshotAckMessage {
    return { kind: 'snapshotAck', group: this.group, from: this.self, to, stream, seq, ok };
  }
}

/** Yields each chunk after a turn of the event loop (setImmediate): I/O and timers run in between. */
export async function* stagedChunks(chunks: readonly Buffer[]): AsyncGenerator<Buffer> {
  for (const chunk of chunks) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    yield chunk;
  }
}
