/** Helpers for driving a single RaftGroup by hand in protocol tests. */
import { RaftGroup } from '../../src/raft/raft-group.js';
import type { Message, NodeId, SnapshotMeta, VoteRequest } from '../../src/raft/types.js';
import { entry, type NodeOptions, testConfig } from './network.js';

export interface Preloaded {
  /** Terms of entries 1..n. */
  terms?: number[];
  term?: number;
  vote?: NodeId | '';
  commit?: number;
  snapshot?: SnapshotMeta | null;
}

/** A RaftGroup with an in-memory initial state (no network). */
export function newGroup(
  id: NodeId,
  voters: NodeId[],
  o: NodeOptions = {},
  seed = 1,
  pre: Preloaded = {},
  learners: NodeId[] = [],
): RaftGroup {
  const terms = pre.terms ?? [];
  const first = pre.snapshot ? pre.snapshot.index + 1 : 1;
  const entries = terms.map((t, i) => entry(first + i, t, `e${first + i}`));
  const provider = () => pre.snapshot ?? { index: 0, term: 0, conf: conf(voters, learners) };
  return new RaftGroup(testConfig(id, o, seed, provider), {
    hardState: { term: pre.term ?? 0, vote: pre.vote ?? '', commit: pre.commit ?? 0 },
    snapshot: pre.snapshot ?? null,
    entries,
    conf: conf(voters, learners),
    applied: pre.snapshot?.index ?? 0,
  });
}

export function conf(voters: NodeId[], learners: NodeId[] = []) {
  return { voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false };
}

/** Take and acknowledge every pending Ready; return the messages they carried. */
export function drain(r: RaftGroup): Message[] {
  const out: Message[] = [];
  while (r.hasReady()) {
    const rd = r.ready();
    out.push(...rd.messages);
    r.advance(rd);
  }
  return out;
}

export function voteRequest(
  type: 'vote' | 'preVote',
  from: NodeId,
  to: NodeId,
  term: number,
  lastLogIndex: number,
  lastLogTerm: number,
): VoteRequest {
  return { type, group: 1, from, to, term, lastLogIndex, lastLogTerm, transfer: false };
}
