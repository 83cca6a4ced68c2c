/**
 * `register`: linearizable reads, writes and compare-and-set over many keys, unique values, checked
 * by the linearizability checker (src/history checkHistory).
 *
 * Keys rotate: a key takes part in at most OPS_PER_KEY operations, then a new generation of keys is
 * used, so the checker's search per key stays small even with many `info` operations (an operation
 * of unknown outcome stays concurrent with everything after it on its key).
 * A cas is POST /txn comparing the value (or `exists: false` for an expected null) and putting the
 * new one; a txn whose compare failed is `fail` with error "mismatch".
 */
import { checkHistory, type HistoryCheckResult } from '../../src/history/linearizability-checker.js';
import { formatHistoryCheckResult } from '../../src/history/check-report.js';
import { validateHistoryEvents } from '../../src/history/history-event.js';
import { writeCompletion } from './node-http.js';
import {
  type Workload,
  type WorkloadContext,
  type WorkloadVerdict,
  backOffIfRefused,
  pick,
  pickNode,
  untilDone,
  urlKey,
} from './workload.js';

export interface RegisterOptions {
  /** Keys in use at a time. */
  keys: number;
  /** Operations on one generation of keys before moving to fresh keys. */
  opsPerKey: number;
  /** Wall-clock budget for the checker. */
  checkTimeLimitMs: number;
}

export const REGISTER_DEFAULTS: RegisterOptions = { keys: 8, opsPerKey: 120, checkTimeLimitMs: 120_000 };

export class RegisterWorkload implements Workload {
  readonly name = 'register';
  private opsStarted = 0;
  private readonly usedKeys = new Set<string>();
  /** The last value some client saw or wrote per key: the expected value of the next cas on it. */
  private readonly lastSeen = new Map<string, string | null>();
  private result: HistoryCheckResult | null = null;

  constructor(private readonly options: RegisterOptions = REGISTER_DEFAULTS) {
    if (options.keys < 1 || options.opsPerKey < 1) throw new Error('register: keys and opsPerKey must be positive');
  }

  async setup(): Promise<void> {}

  private nextKey(random: () => number): string {
    const generation = Math.floor(this.opsStarted++ / (this.options.keys * this.options.opsPerKey));
    const key = `r${generation}-${Math.floor(random() * this.options.keys)}`;
    this.usedKeys.add(key);
    return key;
  }

  async runClient(ctx: WorkloadContext, client: number, stopped: () => boolean): Promise<void> {
    const { history } = ctx;
    let proc = history.newProcess();
    let counter = 0;
    while (!stopped()) {
      const key = this.nextKey(ctx.random);
      const node = ctx.cluster.http(pickNode(ctx));
      const r = ctx.random();
      if (r < 0.5) {
        history.invoke(proc, 'read', key, null);
        const o = await node.send('GET', `/kv/${urlKey(key)}`, ctx.timeoutMs);
        if (o.kind === 'reply' && o.status === 200) {
          const value = o.body.toString('utf8');
          history.complete(proc, 'ok', 'read', key, value);
          this.lastSeen.set(key, value);
        } else if (o.kind === 'reply' && o.status === 404 && o.code === 'key_not_found') {
          history.complete(proc, 'ok', 'read', key, null);
          this.lastSeen.set(key, null);
        } else {
          // A read changes nothing: whatever went wrong, it is a definite `fail`.
          history.complete(proc, 'fail', 'read', key, null, o.kind === 'reply' ? `${o.status} ${o.code ?? ''}`.trim() : o.reason);
        }
        await backOffIfRefused(o);
        continue;
      }
      const value = `v-${client}-${proc}-${counter++}`;
      if (r < 0.8) {
        history.invoke(proc, 'write', key, value);
        const o = await node.send('PUT', `/kv/${urlKey(key)}`, ctx.timeoutMs, value);
        const c = writeCompletion(o);
        history.complete(proc, c.type, 'write', key, value, c.error);
        if (c.type === 'ok') this.lastSeen.set(key, value);
        if (c.type === 'info') proc = history.newProcess();
        await backOffIfRefused(o);
        continue;
      }
      const expected = this.lastSeen.has(key) ? (this.lastSeen.get(key) ?? null) : null;
      const casValue: [string | null, string] = [expected, value];
      const compare =
        expected === null ? { key, target: 'exists', exists: false } : { key, target: 'value', op: '=', value: expected };
      const body = JSON.stringify({ compare: [compare], success: [{ type: 'put', key, value }] });
      history.invoke(proc, 'cas', key, casValue);
      const o = await node.send('POST', '/txn', ctx.timeoutMs, body, { 'content-type': 'application/json' });
      if (o.kind === 'reply' && o.status === 200) {
        let succeeded: boolean | undefined;
        try {
          succeeded = (JSON.parse(o.body.toString('utf8')) as { succeeded?: unknown }).succeeded === true;
        } catch {
          succeeded = undefined;
        }
        if (succeeded === undefined) {
          history.complete(proc, 'info', 'cas', key, casValue, 'unreadable txn answer');
          proc = history.newProcess();
        } else if (succeeded) {
          history.complete(proc, 'ok', 'cas', key, casValue);
          this.lastSeen.set(key, value);
        } else {
          history.complete(proc, 'fail', 'cas', key, casValue, 'mismatch');
        }
      } else {
        const c = writeCompletion(o);
        history.complete(proc, c.type, 'cas', key, casValue, c.error);
        if (c.type === 'info') proc = history.newProcess();
      }
      await backOffIfRefused(o);
    }
  }

  async finish(ctx: WorkloadContext): Promise<WorkloadVerdict> {
    const problems: string[] = [];
    // Final linearizable reads of every key used, each through a random up member.
    for (const key of [...this.usedKeys].sort()) {
      try {
        await untilDone(`final read of ${key}`, 20_000, async () => {
          const id = pick(ctx.random, ctx.cluster.upMembers());
          const proc = ctx.history.newProcess();
          ctx.history.invoke(proc, 'read', key, null);
          const o = await ctx.cluster.http(id).send('GET', `/kv/${urlKey(key)}`, ctx.timeoutMs);
          if (o.kind === 'reply' && (o.status === 200 || (o.status === 404 && o.code === 'key_not_found'))) {
            ctx.history.complete(proc, 'ok', 'read', key, o.status === 200 ? o.body.toString('utf8') : null);
            return true;
          }
          ctx.history.complete(proc, 'fail', 'read', key, null, o.kind === 'reply' ? String(o.status) : o.reason);
          return undefined;
        });
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    const events = validateHistoryEvents(ctx.history.events);
    const result = checkHistory(events, { timeLimitMs: this.options.checkTimeLimitMs });
    this.result = result;
    if (result.verdict === 'not-linearizable') problems.push(`NOT linearizable on ${result.failingKeyCount} key(s)`);
    if (result.verdict === 'unknown') problems.push(`checker undecided on ${result.unknownKeys.length} key(s): ${result.unknownKeys.slice(0, 5).join(', ')}`);
    if (result.lostWrites.length > 0) problems.push(`${result.lostWrites.length} acknowledged write(s) lost`);
    return {
      valid: problems.length === 0,
      problems,
      details: {
        verdict: result.verdict,
        keys: result.keyCount,
        checkMs: result.elapsedMs,
        lostWrites: result.lostWrites.length,
        counts: result.counts,
      },
    };
  }

  /** The checker's readable report (after finish). */
  report(): string {
    return this.result === null ? '' : formatHistoryCheckResult(this.result);
  }
}
