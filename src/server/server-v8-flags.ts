/**
 * The V8 flags a server process should run with. They must be given to node when it starts (V8
 * sizes its heap once): `atlas dev` and the benchmarks start their nodes with them, and
 * `atlas start` logs a notice when they are missing (docs/operations.md "Memory").
 *
 * `--max-semi-space-size=4` (MiB; V8's default on 64-bit is 16): under load V8 grows its young
 * generation to twice the semi-space size and keeps it committed for good — an idle node held
 * 32 MiB of it, and its full GCs did not shrink it. Measured with `npm run bench:scale` at
 * 1,000,000 keys, after 20 s idle: RSS of the followers 412 / 447 -> 357 / 359 MiB, of the leader
 * 416 -> 363 MiB; V8 heap committed 62-91 -> 21-23 MiB; the load as fast (59.5 vs 62.1 s).
 * CPU per request unchanged in interleaved pairs at 64 connections (writes: leader 218/196,
 * 248/276, 261/237 us; serializable reads 68/72, 76/74, 65/66 us, default/capped).
 */
export const SERVER_V8_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

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
