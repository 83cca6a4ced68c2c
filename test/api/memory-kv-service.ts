/**
 * A test double of KvService for the HTTP API and client tests only (never used by the product):
 * keys in a map with etcd-style revisions, transactions run by the store's own engine, exactly-once
 * sessions, a member list, and hooks to inject failures and delays.
 */
import type { KeyValue, RangeOptions, Txn, TxnResult } from '../../src/kv/state-store.js';
import { type TxnStateView, executeTxn } from '../../src/kv/txn-engine.js';
import { NodeError } from '../../src/node/errors.js';
import type {
  ClientSession,
  KvService,
  MemberInfo,
  MemberRole,
  NodeStatus,
  ReadConsistency,
} from '../../src/node/kv-service.js';

export interface RecordedCall {
  method: string;
  consistency?: ReadConsistency;
  session?: ClientSession;
  txn?: Txn;
  range?: RangeOptions;
}

type Fault = { error: Error; afterApply: boolean };

export class MemoryKvService implements KvService {
  readonly id: string;
  private readonly data = new Map<string, KeyValue>();
  private revision = 0;
  private readonly sessions = new Map<string, { seq: number; result: TxnResult }>();
  private memberList: MemberInfo[];
  readonly calls: RecordedCall[] = [];
  /** Writes actually applied (a deduplicated retry does not count). */
  applied = 0;
  role: NodeStatus['role'] = 'leader';
  term = 3;
  leader: string;
  commitIndex = 10;
  lastApplied = 10;
  private readonly faults = new Map<string, Fault[]>();
  private gate: Promise<void> | undefined;

  constructor(id = 'n1', members?: MemberInfo[]) {
    this.id = id;
    this.leader = id;
    this.memberList = members ?? [
      // No client URL: a test that needs one sets it, so nothing here ever points at a real port.
      { id, peerAddress: '127.0.0.1:7081', clientUrl: '', role: 'voter' },
    ];
  }

  /** The next call of `method` fails with `error`; with afterApply a write is applied first (a lost answer). */
  failNext(method: string, error: Error, options: { afterApply?: boolean; times?: number } = {}): void {
    const list = this.faults.get(method) ?? [];
    for (let i = 0; i < (options.times ?? 1); i++)
      list.push({ error, afterApply: options.afterApply ?? false });
    this.faults.set(method, list);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  /** Holds every call until the returned function is called. */
  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    return () => {
      this.gate = undefined;
      release();
    };
  }

  private async enter(method: string, call: Omit<RecordedCall, 'method'>): Promise<Fault | undefined> {
    this.calls.push({ method, ...call });
    if (this.gate) await this.gate;
    const fault = this.faults.get(method)?.shift();
    if (fault && !fault.afterApply) throw fault.error;
    return fault;
  }

  async write(txn: Txn, session?: ClientSession): Promise<TxnResult> {
    const fault = await this.enter('write', { txn, ...(session ? { session } : {}) });
    let result: TxnResult;
    const previous = session ? this.sessions.get(session.clientId) : undefined;
    if (session && previous && session.seq === previous.seq) {
      result = previous.result;
    } else if (session && previous && session.seq < previous.seq) {
      throw new NodeError('invalid_request', `stale sequence ${session.seq} for client ${session.clientId}`);
    } else {
      result = this.apply(txn);
      this.applied++;
      if (session) this.sessions.set(session.clientId, { seq: session.seq, result });
    }
    if (fault) throw fault.error;
    return result;
  }

  async get(key: Buffer, consistency: ReadConsistency): Promise<KeyValue | null> {
    await this.enter('get', { consistency });
    return this.copy(this.data.get(key.toString('hex')));
  }

  async range(options: RangeOptions, consistency: ReadConsistency): Promise<KeyValue[]> {
    await this.enter('range', { consistency, range: options });
    let kvs = [...this.data.values()]
      .filter(
        (kv) =>
          (!options.start || Buffer.compare(kv.key, options.start) >= 0) &&
          (!options.end || Buffer.compare(kv.key, options.end) < 0),
      )
      .sort((a, b) => Buffer.compare(a.key, b.key));
    if (options.reverse) kvs.reverse();
    if (options.limit !== undefined) kvs = kvs.slice(0, options.limit);
    return kvs.map((kv) => this.copy(kv)!);
  }

  async readTxn(txn: Txn, consistency: ReadConsistency): Promise<TxnResult> {
    await this.enter('readTxn', { txn, consistency });
    if ([...txn.success, ...txn.failure].some((op) => op.type !== 'get')) {
      throw new NodeError('invalid_request', 'readTxn holds a write');
    }
    return this.apply(txn);
  }

  status(): NodeStatus {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      leader: this.leader,
      commitIndex: this.commitIndex,
      lastApplied: this.lastApplied,
      lastIndex: this.commitIndex,
      snapshotIndex: 0,
      revision: this.revision,
      members: this.members(),
    };
  }

  members(): MemberInfo[] {
    return this.memberList.map((m) => ({ ...m }));
  }

  async addMember(
    id: string,
    peerAddress: string,
    clientUrl: string,
    role: MemberRole,
  ): Promise<MemberInfo[]> {
    await this.enter('addMember', {});
    if (this.memberList.some((m) => m.id === id)) throw new NodeError('member_exists', `member ${id} exists`);
    this.memberList.push({ id, peerAddress, clientUrl, role });
    return this.members();
  }

  async removeMember(id: string): Promise<MemberInfo[]> {
    await this.enter('removeMember', {});
    if (!this.memberList.some((m) => m.id === id)) throw new NodeError('member_not_found', `no member ${id}`);
    this.memberList = this.memberList.filter((m) => m.id !== id);
    return this.members();
  }

  async promoteMember(id: string): Promise<MemberInfo[]> {
    await this.enter('promoteMember', {});
    const member = this.memberList.find((m) => m.id === id);
    if (!member) throw new NodeError('member_not_found', `no member ${id}`);
    member.role = 'voter';
    return this.members();
  }

  async transferLeadership(to?: string): Promise<string> {
    await this.enter('transferLeadership', {});
    const target = to ?? this.memberList.find((m) => m.role === 'voter' && m.id !== this.leader)?.id;
    if (!target || !this.memberList.some((m) => m.id === target)) {
      throw new NodeError('member_not_found', `no member ${to}`);
    }
    this.leader = target;
    return target;
  }

  /** Replaces the member list (tests that need real client URLs set them once servers listen). */
  setMembers(members: MemberInfo[]): void {
    this.memberList = members.map((m) => ({ ...m }));
  }

  /** Direct access for assertions: the stored value, or undefined. */
  peek(key: string | Buffer): KeyValue | undefined {
    return this.copy(this.data.get(Buffer.from(key).toString('hex'))) ?? undefined;
  }

  get currentRevision(): number {
    return this.revision;
  }

  private copy(kv: KeyValue | undefined): KeyValue | null {
    return kv ? { ...kv, key: Buffer.from(kv.key), value: Buffer.from(kv.value) } : null;
  }

  /** Runs the store's own transaction engine over the map, so the double agrees with the real stores. */
  private apply(txn: Txn): TxnResult {
    const data = this.data;
    const view: TxnStateView = {
      readVersion: (key) => data.get(key.toString('hex')) ?? null,
      readKeyValue: (key) => this.copy(data.get(key.toString('hex'))),
      write: (key, value, version) => {
        data.set(key.toString('hex'), { key: Buffer.from(key), value: Buffer.from(value), ...version });
      },
      remove: (key) => {
        data.delete(key.toString('hex'));
      },
    };
    const result = executeTxn(view, txn, this.revision);
    this.revision = result.revision;
    return result;
  }
}
