/**
 * Test helper: histories of concurrent clients against a simulated ATOMIC key-value register, so
 * linearizable by construction, plus mutations that (usually) break them.
 *
 * Each client slot issues one operation at a time; every operation takes effect at one instant
 * (its linearization point) strictly inside its [invoke, completion] interval. Some operations time
 * out (`info`) and then took effect or not; the slot continues under a fresh process id. Some writes
 * fail before having any effect (`fail`); a cas whose expected value is not there fails with
 * error "mismatch".
 */
import type { CasArguments, HistoryEvent } from '../../src/history/history-event.js';

/** A small, fast, seeded PRNG (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RegisterSimulationParams {
  readonly seed: number;
  /** Concurrent client slots. */
  readonly clients: number;
  readonly keys: number;
  readonly operations: number;
  /** Probability that an operation times out (`info`). */
  readonly infoRate: number;
  /** Probability that a write, delete or cas fails without effect (`fail`), and a read fails. */
  readonly failRate: number;
  /** Longest operation duration in ticks (default 20); think time between operations is up to a quarter of it. */
  readonly maxDuration?: number;
  /** Nanoseconds per tick (default 1). */
  readonly tickNanos?: number;
}

type PlannedFunction = 'read' | 'write' | 'cas' | 'delete';

interface PlannedOperation {
  process: number;
  f: PlannedFunction;
  key: string;
  /** Times in half-ticks: invoke and completion even, the linearization point odd and in between. */
  invoke: number;
  complete: number;
  point: number;
  timesOut: boolean;
  /** For a timed-out write/cas/delete: whether it took effect anyway. */
  appliedDespiteTimeout: boolean;
  failsEarly: boolean;
  value: string | CasArguments | null;
  /** A cas takes its expected value from the register at the point with this probability, else guesses. */
  casGuessesRight: boolean;
  /** Filled in while applying: the completion. */
  completion?: { type: 'ok' | 'fail' | 'info'; value: string | CasArguments | null; error?: string };
}

export function simulateRegisterHistory(params: RegisterSimulationParams): HistoryEvent[] {
  const random = seededRandom(params.seed);
  const below = (n: number): number => Math.floor(random() * n);
  const maxDuration = params.maxDuration ?? 20;
  const tickNanos = params.tickNanos ?? 1;
  const keys = Array.from({ length: params.keys }, (_, i) => `k${i}`);
  const processOf = Array.from({ length: params.clients }, (_, i) => i);
  const freeAt = Array.from({ length: params.clients }, () => below(maxDuration));
  let nextProcess = params.clients;
  let counter = 0;

  const planned: PlannedOperation[] = [];
  for (let n = 0; n < params.operations; n++) {
    let slot = 0;
    for (let s = 1; s < params.clients; s++) if (freeAt[s] < freeAt[slot]) slot = s;
    const invokeTick = freeAt[slot] + 1 + below(Math.max(1, maxDuration >> 2));
    const completeTick = invokeTick + 1 + below(maxDuration);
    const roll = random();
    const f: PlannedFunction = roll < 0.4 ? 'read' : roll < 0.7 ? 'write' : roll < 0.9 ? 'cas' : 'delete';
    const process = processOf[slot];
    const timesOut = random() < params.infoRate;
    const op: PlannedOperation = {
      process,
      f,
      key: keys[below(keys.length)],
      invoke: 2 * invokeTick,
      complete: 2 * completeTick,
      point: 2 * invokeTick + 1 + 2 * below(completeTick - invokeTick),
      timesOut,
      appliedDespiteTimeout: random() < 0.5,
      failsEarly: !timesOut && random() < params.failRate,
      value: f === 'write' ? `v-${process}-${counter++}` : f === 'cas' ? [null, `v-${process}-${counter++}`] : null,
      casGuessesRight: random() < 0.6,
    };
    planned.push(op);
    freeAt[slot] = completeTick;
    if (timesOut) processOf[slot] = nextProcess++;
  }

  // Apply every operation at its linearization point, in point order, to an atomic register.
  const register = new Map<string, string>();
  const written = new Map<string, string[]>();
  for (const op of [...planned].sort((a, b) => a.point - b.point)) {
    const current = register.get(op.key) ?? null;
    if (op.f === 'cas') {
      const history = written.get(op.key) ?? [];
      const guess = random() < 0.3 || history.length === 0 ? null : history[below(history.length)];
      op.value = [op.casGuessesRight ? current : guess, (op.value as CasArguments)[1]];
    }
    const effect = (): void => {
      if (op.f === 'write') register.set(op.key, op.value as string);
      else if (op.f === 'delete') register.delete(op.key);
      else if (op.f === 'cas') register.set(op.key, (op.value as CasArguments)[1]);
      if (op.f === 'write' || op.f === 'cas') {
        const list = written.get(op.key) ?? [];
        list.push(register.get(op.key) as string);
        written.set(op.key, list);
      }
    };
    const casHolds = op.f !== 'cas' || (op.value as CasArguments)[0] === current;
    if (op.timesOut) {
      if (op.f !== 'read' && op.appliedDespiteTimeout && casHolds) effect();
      op.completion = { type: 'info', value: op.f === 'read' ? null : op.value, error: 'timeout' };
    } else if (op.failsEarly) {
      op.completion = { type: 'fail', value: op.f === 'read' ? null : op.value, error: 'unavailable' };
    } else if (!casHolds) {
      op.completion = { type: 'fail', value: op.value, error: 'mismatch' };
    } else {
      effect();
      op.completion = { type: 'ok', value: op.f === 'read' ? current : op.value };
    }
  }

  const timed: { time: number; order: number; event: HistoryEvent }[] = [];
  planned.forEach((op, order) => {
    const completion = op.completion as NonNullable<PlannedOperation['completion']>;
    const invokeValue = op.f === 'read' ? null : op.value;
    const invoke = { process: op.process, type: 'invoke', f: op.f, key: op.key, value: invokeValue, time: (op.invoke / 2) * tickNanos };
    const time = (op.complete / 2) * tickNanos;
    const done =
      completion.error === undefined
        ? { process: op.process, type: completion.type, f: op.f, key: op.key, value: completion.value, time }
        : { process: op.process, type: completion.type, f: op.f, key: op.key, value: completion.value, time, error: completion.error };
    timed.push({ time: op.invoke, order: 2 * order, event: invoke as HistoryEvent });
    timed.push({ time: op.complete, order: 2 * order + 1, event: done as HistoryEvent });
  });
  timed.sort((a, b) => a.time - b.time || a.order - b.order);
  return timed.map((entry) => entry.event);
}

/**
 * Changes one thing in a history, keeping it well-formed: a read's result, an ok write turned into
 * fail (a cas sometimes with error "mismatch"), or a fail or info turned into ok. The
 * result may or may not still be linearizable. Returns the history unchanged if nothing applies.
 */
export function mutateHistory(events: readonly HistoryEvent[], seed: number): HistoryEvent[] {
  const random = seededRandom(seed);
  const completions = events.map((event, index) => ({ event, index })).filter(({ event }) => event.type !== 'invoke');
  if (completions.length === 0) return [...events];
  const { event, index } = completions[Math.floor(random() * completions.length)];
  const mutated = [...events];
  const valuesOfKey = events
    .filter((other) => other.key === event.key && other.type === 'invoke' && other.f !== 'read' && other.f !== 'delete')
    .map((other) => (other.f === 'cas' ? other.value[1] : (other.value as string)));
  const pick = (): string | null =>
    valuesOfKey.length === 0 || random() < 0.2 ? null : valuesOfKey[Math.floor(random() * valuesOfKey.length)];
  const { error: _dropped, ...withoutError } = event;
  if (event.f === 'read') {
    mutated[index] =
      event.type === 'ok'
        ? { ...event, value: pick() }
        : ({ ...withoutError, type: 'ok', value: pick() } as HistoryEvent);
  } else if (event.type === 'ok') {
    // Not to info: the process may issue again later, which a process never does after info.
    const casMismatch = event.f === 'cas' && random() < 0.5;
    mutated[index] = { ...event, type: 'fail', ...(casMismatch ? { error: 'mismatch' } : {}) };
  } else {
    mutated[index] = { ...withoutError, type: 'ok' } as HistoryEvent;
  }
  return mutated;
}
