/**
 * The binary wire form of the four Raft messages that carry nearly all of a busy cluster's peer
 * traffic: append, appendResp, heartbeat and heartbeatResp (DESIGN.md §3). Every other node message
 * travels as a msgpack object; these travel as one byte string each, because as objects they cost
 * the sender a map walk with a field name per value and the receiver a decoded object per entry
 * (msgpackr was 6-9% of each node's main thread at 64-connection writes, docs/benchmarks.md).
 *
 * Layout (little-endian; numbers as float64, which holds every safe integer exactly):
 *
 *   u8 tag (1 append, 2 appendResp, 3 heartbeat, 4 heartbeatResp)
 *   f64 group, f64 term, u8 len + latin1 from, u8 len + latin1 to
 *   append:        f64 prevLogIndex, f64 prevLogTerm, f64 commit, u32 count,
 *                  count x (f64 term, u8 entry type 0 normal / 1 confChange, u32 length, data)
 *                  (entry i has index prevLogIndex + 1 + i: Raft §5.3 entries are contiguous)
 *   appendResp:    u8 reject (0/1), f64 index, f64 hintIndex, f64 hintTerm
 *   heartbeat:     f64 commit, f64 readRound
 *   heartbeatResp: f64 readRound
 *
 * Decoding checks the framing only (lengths, tags, known entry types, no trailing bytes) and
 * throws RaftWireError saying what is wrong; the decoded message is untrusted still and goes
 * through the node's and raft's validators like any other (peer-validation.ts).
 */
import type { Entry, EntryType, Message } from '../raft/types.js';
import type { RaftPeerMessage } from './transport.js';

const TAG_APPEND = 1;
const TAG_APPEND_RESP = 2;
const TAG_HEARTBEAT = 3;
const TAG_HEARTBEAT_RESP = 4;

/** Ids longer than a length byte can say go as msgpack objects (node ids are at most 64 characters). */
const MAX_WIRE_ID = 255;
/** An entry's data length is a u32. */
const MAX_ENTRY_BYTES = 0xffffffff;

const ENTRY_TYPE_CODE: Record<EntryType, number> = { normal: 0, confChange: 1 };
const ENTRY_TYPES: readonly EntryType[] = ['normal', 'confChange'];

export class RaftWireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RaftWireError';
  }
}

/** Printable ASCII ids only: latin1 then maps each character to one byte and back. */
export function wireId(id: string): boolean {
  if (id.length > MAX_WIRE_ID) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

const HEAD_BYTES = 1 + 8 + 8; // tag, group, term

/**
 * The wire form of `m`, or null when it has none (another message kind or type, or ids the layout
 * cannot carry): the caller then sends `m` itself.
 */
export function encodeRaftWire(m: { kind: string; message?: Message }): Buffer | null {
  if (m.kind !== 'raft' || m.message === undefined) return null;
  const msg = m.message;
  let tag: number;
  let size = HEAD_BYTES + 2 + msg.from.length + msg.to.length;
  switch (msg.type) {
    case 'append':
      tag = TAG_APPEND;
      size += 8 * 3 + 4;
      for (const e of msg.entries) size += 8 + 1 + 4 + e.data.length;
      break;
    case 'appendResp':
      tag = TAG_APPEND_RESP;
      size += 1 + 8 * 3;
      break;
    case 'heartbeat':
      tag = TAG_HEARTBEAT;
      size += 8 * 2;
      break;
    case 'heartbeatResp':
      tag = TAG_HEARTBEAT_RESP;
      size += 8;
      break;
    default:
      return null;
  }
  if (!wireId(msg.from) || !wireId(msg.to)) return null;
  const buf = Buffer.allocUnsafe(size);
  let o = buf.writeUInt8(tag, 0);
  o = buf.writeDoubleLE(msg.group, o);
  o = buf.writeDoubleLE(msg.term, o);
  o = buf.writeUInt8(msg.from.length, o);
  o += buf.write(msg.from, o, 'latin1');
  o = buf.writeUInt8(msg.to.length, o);
  o += buf.write(msg.to, o, 'latin1');
  switch (msg.type) {
    case 'append': {
      o = buf.writeDoubleLE(msg.prevLogIndex, o);
      o = buf.writeDoubleLE(msg.prevLogTerm, o);
      o = buf.writeDoubleLE(msg.commit, o);
      o = buf.writeUInt32LE(msg.entries.length, o);
      for (let i = 0; i < msg.entries.length; i++) {
        const e = msg.entries[i]!;
        // The layout implies each entry's index; a gap here is a bug in raft, not in the peer.
        if (e.index !== msg.prevLogIndex + 1 + i) {
          throw new Error(
            `append to ${msg.to}: entry ${i} has index ${e.index}, expected ${msg.prevLogIndex + 1 + i}`,
          );
        }
        if (e.data.length > MAX_ENTRY_BYTES) throw new Error(`entry ${e.index} is ${e.data.length} bytes`);
        o = buf.writeDoubleLE(e.term, o);
        o = buf.writeUInt8(ENTRY_TYPE_CODE[e.type], o);
        o = buf.writeUInt32LE(e.data.length, o);
        o += e.data.copy(buf, o);
      }
      break;
    }
    case 'appendResp':
      o = buf.writeUInt8(msg.reject ? 1 : 0, o);
      o = buf.writeDoubleLE(msg.index, o);
      o = buf.writeDoubleLE(msg.hintIndex, o);
      o = buf.writeDoubleLE(msg.hintTerm, o);
      break;
    case 'heartbeat':
      o = buf.writeDoubleLE(msg.commit, o);
      o = buf.writeDoubleLE(msg.readRound, o);
      break;
    case 'heartbeatResp':
      o = buf.writeDoubleLE(msg.readRound, o);
      break;
  }
  if (o !== size) throw new Error(`raft wire encoding wrote ${o} of ${size} bytes`);
  return buf;
}

/** A bounds-checked reader over one message's bytes; throws RaftWireError naming the field. */
export class WireReader {
  private offset = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  private need(n: number, field: string): number {
    const at = this.offset;
    if (at + n > this.buf.length) {
      throw new RaftWireError(
        `${this.what}: truncated at byte ${at}: ${field} needs ${n} bytes, ${this.buf.length - at} left`,
      );
    }
    this.offset = at + n;
    return at;
  }

  u8(field: string): number {
    return this.buf[this.need(1, field)]!;
  }

  u16(field: string): number {
    return this.buf.readUInt16LE(this.need(2, field));
  }

  u32(field: string): number {
    return this.buf.readUInt32LE(this.need(4, field));
  }

  f64(field: string): number {
    return this.buf.readDoubleLE(this.need(8, field));
  }

  id(field: string): string {
    const n = this.u8(`${field} length`);
    const at = this.need(n, field);
    return this.buf.toString('latin1', at, at + n);
  }

  bytes(n: number, field: string): Buffer {
    const at = this.need(n, field);
    return this.buf.subarray(at, at + n);
  }

  end(): void {
    if (this.offset !== this.buf.length) {
      throw new RaftWireError(
        `${this.what}: ${this.buf.length - this.offset} bytes after the end of the message`,
      );
    }
  }
}

/**
 * The message `bytes` encode. Entry data are views of `bytes` (no copy): the caller hands over a
 * buffer it owns. Throws RaftWireError on malformed framing; the values are not validated here.
 */
export function decodeRaftWire(bytes: Uint8Array): RaftPeerMessage {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length === 0) throw new RaftWireError('raft wire message: empty');
  const tag = buf[0]!;
  const what =
    tag === TAG_APPEND
      ? 'append'
      : tag === TAG_APPEND_RESP
        ? 'appendResp'
        : tag === TAG_HEARTBEAT
          ? 'heartbeat'
          : tag === TAG_HEARTBEAT_RESP
            ? 'heartbeatResp'
            : null;
  if (what === null) throw new RaftWireError(`raft wire message: unknown tag ${tag}`);
  const r = new WireReader(buf, what);
  r.u8('tag');
  const group = r.f64('group');
  const term = r.f64('term');
  const from = r.id('from');
  const to = r.id('to');
  let message: Message;
  switch (tag) {
    case TAG_APPEND: {
      const prevLogIndex = r.f64('prevLogIndex');
      const prevLogTerm = r.f64('prevLogTerm');
      const commit = r.f64('commit');
      const count = r.u32('entry count');
      // Each entry takes at least 13 bytes: a count the rest of the message cannot hold is a lie.
      if (count * 13 > buf.length)
        throw new RaftWireError(`append: ${count} entries cannot fit in ${buf.length} bytes`);
      const entries: Entry[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const entryTerm = r.f64('entry term');
        const code = r.u8('entry type');
        const type = ENTRY_TYPES[code];
        if (type === undefined) throw new RaftWireError(`append: entry ${i} has unknown type ${code}`);
        const data = r.bytes(r.u32('entry length'), 'entry data');
        entries[i] = { term: entryTerm, index: prevLogIndex + 1 + i, type, data };
      }
      message = { type: 'append', group, from, to, term, prevLogIndex, prevLogTerm, entries, commit };
      break;
    }
    case TAG_APPEND_RESP: {
      const reject = r.u8('reject');
      if (reject > 1) throw new RaftWireError(`appendResp: reject is ${reject}, not 0 or 1`);
      const index = r.f64('index');
      const hintIndex = r.f64('hintIndex');
      const hintTerm = r.f64('hintTerm');
      message = {
        type: 'appendResp',
        group,
        from,
        to,
        term,
        reject: reject === 1,
        index,
        hintIndex,
        hintTerm,
      };
      break;
    }
    case TAG_HEARTBEAT: {
      const commit = r.f64('commit');
      const readRound = r.f64('readRound');
      message = { type: 'heartbeat', group, from, to, term, commit, readRound };
      break;
    }
    default: {
      const readRound = r.f64('readRound');
      message = { type: 'heartbeatResp', group, from, to, term, readRound };
      break;
    }
  }
  r.end();
  return { kind: 'raft', message };
}
