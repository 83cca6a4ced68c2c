/**
 * The envelopes a frame body carries, msgpack-encoded as small arrays (no field names on the wire).
 * Payloads are opaque to the transport; msgpack keeps Buffers binary.
 *
 *   [0, version, clusterId, fromId, toId, incarnation, maxFrameBytes]  hello    (dialer → acceptor)
 *   [1, version, clusterId, fromId, incarnation, maxFrameBytes]        welcome  (acceptor → dialer)
 *   [2, reason, message]                                 reject     (acceptor → dialer, then close)
 *   [3, payload]                                         message
 *   [4, requestId, payload]                              request
 *   [5, requestId, payload]                              response
 *   [6, requestId, code, message]                        error response
 */
import { Packr } from 'msgpackr';
import { isValidId } from './identifiers.js';

/**
 * Both ends of a connection must speak the same version (the handshake rejects any other). 2: the
 * node's append, heartbeat and their responses travel in a binary form (src/node/raft-wire-codec.ts)
 * that a version-1 node would drop as malformed. 3: so do forwarded plain puts and write replies
 * (src/node/forward-wire-codec.ts), which a version-2 node would drop.
 */
export const PROTOCOL_VERSION = 3;

export const EnvelopeType = {
  Hello: 0,
  Welcome: 1,
  Reject: 2,
  Message: 3,
  Request: 4,
  Response: 5,
  ErrorResponse: 6,
} as const;

export type RejectReason =
  | 'cluster_mismatch'
  | 'wrong_node'
  | 'duplicate'
  | 'protocol_version'
  | 'invalid_hello';

export type Envelope =
  | {
      type: typeof EnvelopeType.Hello;
      version: number;
      clusterId: string;
      from: string;
      to: string;
      incarnation: string;
      maxFrameBytes: number;
    }
  | {
      type: typeof EnvelopeType.Welcome;
      version: number;
      clusterId: string;
      from: string;
      incarnation: string;
      maxFrameBytes: number;
    }
  | { type: typeof EnvelopeType.Reject; reason: string; message: string }
  | { type: typeof EnvelopeType.Message; payload: unknown }
  | { type: typeof EnvelopeType.Request; id: number; payload: unknown }
  | { type: typeof EnvelopeType.Response; id: number; payload: unknown }
  | { type: typeof EnvelopeType.ErrorResponse; id: number; code: string; message: string };

/**
 * `useRecords: false`: records would make the encoding depend on state shared between the two
 * ends. `copyBuffers`: decoded Buffers own their memory, so keeping one small value (a log entry)
 * does not pin the whole frame it arrived in.
 */
const packr = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true });

/** Longest string accepted in handshake and error envelopes. */
const MAX_TEXT = 1024;

/**
 * A message envelope whose payload is bytes (the binary Raft and forward forms, nearly every message
 * under load), written by hand: the same msgpack bytes msgpackr writes ([3, bin]: fixarray 2,
 * fixint 3, bin8/16/32), one allocation and one copy, without msgpackr's per-call setup. Decoded
 * the same way by decodeEnvelopes. (Leader cell profile: msgpackr's pack and unpack of envelopes
 * were 2-4% of each node's busy time.)
 */
function encodeBytesMessage(payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 0x100 ? 4 : n < 0x10000 ? 5 : 7;
  const out = Buffer.allocUnsafe(head + n);
  out[0] = 0x92;
  out[1] = EnvelopeType.Message;
  if (n < 0x100) {
    out[2] = 0xc4;
    out[3] = n;
  } else if (n < 0x10000) {
    out[2] = 0xc5;
    out.writeUInt16BE(n, 3);
  } else {
    out[2] = 0xc6;
    out.writeUInt32BE(n, 3);
  }
  payload.copy(out, head);
  return out;
}

/**
 * Decodes a frame body made only of [3, bin] message envelopes (see encodeBytesMessage), copying
 * each payload out of the frame as msgpackr's `copyBuffers` does; null when the body holds anything
 * else, or is cut short, for msgpackr to decode (and to report).
 */
function decodeBytesMessages(body: Buffer): Envelope[] | null {
  if (body.length === 0) return null;
  const out: Envelope[] = [];
  let at = 0;
  while (at < body.length) {
    if (at + 4 > body.length || body[at] !== 0x92 || body[at + 1] !== EnvelopeType.Message) return null;
    let n: number;
    let start: number;
    switch (body[at + 2]) {
      case 0xc4:
        n = body[at + 3]!;
        start = at + 4;
        break;
      case 0xc5:
        if (at + 5 > body.length) return null;
        n = body.readUInt16BE(at + 3);
        start = at + 5;
        break;
      case 0xc6:
        if (at + 7 > body.length) return null;
        n = body.readUInt32BE(at + 3);
        start = at + 7;
        break;
      default:
        return null;
    }
    if (start + n > body.length) return null;
    out.push({ type: EnvelopeType.Message, payload: Buffer.from(body.subarray(start, start + n)) });
    at = start + n;
  }
  return out;
}

export function encodeEnvelope(envelope: Envelope): Buffer {
  switch (envelope.type) {
    case EnvelopeType.Hello:
      return packr.pack([
        envelope.type,
        envelope.version,
        envelope.clusterId,
        envelope.from,
        envelope.to,
        envelope.incarnation,
        envelope.maxFrameBytes,
      ]);
    case EnvelopeType.Welcome:
      return packr.pack([
        envelope.type,
        envelope.version,
        envelope.clusterId,
        envelope.from,
        envelope.incarnation,
        envelope.maxFrameBytes,
      ]);
    case EnvelopeType.Reject:
      return packr.pack([envelope.type, envelope.reason, envelope.message]);
    case EnvelopeType.Message:
      if (Buffer.isBuffer(envelope.payload)) return encodeBytesMessage(envelope.payload);
      return packr.pack([envelope.type, envelope.payload]);
    case EnvelopeType.Request:
    case EnvelopeType.Response:
      return packr.pack([envelope.type, envelope.id, envelope.payload]);
    case EnvelopeType.ErrorResponse:
      return packr.pack([envelope.type, envelope.id, envelope.code, envelope.message]);
  }
}

export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

function isShortText(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_TEXT;
}

function isRequestId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function isFrameLimit(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new EnvelopeError(what);
}

/** Decodes every envelope of a frame body; throws EnvelopeError on anything malformed. */
export function decodeEnvelopes(body: Buffer): Envelope[] {
  const messages = decodeBytesMessages(body);
  if (messages !== null) return messages;
  let values: unknown[];
  try {
    values = packr.unpackMultiple(body) as unknown[];
  } catch (error) {
    throw new EnvelopeError(`undecodable frame body: ${(error as Error).message}`);
  }
  return values.map(toEnvelope);
}

function toEnvelope(value: unknown): Envelope {
  check(Array.isArray(value) && value.length >= 2, 'envelope is not an array of at least 2 items');
  const a = value as unknown[];
  switch (a[0]) {
    case EnvelopeType.Hello:
      check(a.length === 7, 'hello envelope must have 7 items');
      check(isFrameLimit(a[6]), 'hello max frame size is not a positive integer');
      check(typeof a[1] === 'number', 'hello version is not a number');
      check(isShortText(a[2]) && isShortText(a[3]) && isShortText(a[4]) && isShortText(a[5]), 'hello fields');
      check(isValidId(a[3]), 'hello sender id is not a valid node id');
      return {
        type: EnvelopeType.Hello,
        version: a[1] as number,
        clusterId: a[2] as string,
        from: a[3] as string,
        to: a[4] as string,
        incarnation: a[5] as string,
        maxFrameBytes: a[6] as number,
      };
    case EnvelopeType.Welcome:
      check(a.length === 6, 'welcome envelope must have 6 items');
      check(isFrameLimit(a[5]), 'welcome max frame size is not a positive integer');
      check(typeof a[1] === 'number', 'welcome version is not a number');
      check(isShortText(a[2]) && isShortText(a[3]) && isShortText(a[4]), 'welcome fields');
      return {
        type: EnvelopeType.Welcome,
        version: a[1] as number,
        clusterId: a[2] as string,
        from: a[3] as string,
        incarnation: a[4] as string,
        maxFrameBytes: a[5] as number,
      };
    case EnvelopeType.Reject:
      check(a.length === 3 && isShortText(a[1]) && isShortText(a[2]), 'reject envelope fields');
      return { type: EnvelopeType.Reject, reason: a[1] as string, message: a[2] as string };
    case EnvelopeType.Message:
      check(a.length === 2, 'message envelope must have 2 items');
      return { type: EnvelopeType.Message, payload: a[1] };
    case EnvelopeType.Request:
    case EnvelopeType.Response:
      check(a.length === 3 && isRequestId(a[1]), 'request/response envelope fields');
      return { type: a[0] as typeof EnvelopeType.Request, id: a[1] as number, payload: a[2] };
    case EnvelopeType.ErrorResponse:
      check(
        a.length === 4 && isRequestId(a[1]) && isShortText(a[2]) && isShortText(a[3]),
        'error response fields',
      );
      return {
        type: EnvelopeType.ErrorResponse,
        id: a[1] as number,
        code: a[2] as string,
        message: a[3] as string,
      };
    default:
      throw new EnvelopeError(`unknown envelope type ${JSON.stringify(a[0])}`);
  }
}

/** Truncates text for an envelope field so that a long error message cannot break the peer's decoder. */
export function clipText(text: string): string {
  return text.length <= MAX_TEXT ? text : `${text.slice(0, MAX_TEXT - 1)}…`;
}
