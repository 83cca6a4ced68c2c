/**
 * glibc's malloc_trim(3), called through koffi (an FFI library with prebuilt binaries: no compiler
 * at install). Node has no binding for it, and it is the only way to hand glibc's freed heap pages
 * back to the kernel: free() returns memory only from the top of the heap, so one live Buffer near
 * the top keeps every freed page below it resident (docs/benchmarks.md "Memory").
 *
 * Loaded lazily and only on Linux; where libc.so.6 has no malloc_trim (musl) or koffi has no build,
 * the binding is absent and nothing is trimmed.
 */
import { createRequire } from 'node:module';

export interface GlibcMalloc {
  /** malloc_trim(0): true when glibc released memory to the kernel. */
  trim(): boolean;
}

interface KoffiLibrary {
  func(signature: string): (...args: unknown[]) => unknown;
}
interface KoffiModule {
  load(path: string): KoffiLibrary;
}

let loaded: { binding: GlibcMalloc | null; reason: string } | null = null;

/** The binding, or null with the reason it is not available (cached: loaded once per process). */
export function openGlibcMalloc(): { binding: GlibcMalloc | null; reason: string } {
  if (loaded !== null) return loaded;
  loaded = load();
  return loaded;
}

function load(): { binding: GlibcMalloc | null; reason: string } {
  if (process.platform !== 'linux') return { binding: null, reason: `not Linux (${process.platform})` };
  try {
    const koffi = createRequire(import.meta.url)('koffi') as KoffiModule;
    const mallocTrim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)');
    return { binding: { trim: () => mallocTrim(0) === 1 }, reason: 'glibc' };
  } catch (e) {
    return { binding: null, reason: `koffi could not bind malloc_trim: ${e instanceof Error ? e.message : String(e)}` };
  }
}
