/**
 * `bank`: transfers between accounts through POST /txn. A transfer reads every account in one
 * read-only linearizable txn, then commits `from -= amount, to += amount` with compares on both
 * accounts' values (so a concurrent change makes it fail, never double-spend). Every read of all
 * accounts (one read-only txn), including a final one through every member after healing, must
 * show every account, the same total and no negative balance.
 * History events: f "transfer" (value {from,to,amount}) and f "read" (value: balances), key "accounts".
 */
import { writeCompletion } from './node-http.js';
import { type Workload, type WorkloadContext, type WorkloadVerdict, backOffIfRefused, pickNode, untilDone } from './workload.js';

const INITIAL_BALANCE = 100;
const MAX_TRANSFER = 20;
const HISTORY_KEY = 'accounts';

type Balances = Record<string, number>;

export class BankWorkload implements Workload {
  readonly name = 'bank';
  private readonly accounts: string[];
  private readonly problems: string[] = [];
  private reads = 0;

  constructor(accounts: number) {
    if (!Number.isInteger(accounts) || accounts < 2) throw new Error('bank: at least 2 accounts');
    this.accounts = Array.from({ length: accounts }, (_, i) => `acct-${i}`);
  }

  get total(): number {
    return this.accounts.length * INITIAL_BALANCE;
  }

  async setup(ctx: WorkloadContext): Promise<void> {
    const body = JSON.stringify({ ops: this.accounts.map((key) => ({ type: 'put', key, value: String(INITIAL_BALANCE) })) });
    await untilDone('initial balances', 30_000, async () => {
      const o = await ctx.cluster.http(pickNode(ctx)).send('POST', '/batch', ctx.timeoutMs, body, { 'content-type': 'application/json' });
      return o.kind === 'reply' && o.status === 200 ? true : undefined;
    });
  }

  /** One read-only txn of every account through `id`; null when it did not answer 200. */
  private async readAll(ctx: WorkloadContext, id: string): Promise<{ balances: Balances | null; error?: string }> {
    const body = JSON.stringify({ success: this.accounts.map((key) => ({ type: 'get', key })) });
    const o = await ctx.cluster.http(id).send('POST', '/txn', ctx.timeoutMs, body, { 'content-type': 'application/json' });
    await backOffIfRefused(o);
    if (o.kind !== 'reply') return { balances: null, error: o.reason };
    if (o.status !== 200) return { balances: null, error: `${o.status} ${o.code ?? ''}`.trim() };
    const answer = JSON.parse(o.body.toString('utf8')) as { responses: Array<{ kv?: { key: string; value: string } | null }> };
    const balances: Balances = {};
    for (const r of answer.responses) if (r.kv) balances[r.kv.key] = Number(r.kv.value);
    return { balances };
  }

  /** Records a read in the history and checks it. */
  private async recordedRead(ctx: WorkloadContext, id: string): Promise<Balances | null> {
    const proc = ctx.history.newProcess();
    ctx.history.invoke(proc, 'read', HISTORY_KEY, null);
    const { balances, error } = await this.readAll(ctx, id);
    if (balances === null) {
      ctx.history.complete(proc, 'fail', 'read', HISTORY_KEY, null, error);
      return null;
    }
    ctx.history.complete(proc, 'ok', 'read', HISTORY_KEY, balances);
    this.reads++;
    this.checkRead(balances, `read through ${id} at ${(ctx.history.now() / 1e9).toFixed(3)} s`);
    return balances;
  }

  private checkRead(b: Balances, where: string): void {
    const missing = this.accounts.filter((a) => !(a in b));
    const values = Object.values(b);
    const total = values.reduce((s, v) => s + v, 0);
    const negative = Object.entries(b).filter(([, v]) => !(v >= 0) || !Number.isInteger(v));
    if (missing.length > 0) this.problems.push(`${where}: accounts missing: ${missing.join(' ')}`);
    else if (total !== this.total) this.problems.push(`${where}: total ${total}, expected ${this.total}: ${JSON.stringify(b)}`);
    if (negative.length > 0) this.problems.push(`${where}: negative or non-integer balance: ${JSON.stringify(b)}`);
  }

  async runClient(ctx: WorkloadContext, _client: number, stopped: () => boolean): Promise<void> {
    const { history } = ctx;
    let proc = history.newProcess();
    while (!stopped()) {
      const id = pickNode(ctx);
      const balances = await this.recordedRead(ctx, id);
      if (balances === null || ctx.random() < 0.3) continue;
      const from = this.accounts[Math.floor(ctx.random() * this.accounts.length)]!;
      const to = this.accounts.filter((a) => a !== from)[Math.floor(ctx.random() * (this.accounts.length - 1))]!;
      const have = balances[from] ?? 0;
      if (have <= 0) continue;
      const amount = 1 + Math.floor(ctx.random() * Math.min(have, MAX_TRANSFER));
      const value = { from, to, amount };
      const body = JSON.stringify({
        compare: [
          { key: from, target: 'value', op: '=', value: String(have) },
          { key: to, target: 'value', op: '=', value: String(balances[to]) },
        ],
        success: [
          { type: 'put', key: from, value: String(have - amount) },
          { type: 'put', key: to, value: String((balances[to] ?? 0) + amount) },
        ],
      });
      history.invoke(proc, 'transfer', HISTORY_KEY, value);
      const o = await ctx.cluster.http(pickNode(ctx)).send('POST', '/txn', ctx.timeoutMs, body, { 'content-type': 'application/json' });
      if (o.kind === 'reply' && o.status === 200) {
        const succeeded = (JSON.parse(o.body.toString('utf8')) as { succeeded?: unknown }).succeeded === true;
        history.complete(proc, succeeded ? 'ok' : 'fail', 'transfer', HISTORY_KEY, value, succeeded ? undefined : 'mismatch');
      } else {
        const c = writeCompletion(o);
        history.complete(proc, c.type, 'transfer', HISTORY_KEY, value, c.error);
        if (c.type === 'info') proc = history.newProcess();
        await backOffIfRefused(o);
      }
    }
  }

  async finish(ctx: WorkloadContext): Promise<WorkloadVerdict> {
    const finalProblems: string[] = [];
    const finals: Record<string, Balances> = {};
    for (const id of ctx.cluster.upMembers()) {
      try {
        finals[id] = await untilDone(`final read through ${id}`, 20_000, async () => (await this.recordedRead(ctx, id)) ?? undefined);
      } catch (e) {
        finalProblems.push((e as Error).message);
      }
    }
    const problems = [...this.problems, ...finalProblems];
    return { valid: problems.length === 0, problems, details: { accounts: this.accounts.length, total: this.total, reads: this.reads, finals } };
  }
}
