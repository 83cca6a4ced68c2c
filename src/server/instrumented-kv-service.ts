/**
 * The KvService the client protocols and embedders see: the node itself, with every client
 * proposal (write, membership change) counted by outcome for /metrics:
 *   committed  the node answered with a result (applied);
 *   rejected   refused before it could take effect (not leader, full queue, bad input, limits,
 *              shutting down, a membership precondition): nothing was proposed, or nothing applied;
 *   failed     the outcome is not known or the cluster could not serve it (no quorum, timeout, internal).
 */
import type { NodeMetrics, ProposalOutcome } from '../api/http/api-metrics.js';
import type { KeyValue, RangeOptions, Txn, TxnResult } from '../kv/state-store.js';
import type { NodeErrorCode } from '../node/errors.js';
import type {
  ClientSession,
  KvService,
  MemberInfo,
  MemberRole,
  NodeStatus,
  ReadConsistency,
} from '../node/kv-service.js';

const REJECTED: ReadonlySet<NodeErrorCode> = new Set<NodeErrorCode>([
  'not_leader',
  'overloaded',
  'limit_exceeded',
  'invalid_request',
  'member_not_found',
  'member_exists',
  'membership_change_in_progress',
  'shutting_down',
  'disk_full',
]);

export function proposalOutcomeOf(error: unknown): ProposalOutcome {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && REJECTED.has(code as NodeErrorCode) ? 'rejected' : 'failed';
}

export class InstrumentedKvService implements KvService {
  constructor(
    private readonly inner: KvService,
    private readonly metrics: Pick<NodeMetrics, 'proposal'>,
  ) {}

  get id(): string {
    return this.inner.id;
  }

  write(txn: Txn, session?: ClientSession): Promise<TxnResult> {
    return this.counted(this.inner.write(txn, session));
  }

  get(key: Buffer, consistency: ReadConsistency): Promise<KeyValue | null> {
    return this.inner.get(key, consistency);
  }

  range(options: RangeOptions, consistency: ReadConsistency): Promise<KeyValue[]> {
    return this.inner.range(options, consistency);
  }

  readTxn(txn: Txn, consistency: ReadConsistency): Promise<TxnResult> {
    return this.inner.readTxn(txn, consistency);
  }

  status(): NodeStatus {
    return this.inner.status();
  }

  members(): MemberInfo[] {
    return this.inner.members();
  }

  addMember(id: string, peerAddress: string, clientUrl: string, role: MemberRole): Promise<MemberInfo[]> {
    return this.counted(this.inner.addMember(id, peerAddress, clientUrl, role));
  }

  removeMember(id: string): Promise<MemberInfo[]> {
    return this.counted(this.inner.removeMember(id));
  }

  promoteMember(id: string): Promise<MemberInfo[]> {
    return this.counted(this.inner.promoteMember(id));
  }

  transferLeadership(to?: string): Promise<string> {
    return this.inner.transferLeadership(to);
  }

  private counted<T>(p: Promise<T>): Promise<T> {
    p.then(
      () => this.metrics.proposal('committed'),
      (e: unknown) => this.metrics.proposal(proposalOutcomeOf(e)),
    );
    return p;
  }
}
