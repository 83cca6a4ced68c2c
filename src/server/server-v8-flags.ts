/**
 * The V8 flags a server process should run with. They must be given to node when it starts (V8
 * sizes its heap once): `atlas dev` and the benchmarks start their nodes with them, and
 * `atlas start` logs a notice when they are missing (docs/operations.md "Memory").
 *
 * `--max-semi-space-size=16` (MiB), V8's own default on 64-bit, pinned: the young generation is
 * the trade-off between GC work and memory, and this is the value measured. Every write allocates
 * about 12 KB on the leader (requests, commands, messages, answers), so the scavenger runs often;
 * with a 4 MiB semi-space (the setting of sessions 5-7) writes at 64 connections ran 10-15% slower
 * (interleaved pairs, 4 / 16 MiB: 5,217/6,079, 4,450/5,197, 3,652/4,179, 4,328/5,606, 4,539/5,103,
 * 5,103/4,476 req/s; user CPU per write 15% lower on every node; 8 MiB no better than 4). The cost
 * is memory while the node is busy: the young generation grows to 2 x 16 MiB. V8 gives it back in
 * a GC that sees a low allocation rate, which the memory reclaimer's idle GCs now make sure of
 * (memory-reclaimer.ts): `npm run bench:scale` at 1,000,000 keys, RSS after 20 s idle 387-391 MiB
 * (with 4 MiB: 381-389; with 16 MiB and one idle GC: 403-417, one node 416 MiB still after 45 s).
 */
export const SERVER_V8_FLAGS: readonly string[] = ['--max-semi-space-size=16'];

/** The flag's name with V8's `_` spelling made `-` (`--max_semi_space_size` is the same flag). */
function flagName(arg: string): string {
  const eq = arg.indexOf('=');
  return (eq < 0 ? arg : arg.slice(0, eq)).replaceAll('_', '-');
}

/**
 * The SERVER_V8_FLAGS this process was not started with, judged by its node arguments and
 * NODE_OPTIONS: a flag counts as given with any value (the operator may have chosen another).
 */
export function missingServerV8Flags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = new Set(
    [...execArgv, ...(nodeOptions ?? '').split(/\s+/)].filter((a) => a.startsWith('--')).map(flagName),
  );
  return SERVER_V8_FLAGS.filter((flag) => !given.has(flagName(flag)));
}
