/**
 * Who the members of a group are and where they listen. Raft's ConfState says who votes; the
 * addresses travel in the ConfChange's context (so every replica learns them from the log) and are
 * kept in the store's meta space under 'members', written atomically with the conf change's apply.
 */
import type { MetaWrite } from '../kv/state-store.js';
import type { ConfChange, ConfState, NodeId } from '../raft/types.js';
import type { MemberInfo } from './kv-service.js';
import { packr } from './txn-codec.js';

export const META_MEMBERS = 'members';
export const META_CONF = 'raft/conf';

export interface MemberAddress {
  id: NodeId;
  peerAddress: string;
  clientUrl: string;
  /** Promote this learner to voter once it has caught up (DESIGN.md §10 "Learners"). */
  promote: boolean;
}

type WireMember = [string, string, string, boolean];

function toWire(m: MemberAddress): WireMember {
  return [m.id, m.peerAddress, m.clientUrl, m.promote];
}

function fromWire(w: unknown): MemberAddress {
  if (
    !Array.isArray(w) ||
    w.length !== 4 ||
    typeof w[0] !== 'string' ||
    typeof w[1] !== 'string' ||
    typeof w[2] !== 'string' ||
    typeof w[3] !== 'boolean'
  ) {
    throw new Error('member address: expected [id, peerAddress, clientUrl, promote]');
  }
  return { id: w[0], peerAddress: w[1], clientUrl: w[2], promote: w[3] };
}

/** The ConfChange context: the addresses of the members it adds. */
export function encodeMembersContext(members: MemberAddress[]): Buffer {
  return packr.pack(members.map(toWire));
}

export function decodeMembersContext(context: Buffer | undefined): MemberAddress[] {
  if (context === undefined || context.length === 0) return [];
  const w: unknown = packr.unpack(context);
  if (!Array.isArray(w)) throw new Error('conf change context: expected an array of members');
  return w.map(fromWire);
}

export function encodeConf(conf: ConfState): Buffer {
  return packr.pack([conf.voters, conf.learners, conf.votersOutgoing, conf.learnersNext, conf.autoLeave]);
}

export function decodeConf(data: Buffer): ConfState {
  const w: unknown = packr.unpack(data);
  if (!Array.isArray(w) || w.length !== 5) throw new Error('conf state: expected a 5-element array');
  const ids = (x: unknown): NodeId[] => {
    if (!Array.isArray(x) || x.some((v) => typeof v !== 'string'))
      throw new Error('conf state: expected id lists');
    return x as NodeId[];
  };
  return {
    voters: ids(w[0]),
    learners: ids(w[1]),
    votersOutgoing: ids(w[2]),
    learnersNext: ids(w[3]),
    autoLeave: w[4] === true,
  };
}

export function emptyConf(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export function isMember(conf: ConfState, id: NodeId): boolean {
  return (
    conf.voters.includes(id) ||
    conf.learners.includes(id) ||
    conf.votersOutgoing.includes(id) ||
    conf.learnersNext.includes(id)
  );
}

export function isJoint(conf: ConfState): boolean {
  return conf.votersOutgoing.length > 0;
}

/** The address book of one group: bootstrap addresses, overridden by what the log says. */
export class MemberDirectory {
  private readonly members = new Map<NodeId, MemberAddress>();

  constructor(bootstrap: readonly MemberAddress[]) {
    for (const m of bootstrap) this.members.set(m.id, { ...m });
  }

  load(getMeta: (key: string) => Buffer | null): void {
    const raw = getMeta(META_MEMBERS);
    if (raw === null) return; // no conf change applied yet: the bootstrap addresses hold
    this.members.clear();
    const w: unknown = packr.unpack(raw);
    if (!Array.isArray(w)) throw new Error("store meta 'members': expected an array");
    for (const m of w.map(fromWire)) this.members.set(m.id, m);
  }

  get(id: NodeId): MemberAddress | undefined {
    return this.members.get(id);
  }

  all(): MemberAddress[] {
    return [...this.members.values()];
  }

  /**
   * Applies a committed conf change's address side; `conf` is the configuration after it. Members
   * no longer in the configuration are forgotten. Returns the meta write to include in the apply.
   */
  apply(cc: ConfChange, conf: ConfState): MetaWrite {
    for (const m of decodeMembersContext(cc.context)) this.members.set(m.id, m);
    for (const c of cc.changes) {
      if (c.type === 'addVoter') {
        const m = this.members.get(c.node);
        if (m !== undefined) m.promote = false; // promoted (or added as a voter): done
      }
    }
    for (const id of [...this.members.keys()]) if (!isMember(conf, id)) this.members.delete(id);
    return { key: META_MEMBERS, value: packr.pack([...this.members.values()].map(toWire)) };
  }

  /** The members as the client API shows them. */
  list(conf: ConfState): MemberInfo[] {
    const out: MemberInfo[] = [];
    const seen = new Set<NodeId>();
    const add = (id: NodeId, role: 'voter' | 'learner', leaving: boolean) => {
      if (seen.has(id)) return;
      seen.add(id);
      const m = this.members.get(id);
      const info: MemberInfo = { id, peerAddress: m?.peerAddress ?? '', clientUrl: m?.clientUrl ?? '', role };
      if (leaving) info.leaving = true;
      out.push(info);
    };
    for (const id of conf.voters) add(id, 'voter', false);
    for (const id of conf.votersOutgoing) add(id, 'voter', true);
    for (const id of conf.learners) add(id, 'learner', false);
    for (const id of conf.learnersNext) add(id, 'learner', false);
    out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return out;
  }
}
