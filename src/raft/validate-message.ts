import { cloneConfState, confStateProblem, MAX_NODE_ID_BYTES } from './conf-change.js';
import type { Entry, Message, MessageType, NodeId } from './types.js';

/** Explicit limits on what a peer may send in one message. */
export const MAX_ENTRIES_PER_MESSAGE = 65_536;
export const MAX_READ_CONTEXTS_PER_MESSAGE = 65_536;
export const MAX_READ_CONTEXT_BYTES = 4096;

const MESSAGE_TYPES: ReadonlySet<MessageType> = new Set<MessageType>([
  'preVote',
  'preVoteResp',
  'vote',
  'voteResp',
  'append',
  'appendResp',
  'heartbeat',
  'heartbeatResp',
  'snapshot',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
  'transferLeader',
]);

export type Validated = { ok: true; message: Message } | { ok: false; reason: string };

type Fields = Record<string, unknown>;

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isNodeId(v: unknown): v is NodeId {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_NODE_ID_BYTES;
}

function asBuffer(v: unknown): Buffer | undefined {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return undefined;
}

function bad(reason: string): Validated {
  return { ok: false, reason };
}

/**
 * Validate a peer message (untrusted input) addressed to `self` in `group`. Returns a normalized
 * copy (entries and buffers copied into fresh objects, so later mutation of the input cannot reach
 * the log) or the reason it is dropped. Checks are structural and Raft-level (e.g. entry indexes
 * follow prevLogIndex, entry terms never exceed the sender's term); state-dependent checks are the
 * protocol's own.
 */
export function validateMessage(input: unknown, self: NodeId, group: number): Validated {
  if (typeof input !== 'object' || input === null) return bad('not-an-object');
  const m = input as Fields;
  if (typeof m.type !== 'string' || !MESSAGE_TYPES.has(m.type as MessageType)) return bad('unknown-type');
  if (m.group !== group) return bad('wrong-group');
  if (m.to !== self) return bad('wrong-recipient');
  if (!isNodeId(m.from)) return bad('bad-sender');
  if (m.from === self) return bad('from-self');
  if (!isIndex(m.term) || m.term === 0) return bad('bad-term');
  const from: NodeId = m.from;
  const term: number = m.term;
  const type = m.type as MessageType;
  switch (type) {
    case 'preVote':
    case 'vote': {
      if (!isIndex(m.lastLogIndex) || !isIndex(m.lastLogTerm) || typeof m.transfer !== 'boolean') {
        return bad('bad-vote-fields');
      }
      if (m.lastLogTerm > m.term) return bad('log-term-above-term');
      if ((m.lastLogIndex === 0) !== (m.lastLogTerm === 0)) return bad('bad-vote-fields');
      return {
        ok: true,
        message: {
          group,
          from,
          to: self,
          term,
          type,
          lastLogIndex: m.lastLogIndex,
          lastLogTerm: m.lastLogTerm,
          transfer: m.transfer,
        },
      };
    }
    case 'preVoteResp':
    case 'voteResp':
      if (typeof m.reject !== 'boolean') return bad('bad-vote-response');
      return { ok: true, message: { group, from, to: self, term, type, reject: m.reject } };
    case 'append': {
      if (!isIndex(m.prevLogIndex) || !isIndex(m.prevLogTerm) || !isIndex(m.commit))
        return bad('bad-append-fields');
      if (m.prevLogTerm > m.term) return bad('log-term-above-term');
      if (!Array.isArray(m.entries)) return bad('bad-append-fields');
      if (m.entries.length > MAX_ENTRIES_PER_MESSAGE) return bad('too-many-entries');
      const entries: Entry[] = [];
      let prevTerm = m.prevLogTerm;
      for (let i = 0; i < m.entries.length; i++) {
        const e = m.entries[i] as Fields;
        if (typeof e !== 'object' || e === null) return bad('bad-entry');
        if (e.index !== m.prevLogIndex + 1 + i) return bad('entry-index-gap');
        if (!isIndex(e.term) || e.term === 0 || e.term < prevTerm || e.term > m.term)
          return bad('bad-entry-term');
        if (e.type !== 'normal' && e.type !== 'confChange') return bad('bad-entry-type');
        const data = asBuffer(e.data);
        if (data === undefined) return bad('bad-entry-data');
        entries.push({ term: e.term, index: e.index, type: e.type, data });
        prevTerm = e.term;
      }
      return {
        ok: true,
        message: {
          group,
          from,
          to: self,
          term,
          type,
          prevLogIndex: m.prevLogIndex,
          prevLogTerm: m.prevLogTerm,
          entries,
          commit: m.commit,
        },
      };
    }
    case 'appendResp':
      if (
        typeof m.reject !== 'boolean' ||
        !isIndex(m.index) ||
        !isIndex(m.hintIndex) ||
        !isIndex(m.hintTerm)
      ) {
        return bad('bad-append-response');
      }
      if (m.hintTerm > m.term) return bad('log-term-above-term');
      return {
        ok: true,
        message: {
          group,
          from,
          to: self,
          term,
          type,
          reject: m.reject,
          index: m.index,
          hintIndex: m.hintIndex,
          hintTerm: m.hintTerm,
        },
      };
    case 'heartbeat':
      if (!isIndex(m.commit) || !isIndex(m.readRound)) return bad('bad-heartbeat');
      return {
        ok: true,
        message: { group, from, to: self, term, type, commit: m.commit, readRound: m.readRound },
      };
    case 'heartbeatResp':
      if (!isIndex(m.readRound)) return bad('bad-heartbeat-response');
      return { ok: true, message: { group, from, to: self, term, type, readRound: m.readRound } };
    case 'snapshot': {
      const s = m.snapshot as Fields;
      if (typeof s !== 'object' || s === null || !isIndex(s.index) || !isIndex(s.term))
        return bad('bad-snapshot');
      if (s.index === 0 || s.term === 0 || s.term > m.term) return bad('bad-snapshot');
      const conf = s.conf as Fields;
      if (typeof conf !== 'object' || conf === null) return bad('bad-snapshot-conf');
      const c = {
        voters: conf.voters as NodeId[],
        learners: conf.learners as NodeId[],
        votersOutgoing: conf.votersOutgoing as NodeId[],
        learnersNext: conf.learnersNext as NodeId[],
        autoLeave: conf.autoLeave as boolean,
      };
      if (confStateProblem(c) !== null || c.voters.length === 0) return bad('bad-snapshot-conf');
      const copy = cloneConfState(c);
      return {
        ok: true,
        message: {
          group,
          from,
          to: self,
          term,
          type,
          snapshot: { index: s.index, term: s.term, conf: copy },
        },
      };
    }
    case 'timeoutNow':
      return { ok: true, message: { group, from, to: self, term, type } };
    case 'readIndex':
    case 'readIndexResp': {
      if (!Array.isArray(m.contexts) || m.contexts.length === 0) return bad('bad-read-contexts');
      if (m.contexts.length > MAX_READ_CONTEXTS_PER_MESSAGE) return bad('too-many-read-contexts');
      const contexts: Buffer[] = [];
      for (const c of m.contexts) {
        const b = asBuffer(c);
        if (b === undefined || b.length > MAX_READ_CONTEXT_BYTES) return bad('bad-read-contexts');
        contexts.push(b);
      }
      if (type === 'readIndex') return { ok: true, message: { group, from, to: self, term, type, contexts } };
      if (!isIndex(m.index)) return bad('bad-read-index');
      return { ok: true, message: { group, from, to: self, term, type, contexts, index: m.index } };
    }
    case 'transferLeader':
      if (!isNodeId(m.target)) return bad('bad-transfer-target');
      return { ok: true, message: { group, from, to: self, term, type, target: m.target } };
  }
}
