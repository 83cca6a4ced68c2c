/** Shared helpers of the state store tests. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyValue, RequestOp, StateStore, Txn } from '../../src/kv/state-store.js';

/**
 * A fresh temporary directory. On tmpfs (/dev/shm) when there is one: the tests check the store's
 * logic, and an fsync per apply on a shared disk would only make them slow.
 */
export function tempDir(prefix: string): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return mkdtempSync(join(base, `atlas-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function bytes(...values: number[]): Buffer {
  return Buffer.from(values);
}

export function text(value: string): Buffer {
  return Buffer.from(value, 'utf8');
}

export function putOp(key: Buffer, value: Buffer): RequestOp {
  return { type: 'put', key, value };
}

export function deleteOp(key: Buffer): RequestOp {
  return { type: 'delete', key };
}

export function getOp(key: Buffer): RequestOp {
  return { type: 'get', key };
}

/** A transaction without compares. */
export function plain(...ops: RequestOp[]): Txn {
  return { compare: [], success: ops, failure: [] };
}

export async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

/** A comparable picture of a key-value. */
export interface KvPicture {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
}

export function picture(kv: KeyValue): KvPicture {
  return {
    key: kv.key.toString('hex'),
    value: kv.value.toString('hex'),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
  };
}

/** Everything observable about a store (user keys in order, counters, the given meta keys). */
export function dump(store: StateStore, metaKeys: string[] = []) {
  return {
    appliedIndex: store.appliedIndex(),
    revision: store.revision(),
    count: store.count(),
    kvs: store.range({ limit: 10_000 }).map(picture),
    meta: metaKeys.map((key) => store.getMeta(key)?.toString('hex') ?? null),
  };
}

/** Feeds chunks one by one through an async iterable (as a transport would). */
export async function* streamOf(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const chunk of chunks) yield chunk;
}
