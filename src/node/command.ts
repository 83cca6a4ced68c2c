/**
 * The payload of a normal Raft entry: one client transaction, the client's session (for
 * exactly-once application, thesis §6.3) and the proposing leader's wall-clock time, by which the
 * state machine expires sessions deterministically (every replica sees the same times).
 * An empty payload is the leader's no-op (thesis §8) and applies nothing.
 *
 * Encoded as a MessagePack array: [FORMAT, KIND_TXN, time, clientId | null, seq, txn].
 */
import type { Txn } from '../kv/state-store.js';
import type { ClientSession } from './kv-service.js';
import { packr, txnFromWire, txnToWire } from './txn-codec.js';

const FORMAT = 1;
const KIND_TXN = 0;

export interface TxnCommand {
  txn: Txn;
  session: ClientSession | null;
  /** Leader's wall clock when proposed, ms since the epoch. */
  time: number;
}

export function encodeCommand(cmd: TxnCommand): Buffer {
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
