import type { ConfChange, ConfChangeType, ConfState, NodeId } from './types.js';

/** Explicit limits on membership data (TIGER_STYLE): node ids and group sizes are small. */
export const MAX_NODE_ID_BYTES = 256;
export const MAX_MEMBERS = 1024;
export const MAX_CHANGES_PER_CONF_CHANGE = 64;
export const MAX_CONF_CHANGE_CONTEXT_BYTES = 64 * 1024;

/** A membership change that cannot be applied to the current configuration. */
export class InvalidConfChangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidConfChangeError';
  }
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export function cloneConfState(c: ConfState): ConfState {
  return {
    voters: [...c.voters],
    learners: [...c.learners],
    votersOutgoing: [...c.votersOutgoing],
    learnersNext: [...c.learnersNext],
    autoLeave: c.autoLeave,
  };
}

export function isJoint(c: ConfState): boolean {
  return c.votersOutgoing.length > 0;
}

/** Every node the configuration replicates to: voters of both halves and learners (current and next). */
export function members(c: ConfState): NodeId[] {
  return [...new Set([...c.voters, ...c.votersOutgoing, ...c.learners, ...c.learnersNext])];
}

/** Whether a change touches voters, and so must go through joint consensus (thesis §4.3). */
export function touchesVoters(c: ConfState, cc: ConfChange): boolean {
  return cc.changes.some((ch) => ch.type === 'addVoter' || c.voters.includes(ch.node));
}

/** The ConfState's own invariants (etcd confchange.checkInvariants). Returns an error text or null. */
export function confStateProblem(c: ConfState): string | null {
  const lists: Array<[string, NodeId[]]> = [
    ['voters', c.voters],
    ['learners', c.learners],
    ['votersOutgoing', c.votersOutgoing],
    ['learnersNext', c.learnersNext],
  ];
  for (const [name, list] of lists) {
    if (!Array.isArray(list)) return `${name} is not an array`;
    if (list.length > MAX_MEMBERS) return `${name} has more than ${MAX_MEMBERS} members`;
    for (const id of list) {
      if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id) > MAX_NODE_ID_BYTES) {
        return `${name} holds an invalid node id`;
      }
    }
    if (new Set(list).size !== list.length) return `${name} holds a duplicate`;
  }
  if (typeof c.autoLeave !== 'boolean') return 'autoLeave is not a boolean';
  for (const id of c.learners) {
    if (c.voters.includes(id) || c.votersOutgoing.includes(id)) return `${id} is both a voter and a learner`;
  }
  for (const id of c.learnersNext) {
    if (!c.votersOutgoing.includes(id)) return `${id} is a next learner but not an outgoing voter`;
    if (c.voters.includes(id) || c.learners.includes(id)) return `${id} is a next learner and still a member`;
  }
  if (!isJoint(c) && (c.learnersNext.length > 0 || c.autoLeave))
    return 'learnersNext/autoLeave outside a joint config';
  return null;
}

function remove(list: NodeId[], id: NodeId): void {
  const i = list.indexOf(id);
  if (i >= 0) list.splice(i, 1);
}

function addUnique(list: NodeId[], id: NodeId): void {
  if (!list.includes(id)) list.push(id);
}

/** Apply the individual changes to the incoming half of `c` (etcd confchange.Changer.apply). */
function applyChanges(c: ConfState, changes: ConfChange['changes']): void {
  for (const ch of changes) {
    switch (ch.type) {
      case 'addVoter':
        remove(c.learners, ch.node);
        remove(c.learnersNext, ch.node);
        addUnique(c.voters, ch.node);
        break;
      case 'addLearner':
        // A voter of the outgoing half cannot be a learner until the joint config is left.
        remove(c.voters, ch.node);
        if (c.votersOutgoing.includes(ch.node)) addUnique(c.learnersNext, ch.node);
        else addUnique(c.learners, ch.node);
        break;
      case 'remove':
        remove(c.voters, ch.node);
        remove(c.learners, ch.node);
        remove(c.learnersNext, ch.node);
        break;
    }
  }
}

/**
 * The configuration after `cc` (etcd ConfChangeV2 semantics, thesis §4.3):
 * - empty `changes`: leave the joint configuration (C_old,new -> C_new);
 * - changes touching voters: enter the joint configuration C_old,new;
 * - changes touching only learners: applied directly.
 * Throws InvalidConfChangeError when the change does not apply to `c`.
 */
export function applyConfChangeTo(c: ConfState, cc: ConfChange): ConfState {
  const next = cloneConfState(c);
  if (cc.changes.length === 0) {
    if (!isJoint(c)) throw new InvalidConfChangeError('cannot leave a joint configuration: not in one');
    for (const id of next.learnersNext) addUnique(next.learners, id);
    next.learnersNext = [];
    next.votersOutgoing = [];
    next.autoLeave = false;
  } else {
    if (isJoint(c))
      throw new InvalidConfChangeError('configuration is joint: leave it before another change');
    const joint = touchesVoters(c, cc);
    if (joint) {
      next.votersOutgoing = [...c.voters];
      next.autoLeave = cc.autoLeave ?? true;
    }
    applyChanges(next, cc.changes);
    if (next.voters.length === 0) throw new InvalidConfChangeError('the change removes every voter');
  }
  const problem = confStateProblem(next);
  if (problem !== null) throw new InvalidConfChangeError(problem);
  return next;
}

/** Structural validation of a ConfChange (from a caller or decoded from the log). */
export function confChangeProblem(cc: ConfChange): string | null {
  if (typeof cc !== 'object' || cc === null || !Array.isArray(cc.changes)) return 'changes is not an array';
  if (cc.changes.length > MAX_CHANGES_PER_CONF_CHANGE)
    return `more than ${MAX_CHANGES_PER_CONF_CHANGE} changes`;
  const seen = new Set<NodeId>();
  for (const ch of cc.changes) {
    if (ch.type !== 'addVoter' && ch.type !== 'addLearner' && ch.type !== 'remove')
      return 'unknown change type';
    if (
      typeof ch.node !== 'string' ||
      ch.node.length === 0 ||
      Buffer.byteLength(ch.node) > MAX_NODE_ID_BYTES
    ) {
      return 'invalid node id';
    }
    if (seen.has(ch.node)) return `node ${ch.node} changed twice`;
    seen.add(ch.node);
  }
  if (cc.autoLeave !== undefined && typeof cc.autoLeave !== 'boolean') return 'autoLeave is not a boolean';
  if (cc.context !== undefined) {
    if (!Buffer.isBuffer(cc.context)) return 'context is not a Buffer';
    if (cc.context.length > MAX_CONF_CHANGE_CONTEXT_BYTES) return 'context too large';
  }
  return null;
}

// Binary encoding of a ConfChange as a log entry's data (raft writes confChange entries itself):
//   u8 version=1 | u8 flags (bit0 autoLeave given, bit1 autoLeave) | u16 count |
//   count x (u8 type | u16 idLength | id utf8) | u32 contextLength | context
const CODEC_VERSION = 1;
const TYPE_CODES: Record<ConfChangeType, number> = { addVoter: 0, addLearner: 1, remove: 2 };
const CODE_TYPES: ConfChangeType[] = ['addVoter', 'addLearner', 'remove'];

export function encodeConfChange(cc: ConfChange): Buffer {
  const problem = confChangeProblem(cc);
  if (problem !== null) throw new InvalidConfChangeError(problem);
  const ids = cc.changes.map((ch) => Buffer.from(ch.node, 'utf8'));
  const context = cc.context ?? Buffer.alloc(0);
  let size = 4 + 4 + context.length;
  for (const id of ids) size += 3 + id.length;
  const out = Buffer.alloc(size);
  let o = 0;
  o = out.writeUInt8(CODEC_VERSION, o);
  o = out.writeUInt8((cc.autoLeave === undefined ? 0 : 1) | (cc.autoLeave ? 2 : 0), o);
  o = out.writeUInt16BE(cc.changes.length, o);
  cc.changes.forEach((ch, i) => {
    o = out.writeUInt8(TYPE_CODES[ch.type], o);
    o = out.writeUInt16BE(ids[i].length, o);
    o += ids[i].copy(out, o);
  });
  o = out.writeUInt32BE(context.length, o);
  context.copy(out, o);
  return out;
}

/** Decode a confChange entry's data. Throws InvalidConfChangeError with the reason on bad input. */
export function decodeConfChange(data: Buffer): ConfChange {
  const fail = (why: string): never => {
    throw new InvalidConfChangeError(`bad confChange encoding: ${why}`);
  };
  if (data.length < 8) fail('too short');
  let o = 0;
  if (data.readUInt8(o++) !== CODEC_VERSION) fail('unknown version');
  const flags = data.readUInt8(o++);
  const count = data.readUInt16BE(o);
  o += 2;
  if (count > MAX_CHANGES_PER_CONF_CHANGE) fail('too many changes');
  const changes: ConfChange['changes'] = [];
  for (let i = 0; i < count; i++) {
    if (o + 3 > data.length) fail('truncated change');
    const type = CODE_TYPES[data.readUInt8(o++)];
    if (type === undefined) fail('unknown change type');
    const len = data.readUInt16BE(o);
    o += 2;
    if (o + len > data.length) fail('truncated node id');
    changes.push({ type, node: data.toString('utf8', o, o + len) });
    o += len;
  }
  if (o + 4 > data.length) fail('truncated context length');
  const ctxLen = data.readUInt32BE(o);
  o += 4;
  if (o + ctxLen !== data.length) fail('context length does not match');
  const cc: ConfChange = { changes };
  if (flags & 1) cc.autoLeave = (flags & 2) !== 0;
  if (ctxLen > 0) cc.context = Buffer.from(data.subarray(o, o + ctxLen));
  const problem = confChangeProblem(cc);
  if (problem !== null) fail(problem);
  return cc;
}
