import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { Packr } from 'msgpackr';
import { Backoff } from '../../src/transport/backoff.js';
import {
  EnvelopeError,
  EnvelopeType,
  decodeEnvelopes,
  encodeEnvelope,
} from '../../src/transport/envelope.js';
import {
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameError,
  encodeFrame,
} from '../../src/transport/frame-codec.js';
import { SendQueue } from '../../src/transport/send-queue.js';

function drain(decoder: FrameDecoder): Buffer[] {
  const out: Buffer[] = [];
  for (let body = decoder.next(); body; body = decoder.next()) out.push(body);
  return out;
}

describe('FrameDecoder', () => {
  it('decodes frames split at every byte boundary', () => {
    const bodies = [Buffer.from('hello'), Buffer.alloc(300, 7), Buffer.from([0])];
    const stream = Buffer.concat(bodies.map(encodeFrame));
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new FrameDecoder(1024);
      decoder.push(stream.subarray(0, cut));
      const got = drain(decoder);
      decoder.push(stream.subarray(cut));
      got.push(...drain(decoder));
      assert.deepEqual(got, bodies, `cut at ${cut}`);
      assert.equal(decoder.bufferedBytes, 0);
    }
  });

  it('rejects a length above the maximum from the header alone', () => {
    const decoder = new FrameDecoder(100);
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    header.writeUInt32BE(101, 0);
    decoder.push(header);
    assert.throws(
      () => decoder.next(),
      (e: unknown) => e instanceof FrameError && e.reason === 'frame_too_large',
    );
  });

  it('rejects a checksum mismatch and an empty frame', () => {
    const frame = encodeFrame(Buffer.from('payload'));
    frame[frame.length - 1] ^= 0xff;
    const decoder = new FrameDecoder(100);
    decoder.push(frame);
    assert.throws(
      () => decoder.next(),
      (e: unknown) => e instanceof FrameError && e.reason === 'checksum_mismatch',
    );
    const empty = new FrameDecoder(100);
    empty.push(Buffer.alloc(FRAME_HEADER_BYTES));
    assert.throws(
      () => empty.next(),
      (e: unknown) => e instanceof FrameError && e.reason === 'empty_frame',
    );
  });

  it('checksums the body with CRC32C', () => {
    const body = Buffer.from('123456789');
    const frame = encodeFrame(body);
    assert.equal(frame.readUInt32BE(0), 9);
    assert.equal(frame.readUInt32BE(4), crc32c(body));
    assert.equal(frame.readUInt32BE(4), 0xe3069283);
  });
});

describe('envelopes', () => {
  it('round-trips payloads with binary Buffers kept binary', () => {
    const payload = { data: Buffer.from([0, 255, 1]), n: 2 ** 40, nested: [Buffer.alloc(0)] };
    const body = Buffer.concat([
      encodeEnvelope({ type: EnvelopeType.Message, payload }),
      encodeEnvelope({ type: EnvelopeType.Request, id: 7, payload: 'x' }),
    ]);
    const [message, request] = decodeEnvelopes(body);
    assert.equal(message!.type, EnvelopeType.Message);
    const got = (message as { payload: typeof payload }).payload;
    assert.ok(Buffer.isBuffer(got.data));
    assert.deepEqual(got.data, payload.data);
    assert.equal(got.n, 2 ** 40);
    assert.deepEqual(request, { type: EnvelopeType.Request, id: 7, payload: 'x' });
  });

  it('rejects malformed envelopes with a reason', () => {
    const cases: unknown[] = [
      42,
      [],
      [99, 1],
      [3],
      [4, -1, 'x'],
      [4, 1.5, 'x'],
      [0, 1, 'c', 'bad id!', 'b', 'i', 10],
    ];
    for (const value of cases) {
      const bytes = new Packr({ useRecords: false }).pack(value);
      assert.throws(() => decodeEnvelopes(bytes), EnvelopeError, JSON.stringify(value));
    }
    assert.throws(() => decodeEnvelopes(Buffer.from([0x92, 0x03])), EnvelopeError);
  });
});

describe('SendQueue', () => {
  it('drops the oldest entries when the message bound is reached', () => {
    const queue = new SendQueue(3, 1000);
    const dropped: string[] = [];
    for (const name of ['a', 'b', 'c', 'd', 'e']) {
      queue.push({ bytes: Buffer.from(name), onDrop: () => dropped.push(name) });
    }
    assert.equal(queue.length, 3);
    assert.equal(queue.droppedQueueFull, 2);
    assert.deepEqual(dropped, ['a', 'b']);
    assert.equal(queue.shift()!.bytes.toString(), 'c');
  });

  it('drops the oldest entries when the byte bound is reached', () => {
    const queue = new SendQueue(100, 10);
    queue.push({ bytes: Buffer.alloc(4) });
    queue.push({ bytes: Buffer.alloc(4) });
    queue.push({ bytes: Buffer.alloc(4) });
    assert.equal(queue.length, 2);
    assert.equal(queue.bytes, 8);
    assert.throws(() => queue.push({ bytes: Buffer.alloc(11) }));
  });
});

describe('Backoff', () => {
  it('grows exponentially to the cap, with jitter in [ceiling/2, ceiling]', () => {
    const low = new Backoff({ initialMs: 10, maxMs: 100, random: () => 0 });
    const high = new Backoff({ initialMs: 10, maxMs: 100, random: () => 1 });
    assert.deepEqual(
      Array.from({ length: 6 }, () => low.next()),
      [5, 10, 20, 40, 50, 50],
    );
    assert.deepEqual(
      Array.from({ length: 6 }, () => high.next()),
      [10, 20, 40, 80, 100, 100],
    );
    high.reset();
    assert.equal(high.next(), 10);
  });
});
