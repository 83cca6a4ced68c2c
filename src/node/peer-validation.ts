/**
 * Shape checks of what a peer sends (untrusted input, DESIGN.md §1.5): a malformed message is
 * dropped and counted with a specific reason, never allowed to throw inside the node. Raft messages
 * are checked by raft's own validator when stepped; this covers the node's envelope and its own
 * message kinds.
 */
import { NODE_ERROR_CODES } from './errors.js';
import type { NodeId } from '../raft/types.js';
import type { ForwardReplyMessage, ForwardedRequest, PeerMessage } from './transport.js';
import { decodeForwardWire, isForwardWireTag } from './forward-wire-codec.js';
import { RaftWireError, decodeRaftWire } from './raft-wire-codec.js';

export type PeerValidation = { ok: true; message: PeerMessage } | { ok: false; reason: string };

const MAX_STREAM_ID = 128;
const MAX_FORWARD_TIMEOUT_MS = 10 * 60 * 1000;
const ERROR_CODES: ReadonlySet<string> = new Set<string>(NODE_ERROR_CODES);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Checks the envelope fields every node message carries, and each kind's own fields. A message in
 * its binary wire form (raft-wire-codec.ts, forward-wire-codec.ts) is decoded first.
 */
export function validatePeerMessage(from: NodeId, self: NodeId, input: unknown): PeerValidation {
  let raw = input;
  if (raw instanceof Uint8Array) {
    const forward = isForwardWireTag(raw[0]);
    try {
      raw = forward ? decodeForwardWire(raw) : decodeRaftWire(raw);
    } catch (e) {
      if (e instanceof RaftWireError)
        return { ok: false, reason: forward ? 'undecodable-forward-message' : 'undecodable-raft-message' };
      throw e;
    }
  }
  if (!isObject(raw)) return { ok: false, reason: 'not-an-object' };
  const kind = raw['kind'];
  if (kind === 'raft') {
    const m = raw['message'];
    if (!isObject(m)) return { ok: false, reason: 'raft-message-missing' };
    if (m['from'] !== from) return { ok: false, reason: 'raft-sender-mismatch' };
    return { ok: true, message: raw as unknown as PeerMessage };
  }
  if (!isIndex(raw['group'])) return { ok: false, reason: 'bad-group' };
  if (raw['from'] !== from) return { ok: false, reason: 'sender-mismatch' };
  if (raw['to'] !== self) return { ok: false, reason: 'wrong-recipient' };
  switch (kind) {
    case 'snapshotChunk': {
      const stream = raw['stream'];
      if (typeof stream !== 'string' || stream.length === 0 || stream.length > MAX_STREAM_ID) {
        return { ok: false, reason: 'bad-stream-id' };
      }
      if (!isIndex(raw['seq'])) return { ok: false, reason: 'bad-chunk-seq' };
      if (!Buffer.isBuffer(raw['data'])) return { ok: false, reason: 'bad-chunk-data' };
      const crc = raw['crc'];
      if (typeof crc !== 'number' || !Number.isInteger(crc) || crc < 0 || crc > 0xffffffff) {
        return { ok: false, reason: 'bad-chunk-crc' };
      }
      if (raw['more'] !== undefined && typeof raw['more'] !== 'boolean')
        return { ok: false, reason: 'bad-chunk-more' };
      const done = raw['done'];
      if (done !== undefined && (!isObject(done) || done['type'] !== 'snapshot' || done['from'] !== from)) {
        return { ok: false, reason: 'bad-chunk-done' };
      }
      return { ok: true, message: raw as unknown as PeerMessage };
    }
    case 'snapshotAck': {
      const stream = raw['stream'];
      if (typeof stream !== 'string' || stream.length === 0 || stream.length > MAX_STREAM_ID) {
        return { ok: false, reason: 'bad-stream-id' };
      }
      const seq = raw['seq'];
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < -1)
        return { ok: false, reason: 'bad-ack-seq' };
      if (typeof raw['ok'] !== 'boolean') return { ok: false, reason: 'bad-ack-ok' };
      return { ok: true, message: raw as unknown as PeerMessage };
    }
    case 'forward': {
      if (!isIndex(raw['id'])) return { ok: false, reason: 'bad-forward-id' };
      const origin = raw['origin'];
      if (typeof origin !== 'string' || origin.length === 0 || origin.length > MAX_STREAM_ID) {
        return { ok: false, reason: 'bad-forward-origin' };
      }
      const t = raw['timeoutMs'];
      if (typeof t !== 'number' || !(t > 0) || t > MAX_FORWARD_TIMEOUT_MS)
        return { ok: false, reason: 'bad-forward-timeout' };
      if (!isForwardedRequest(raw['request'])) return { ok: false, reason: 'bad-forward-request' };
      return { ok: true, message: raw as unknown as PeerMessage };
    }
    case 'forwardReply': {
      if (!isIndex(raw['id'])) return { ok: false, reason: 'bad-forward-id' };
      const origin = raw['origin'];
      if (typeof origin !== 'string' || origin.length === 0 || origin.length > MAX_STREAM_ID) {
        return { ok: false, reason: 'bad-forward-origin' };
      }
      const error = raw['error'];
      if (error !== undefined) {
        if (!isObject(error) || typeof error['code'] !== 'string' || !ERROR_CODES.has(error['code'])) {
          return { ok: false, reason: 'bad-forward-error' };
        }
        if (typeof error['message'] !== 'string') return { ok: false, reason: 'bad-forward-error' };
        if (error['leader'] !== undefined && typeof error['leader'] !== 'string')
          return { ok: false, reason: 'bad-forward-error' };
      } else if (!isForwardedResult(raw['result'])) {
        return { ok: false, reason: 'bad-forward-result' };
      }
      return { ok: true, message: raw as unknown as ForwardReplyMessage };
    }
    default:
      return { ok: false, reason: 'unknown-kind' };
  }
}

/** Shape only; a write's Txn and session are validated against limits where they are accepted. */
function isForwardedRequest(v: unknown): v is ForwardedRequest {
  if (!isObject(v)) return false;
  switch (v['op']) {
    case 'write':
      return (
        isObject(v['txn']) && (v['session'] === undefined || v['session'] === null || isObject(v['session']))
      );
    case 'confChange': {
      const c = v['change'];
      if (!isObject(c) || typeof c['id'] !== 'string' || c['id'].length === 0) return false;
      if (c['type'] === 'remove' || c['type'] === 'promote') return true;
      return (
        c['type'] === 'add' &&
        typeof c['peerAddress'] === 'string' &&
        typeof c['clientUrl'] === 'string' &&
        (c['role'] === 'voter' || c['role'] === 'learner')
      );
    }
    case 'transferLeadership':
      return v['to'] === undefined || v['to'] === null || typeof v['to'] === 'string';
    default:
      return false;
  }
}

function isForwardedResult(v: unknown): boolean {
  if (!isObject(v)) return false;
  switch (v['op']) {
    case 'write': {
      const r = v['result'];
      return (
        isObject(r) &&
        typeof r['succeeded'] === 'boolean' &&
        typeof r['revision'] === 'number' &&
        Array.isArray(r['responses'])
      );
    }
    case 'confChange':
      return Array.isArray(v['members']);
    case 'transferLeadership':
      return typeof v['leader'] === 'string';
    default:
      return false;
  }
}
