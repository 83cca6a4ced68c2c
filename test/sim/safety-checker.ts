/**
 * Raft's safety properties (Raft paper Figure 3), checked as the simulated nodes act, through the
 * node's observation hooks — so a violation is caught at the step that causes it:
 *
 * - Election safety: at most one leader per term.
 * - Log matching: two logs holding an entry with the same index and term hold the same entry, and
 *   agree on the term of the entry before it (by induction: identical prefixes).
 * - Leader completeness: a new leader's log holds every entry already committed.
 * - State machine safety: no two nodes apply different entries at one index.
 * - Commit monotonicity: a node's commit index never decreases (within one incarnation).
 * - Leader commit rule (Raft §5.4.2): a leader advances its commit index only to an entry of its
 *   own term (older entries become committed indirectly, never by counting replicas).
 * - Read index: a linearizable read is answered at an index at least as high as any commit index
 *   some node had when the read was issued (thesis §6.4: the leader first commits an entry of its
 *   term and confirms it still leads) — else it may miss a write that completed before it began.
 */
import type { NodeHooks } from '../../src/node/hooks.js';
import type { Entry, NodeId, Ready, SnapshotMeta } from '../../src/raft/types.js';

export class SafetyViolation extends Error {
  constructor(
    readonly check: string,
    readonly detail: string,
  ) {
    super(`${check}: ${detail}`);
    this.name = 'SafetyViolation';
  }
}

/** One node's view of its own log, mirrored from what its raft hands out. */
interface MirrorLog {
  offset: number;
  offsetTerm: number;
  entries: Entry[];
  commit: number;
}

interface EntryRecord {
  prevTerm: number;
  entry: Entry;
  node: NodeId;
}

export class SafetyChecker {
  private readonly leaders = new Map<number, NodeId>();
  private readonly byIndexTerm = new Map<number, Map<number, EntryRecord>>();
  /** Entries known committed (some node applied them), by index. */
  private readonly committed = new Map<number, { entry: Entry; node: NodeId }>();
  private maxCommitted = 0;
  private readonly logs = new Map<NodeId, MirrorLog>();
  /** Nodes whose last Ready left them leader. */
  private readonly leading = new Set<NodeId>();
  /** The highest commit index any node has had (reads must be answered at or above it). */
  private maxCommit = 0;
  /** Read index requests in flight: node + context → maxCommit when issued. */
  private readonly readsIssued = new Map<string, number>();
  /** The first violation; later checks keep quiet so the report names the cause. */
  violation: SafetyViolation | null = null;
  checks = 0;

  constructor(private readonly group: number) {}

  get committedIndex(): number {
    return this.maxCommitted;
  }

  committedEntry(index: number): Entry | undefined {
    return this.committed.get(index)?.entry;
  }

  hooksFor(id: NodeId, extra: NodeHooks = {}): NodeHooks {
    return {
      ...extra,
      recovered: (e) => {
        if (e.group !== this.group) return;
        this.leading.delete(id);
        this.logs.set(id, {
          offset: e.snapshot?.index ?? 0,
          offsetTerm: e.snapshot?.term ?? 0,
          entries: e.entries.slice(),
          commit: e.hardState.commit,
        });
        extra.recovered?.(e);
      },
      readIndexIssued: (group, context) => {
        if (group === this.group) this.readsIssued.set(`${id}/${context.toString('hex')}`, this.maxCommit);
        extra.readIndexIssued?.(group, context);
      },
      readyTaken: (group, rd) => {
        if (group === this.group) this.onReady(id, rd);
        extra.readyTaken?.(group, rd);
      },
      leaderChanged: (e) => {
        if (e.group === this.group && e.role === 'leader') this.onLeader(id, e.term);
        extra.leaderChanged?.(e);
      },
      entryApplied: (group, entry) => {
        if (group === this.group) this.onApplied(id, entry);
        extra.entryApplied?.(group, entry);
      },
      snapshotInstalled: (group, meta) => {
        if (group === this.group) this.onSnapshotInstalled(id, meta);
        extra.snapshotInstalled?.(group, meta);
      },
    };
  }

  private fail(check: string, message: string): void {
    if (this.violation === null) this.violation = new SafetyViolation(check, message);
    throw this.violation;
  }

  private log(id: NodeId): MirrorLog {
    const l = this.logs.get(id);
    if (l === undefined) throw new Error(`safety checker: no recovered log for ${id}`);
    return l;
  }

  private termAt(l: MirrorLog, index: number): number | undefined {
    if (index === l.offset) return l.offsetTerm;
    if (index < l.offset) return undefined;
    return l.entries[index - l.offset - 1]?.term;
  }

  private onReady(id: NodeId, rd: Ready): void {
    this.checks++;
    const l = this.log(id);
    if (rd.snapshot !== undefined) {
      const c = this.committed.get(rd.snapshot.index);
      if (c !== undefined && c.entry.term !== rd.snapshot.term) {
        this.fail(
          'state machine safety',
          `${id} accepted a snapshot at ${rd.snapshot.index} term ${rd.snapshot.term}, but term ${c.entry.term} committed there`,
        );
      }
      l.offset = rd.snapshot.index;
      l.offsetTerm = rd.snapshot.term;
      l.entries = [];
    }
    for (const e of rd.entries) {
      const at = e.index - l.offset - 1;
      if (at < 0) this.fail('log matching', `${id} wrote entry ${e.index} below its snapshot ${l.offset}`);
      if (at > l.entries.length)
        this.fail(
          'log matching',
          `${id} wrote entry ${e.index} after a gap (last ${l.offset + l.entries.length})`,
        );
      const prevTerm = e.index - 1 === l.offset ? l.offsetTerm : l.entries[at - 1]!.term;
      if (at < l.entries.length) l.entries.length = at;
      l.entries.push(e);
      let terms = this.byIndexTerm.get(e.index);
      if (terms === undefined) {
        terms = new Map();
        this.byIndexTerm.set(e.index, terms);
      }
      const seen = terms.get(e.term);
      if (seen === undefined) {
        terms.set(e.term, { prevTerm, entry: e, node: id });
      } else {
        if (seen.prevTerm !== prevTerm) {
          this.fail(
            'log matching',
            `entry ${e.index}/${e.term} follows term ${seen.prevTerm} on ${seen.node} but term ${prevTerm} on ${id}`,
          );
        }
        if (seen.entry.type !== e.type || !seen.entry.data.equals(e.data)) {
          this.fail('log matching', `${seen.node} and ${id} hold different entries at ${e.index}/${e.term}`);
        }
      }
    }
    if (rd.hardState !== undefined) {
      const commit = rd.hardState.commit;
      if (commit < l.commit)
        this.fail('commit monotonicity', `${id} commit went from ${l.commit} back to ${commit}`);
      const stillLeading =
        this.leading.has(id) && (rd.softState === undefined || rd.softState.role === 'leader');
      if (stillLeading && commit > l.commit && this.termAt(l, commit) !== rd.hardState.term) {
        this.fail(
          'leader commit rule',
          `${id}, leader of term ${rd.hardState.term}, committed ${commit} whose entry has term ${this.termAt(l, commit)}`,
        );
      }
      l.commit = commit;
      if (commit > this.maxCommit) this.maxCommit = commit;
    }
    if (rd.softState !== undefined) {
      if (rd.softState.role === 'leader') this.leading.add(id);
      else this.leading.delete(id);
    }
    for (const rs of rd.readStates) {
      const key = `${id}/${rs.context.toString('hex')}`;
      const floor = this.readsIssued.get(key);
      if (floor === undefined) continue;
      this.readsIssued.delete(key);
      if (rs.index < floor) {
        this.fail(
          'read index',
          `${id} got read index ${rs.index} for a read issued when ${floor} was already committed`,
        );
      }
    }
  }

  private onLeader(id: NodeId, term: number): void {
    this.checks++;
    const other = this.leaders.get(term);
    if (other !== undefined && other !== id)
      this.fail('election safety', `${other} and ${id} both leaders in term ${term}`);
    this.leaders.set(term, id);
    const l = this.log(id);
    for (let i = l.offset + 1; i <= this.maxCommitted; i++) {
      const c = this.committed.get(i);
      if (c === undefined) continue;
      const t = this.termAt(l, i);
      if (t !== c.entry.term) {
        this.fail(
          'leader completeness',
          `${id} became leader of term ${term} without committed entry ${i}/${c.entry.term} (its log has ${t ?? 'nothing'} there)`,
        );
      }
    }
  }

  private onApplied(id: NodeId, e: Entry): void {
    this.checks++;
    const c = this.committed.get(e.index);
    if (c === undefined) {
      this.committed.set(e.index, { entry: e, node: id });
      if (e.index > this.maxCommitted) this.maxCommitted = e.index;
      return;
    }
    if (c.entry.term !== e.term || c.entry.type !== e.type || !c.entry.data.equals(e.data)) {
      this.fail(
        'state machine safety',
        `${c.node} applied ${e.index}/${c.entry.term} but ${id} applied a different entry ${e.index}/${e.term}`,
      );
    }
  }

  private onSnapshotInstalled(id: NodeId, meta: SnapshotMeta): void {
    const c = this.committed.get(meta.index);
    if (c !== undefined && c.entry.term !== meta.term) {
      this.fail(
        'state machine safety',
        `${id} installed snapshot ${meta.index}/${meta.term}; committed term there is ${c.entry.term}`,
      );
    }
  }
}
