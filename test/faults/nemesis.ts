/**
 * The nemesis: injects one fault at a time into a FaultCluster, holds it, undoes it, rests, and
 * writes what it did when to nemesis.log. Faults:
 *   kill       kill -9 a random node or the leader; restart it after a random delay
 *   pause      SIGSTOP a node (often the leader) for longer than the election timeout; SIGCONT
 *   partition  random halves, leader isolated, one-way cut, bridge; heal
 *   membership remove a node, then add a fresh one (joins as learner, promoted to voter)
 *   leader     transfer leadership to another voter and back under load
 */
import { appendFileSync } from 'node:fs';
import type { FaultCluster } from './fault-cluster.js';
import { pick, sleep } from './workload.js';

export const NEMESIS_KINDS = ['kill', 'pause', 'partition', 'membership', 'leader'] as const;
export type NemesisKind = (typeof NEMESIS_KINDS)[number];

export function parseNemesisList(text: string): NemesisKind[] {
  const kinds: NemesisKind[] = [];
  for (const name of text.split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'none')) {
    const kind = NEMESIS_KINDS.find((k) => k === name);
    if (kind === undefined) throw new Error(`unknown nemesis ${JSON.stringify(name)} (known: ${NEMESIS_KINDS.join(', ')}, none)`);
    if (!kinds.includes(kind)) kinds.push(kind);
  }
  return kinds;
}

export const PARTITION_SHAPES = ['halves', 'isolate-leader', 'one-way', 'bridge', 'shift'] as const;
export type PartitionShape = (typeof PARTITION_SHAPES)[number];

export function parsePartitionShapes(text: string): PartitionShape[] {
  const shapes = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return shapes.map((name) => {
    const shape = PARTITION_SHAPES.find((k) => k === name);
    if (shape === undefined) throw new Error(`unknown partition shape ${JSON.stringify(name)} (known: ${PARTITION_SHAPES.join(', ')})`);
    return shape;
  });
}

export interface NemesisTiming {
  /** Partition shapes to choose from (default: all). */
  shapes?: readonly PartitionShape[];
  /** The cluster's election timeout: a pause must outlast it. */
  electionTimeoutMs: number;
  /** Quiet time between faults, min..max. */
  restMs: [number, number];
  /** How long a fault is held, min..max. */
  holdMs: [number, number];
}

export class Nemesis {
  readonly counts: Record<string, number> = {};
  private readonly t0 = performance.now();

  constructor(
    private readonly cluster: FaultCluster,
    private readonly kinds: readonly NemesisKind[],
    private readonly random: () => number,
    private readonly logFile: string,
    private readonly timing: NemesisTiming,
  ) {}

  get faults(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }

  log(line: string): void {
    appendFileSync(this.logFile, `+${((performance.now() - this.t0) / 1000).toFixed(3)}s ${line}\n`);
  }

  private between([lo, hi]: [number, number]): number {
    return lo + this.random() * (hi - lo);
  }

  /** Injects faults until `stopped()`; returns after undoing the last one. */
  async run(stopped: () => boolean): Promise<void> {
    if (this.kinds.length === 0) return;
    await this.rest(stopped);
    while (!stopped()) {
      const kind = pick(this.random, this.kinds);
      this.counts[kind] = (this.counts[kind] ?? 0) + 1;
      try {
        await this.inject(kind);
      } catch (e) {
        this.log(`${kind}: nemesis step failed: ${(e as Error).message}`);
      }
      await this.rest(stopped);
    }
  }

  private async rest(stopped: () => boolean): Promise<void> {
    const until = performance.now() + this.between(this.timing.restMs);
    while (!stopped() && performance.now() < until) await sleep(50);
  }

  private async target(preferLeader: number): Promise<{ id: string; leader: boolean } | null> {
    const leader = await this.cluster.leader();
    if (leader !== null && this.random() < preferLeader) return { id: leader, leader: true };
    const up = this.cluster.upMembers();
    if (up.length === 0) return null;
    const id = pick(this.random, up);
    return { id, leader: id === leader };
  }

  private async inject(kind: NemesisKind): Promise<void> {
    switch (kind) {
      case 'kill': {
        const t = await this.target(0.5);
        if (t === null) return;
        this.log(`kill -9 ${t.id}${t.leader ? ' (leader)' : ''}`);
        await this.cluster.kill(t.id);
        await sleep(this.between(this.timing.holdMs));
        this.cluster.restart(t.id);
        this.log(`restart ${t.id}`);
        return;
      }
      case 'pause': {
        const t = await this.target(0.7);
        if (t === null) return;
        const ms = Math.max(this.between(this.timing.holdMs), 1.5 * this.timing.electionTimeoutMs);
        this.log(`SIGSTOP ${t.id}${t.leader ? ' (leader)' : ''} for ${Math.round(ms)} ms`);
        this.cluster.pause(t.id);
        await sleep(ms);
        this.cluster.resume(t.id);
        this.log(`SIGCONT ${t.id}`);
        return;
      }
      case 'partition': {
        const description = await this.partition();
        this.log(`partition ${description}: cut ${this.cluster.filter.describe().join(' ')}`);
        await sleep(this.between(this.timing.holdMs));
        this.cluster.filter.healAll();
        this.log('heal partition');
        return;
      }
      case 'membership':
        await this.membership();
        return;
      case 'leader': {
        const from = await this.cluster.leader();
        if (from === null) return;
        const others = this.cluster.upMembers().filter((id) => id !== from);
        if (others.length === 0) return;
        const to = pick(this.random, others);
        await this.transfer(from, to);
        await sleep(this.between(this.timing.holdMs) / 2);
        await this.transfer(to, from);
        return;
      }
    }
  }

  private async transfer(via: string, to: string): Promise<void> {
    const o = await this.cluster.http(via).send('POST', '/cluster/leader', 15_000, JSON.stringify({ to }), { 'content-type': 'application/json' });
    const answer = o.kind === 'reply' ? `${o.status} ${o.body.toString('utf8').slice(0, 200)}` : o.reason;
    this.log(`transfer leadership to ${to} (asked ${via}): ${answer}`);
  }

  /** Cuts links; returns what shape it chose. */
  private async partition(): Promise<string> {
    const nodes = [...this.cluster.members];
    const f = this.cluster.filter;
    const cutBoth = (a: readonly string[], b: readonly string[]) => {
      for (const x of a) for (const y of b) if (x !== y) {
        f.block(x, y);
        f.block(y, x);
      }
    };
    const shuffled = nodes.map((n) => [this.random(), n] as const).sort((p, q) => p[0] - q[0]).map(([, n]) => n);
    const shapes = this.timing.shapes !== undefined && this.timing.shapes.length > 0 ? this.timing.shapes : PARTITION_SHAPES;
    const shape = pick(this.random, shapes);
    const leader = await this.cluster.leader();
    switch (shape) {
      case 'halves': {
        const k = Math.floor(nodes.length / 2);
        cutBoth(shuffled.slice(0, k), shuffled.slice(k));
        return `halves ${shuffled.slice(0, k).join(',')} | ${shuffled.slice(k).join(',')}`;
      }
      case 'isolate-leader': {
        const victim = leader ?? shuffled[0]!;
        cutBoth([victim], nodes.filter((n) => n !== victim));
        return `isolate ${victim}${leader === null ? ' (no leader known)' : ' (leader)'}`;
      }
      case 'one-way': {
        const victim = leader ?? shuffled[0]!;
        const inbound = this.random() < 0.5;
        for (const other of nodes) if (other !== victim) inbound ? f.block(other, victim) : f.block(victim, other);
        return inbound ? `one-way: nothing reaches ${victim}` : `one-way: nothing from ${victim} gets out`;
      }
      case 'shift': {
        // A follower misses writes, then the cut moves (no heal in between) to isolate the leader:
        // the lagging node is now needed for a majority and must not win with its shorter log
        // (Raft §5.4.1, the election restriction).
        const lagging = shuffled.find((n) => n !== leader) ?? shuffled[0]!;
        cutBoth([lagging], nodes.filter((n) => n !== lagging));
        this.log(`partition shift, first: isolate ${lagging}`);
        await sleep(this.between(this.timing.holdMs));
        f.healAll();
        const victim = leader ?? shuffled.find((n) => n !== lagging)!;
        cutBoth([victim], nodes.filter((n) => n !== victim));
        return `shift: then isolate ${victim}${leader === null ? '' : ' (leader)'}`;
      }
      case 'bridge': {
        // Two halves that share one node: only the bridge talks to both sides.
        const bridge = shuffled[0]!;
        const rest = shuffled.slice(1);
        const k = Math.ceil(rest.length / 2);
        cutBoth(rest.slice(0, k), rest.slice(k));
        return `bridge ${bridge} between ${rest.slice(0, k).join(',')} and ${rest.slice(k).join(',')}`;
      }
    }
  }

  /** Removes a member (usually a follower), then adds a fresh node and waits for its promotion. */
  private async membership(): Promise<void> {
    if (!this.cluster.hasSpare()) {
      this.log('membership: no spare node ids left; skipped');
      return;
    }
    const leader = await this.cluster.leader();
    if (leader === null) {
      this.log('membership: no leader; skipped');
      return;
    }
    const followers = this.cluster.upMembers().filter((id) => id !== leader);
    const victim = followers.length > 0 && this.random() < 0.8 ? pick(this.random, followers) : leader;
    const via = leader;
    const o = await this.cluster.http(via).send('DELETE', `/cluster/members/${victim}`, 20_000);
    this.log(`remove ${victim} (asked ${via}): ${o.kind === 'reply' ? `${o.status} ${o.code ?? ''}` : o.reason}`);
    // 200 means the removal committed; otherwise (timeout, 504) ask the members whether it did.
    const removed = (o.kind === 'reply' && o.status === 200) || !(await this.isMember(victim));
    if (!removed) {
      this.log(`membership: ${victim} is still a member; not adding a node`);
      return;
    }
    await this.cluster.retire(victim);
    const fresh = this.cluster.startSpare();
    this.log(`start ${fresh} with --join`);
    const deadline = performance.now() + 60_000;
    while (performance.now() < deadline) {
      if ((await this.memberRole(fresh)) === 'voter') {
        this.log(`${fresh} promoted to voter`);
        return;
      }
      await sleep(250);
    }
    this.log(`membership: ${fresh} not a voter within 60 s`);
  }

  private async members(): Promise<Array<{ id: string; role: string }> | null> {
    for (const id of this.cluster.upMembers()) {
      const o = await this.cluster.http(id).send('GET', '/cluster/members', 3000);
      if (o.kind === 'reply' && o.status === 200) return (JSON.parse(o.body.toString('utf8')) as { members: Array<{ id: string; role: string }> }).members;
    }
    return null;
  }

  private async isMember(id: string): Promise<boolean> {
    for (let i = 0; i < 20; i++) {
      const ms = await this.members();
      if (ms !== null) return ms.some((m) => m.id === id);
      await sleep(250);
    }
    return true;
  }

  private async memberRole(id: string): Promise<string | null> {
    const ms = await this.members();
    return ms?.find((m) => m.id === id)?.role ?? null;
  }
}
