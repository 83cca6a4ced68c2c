/**
 * `set`: every client adds unique elements to a few shared set keys (a comma-separated value),
 * each add being a linearizable read followed by a conditional update (POST /txn comparing the
 * value just read, then putting value + element); a lost race is retried a few times.
 * After healing, a linearizable read of every set key through every member must contain every
 * acknowledged element, no element twice, and nothing never attempted.
 * History events: f "add", key = set key, value = element.
 */
import { writeCompletion } from './node-http.js';
import { type Workload, type WorkloadContext, type WorkloadVerdict, backOffIfRefused, pickNode, untilDone, urlKey } from './workload.js';

/** A set key holding more than this many bytes is retired; adds move to the slot's next key. */
const MAX_SET_BYTES = 24 * 1024;
const MAX_RACE_RETRIES = 4;
const SET_PREFIX = 'set/';

export class SetWorkload implements Workload {
  readonly name = 'set';
  private readonly attempted = new Set<string>();
  private readonly acknowledged = new Map<string, string>();
  private readonly generation: number[];

  constructor(private readonly slots: number) {
    if (!Number.isInteger(slots) || slots < 1) throw new Error('set: slots must be a positive integer');
    this.generation = new Array<number>(slots).fill(0);
  }

  async setup(): Promise<void> {}

  async runClient(ctx: WorkloadContext, client: number, stopped: () => boolean): Promise<void> {
    const { history } = ctx;
    let proc = history.newProcess();
    let counter = 0;
    while (!stopped()) {
      const slot = Math.floor(ctx.random() * this.slots);
      const gen = this.generation[slot]!;
      const key = `${SET_PREFIX}${slot}-${gen}`;
      const element = `e${client}.${counter++}`;
      const node = ctx.cluster.http(pickNode(ctx));
      history.invoke(proc, 'add', key, element);
      this.attempted.add(element);
      let outcome: { type: 'ok' | 'fail' | 'info'; error?: string } = { type: 'fail', error: 'lost every race' };
      for (let attempt = 0; attempt <= MAX_RACE_RETRIES; attempt++) {
        const read = await node.send('GET', `/kv/${urlKey(key)}`, ctx.timeoutMs);
        let current: string | null;
        if (read.kind === 'reply' && read.status === 200) current = read.body.toString('utf8');
        else if (read.kind === 'reply' && read.status === 404 && read.code === 'key_not_found') current = null;
        else {
          // Nothing was written by this add yet (earlier attempts failed their compare).
          outcome = { type: 'fail', error: `read: ${read.kind === 'reply' ? read.status : read.reason}` };
          await backOffIfRefused(read);
          break;
        }
        if (current !== null && current.length > MAX_SET_BYTES && this.generation[slot] === gen) this.generation[slot] = gen + 1;
        const compare = current === null ? { key, target: 'exists', exists: false } : { key, target: 'value', op: '=', value: current };
        const next = current === null || current === '' ? element : `${current},${element}`;
        const body = JSON.stringify({ compare: [compare], success: [{ type: 'put', key, value: next }] });
        const o = await node.send('POST', '/txn', ctx.timeoutMs, body, { 'content-type': 'application/json' });
        if (o.kind === 'reply' && o.status === 200) {
          const succeeded = (JSON.parse(o.body.toString('utf8')) as { succeeded?: unknown }).succeeded === true;
          if (succeeded) {
            outcome = { type: 'ok' };
            break;
          }
          continue; // another client changed the set first: read again
        }
        outcome = writeCompletion(o);
        await backOffIfRefused(o);
        break;
      }
      history.complete(proc, outcome.type, 'add', key, element, outcome.error);
      if (outcome.type === 'ok') this.acknowledged.set(element, key);
      if (outcome.type === 'info') proc = history.newProcess();
    }
  }

  async finish(ctx: WorkloadContext): Promise<WorkloadVerdict> {
    const problems: string[] = [];
    const details: Record<string, unknown> = { attempted: this.attempted.size, acknowledged: this.acknowledged.size };
    for (const id of ctx.cluster.upMembers()) {
      let sets: Array<{ key: string; value: string }>;
      try {
        sets = await untilDone(`final read of the sets through ${id}`, 20_000, async () => {
          const proc = ctx.history.newProcess();
          ctx.history.invoke(proc, 'read-all', SET_PREFIX, null);
          const o = await ctx.cluster.http(id).send('GET', `/kv?prefix=${urlKey(SET_PREFIX)}&consistency=linearizable`, ctx.timeoutMs);
          if (o.kind === 'reply' && o.status === 200) {
            const list = JSON.parse(o.body.toString('utf8')) as Array<{ key: string; value: string }>;
            ctx.history.complete(proc, 'ok', 'read-all', SET_PREFIX, Object.fromEntries(list.map((kv) => [kv.key, kv.value])));
            return list;
          }
          ctx.history.complete(proc, 'fail', 'read-all', SET_PREFIX, null, o.kind === 'reply' ? String(o.status) : o.reason);
          return undefined;
        });
      } catch (e) {
        problems.push((e as Error).message);
        continue;
      }
      const seen = new Map<string, number>();
      for (const { value } of sets) for (const el of value.split(',')) if (el !== '') seen.set(el, (seen.get(el) ?? 0) + 1);
      const lost = [...this.acknowledged.keys()].filter((el) => !seen.has(el));
      const unexpected = [...seen.keys()].filter((el) => !this.attempted.has(el));
      const duplicated = [...seen].filter(([, n]) => n > 1).map(([el]) => el);
      details[`read-${id}`] = { elements: seen.size, lost: lost.length, unexpected: unexpected.length, duplicated: duplicated.length };
      if (lost.length > 0) problems.push(`${id}: ${lost.length} acknowledged element(s) lost: ${lost.slice(0, 10).join(' ')}`);
      if (unexpected.length > 0) problems.push(`${id}: ${unexpected.length} element(s) never written: ${unexpected.slice(0, 10).join(' ')}`);
      if (duplicated.length > 0) problems.push(`${id}: ${duplicated.length} element(s) present twice: ${duplicated.slice(0, 10).join(' ')}`);
    }
    return { valid: problems.length === 0, problems, details };
  }
}
