import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packr } from 'msgpackr';
import { validatePeerMessage } from '../../src/node/peer-validation.js';
import { RaftWireError, decodeRaftWire, encodeRaftWire } from '../../src/node/raft-wire-codec.js';
import type { RaftPeerMessage } from '../../src/node/transport.js';
import type { AppendRequest, Entry, Message } from '../../src/raft/types.js';
import { validateMessage } from '../../src/raft/validate-message.js';
import { Prng } from '../sim/prng.js';

function raft(message: Message): RaftPeerMessage {
  return { kind: 'raft', message };
}

function appendOf(entries: Entry[], prevLogIndex = 41, term = 5): AppendRequest {
  return {
    type: 'append',
    group: 0,
    from: 'n1',
    to: 'n2',
    term,
    prevLogIndex,
    prevLogTerm: 4,
    entries,
    commit: 40,
  };
}

/** Terms rise from 4 (appendOf's prevLogTerm) to at most maxTerm, as a valid append's do. */
function entriesOf(rng: Prng, prevLogIndex: number, count: number, maxTerm: number): Entry[] {
  let term = 4;
  return Array.from({ length: count }, (_, i) => {
    term = Math.min(maxTerm, term + (rng.chance(0.2) ? 1 : 0));
    const data = Buffer.alloc(rng.int(300));
    for (let b = 0; b < data.length; b++) data[b] = rng.int(256);
    return { term, index: prevLogIndex + 1 + i, type: rng.chance(0.1) ? 'confChange' : 'normal', data };
  });
}

/** Every field drawn over its whole range: large safe integers, empty and 64-character ids. */
function randomMessage(rng: Prng): Message {
  const big = () => (rng.chance(0.2) ? Number.MAX_SAFE_INTEGER - rng.int(1000) : rng.int(1_000_000));
  const id = () => (rng.chance(0.1) ? 'x'.repeat(64) : `n${rng.int(100)}.a_b-${rng.int(10)}`);
  const base = { group: rng.int(5), from: id(), to: id(), term: big() };
  switch (rng.int(4)) {
    case 0: {
      const prevLogIndex = big();
      return {
        ...base,
        type: 'append',
        prevLogIndex,
        prevLogTerm: big(),
        commit: big(),
        entries: entriesOf(rng, prevLogIndex, rng.int(20), 50),
      };
    }
    case 1:
      return {
        ...base,
        type: 'appendResp',
        reject: rng.chance(0.5),
        index: big(),
        hintIndex: big(),
        hintTerm: big(),
      };
    case 2:
      return { ...base, type: 'heartbeat', commit: big(), readRound: big() };
    default:
      return { ...base, type: 'heartbeatResp', readRound: big() };
  }
}

describe('raft wire codec', () => {
  it('decodes what it encodes, for every hot message type over random fields', () => {
    const rng = new Prng(20261122);
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const m = raft(randomMessage(rng));
      seen.add(m.message.type);
      const bytes = encodeRaftWire(m);
      assert.ok(bytes !== null, `${m.message.type} has a wire form`);
      assert.deepEqual(decodeRaftWire(bytes), m);
    }
    assert.deepEqual([...seen].sort(), ['append', 'appendResp', 'heartbeat', 'heartbeatResp']);
  });

  it('survives the transport: msgpack carries the bytes and the node validates the result', () => {
    const packr = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true });
    const m = raft(appendOf(entriesOf(new Prng(7), 41, 3, 5)));
    const received = packr.unpack(packr.pack(encodeRaftWire(m))) as unknown;
    assert.ok(received instanceof Uint8Array);
    const v = validatePeerMessage('n1', 'n2', received);
    assert.ok(v.ok);
    assert.deepEqual(v.message, m);
    const checked = validateMessage(m.message, 'n2', 0);
    assert.ok(checked.ok, checked.ok ? '' : checked.reason);
  });

  it('gives no wire form to the other messages, which keep travelling as objects', () => {
    const vote: Message = {
      type: 'vote',
      group: 0,
      from: 'a',
      to: 'b',
      term: 2,
      lastLogIndex: 1,
      lastLogTerm: 1,
      transfer: false,
    };
    assert.equal(encodeRaftWire(raft(vote)), null);
    assert.equal(encodeRaftWire({ kind: 'snapshotAck' }), null);
    // Ids the layout cannot carry byte for byte (the transport allows ASCII only anyway).
    const heartbeat: Message = {
      type: 'heartbeat',
      group: 0,
      from: 'nœud',
      to: 'b',
      term: 2,
      commit: 0,
      readRound: 0,
    };
    assert.equal(encodeRaftWire(raft(heartbeat)), null);
    assert.equal(encodeRaftWire(raft({ ...heartbeat, from: 'a'.repeat(256) })), null);
  });

  it('refuses to encode an append whose entries are not contiguous (a raft bug, not a peer fault)', () => {
    const entries = entriesOf(new Prng(3), 41, 3, 5);
    entries[2] = { ...entries[2]!, index: 45 };
    assert.throws(() => encodeRaftWire(raft(appendOf(entries))), /entry 2 has index 45, expected 44/);
  });

  it('rejects every truncation of a message and any trailing byte, saying where', () => {
    const bytes = encodeRaftWire(raft(appendOf(entriesOf(new Prng(11), 41, 4, 5))))!;
    for (let n = 0; n < bytes.length; n++) {
      assert.throws(() => decodeRaftWire(bytes.subarray(0, n)), RaftWireError, `prefix of ${n} bytes`);
    }
    assert.throws(
      () => decodeRaftWire(bytes.subarray(0, 30)),
      /append: truncated at byte 23: prevLogIndex needs 8 bytes, 7 left/,
    );
    assert.throws(
      () => decodeRaftWire(Buffer.concat([bytes, Buffer.from([0])])),
      /append: 1 bytes after the end/,
    );
  });

  it('rejects unknown tags, entry types and flags, and entry counts the bytes cannot hold', () => {
    assert.throws(() => decodeRaftWire(Buffer.from([9, 1, 2])), /unknown tag 9/);
    assert.throws(() => decodeRaftWire(Buffer.alloc(0)), /empty/);

    const entry = { term: 5, index: 42, type: 'normal' as const, data: Buffer.from('x') };
    const append = encodeRaftWire(raft(appendOf([entry])))!;
    const typeAt = append.length - 1 - 4 - 1; // data (1), length (4), then the type byte
    const badType = Buffer.from(append);
    badType[typeAt] = 7;
    assert.throws(() => decodeRaftWire(badType), /entry 0 has unknown type 7/);

    const countAt = append.length - 1 - 4 - 1 - 8 - 4;
    const hugeCount = Buffer.from(append);
    hugeCount.writeUInt32LE(0xffffffff, countAt);
    assert.throws(() => decodeRaftWire(hugeCount), /4294967295 entries cannot fit/);

    const resp = encodeRaftWire(
      raft({
        type: 'appendResp',
        group: 0,
        from: 'a',
        to: 'b',
        term: 1,
        reject: false,
        index: 3,
        hintIndex: 0,
        hintTerm: 0,
      }),
    )!;
    const rejectAt = 1 + 8 + 8 + 2 + 2;
    resp[rejectAt] = 2;
    assert.throws(() => decodeRaftWire(resp), /reject is 2/);
  });

  it('lets the node drop undecodable bytes with a reason, and leaves value checks to the validators', () => {
    const garbage = validatePeerMessage('n1', 'n2', Buffer.from([1, 2, 3]));
    assert.deepEqual(garbage, { ok: false, reason: 'undecodable-raft-message' });
    // Well-framed but lying about its sender: the node's check, as for an object.
    const forged = encodeRaftWire(raft(appendOf([])))!;
    assert.deepEqual(validatePeerMessage('n3', 'n2', forged), { ok: false, reason: 'raft-sender-mismatch' });
    // Well-framed but not a valid append: raft's validator, as for an object.
    const nan = encodeRaftWire(raft({ ...appendOf([]), commit: Number.NaN }))!;
    const v = validatePeerMessage('n1', 'n2', nan);
    assert.ok(v.ok && v.message.kind === 'raft');
    assert.deepEqual(validateMessage(v.message.message, 'n2', 0), { ok: false, reason: 'bad-append-fields' });
  });
});
