/**
 * Simulated clients: a few concurrent logical clients issue reads, writes, compare-and-sets and
 * deletes on a small key set, each one operation at a time with a timeout, and record what they
 * saw in the HISTORY.md format (ok / fail only when the outcome is certain, info otherwise; a fresh
 * process id after an info).
 *
 * Half the writes carry a client session (thesis §6.3); those are retried with the same sequence
 * number after an unknown outcome (on another node), which is exactly-once only if the state
 * machine deduplicates: a write applied twice shows up as a non-linearizable history.
 */
import type { HistoryEvent } from '../../src/history/history-event.js';
import type { KeyValue, StateStore, Txn, TxnResult } from '../../src/kv/state-store.js';
import type { NodeError } from '../../src/node/errors.js';
import type { ClientSession } from '../../src/node/kv-service.js';
import type { RaftNode } from '../../src/node/raft-node.js';
import type { NodeId } from '../../src/raft/types.js';
import type { EventQueue } from './event-queue.js';
import type { Prng } from './prng.js';

/** What the workload needs from the cluster. */
export interface ClientEnvironment {
  queue: EventQueue;
  /** Nodes a client may send to now (running); `final`: only healthy members. */
  targets(final: boolean): NodeId[];
  /** The running node's API, or null when it is down (the connection is refused). */
  node(id: NodeId): RaftNode | null;
  /** The incarnation number of a node: an answer from an older incarnation is never delivered. */
  incarnation(id: NodeId): number;
  /** Null when not tracing (no trace string is built then). */
  trace: ((line: string) => void) | null;
}

export interface WorkloadOptions {
  clients: number;
  operations: number;
  keys: number;
  clientTimeoutMs: number;
  /** Node-side request timeouts are drawn from this range (some shorter, some longer than the client's). */
  nodeTimeoutMs: [number, number];
  thinkMs: [number, number];
  sessionRetries: number;
}

type Fn = 'read' | 'write' | 'cas' | 'delete';

interface Operation {
  process: number;
  f: Fn;
  key: string;
  value: string | null | [string | null, string];
  invokeTime: number;
  /** After `healTime + settle`: must succeed (liveness). */
  mustSucceed: boolean;
  done: boolean;
  /** Some attempt may have taken effect. */
  maybeApplied: boolean;
  attemptsLeft: number;
  session: ClientSession | undefined;
}

export interface LivenessFailure {
  key: string;
  f: Fn;
  outcome: string;
  invokeTime: number;
}

const KEY = (i: number) => `k${i}`;
const keyBuf = (k: string) => Buffer.from(k);

export class Workload {
  readonly history: HistoryEvent[] = [];
  readonly livenessFailures: LivenessFailure[] = [];
  private issued = 0;
  private completed = 0;
  private nextProcess = 0;
  private valueCounter = 0;
  /** Latest value some client saw per key: what a cas expects (often stale on purpose). */
  private readonly lastSeen = new Map<string, string | null>();
  /** After this virtual time, operations must succeed. */
  private mustSucceedAfter = Number.POSITIVE_INFINITY;
  private finalPhase = false;

  constructor(
    private readonly env: ClientEnvironment,
    private readonly rng: Prng,
    private readonly opts: WorkloadOptions,
  ) {}

  get issuedCount(): number {
    return this.issued;
  }

  get finished(): boolean {
    return this.completed >= this.opts.operations;
  }

  start(): void {
    for (let c = 0; c < this.opts.clients; c++) {
      const client = { process: this.nextProcess++, clientId: `c${c}`, seq: 0 };
      this.env.queue.after(this.rng.range(0, 20), () => this.next(client));
    }
  }

  /** Faults are healed at `time`: operations invoked after `time + settleMs` must all succeed. */
  healed(time: number, settleMs: number): void {
    this.mustSucceedAfter = time + settleMs;
    this.finalPhase = true;
  }

  private next(client: { process: number; clientId: string; seq: number }): void {
    if (this.issued >= this.opts.operations) return;
    this.issued++;
    const r = this.rng.next();
    const f: Fn = r < 0.4 ? 'read' : r < 0.7 ? 'write' : r < 0.9 ? 'cas' : 'delete';
    const key = KEY(this.rng.int(this.opts.keys));
    let value: Operation['value'] = null;
    if (f === 'write') value = `v-${client.process}-${this.valueCounter++}`;
    if (f === 'cas') {
      const expected = this.rng.chance(0.7)
        ? (this.lastSeen.get(key) ?? null)
        : `v-${this.rng.int(client.process + 1)}-${this.rng.int(this.valueCounter + 1)}`;
      value = [expected, `v-${client.process}-${this.valueCounter++}`];
    }
    let session: ClientSession | undefined;
    if (f !== 'read' && this.rng.chance(0.5)) session = { clientId: client.clientId, seq: ++client.seq };
    const now = this.env.queue.now;
    const op: Operation = {
      process: client.process,
      f,
      key,
      value,
      invokeTime: now,
      mustSucceed: now >= this.mustSucceedAfter,
      done: false,
      maybeApplied: false,
      attemptsLeft: session === undefined ? 1 : 1 + this.opts.sessionRetries,
      session,
    };
    this.record({
      process: op.process,
      type: 'invoke',
      f,
      key,
      value: invokeValue(op),
      time: ns(now),
    } as HistoryEvent);
    this.attempt(op, client, undefined);
  }

  private attempt(
    op: Operation,
    client: { process: number; clientId: string; seq: number },
    avoid: NodeId | undefined,
  ): void {
    op.attemptsLeft--;
    const candidates = this.env.targets(this.finalPhase && op.mustSucceed).filter((id) => id !== avoid);
    const pool = candidates.length > 0 ? candidates : this.env.targets(false);
    const target = pool.length > 0 ? this.rng.pick(pool) : undefined;
    const node = target === undefined ? null : this.env.node(target);
    if (node === null || target === undefined) {
      this.attemptDone(op, client, 'refused', null, undefined, target);
      return;
    }
    const incarnation = this.env.incarnation(target);
    let answered = false;
    const timer = this.env.queue.after(this.opts.clientTimeoutMs, () => {
      if (answered) return;
      answered = true;
      this.attemptDone(op, client, 'timeout', null, undefined, target);
    });
    const deliver = (error: NodeError | null, value: unknown) => {
      // An answer from a crashed incarnation never reaches the client (its connection died).
      if (answered || this.env.incarnation(target) !== incarnation) return;
      answered = true;
      timer.cancelled = true;
      this.attemptDone(op, client, error === null ? 'ok' : 'error', error, value, target);
    };
    const nodeTimeout = this.rng.range(this.opts.nodeTimeoutMs[0], this.opts.nodeTimeoutMs[1]);
    this.env.trace?.(`client p${op.process} ${op.f} ${op.key} ${JSON.stringify(op.value)} -> ${target}`);
    if (op.f === 'read') {
      const key = keyBuf(op.key);
      node.submitRead(
        'linearizable',
        (store: StateStore) => store.get(key),
        (error, kv?: KeyValue | null) => deliver(error, kv),
        nodeTimeout,
      );
      return;
    }
    node.submitWrite(
      this.txnOf(op),
      op.session,
      (error, result?: TxnResult) => deliver(error, result),
      nodeTimeout,
    );
  }

  private txnOf(op: Operation): Txn {
    const key = keyBuf(op.key);
    switch (op.f) {
      case 'write':
        return {
          compare: [],
          success: [{ type: 'put', key, value: Buffer.from(op.value as string) }],
          failure: [],
        };
      case 'delete':
        return { compare: [], success: [{ type: 'delete', key }], failure: [] };
      case 'cas': {
        const [expected, next] = op.value as [string | null, string];
        return {
          compare:
            expected === null
              ? [{ key, target: 'exists', exists: false }]
              : [{ key, target: 'value', op: '=', value: Buffer.from(expected) }],
          success: [{ type: 'put', key, value: Buffer.from(next) }],
          failure: [],
        };
      }
      default:
        throw new Error(`not a write: ${op.f}`);
    }
  }

  private attemptDone(
    op: Operation,
    client: { process: number; clientId: string; seq: number },
    how: 'ok' | 'error' | 'timeout' | 'refused',
    error: NodeError | null,
    value: unknown,
    target: NodeId | undefined,
  ): void {
    if (op.done) return;
    if (op.f === 'read') {
      if (how === 'ok') {
        const kv = value as KeyValue | null;
        const v = kv === null ? null : kv.value.toString();
        this.lastSeen.set(op.key, v);
        this.complete(op, client, 'ok', v, undefined);
      } else {
        // A read has no effect: a failed or timed-out read is a definite fail.
        this.complete(op, client, 'fail', null, how === 'error' ? error!.code : how);
      }
      return;
    }
    if (how === 'ok') {
      const result = value as TxnResult;
      if (op.f === 'cas' && !result.succeeded) {
        // Certain even after unknown attempts: with a session every attempt is answered with the one
        // application's result (exactly-once); without one there was only this attempt.
        this.complete(op, client, 'fail', undefined, 'mismatch');
        return;
      }
      if (op.f === 'write' || op.f === 'cas')
        this.lastSeen.set(
          op.key,
          op.f === 'write' ? (op.value as string) : (op.value as [string | null, string])[1],
        );
      else this.lastSeen.set(op.key, null);
      this.complete(op, client, 'ok', undefined, undefined);
      return;
    }
    const definite =
      how === 'refused' ||
      (how === 'error' && error!.code !== 'outcome_unknown' && error!.code !== 'internal');
    if (!definite) op.maybeApplied = true;
    const reason = how === 'error' ? error!.code : how;
    if (how === 'error')
      this.env.trace?.(`client p${op.process} ${op.f} ${op.key} <- ${target}: ${error!.message}`);
    if (op.attemptsLeft > 0 && op.session !== undefined) {
      this.env.trace?.(
        `client p${op.process} retry ${op.session.clientId}/${op.session.seq} after ${reason}`,
      );
      this.attempt(op, client, target);
      return;
    }
    if (definite && !op.maybeApplied) this.complete(op, client, 'fail', undefined, reason);
    else this.complete(op, client, 'info', undefined, reason);
  }

  private complete(
    op: Operation,
    client: { process: number; clientId: string; seq: number },
    type: 'ok' | 'fail' | 'info',
    readValue: string | null | undefined,
    error: string | undefined,
  ): void {
    op.done = true;
    this.completed++;
    const now = this.env.queue.now;
    const value = op.f === 'read' ? (type === 'ok' ? (readValue ?? null) : null) : invokeValue(op);
    const event =
      error === undefined
        ? { process: op.process, type, f: op.f, key: op.key, value, time: ns(now) }
        : { process: op.process, type, f: op.f, key: op.key, value, time: ns(now), error };
    this.record(event as HistoryEvent);
    const succeeded = type === 'ok' || (type === 'fail' && error === 'mismatch');
    if (op.mustSucceed && !succeeded) {
      this.livenessFailures.push({
        key: op.key,
        f: op.f,
        outcome: `${type}${error ? ` (${error})` : ''}`,
        invokeTime: op.invokeTime,
      });
    }
    if (type === 'info') client.process = this.nextProcess++;
    const think = this.rng.range(this.opts.thinkMs[0], this.opts.thinkMs[1]);
    this.env.queue.after(think, () => this.next(client));
  }

  private record(e: HistoryEvent): void {
    this.history.push(e);
    this.env.trace?.(`history ${JSON.stringify(e)}`);
  }
}

function invokeValue(op: Operation): HistoryEvent['value'] {
  if (op.f === 'read' || op.f === 'delete') return null;
  return op.value as HistoryEvent['value'];
}

function ns(ms: number): number {
  return Math.round(ms * 1e6);
}
