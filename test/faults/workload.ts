/**
 * What every fault-run workload provides: concurrent clients that record a history while the
 * nemesis works, and a check after the cluster has healed (final reads included).
 */
import type { FaultCluster } from './fault-cluster.js';
import type { HistoryRecorder } from './history-recorder.js';
import type { HttpOutcome } from './node-http.js';

export interface WorkloadContext {
  cluster: FaultCluster;
  history: HistoryRecorder;
  /** Seeded randomness of the run. */
  random: () => number;
  /** Client timeout of one attempt. */
  timeoutMs: number;
}

export interface WorkloadVerdict {
  valid: boolean;
  /** One line per problem found (empty when valid). */
  problems: string[];
  /** Workload-specific figures for summary.json. */
  details: Record<string, unknown>;
}

export interface Workload {
  readonly name: string;
  /** Runs before the nemesis starts (e.g. initial balances). */
  setup(ctx: WorkloadContext): Promise<void>;
  /** One client's loop; returns once `stopped()` is true and its last operation completed. */
  runClient(ctx: WorkloadContext, client: number, stopped: () => boolean): Promise<void>;
  /** After healing: final reads (recorded in the history) and the check. */
  finish(ctx: WorkloadContext): Promise<WorkloadVerdict>;
}

export function pick<T>(random: () => number, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick from an empty list');
  return items[Math.floor(random() * items.length)]!;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The node a client sends its next request to: any member (clients do not only talk to the leader). */
export function pickNode(ctx: WorkloadContext): string {
  return pick(ctx.random, ctx.cluster.members);
}

/** A short pause after a request that could not even connect, so a down node is not spun on. */
export async function backOffIfRefused(o: HttpOutcome): Promise<void> {
  if (o.kind === 'refused') await sleep(50);
}

/**
 * Runs `attempt` against up nodes until it yields a value or `deadlineMs` passes (final reads and
 * setup, after healing).
 */
export async function untilDone<T>(what: string, deadlineMs: number, attempt: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + deadlineMs;
  for (;;) {
    const v = await attempt();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`${what}: no success within ${deadlineMs} ms`);
    await sleep(100);
  }
}

export function urlKey(key: string): string {
  return encodeURIComponent(key);
}
