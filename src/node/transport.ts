/**
 * What travels between nodes, and the narrow interface the node sends it through (DESIGN.md §2:
 * node/ composes transport/). The server implements PeerTransport over TCP with framed msgpackr
 * messages, coalescing everything for one peer; the simulator over its virtual network.
 *
 * Every message is plain data (numbers, strings, booleans, Buffers, arrays, plain objects) so it can
 * be framed with msgpackr. A peer's message is untrusted input: the node validates it (./peer-validation.ts).
 */
import type { ClientSession } from './kv-service.js';
import type { NodeErrorCode } from './errors.js';
import type { Message, NodeId, SnapshotRequest } from '../raft/types.js';
import type { Txn, TxnResult } from '../kv/state-store.js';

/** A Raft message of one group. */
export interface RaftPeerMessage {
  kind: 'raft';
  message: Message;
}

/**
 * One chunk of a snapshot stream (Raft §7, chunked InstallSnapshot). Chunks of a stream are numbered
 * from 0; `crc` is the CRC32C of `data`. The last chunk carries the Raft 'snapshot' message that the
 * receiver steps into its raft once the whole stream is staged and verified.
 */
export interface SnapshotChunkMessage {
  kind: 'snapshotChunk';
  group: number;
  from: NodeId;
  to: NodeId;
  /** Unique per sender incarnation; a new stream replaces an older one. */
  stream: string;
  seq: number;
  data: Buffer;
  crc: number;
  /** True when the next message continues the same store chunk (a store chunk split to fit a message). */
  more?: boolean;
  /** Present on the last chunk only. */
  done?: SnapshotRequest;
}

/** Cumulative acknowledgement of a snapshot stream: every chunk <= seq was received and verified. */
export interface SnapshotAckMessage {
  kind: 'snapshotAck';
  group: number;
  from: NodeId;
  to: NodeId;
  stream: string;
  /** -1 when nothing has been received yet. */
  seq: number;
  /** False: the receiver gave the stream up (it will not accept more of it). */
  ok: boolean;
}

/** A client request a follower forwards to its leader (DESIGN.md §5). */
export type ForwardedRequest =
  | { op: 'write'; txn: Txn; session?: ClientSession }
  | { op: 'confChange'; change: MembershipRequest }
  | { op: 'transferLeadership'; to?: NodeId };

export type MembershipRequest =
  | { type: 'add'; id: NodeId; peerAddress: string; clientUrl: string; role: 'voter' | 'learner' }
  | { type: 'remove'; id: NodeId }
  | { type: 'promote'; id: NodeId };

export interface ForwardMessage {
  kind: 'forward';
  group: number;
  from: NodeId;
  to: NodeId;
  /** The sender's incarnation: (from, origin, id) names a request uniquely, so a duplicate is never applied twice. */
  origin: string;
  /** Increasing per sender incarnation; the reply names it. */
  id: number;
  /** Remaining time the sender will wait, in ms: the leader gives up before the forwarder does. */
  timeoutMs: number;
  request: ForwardedRequest;
}

export type ForwardedResult =
  | { op: 'write'; result: TxnResult }
  | { op: 'confChange'; members: PeerMemberInfo[] }
  | { op: 'transferLeadership'; leader: NodeId };

export interface PeerMemberInfo {
  id: NodeId;
  peerAddress: string;
  clientUrl: string;
  role: 'voter' | 'learner';
  leaving: boolean;
}

export interface ForwardReplyMessage {
  kind: 'forwardReply';
  group: number;
  from: NodeId;
  to: NodeId;
  /** The forwarder's incarnation and request id: a reply meant for an earlier incarnation is ignored. */
  origin: string;
  id: number;
  result?: ForwardedResult;
  error?: { code: NodeErrorCode; message: string; leader?: NodeId };
}

export type PeerMessage =
  | RaftPeerMessage
  | SnapshotChunkMessage
  | SnapshotAckMessage
  | ForwardMessage
  | ForwardReplyMessage;

export interface PeerTransport {
  /**
   * Registers the node's receiver; called once, before any send. What arrives is untrusted: each
   * message as sent (a PeerMessage) or in its wire form (raft-wire-codec.ts), to be validated.
   */
  listen(deliver: (from: NodeId, messages: readonly unknown[]) => void): void;
  /** Best effort: messages may be lost, duplicated or reordered; Raft and the node cope. */
  send(to: NodeId, messages: PeerMessage[]): void;
  /** A member's peer address became known (or changed); null: it left the cluster. */
  setPeerAddress(id: NodeId, address: string | null): void;
}
