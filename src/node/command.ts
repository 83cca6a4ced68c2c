/**
 * The payload of a normal Raft entry: one client transaction, the client's session (for
 * exactly-once application, thesis §6.3) and the proposing leader's wall-clock time, by which the
 * state machine expires sessions deterministically (every replica sees the same times).
 * An empty payload is the leader's no-op (thesis §8) and applies nothing.
 *
 * Two encodings, told apart by the first byte; entries in the log keep whichever they were written
 * in, so both are read forever:
 * - any txn: a MessagePack array [FORMAT, KIND_TXN, time, clientId | null, seq, txn] (first byte
 *   0x96, a 6-element array);
 * - a plain put (no compares, one put, no failure ops: every unconditional PUT /kv/<key>), since
 *   protocol version 2: PLAIN_PUT_MARK (0xc1, the one byte MessagePack never uses), f64 time,
 *   u8 has-session, [u16 clientId length, clientId (UTF-8), f64 seq], u32 key length, key, value
 *   (the rest), little-endian. It spares the leader a MessagePack encode and every replica a decode
 *   of the commonest write (msgpackr was 3-4% of the leader's main thread at 64-connection writes).
 */
import type { Txn } from '../kv/state-store.js';
import type { ClientSession } from './kv-service.js';
import { packr, txnFromWire, txnToWire } from './txn-codec.js';

const FORMAT = 1;
const KIND_TXN = 0;
const PLAIN_PUT_MARK = 0xc1;
/** Fixed bytes of a plain put without session: mark, time, has-session, key length. */
const PLAIN_PUT_HEAD = 1 + 8 + 1 + 4;
const MAX_CLIENT_ID_BYTES = 0xffff;

export interface TxnCommand {
  txn: Txn;
  session: ClientSession | null;
  /** Leader's wall clock when proposed, ms since the epoch. */
  time: number;
}

export function encodeCommand(cmd: TxnCommand): Buffer {
  const plain = encodePlainPut(cmd);
  if (plain !== null) return plain;
  const packed = packr.pack([
    FORMAT,
    KIND_TXN,
    cmd.time,
    cmd.session === null ? null : cmd.session.clientId,
    cmd.session === null ? 0 : cmd.session.seq,
    txnToWire(cmd.txn),
  ]);
  // msgpackr returns a view into its shared 8 KiB+ encoding buffer; an entry kept in the raft log
  // would pin that whole slab (bench:scale: leader buffers 2.5x the entries' size). Own copy.
  const owned = Buffer.allocUnsafeSlow(packed.length);
  packed.copy(owned);
  return owned;
}

/** Decodes an entry's payload; throws an Error naming what is malformed. */
export function decodeCommand(data: Buffer): TxnCommand {
  if (data.length > 0 && data[0] === PLAIN_PUT_MARK) return decodePlainPut(data);
  const w: unknown = packr.unpack(data);
  if (!Array.isArray(w) || w.length !== 6) throw new Error('command: expected a 6-element array');
  if (w[0] !== FORMAT) throw new Error(`command: unknown format ${String(w[0])}`);
  if (w[1] !== KIND_TXN) throw new Error(`command: unknown kind ${String(w[1])}`);
  const time = w[2];
  if (typeof time !== 'number' || !Number.isFinite(time)) throw new Error('command: bad time');
  let session: ClientSession | null = null;
  if (w[3] !== null) {
    if (typeof w[3] !== 'string' || typeof w[4] !== 'number' || !Number.isSafeInteger(w[4]) || w[4] < 1) {
      throw new Error('command: bad session');
    }
    session = { clientId: w[3], seq: w[4] };
  }
  return { txn: txnFromWire(w[5]), session, time };
}

/** The single put of a plain put (one put, no compares, no failure ops), or null. */
export function plainPutOf(txn: Txn): { key: Buffer; value: Buffer } | null {
  if (txn.compare.length !== 0 || txn.failure.length !== 0 || txn.success.length !== 1) return null;
  const op = txn.success[0]!;
  return op.type === 'put' ? op : null;
}

/** The plain-put encoding of `cmd`, or null when `cmd` is not a plain put. */
function encodePlainPut(cmd: TxnCommand): Buffer | null {
  const { txn, session } = cmd;
  const op = plainPutOf(txn);
  if (op === null) return null;
  const idBytes = session === null ? 0 : Buffer.byteLength(session.clientId, 'utf8');
  if (idBytes > MAX_CLIENT_ID_BYTES) return null;
  const size = PLAIN_PUT_HEAD + (session === null ? 0 : 2 + idBytes + 8) + op.key.length + op.value.length;
  // Its own memory (not a pooled slab): the entry lives in the raft log.
  const buf = Buffer.allocUnsafeSlow(size);
  let o = buf.writeUInt8(PLAIN_PUT_MARK, 0);
  o = buf.writeDoubleLE(cmd.time, o);
  o = buf.writeUInt8(session === null ? 0 : 1, o);
  if (session !== null) {
    o = buf.writeUInt16LE(idBytes, o);
    o += buf.write(session.clientId, o, 'utf8');
    o = buf.writeDoubleLE(session.seq, o);
  }
  o = buf.writeUInt32LE(op.key.length, o);
  o += op.key.copy(buf, o);
  o += op.value.copy(buf, o);
  if (o !== size) throw new Error(`plain put command: wrote ${o} of ${size} bytes`);
  return buf;
}

/** Decodes the plain-put encoding; key and value are views of `data`. */
function decodePlainPut(data: Buffer): TxnCommand {
  // needBytes is module-level, not a closure: every replica decodes every entry on its apply path.
  let o = needBytes(data, 1, 8, 'time');
  const time = data.readDoubleLE(1);
  if (!Number.isFinite(time)) throw new Error('command: bad time');
  o = needBytes(data, o, 1, 'has-session');
  const hasSession = data[o - 1]!;
  if (hasSession > 1) throw new Error(`plain put command: has-session is ${hasSession}, not 0 or 1`);
  let session: ClientSession | null = null;
  if (hasSession === 1) {
    o = needBytes(data, o, 2, 'client id length');
    const idBytes = data.readUInt16LE(o - 2);
    o = needBytes(data, o, idBytes, 'client id');
    const clientId = data.toString('utf8', o - idBytes, o);
    o = needBytes(data, o, 8, 'seq');
    const seq = data.readDoubleLE(o - 8);
    if (!Number.isSafeInteger(seq) || seq < 1) throw new Error('command: bad session');
    session = { clientId, seq };
  }
  o = needBytes(data, o, 4, 'key length');
  const keyBytes = data.readUInt32LE(o - 4);
  o = needBytes(data, o, keyBytes, 'key');
  const key = data.subarray(o - keyBytes, o);
  const value = data.subarray(o);
  return { txn: { compare: [], success: [{ type: 'put', key, value }], failure: [] }, session, time };
}

/** The offset after `n` bytes from `at`; throws naming `field` when `data` ends before. */
function needBytes(data: Buffer, at: number, n: number, field: string): number {
  if (at + n > data.length) {
    throw new Error(
      `plain put command: truncated at byte ${at}: ${field} needs ${n} bytes, ${data.length - at} left`,
    );
  }
  return at + n;
}
