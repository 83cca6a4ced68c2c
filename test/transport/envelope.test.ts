import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packr } from 'msgpackr';
import {
  EnvelopeError,
  EnvelopeType,
  decodeEnvelopes,
  encodeEnvelope,
} from '../../src/transport/envelope.js';

/** msgpackr as the envelope module configures it: the reference the hand-written form must match. */
const reference = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true });

function bytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

describe('envelopes', () => {
  it('writes a bytes message exactly as msgpackr does, at every bin size boundary', () => {
    for (const n of [0, 1, 255, 256, 65_535, 65_536, 70_000]) {
      const payload = bytes(n);
      const ours = encodeEnvelope({ type: EnvelopeType.Message, payload });
      assert.deepEqual(ours, reference.pack([EnvelopeType.Message, payload]), `payload of ${n} bytes`);
      const [decoded] = decodeEnvelopes(ours);
      assert.equal(decoded?.type, EnvelopeType.Message);
      assert.ok(Buffer.isBuffer(decoded.type === EnvelopeType.Message ? decoded.payload : null));
      assert.deepEqual(decoded.type === EnvelopeType.Message ? decoded.payload : null, payload);
    }
  });

  it('decodes several bytes messages of one frame into payloads that do not share the frame', () => {
    const payloads = [bytes(3), bytes(300), bytes(0), bytes(70_000)];
    const body = Buffer.concat(
      payloads.map((payload) => encodeEnvelope({ type: EnvelopeType.Message, payload })),
    );
    const decoded = decodeEnvelopes(body);
    assert.deepEqual(
      decoded.map((e) => (e.type === EnvelopeType.Message ? e.payload : null)),
      payloads,
    );
    body.fill(0);
    assert.deepEqual(decoded[1]?.type === EnvelopeType.Message ? decoded[1].payload : null, payloads[1]);
  });

  it('decodes frames that mix bytes messages with other envelopes, and messages with object payloads', () => {
    const body = Buffer.concat([
      encodeEnvelope({ type: EnvelopeType.Message, payload: bytes(10) }),
      encodeEnvelope({ type: EnvelopeType.Request, id: 7, payload: { kind: 'x', n: 1 } }),
      encodeEnvelope({ type: EnvelopeType.Message, payload: { kind: 'y' } }),
    ]);
    const decoded = decodeEnvelopes(body);
    assert.deepEqual(decoded, [
      { type: EnvelopeType.Message, payload: bytes(10) },
      { type: EnvelopeType.Request, id: 7, payload: { kind: 'x', n: 1 } },
      { type: EnvelopeType.Message, payload: { kind: 'y' } },
    ]);
  });

  it('refuses an empty body and bytes messages cut short, wherever the cut falls', () => {
    assert.throws(() => decodeEnvelopes(Buffer.alloc(0)), EnvelopeError);
    for (const n of [10, 300, 70_000]) {
      const whole = encodeEnvelope({ type: EnvelopeType.Message, payload: bytes(n) });
      for (const cut of [1, 2, 3, 4, 5, 6, whole.length - 1]) {
        assert.throws(
          () => decodeEnvelopes(whole.subarray(0, cut)),
          EnvelopeError,
          `${n} bytes cut at ${cut}`,
        );
      }
    }
    // A length that claims more bytes than the frame holds, after a good envelope.
    const good = encodeEnvelope({ type: EnvelopeType.Message, payload: bytes(5) });
    assert.throws(
      () => decodeEnvelopes(Buffer.concat([good, Buffer.from([0x92, 0x03, 0xc4, 0x09, 1, 2])])),
      EnvelopeError,
    );
  });
});
