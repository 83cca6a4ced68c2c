/**
 * A full V8 garbage collection on demand, for MemoryReclaimer's idle-time collection.
 *
 * Why: V8 collects when JS allocates, and counts Buffers' native memory toward a GC only once 64 MiB
 * more of it exists than after the last GC. A node that goes idle after a burst therefore keeps up
 * to that much dead Buffer memory (and the glibc pages under it) until traffic resumes: measured
 * after a 1,000,000-key load, the idle leader held 112 MiB of external memory for 47 MiB live.
 * Browsers run such collections in idle time; Node has no idle notification, so the reclaimer
 * detects idleness itself (event loop utilization) and asks for one collection per idle period.
 *
 * gc() is not exposed without --expose-gc on the command line; setting the flag at run time makes V8
 * install gc() in contexts created afterwards, so a new vm context hands it over.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | null = null;

/** A function that runs a full, blocking garbage collection (tens of ms on a 100 MiB heap). */
export function openFullGc(): () => void {
  if (collect !== null) return collect;
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') {
    collect = () => (exposed as () => void)();
    return collect;
  }
  setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('gc');
  if (typeof gc !== 'function') throw new Error('V8 did not expose gc() after --expose-gc');
  collect = () => (gc as () => void)();
  return collect;
}
