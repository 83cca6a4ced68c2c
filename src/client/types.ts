/**
 * The client's public types: binary keys and values as Buffers, revisions as numbers. Shapes come
 * from the API's wire types (the only thing the client shares with the server), with bytes for strings.
 */
import type {
  CompareOf,
  RequestOpOf,
  ResponseOpOf,
  TxnResultOf,
  WireAddMember,
  WireBatchResult,
  WireClusterStatus,
  WireCompareOp,
  WireHealth,
  WireMember,
} from '../api/http/wire.js';

/** Keys and values may be given as strings (UTF-8) or bytes. */
export type Bytes = string | Uint8Array;

export type ReadConsistency = 'linearizable' | 'serializable';

export interface KeyValue {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
}

export interface ReadOptions {
  /** Default: the client's `consistency` option (linearizable unless set). */
  consistency?: ReadConsistency;
}

export interface PutOptions {
  /** Write only if the key's mod revision is this ('*': only if the key exists). */
  ifMatch?: number | '*';
  /** Write only if the key does not exist (create). */
  ifAbsent?: boolean;
}

export interface DeleteOptions {
  ifMatch?: number | '*';
}

export interface ScanOptions extends ReadOptions {
  prefix?: Bytes;
  /** Inclusive. */
  start?: Bytes;
  /** Exclusive. */
  end?: Bytes;
  limit?: number;
  reverse?: boolean;
  /** Leave values out (they come back as empty Buffers). */
  keysOnly?: boolean;
}

export interface ScanResult {
  kvs: KeyValue[];
  /** The server cut the list short (limit or response size): continue after the last key. */
  more: boolean;
}

export type CompareOp = WireCompareOp;
export type Compare = CompareOf<Bytes>;
export type TxnOp = RequestOpOf<Bytes>;

export interface TxnRequest {
  compare?: Compare[];
  success?: TxnOp[];
  failure?: TxnOp[];
}

export type TxnResponse = ResponseOpOf<KeyValue>;
export type TxnResult = TxnResultOf<KeyValue>;
export type BatchOp = Exclude<TxnOp, { type: 'get' }>;
export type BatchResult = WireBatchResult;
export type Health = WireHealth;
export type Member = WireMember;
export type ClusterStatus = WireClusterStatus;
/** A member to add; role defaults to learner (promote it once caught up). */
export type NewMember = WireAddMember;
