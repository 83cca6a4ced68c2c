/**
 * The JSON shapes of the HTTP API (docs/api.md). These types are the only thing the client library
 * shares with the server (DESIGN.md §2): import them with `import type`.
 *
 * Keys and values in JSON are strings: UTF-8 text by default, or base64 when the request says
 * `"encoding": "base64"` (txn, batch) or `?encoding=base64` (range), which is binary-safe.
 */

export type WireEncoding = 'utf8' | 'base64';

export interface WireError {
  error: {
    code: string;
    message: string;
    /** precondition_failed: the key's current mod revision (0 when absent). */
    modRevision?: number;
    /** not_leader: the leader's id and client URL, when known. */
    leader?: string;
    leaderUrl?: string;
    /** limit_exceeded: which limit and its value. */
    limit?: string;
    limitValue?: number;
  };
}

export interface WireHealth {
  id: string;
  role: string;
  term: number;
  leader: string;
  commitIndex: number;
  lastApplied: number;
}

export interface WireKeyValue {
  key: string;
  /** Absent in keysOnly listings. */
  value?: string;
  createRevision: number;
  modRevision: number;
  version: number;
}

export interface WirePutResult {
  revision: number;
}

export interface WireDeleteResult {
  deleted: 1;
  revision: number;
}

export type WireCompareOp = '=' | '!=' | '<' | '>';

/** A transaction compare over keys and values of type B (strings on the wire, bytes in the client). */
export type CompareOf<B> =
  | { key: B; target: 'value'; op: WireCompareOp; value: B }
  | { key: B; target: 'version' | 'createRevision' | 'modRevision'; op: WireCompareOp; value: number }
  | { key: B; target: 'exists'; exists: boolean };

export type RequestOpOf<B> =
  | { type: 'put'; key: B; value: B }
  | { type: 'delete'; key: B }
  | { type: 'get'; key: B };

export type WireCompare = CompareOf<string>;
export type WireRequestOp = RequestOpOf<string>;

export interface WireTxnRequest {
  encoding?: WireEncoding;
  /** For read-only transactions; writes are always linearizable. */
  consistency?: 'linearizable' | 'serializable';
  compare?: WireCompare[];
  success?: WireRequestOp[];
  failure?: WireRequestOp[];
}

export type WriteResponseOp =
  | { type: 'put'; revision: number }
  | { type: 'delete'; deleted: 0 | 1; revision: number };

export type ResponseOpOf<KV> = WriteResponseOp | { type: 'get'; kv: KV | null };

export interface TxnResultOf<KV> {
  succeeded: boolean;
  revision: number;
  responses: ResponseOpOf<KV>[];
}

export type WireResponseOp = ResponseOpOf<WireKeyValue>;

export interface WireTxnResult extends TxnResultOf<WireKeyValue> {
  /** The encoding of keys and values in `responses`: as asked, except that a write transaction whose
   * results are not valid UTF-8 answers in base64 rather than with an error. */
  encoding: WireEncoding;
}

export interface WireBatchRequest {
  encoding?: WireEncoding;
  ops: Exclude<WireRequestOp, { type: 'get' }>[];
}

export interface WireBatchResult {
  revision: number;
  responses: WriteResponseOp[];
}

export type WireMemberRole = 'voter' | 'learner';

export interface WireMember {
  id: string;
  peerAddress: string;
  clientUrl: string;
  role: WireMemberRole;
  leaving?: boolean;
}

export interface WireMembers {
  members: WireMember[];
}

export interface WireAddMember {
  id: string;
  peerAddress: string;
  clientUrl?: string;
  role?: WireMemberRole;
}

export interface WireClusterStatus extends WireHealth {
  lastIndex: number;
  snapshotIndex: number;
  revision: number;
  members: WireMember[];
}

export interface WireTransferLeader {
  to?: string;
}

export interface WireLeader {
  leader: string;
}

/** Response headers of GET /kv/{key}. */
export const HEADER_REVISION = 'x-atlas-revision';
export const HEADER_VERSION = 'x-atlas-version';
export const HEADER_CREATE_REVISION = 'x-atlas-create-revision';
/** Set on range responses that were cut short by the limit or the response size budget. */
export const HEADER_MORE = 'x-atlas-more';
/** Exactly-once session headers (Raft thesis §6.3). */
export const HEADER_CLIENT_ID = 'x-atlas-client-id';
export const HEADER_SEQ = 'x-atlas-seq';
/** not_leader responses: the leader's id. */
export const HEADER_LEADER = 'x-atlas-leader';
