import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/kv/memory-store.js';
import { ForwardDedup } from '../../src/node/forward-dedup.js';
import { validatePeerMessage } from '../../src/node/peer-validation.js';
import {
  DEFAULT_SNAPSHOT_LIMITS,
  SnapshotReceiver,
  SnapshotSender,
  type SnapshotSenderHost,
  decodeSnapshotMeta,
  encodeSnapshotMeta,
  stagedChunks,
} from '../../src/node/snapshot-transfer.js';
import type { ForwardReplyMessage, SnapshotChunkMessage } from '../../src/node/transport.js';
import type { SnapshotMeta, SnapshotRequest } from '../../src/raft/types.js';

const meta: SnapshotMeta = {
  index: 7,
  term: 2,
  conf: { voters: ['a', 'b'], learners: ['c'], votersOutgoing: [], learnersNext: [], autoLeave: false },
};

async function sourceStore(): Promise<MemoryStore> {
  const s = new MemoryStore();
  const success = Array.from({ length: 50 }, (_, i) => ({
    type: 'put' as const,
    key: Buffer.from(`key-${i}`),
    value: Buffer.alloc(40, i),
  }));
  s.apply({
    appliedIndex: 7,
    txns: [{ compare: [], success, failure: [] }],
    meta: [{ key: 'm', value: Buffer.from('meta') }],
  });
  return s;
}

/** The leader a's snapshot request to follower c for `meta`. */
function snapshotRequest(): SnapshotRequest {
  return { type: 'snapshot', group: 0, from: 'a', to: 'c', term: 2, snapshot: meta };
}

/**
 * Streams a snapshot between a sender and a receiver over a lossy, reordering "network" driven by
 * hand, with a manual clock; returns the receiver's staged chunks once complete.
 */
async function stream(lossEvery: number, window: number) {
  const store = await sourceStore();
  const limits = {
    ...DEFAULT_SNAPSHOT_LIMITS,
    window,
    maxMessageBytes: 100,
    retransmitMs: 10,
    maxRetransmits: 50,
  };
  let now = 0;
  const wire: SnapshotChunkMessage[] = [];
  let finished: boolean | null = null;
  const request = snapshotRequest();
  const sender = new SnapshotSender(
    0,
    'a',
    'c',
    's1',
    request,
    store.exportSnapshot(encodeSnapshotMeta(meta)),
    limits,
    {
      now: () => now,
      send: (_to, m) => wire.push(m),
      finished: (_to, ok) => {
        finished = ok;
      },
      track: (p) => p,
      failed: (e) => assert.fail(e),
    },
  );
  const receiver = new SnapshotReceiver(0, 'c', limits);
  let sent = 0;
  let completed: SnapshotRequest | null = null;
  sender.pump();
  for (let round = 0; round < 10_000 && finished === null; round++) {
    await new Promise<void>((r) => setImmediate(r));
    const batch = wire.splice(0).reverse(); // delivered in reverse order: reordering
    for (const m of batch) {
      if (++sent % lossEvery === 0) continue; // lost
      const out = receiver.onChunk(m);
      if (out.kind === 'complete') completed = out.request;
      if (out.kind !== 'ignore') sender.onAck(out.ack);
    }
    now += 5;
    sender.onTick();
  }
  return { finished, completed, receiver, store };
}

describe('snapshot streaming', () => {
  it('delivers every chunk in order over a lossy, reordering link and reports success', async () => {
    for (const [loss, window] of [
      [1_000_000, 8],
      [3, 4],
      [2, 1],
    ] as const) {
      const { finished, completed, receiver } = await stream(loss, window);
      assert.equal(finished, true);
      assert.deepEqual(completed?.snapshot, meta);
      const staged = receiver.staged(meta)!;
      const copy = new MemoryStore();
      const header = await copy.importSnapshot(staged);
      assert.equal(header.appliedIndex, 7);
      assert.deepEqual(decodeSnapshotMeta(header.metadata), meta);
      assert.equal(copy.count(), 50);
      assert.equal(copy.getMeta('m')?.toString(), 'meta');
    }
  });

  it('backs off its retransmits while the receiver is silent (x1, x2, x4, x8, x8 ...) and then gives up', async () => {
    const store = await sourceStore();
    const limits = {
      ...DEFAULT_SNAPSHOT_LIMITS,
      window: 2,
      maxMessageBytes: 100,
      retransmitMs: 10,
      maxRetransmits: 6,
    };
    let now = 0;
    const sends: number[] = [];
    let finished: boolean | null = null;
    const request = snapshotRequest();
    const host: SnapshotSenderHost = {
      now: () => now,
      send: () => sends.push(now),
      finished: (_to, ok) => {
        finished = ok;
      },
      track: (p) => p,
      failed: (e) => assert.fail(e),
    };
    const sender = new SnapshotSender(
      0,
      'a',
      'c',
      's1',
      request,
      store.exportSnapshot(encodeSnapshotMeta(meta)),
      limits,
      host,
    );
    sender.pump();
    while (sends.length < 2) await new Promise<void>((r) => setImmediate(r)); // the export's first chunk
    const rounds: number[] = [];
    for (; now <= 1000 && finished === null; now++) {
      const before = sends.length;
      sender.onTick();
      if (sends.length > before) rounds.push(now);
    }
    // Window of 2 sent at 0; each silent round resends both, after 10, 20, 40, 80, 80, 80 ms.
    assert.deepEqual(rounds, [10, 30, 70, 150, 230, 310]);
    assert.equal(finished, false, 'gives up after maxRetransmits silent rounds');
    assert.equal(now, 391, 'the round after the last retransmit waited 80 ms too');
  });

  it("does not count the wait for its own export as the receiver's silence", async () => {
    const limits = { ...DEFAULT_SNAPSHOT_LIMITS, retransmitMs: 10, maxRetransmits: 2 };
    let now = 0;
    let finished: boolean | null = null;
    let release!: () => void;
    const exportGate = new Promise<void>((r) => {
      release = r;
    });
    async function* slowExport(): AsyncGenerator<Buffer> {
      await exportGate; // a store export that takes "long" to produce its first chunk
      yield Buffer.from('chunk');
    }
    const request = snapshotRequest();
    const sent: SnapshotChunkMessage[] = [];
    const sender = new SnapshotSender(0, 'a', 'c', 's2', request, slowExport(), limits, {
      now: () => now,
      send: (_to, m) => sent.push(m),
      finished: (_to, ok) => {
        finished = ok;
      },
      track: (p) => p,
      failed: (e) => assert.fail(e),
    });
    sender.pump();
    for (; now < 1000; now += 5) sender.onTick();
    assert.equal(finished, null, 'still streaming after 1 s of waiting for the export');
    assert.equal(sent.length, 0);
    release();
    while (sent.length === 0) await new Promise<void>((r) => setImmediate(r));
    for (const end = now + 1000; now < end && finished === null; now += 5) sender.onTick();
    assert.equal(finished, false, 'a receiver that never answers is still given up on');
  });

  it('feeds staged chunks to the import one per event-loop turn', async () => {
    const order: string[] = [];
    setImmediate(() => order.push('other work'));
    for await (const chunk of stagedChunks([Buffer.from('1'), Buffer.from('2')]))
      order.push(chunk.toString());
    assert.deepEqual(order, ['other work', '1', '2']);
    const turns: string[] = [];
    const feed = stagedChunks([Buffer.from('a'), Buffer.from('b')])[Symbol.asyncIterator]();
    await feed.next();
    setImmediate(() => turns.push('between'));
    turns.push((await feed.next()).value?.toString() ?? '');
    assert.deepEqual(turns, ['between', 'b'], 'a timer or socket callback runs between two chunks');
  });

  it('acknowledges again a chunk of a stream it already installed (its final ack was lost)', () => {
    const receiver = new SnapshotReceiver(0, 'c', DEFAULT_SNAPSHOT_LIMITS);
    const data = Buffer.from('abc');
    const base = {
      kind: 'snapshotChunk',
      group: 0,
      from: 'a',
      to: 'c',
      stream: 's9',
      data,
      crc: 0x364b3fb7,
    } as const;
    const request = snapshotRequest();
    const chunks: SnapshotChunkMessage[] = [];
    for (let seq = 0; seq < 6; seq++) chunks.push({ ...base, seq, ...(seq === 5 ? { done: request } : {}) });
    let last: ReturnType<SnapshotReceiver['onChunk']> = { kind: 'ignore' };
    for (const c of chunks) last = receiver.onChunk(c);
    assert.equal(last.kind, 'complete');
    receiver.reset(); // installed: the staging is dropped
    // The leader never saw the final ack and sends the tail again: acknowledged as done, not ignored.
    for (const seq of [4, 5]) {
      const out = receiver.onChunk(chunks[seq]!);
      assert.equal(out.kind, 'ack');
      assert.ok(out.kind === 'ack' && out.ack.ok && out.ack.seq === 5, JSON.stringify(out));
    }
    // Another sender's chunk of that stream id, or one past its end, is not.
    assert.equal(receiver.onChunk({ ...chunks[4]!, from: 'b' }).kind, 'ignore');
    assert.equal(receiver.onChunk({ ...chunks[4]!, seq: 9 }).kind, 'ignore');
  });

  it('keeps a completed stream staged until it is installed: a new stream meanwhile is refused', () => {
    const receiver = new SnapshotReceiver(0, 'c', DEFAULT_SNAPSHOT_LIMITS);
    const data = Buffer.from('abc');
    const request = snapshotRequest();
    const chunk = (stream: string, seq: number, done: boolean): SnapshotChunkMessage => ({
      kind: 'snapshotChunk',
      group: 0,
      from: 'a',
      to: 'c',
      stream,
      seq,
      data,
      crc: 0x364b3fb7,
      ...(done ? { done: request } : {}),
    });
    assert.equal(receiver.onChunk(chunk('s1', 0, false)).kind, 'ack');
    assert.equal(receiver.onChunk(chunk('s1', 1, true)).kind, 'complete');
    // The leader retries with a new stream before raft's next Ready installed the first one.
    const refused = receiver.onChunk(chunk('s2', 0, false));
    assert.ok(refused.kind === 'ack' && !refused.ack.ok && refused.ack.seq === -1, JSON.stringify(refused));
    assert.notEqual(receiver.staged(request.snapshot), null, 'the completed stream is still staged');
    receiver.release(request.snapshot); // installed
    const accepted = receiver.onChunk(chunk('s2', 0, false));
    assert.ok(accepted.kind === 'ack' && accepted.ack.ok && accepted.ack.seq === 0, JSON.stringify(accepted));
  });

  it('a sender whose receiver lost acknowledged chunks (restart) gives the stream up at once', async () => {
    const store = await sourceStore();
    const wire: SnapshotChunkMessage[] = [];
    let finished: boolean | null = null;
    const request = snapshotRequest();
    const limits = { ...DEFAULT_SNAPSHOT_LIMITS, window: 4, maxMessageBytes: 100 };
    const sender = new SnapshotSender(
      0,
      'a',
      'c',
      's1',
      request,
      store.exportSnapshot(encodeSnapshotMeta(meta)),
      limits,
      {
        now: () => 0,
        send: (_to, m) => wire.push(m),
        finished: (_to, ok) => {
          finished = ok;
        },
        track: (p) => p,
        failed: (e) => assert.fail(e),
      },
    );
    sender.pump();
    for (let i = 0; i < 20 && wire.length < 2; i++) await new Promise<void>((r) => setImmediate(r));
    const first = new SnapshotReceiver(0, 'c', limits);
    const ack0 = first.onChunk(wire[0]!);
    assert.equal(ack0.kind, 'ack');
    if (ack0.kind === 'ack') sender.onAck(ack0.ack);
    // A fresh receiver (the follower restarted) sees only a later chunk: it holds nothing.
    const restarted = new SnapshotReceiver(0, 'c', limits);
    const hole = restarted.onChunk(wire[1]!);
    assert.ok(hole.kind === 'ack' && hole.ack.seq === -1 && hole.ack.ok);
    if (hole.kind === 'ack') sender.onAck(hole.ack);
    assert.equal(finished, false);
    assert.equal(sender.done, true);
  });

  it('drops a corrupt chunk (CRC32C) so the sender retransmits it', () => {
    const receiver = new SnapshotReceiver(0, 'c', DEFAULT_SNAPSHOT_LIMITS);
    const chunk: SnapshotChunkMessage = {
      kind: 'snapshotChunk',
      group: 0,
      from: 'a',
      to: 'c',
      stream: 's',
      seq: 0,
      data: Buffer.from('abc'),
      crc: 1,
    };
    assert.equal(receiver.onChunk(chunk).kind, 'ignore');
  });

  it('refuses a stream beyond maxStagedBytes; tells a sender when it holds nothing of a stream', () => {
    const receiver = new SnapshotReceiver(0, 'c', { ...DEFAULT_SNAPSHOT_LIMITS, maxStagedBytes: 2 });
    const big: SnapshotChunkMessage = {
      kind: 'snapshotChunk',
      group: 0,
      from: 'a',
      to: 'c',
      stream: 's',
      seq: 0,
      data: Buffer.from('abc'),
      crc: 0,
    };
    big.crc = 0x364b3fb7; // crc32c('abc')
    const out = receiver.onChunk(big);
    assert.equal(out.kind === 'ack' && out.ack.ok, false);
    // Mid-stream chunks of a stream it never saw start (it restarted): "nothing here" (seq -1), as a
    // refusal beyond the window, as a plain ack within it (a reordered start looks the same).
    const hole = receiver.onChunk({ ...big, stream: 'other', seq: 3 });
    assert.ok(hole.kind === 'ack' && hole.ack.seq === -1 && hole.ack.ok, JSON.stringify(hole));
    const far = receiver.onChunk({ ...big, stream: 'third', seq: DEFAULT_SNAPSHOT_LIMITS.window });
    assert.ok(far.kind === 'ack' && far.ack.seq === -1 && !far.ack.ok, JSON.stringify(far));
  });
});

describe('forwarded request deduplication', () => {
  it('admits each (sender, incarnation, id) once and replays the answer to a duplicate', () => {
    const d = new ForwardDedup(3, 2);
    assert.deepEqual(d.admit('a', 'x', 1), { kind: 'new' });
    assert.deepEqual(d.admit('a', 'x', 1), { kind: 'inProgress' });
    const reply: ForwardReplyMessage = {
      kind: 'forwardReply',
      group: 0,
      from: 'l',
      to: 'a',
      origin: 'x',
      id: 1,
    };
    d.answered('a', 'x', 1, reply);
    assert.deepEqual(d.admit('a', 'x', 1), { kind: 'answered', reply });
    assert.deepEqual(d.admit('a', 'y', 1), { kind: 'new' }, 'another incarnation has its own ids');
    for (const id of [2, 3, 4, 5]) d.admit('a', 'x', id);
    assert.deepEqual(
      d.admit('a', 'x', 1),
      { kind: 'inProgress' },
      'below the window: treated as seen, never applied twice',
    );
  });

  it('admits ids out of order within the window and refuses one older than its slot holder', () => {
    const d = new ForwardDedup(4, 2); // slot = id % 4
    for (const id of [10, 12, 11, 13]) assert.deepEqual(d.admit('a', 'x', id), { kind: 'new' }, `id ${id}`);
    for (const id of [10, 11, 12, 13]) assert.deepEqual(d.admit('a', 'x', id), { kind: 'inProgress' });
    // Ids 14-19 lost on the way: 20 takes 12's slot, and the floor rises to 12.
    assert.deepEqual(d.admit('a', 'x', 20), { kind: 'new' });
    assert.deepEqual(d.admit('a', 'x', 12), { kind: 'inProgress' }, 'pushed out: counts as seen');
    // 16 was never admitted, but 20 holds its slot: too old to tell, so dropped, never applied.
    assert.deepEqual(d.admit('a', 'x', 16), { kind: 'inProgress' });
    // 14 and 15 arrive late: new, taking the slots of 10 and 11 (both below the floor already).
    assert.deepEqual(d.admit('a', 'x', 14), { kind: 'new' });
    assert.deepEqual(d.admit('a', 'x', 15), { kind: 'new' });
    for (const id of [10, 11, 13, 14, 15, 20])
      assert.deepEqual(d.admit('a', 'x', id), { kind: 'inProgress' }, `id ${id}`);
    assert.deepEqual(d.admit('a', 'x', 1.5), { kind: 'inProgress' }, 'not an id: never admitted');
    assert.deepEqual(d.admit('a', 'x', -1), { kind: 'inProgress' });
  });

  it('keeps the most recently used incarnations of each sender and forgets the least used first', () => {
    const d = new ForwardDedup(8, 2);
    assert.deepEqual(d.admit('a', 'x', 1), { kind: 'new' });
    assert.deepEqual(d.admit('a', 'y', 1), { kind: 'new' });
    assert.deepEqual(d.admit('a', 'x', 2), { kind: 'new' }, 'x used last');
    assert.deepEqual(d.admit('a', 'z', 1), { kind: 'new' }, 'z takes y’s place');
    assert.deepEqual(d.admit('a', 'x', 1), { kind: 'inProgress' }, 'x is still remembered');
    assert.deepEqual(d.admit('a', 'y', 1), { kind: 'new' }, 'y was forgotten (its process is gone)');
    assert.deepEqual(d.admit('b', 'x', 1), { kind: 'new' }, 'another sender has its own incarnations');
    const reply: ForwardReplyMessage = {
      kind: 'forwardReply',
      group: 0,
      from: 'l',
      to: 'a',
      origin: 'q',
      id: 1,
    };
    d.answered('a', 'q', 1, reply);
    assert.deepEqual(
      d.admit('a', 'q', 1),
      { kind: 'new' },
      'an answer for an unknown incarnation is not kept',
    );
  });
});

describe('peer message validation', () => {
  it('checks sender, recipient and each kind', () => {
    const ok = { kind: 'snapshotAck', group: 0, from: 'a', to: 'me', stream: 's', seq: -1, ok: true };
    assert.equal(validatePeerMessage('a', 'me', ok).ok, true);
    const reason = (m: unknown) => {
      const v = validatePeerMessage('a', 'me', m);
      return v.ok ? 'ok' : v.reason;
    };
    assert.equal(reason({ ...ok, from: 'b' }), 'sender-mismatch');
    assert.equal(reason({ ...ok, to: 'x' }), 'wrong-recipient');
    assert.equal(reason({ ...ok, seq: -2 }), 'bad-ack-seq');
    assert.equal(reason({ kind: 'raft', message: { from: 'b' } }), 'raft-sender-mismatch');
    assert.equal(
      reason({
        kind: 'forward',
        group: 0,
        from: 'a',
        to: 'me',
        origin: 'o',
        id: 1,
        timeoutMs: 5,
        request: { op: 'write' },
      }),
      'bad-forward-request',
    );
    assert.equal(
      reason({
        kind: 'forwardReply',
        group: 0,
        from: 'a',
        to: 'me',
        origin: 'o',
        id: 1,
        error: { code: 'made_up', message: '' },
      }),
      'bad-forward-error',
    );
    assert.equal(reason({ kind: 'nope', group: 0, from: 'a', to: 'me' }), 'unknown-kind');
    assert.equal(reason(7), 'not-an-object');
  });
});
