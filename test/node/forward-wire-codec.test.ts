import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packr } from 'msgpackr';
import { DEFAULT_TXN_LIMITS, validateTxn } from '../../src/node/txn-codec.js';
import {
  TAG_FORWARD,
  TAG_FORWARD_REPLY,
  decodeForwardWire,
  encodeForwardWire,
} from '../../src/node/forward-wire-codec.js';
import { validatePeerMessage } from '../../src/node/peer-validation.js';
import { RaftWireError } from '../../src/node/raft-wire-codec.js';
import type { ForwardMessage, ForwardReplyMessage } from '../../src/node/transport.js';
import { Prng } from '../sim/prng.js';

function bytesOf(rng: Prng, max: number): Buffer {
  const b = Buffer.alloc(rng.int(max));
  for (let i = 0; i < b.length; i++) b[i] = rng.int(256);
  return b;
}

function forwardOf(key: Buffer, value: Buffer, session?: { clientId: string; seq: number }): ForwardMessage {
  const txn = { compare: [], success: [{ type: 'put' as const, key, value }], failure: [] };
  return {
    kind: 'forward',
    group: 0,
    from: 'n2',
    to: 'n1',
    origin: 'n2.1795380782.17',
    id: 41,
    timeoutMs: 9_500,
    request: session === undefined ? { op: 'write', txn } : { op: 'write', txn, session },
  };
}

function replyOf(revisions: number[], revision = 77, succeeded = true): ForwardReplyMessage {
  return {
    kind: 'forwardReply',
    group: 0,
    from: 'n1',
    to: 'n2',
    origin: 'n2.1795380782.17',
    id: 41,
    result: {
      op: 'write',
      result: {
        succeeded,
        revision,
        responses: revisions.map((r) => ({ type: 'put' as const, revision: r })),
      },
    },
  };
}

/** The txn of `m` as the leader receives it: in its wire form, through the node's validation. */
function receivedTxn(m: ForwardMessage): unknown {
  const v = validatePeerMessage(m.from, m.to, encodeForwardWire(m));
  assert.ok(v.ok && v.message.kind === 'forward' && v.message.request.op === 'write');
  return v.message.request.txn;
}

describe('forward wire codec', () => {
  it('decodes what it encodes: plain puts with and without a session, over random fields', () => {
    const rng = new Prng(20261122);
    for (let i = 0; i < 300; i++) {
      const session = rng.chance(0.5)
        ? {
            clientId: rng.chance(0.2) ? 'clé-ü'.repeat(rng.int(50)) : `c${rng.int(1e6)}`,
            seq: 1 + rng.int(1e9),
          }
        : undefined;
      const m = forwardOf(bytesOf(rng, 300), bytesOf(rng, 2000), session);
      m.group = rng.int(5);
      m.id = rng.chance(0.2) ? Number.MAX_SAFE_INTEGER - rng.int(1000) : rng.int(1e6);
      m.timeoutMs = 1 + rng.int(600_000);
      const bytes = encodeForwardWire(m);
      assert.ok(bytes !== null && bytes[0] === TAG_FORWARD);
      assert.deepEqual(decodeForwardWire(bytes), m);

      const revisions = Array.from({ length: rng.int(4) }, () => rng.int(1e9));
      const reply = replyOf(revisions, rng.int(1e12), rng.chance(0.5));
      const replyBytes = encodeForwardWire(reply);
      assert.ok(replyBytes !== null && replyBytes[0] === TAG_FORWARD_REPLY);
      assert.deepEqual(decodeForwardWire(replyBytes), reply);
    }
  });

  it('survives the transport, and the leader accepts the decoded put under its limits', () => {
    const packr = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true });
    const m = forwardOf(Buffer.from('k1'), Buffer.from('v'.repeat(100)), { clientId: 'c', seq: 3 });
    const received = packr.unpack(packr.pack(encodeForwardWire(m))) as unknown;
    assert.ok(received instanceof Uint8Array);
    const v = validatePeerMessage('n2', 'n1', received);
    assert.ok(v.ok && v.message.kind === 'forward');
    assert.deepEqual(v.message, m);
    assert.ok(v.message.request.op === 'write');
    assert.deepEqual(
      validateTxn(v.message.request.txn, DEFAULT_TXN_LIMITS),
      m.request.op === 'write' ? m.request.txn : null,
    );
    // Limits apply to a forwarded put in its wire form as to one from a client.
    const huge = forwardOf(Buffer.alloc(DEFAULT_TXN_LIMITS.maxKeyBytes + 1, 1), Buffer.alloc(1));
    assert.throws(() => validateTxn(receivedTxn(huge), DEFAULT_TXN_LIMITS), /maxKeyBytes/);
    const empty = forwardOf(Buffer.alloc(0), Buffer.alloc(1));
    assert.throws(() => validateTxn(receivedTxn(empty), DEFAULT_TXN_LIMITS), /empty key/);
  });

  it('gives no wire form to other forwards and replies, which keep travelling as objects', () => {
    const put = forwardOf(Buffer.from('k'), Buffer.from('v'));
    const txn = (extra: object) => ({
      ...put,
      request: { op: 'write' as const, txn: { compare: [], success: [], failure: [], ...extra } },
    });
    assert.equal(
      encodeForwardWire(txn({ success: [{ type: 'delete', key: Buffer.from('k') }] }) as ForwardMessage),
      null,
    );
    assert.equal(
      encodeForwardWire(
        txn({
          compare: [{ key: Buffer.from('k'), target: 'version', op: '=', value: 1 }],
          success: [{ type: 'put', key: Buffer.from('k'), value: Buffer.from('v') }],
        }) as ForwardMessage,
      ),
      null,
    );
    assert.equal(encodeForwardWire({ ...put, request: { op: 'transferLeadership' } }), null);
    assert.equal(encodeForwardWire({ ...put, from: 'nœud' }), null);
    assert.equal(encodeForwardWire({ ...put, origin: 'o'.repeat(256) }), null);
    const reply = replyOf([5]);
    assert.equal(
      encodeForwardWire({ ...reply, result: undefined, error: { code: 'not_leader', message: 'x' } }),
      null,
    );
    assert.equal(encodeForwardWire({ ...reply, result: { op: 'transferLeadership', leader: 'n1' } }), null);
    assert.equal(
      encodeForwardWire({
        ...reply,
        result: {
          op: 'write',
          result: { succeeded: true, revision: 3, responses: [{ type: 'get', kv: null }] },
        },
      }),
      null,
    );
    assert.equal(
      encodeForwardWire({ kind: 'snapshotAck', group: 0, from: 'a', to: 'b', stream: 's', seq: 0, ok: true }),
      null,
    );
  });

  it('rejects every truncation and any trailing byte, saying where; the node counts them', () => {
    for (const m of [
      forwardOf(Buffer.from('key'), Buffer.from('value'), { clientId: 'c1', seq: 9 }),
      replyOf([1, 2]),
    ]) {
      const bytes = encodeForwardWire(m)!;
      for (let n = 1; n < bytes.length; n++) {
        assert.throws(
          () => decodeForwardWire(bytes.subarray(0, n)),
          RaftWireError,
          `${m.kind}: prefix of ${n} bytes`,
        );
        assert.deepEqual(validatePeerMessage(m.from, m.to, bytes.subarray(0, n)), {
          ok: false,
          reason: 'undecodable-forward-message',
        });
      }
      assert.throws(
        () => decodeForwardWire(Buffer.concat([bytes, Buffer.from([0])])),
        /1 bytes after the end/,
      );
    }
    const f = encodeForwardWire(forwardOf(Buffer.from('key'), Buffer.from('value')))!;
    assert.throws(
      () => decodeForwardWire(f.subarray(0, 20)),
      /forward: truncated at byte 16: origin needs 16 bytes, 4 left/,
    );
  });

  it('rejects flags and counts the layout does not allow, and lets the node check the sender', () => {
    const f = encodeForwardWire(forwardOf(Buffer.from('key'), Buffer.from('value')))!;
    const hasSessionAt = 1 + 8 + 3 + 2 + 2 + 16 + 8 + 8;
    assert.equal(f[hasSessionAt], 0);
    const badSession = Buffer.from(f);
    badSession[hasSessionAt] = 2;
    assert.throws(() => decodeForwardWire(badSession), /has-session is 2/);

    const r = encodeForwardWire(replyOf([1]))!;
    const succeededAt = 1 + 8 + 3 + 2 + 2 + 16 + 8;
    const badSucceeded = Buffer.from(r);
    badSucceeded[succeededAt] = 3;
    assert.throws(() => decodeForwardWire(badSucceeded), /succeeded is 3/);
    const hugeCount = Buffer.from(r);
    hugeCount.writeUInt32LE(0xffffffff, succeededAt + 1 + 8);
    assert.throws(() => decodeForwardWire(hugeCount), /4294967295 responses cannot fit/);

    assert.deepEqual(validatePeerMessage('n3', 'n1', f), { ok: false, reason: 'sender-mismatch' });
    assert.deepEqual(validatePeerMessage('n2', 'n3', f), { ok: false, reason: 'wrong-recipient' });
    const zeroTimeout = encodeForwardWire({
      ...forwardOf(Buffer.from('k'), Buffer.from('v')),
      timeoutMs: 0,
    })!;
    assert.deepEqual(validatePeerMessage('n2', 'n1', zeroTimeout), {
      ok: false,
      reason: 'bad-forward-timeout',
    });
  });
});
