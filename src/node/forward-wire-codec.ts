/**
 * The binary wire form of a forwarded plain put and of a write's reply (DESIGN.md §3). With client
 * connections spread over all members, two thirds of the writes travel follower -> leader ->
 * follower; as msgpack objects each cost the sender a map walk with a field name per value and the
 * receiver a decoded object tree (msgpack decoding was ~10% of the leader's allocations under spread
 * writes, docs/benchmarks.md). Other forwards (transactions, membership, leadership transfers) and
 * error replies stay msgpack objects.
 *
 * Layout (little-endian; numbers as float64, which holds every safe integer exactly):
 *
 *   u8 tag (5 forward, 6 forwardReply)
 *   f64 group, u8 len + latin1 from, u8 len + latin1 to, u8 len + latin1 origin, f64 id
 *   forward:      f64 timeoutMs, u8 has-session [u16 len + UTF-8 clientId, f64 seq],
 *                 u32 key length, key, u32 value length, value
 *   forwardReply: u8 succeeded, f64 revision, u32 count, count x f64 put revision
 *
 * Decoding checks the framing only and throws RaftWireError saying what is wrong; the decoded
 * message is untrusted still and goes through the node's validation (peer-validation.ts) and the
 * leader's limits (validateTxn) like one that came as an object.
 */
import type { Txn } from '../kv/state-store.js';
import { plainPutOf } from './command.js';
import { RaftWireError, WireReader, wireId } from './raft-wire-codec.js';
import type { ForwardMessage, ForwardReplyMessage, PeerMessage } from './transport.js';

export const TAG_FORWARD = 5;
export const TAG_FORWARD_REPLY = 6;

const MAX_CLIENT_ID_BYTES = 0xffff;
/** Bytes of a forwardReply's result per response. */
const RESPONSE_BYTES = 8;

function headBytes(m: { from: string; to: string; origin: string }): number {
  return 1 + 8 + 3 + m.from.length + m.to.length + m.origin.length + 8;
}

function writeHead(buf: Buffer, tag: number, m: ForwardMessage | ForwardReplyMessage): number {
  let o = buf.writeUInt8(tag, 0);
  o = buf.writeDoubleLE(m.group, o);
  o = writeId(buf, m.from, o);
  o = writeId(buf, m.to, o);
  o = writeId(buf, m.origin, o);
  return buf.writeDoubleLE(m.id, o);
}

function writeId(buf: Buffer, id: string, at: number): number {
  const o = buf.writeUInt8(id.length, at);
  return o + buf.write(id, o, 'latin1');
}

/**
 * The wire form of `m`, or null when it has none (another kind, a forward that is not a plain put,
 * a reply that is an error or not a write's, ids the layout cannot carry): the caller then sends
 * `m` itself.
 */
export function encodeForwardWire(m: PeerMessage): Buffer | null {
  if (m.kind !== 'forward' && m.kind !== 'forwardReply') return null;
  if (!wireId(m.from) || !wireId(m.to) || !wireId(m.origin)) return null;
  return m.kind === 'forward' ? encodeForward(m) : encodeReply(m);
}

function encodeForward(m: ForwardMessage): Buffer | null {
  const r = m.request;
  if (r.op !== 'write') return null;
  const put = plainPutOf(r.txn);
  if (put === null) return null;
  const session = r.session ?? null;
  const idBytes = session === null ? 0 : Buffer.byteLength(session.clientId, 'utf8');
  if (idBytes > MAX_CLIENT_ID_BYTES) return null;
  const size =
    headBytes(m) +
    8 +
    1 +
    (session === null ? 0 : 2 + idBytes + 8) +
    4 +
    put.key.length +
    4 +
    put.value.length;
  const buf = Buffer.allocUnsafe(size);
  let o = writeHead(buf, TAG_FORWARD, m);
  o = buf.writeDoubleLE(m.timeoutMs, o);
  o = buf.writeUInt8(session === null ? 0 : 1, o);
  if (session !== null) {
    o = buf.writeUInt16LE(idBytes, o);
    o += buf.write(session.clientId, o, 'utf8');
    o = buf.writeDoubleLE(session.seq, o);
  }
  o = buf.writeUInt32LE(put.key.length, o);
  o += put.key.copy(buf, o);
  o = buf.writeUInt32LE(put.value.length, o);
  o += put.value.copy(buf, o);
  if (o !== size) throw new Error(`forward wire encoding wrote ${o} of ${size} bytes`);
  return buf;
}

function encodeReply(m: ForwardReplyMessage): Buffer | null {
  if (m.error !== undefined || m.result === undefined || m.result.op !== 'write') return null;
  const { succeeded, revision, responses } = m.result.result;
  for (const r of responses) if (r.type !== 'put') return null;
  const size = headBytes(m) + 1 + 8 + 4 + RESPONSE_BYTES * responses.length;
  const buf = Buffer.allocUnsafe(size);
  let o = writeHead(buf, TAG_FORWARD_REPLY, m);
  o = buf.writeUInt8(succeeded ? 1 : 0, o);
  o = buf.writeDoubleLE(revision, o);
  o = buf.writeUInt32LE(responses.length, o);
  for (const r of responses) if (r.type === 'put') o = buf.writeDoubleLE(r.revision, o);
  if (o !== size) throw new Error(`forwardReply wire encoding wrote ${o} of ${size} bytes`);
  return buf;
}

export function isForwardWireTag(tag: number | undefined): boolean {
  return tag === TAG_FORWARD || tag === TAG_FORWARD_REPLY;
}

/**
 * The message `bytes` encode. A forward's key and value are views of `bytes` (no copy): the caller
 * hands over a buffer it owns. Throws RaftWireError on malformed framing.
 */
export function decodeForwardWire(bytes: Uint8Array): ForwardMessage | ForwardReplyMessage {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = buf[0];
  if (!isForwardWireTag(tag)) throw new RaftWireError(`forward wire message: unknown tag ${String(tag)}`);
  const r = new WireReader(buf, tag === TAG_FORWARD ? 'forward' : 'forwardReply');
  r.u8('tag');
  const group = r.f64('group');
  const from = r.id('from');
  const to = r.id('to');
  const origin = r.id('origin');
  const id = r.f64('id');
  if (tag === TAG_FORWARD) {
    const timeoutMs = r.f64('timeoutMs');
    const hasSession = r.u8('has-session');
    if (hasSession > 1) throw new RaftWireError(`forward: has-session is ${hasSession}, not 0 or 1`);
    let session: { clientId: string; seq: number } | undefined;
    if (hasSession === 1) {
      const clientId = r.bytes(r.u16('client id length'), 'client id').toString('utf8');
      session = { clientId, seq: r.f64('seq') };
    }
    const key = r.bytes(r.u32('key length'), 'key');
    const value = r.bytes(r.u32('value length'), 'value');
    r.end();
    const txn: Txn = { compare: [], success: [{ type: 'put', key, value }], failure: [] };
    const m: ForwardMessage = {
      kind: 'forward',
      group,
      from,
      to,
      origin,
      id,
      timeoutMs,
      request: session === undefined ? { op: 'write', txn } : { op: 'write', txn, session },
    };
    return m;
  }
  const succeeded = r.u8('succeeded');
  if (succeeded > 1) throw new RaftWireError(`forwardReply: succeeded is ${succeeded}, not 0 or 1`);
  const revision = r.f64('revision');
  const count = r.u32('response count');
  if (count * RESPONSE_BYTES > buf.length)
    throw new RaftWireError(`forwardReply: ${count} responses cannot fit in ${buf.length} bytes`);
  const responses: Array<{ type: 'put'; revision: number }> = new Array(count);
  for (let i = 0; i < count; i++) responses[i] = { type: 'put', revision: r.f64('response revision') };
  r.end();
  return {
    kind: 'forwardReply',
    group,
    from,
    to,
    origin,
    id,
    result: { op: 'write', result: { succeeded: succeeded === 1, revision, responses } },
  };
}
