/**
 * The persistence-order invariant (Raft §5, DESIGN.md §3), checked on every message a node sends:
 * what a message promises must already be on the sender's stable storage.
 *
 * - A successful append acknowledgement up to index X: the durable log reaches X.
 * - A granted vote for C in term T: the durable hard state is at term T with the vote for C (or later).
 * - A vote request in term T: the candidate's durable term is at least T (it voted for itself).
 *
 * (A leader may send AppendEntries before its own write is durable; it counts itself toward a quorum
 * only afterwards — raft's business, checked by the other invariants.)
 */
import type { RecoveredGroupLog } from '../../src/node/log-storage.js';
import { lastIndexOf } from '../../src/node/log-storage.js';
import type { Message } from '../../src/raft/types.js';

/** Returns what the message claims that is not durable, or null. */
export function undurableClaim(m: Message, durable: RecoveredGroupLog | undefined): string | null {
  const hs = durable?.hardState ?? { term: 0, vote: '', commit: 0 };
  switch (m.type) {
    case 'appendResp': {
      if (m.reject) return null;
      const last = durable === undefined ? 0 : lastIndexOf(durable);
      return last >= m.index
        ? null
        : `${m.from} acknowledged entries up to ${m.index} with only ${last} durable`;
    }
    case 'voteResp':
      if (m.reject) return null;
      if (hs.term > m.term || (hs.term === m.term && hs.vote === m.to)) return null;
      return `${m.from} granted its vote to ${m.to} in term ${m.term}; durable: term ${hs.term} vote '${hs.vote}'`;
    case 'vote':
      return hs.term >= m.term
        ? null
        : `${m.from} asked for votes in term ${m.term} with durable term ${hs.term}`;
    default:
      return null;
  }
}
