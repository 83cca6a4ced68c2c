/**
 * Worker-thread entry of the load generator: runs its share of the closed loops (load-loop.ts)
 * and posts the LoopResult back. One Node event loop saturates at some tens of thousands of small
 * HTTP requests per second; worker threads keep the generator from being the bottleneck at high
 * connection counts.
 *
 * Protocol: the worker posts `{ ready: true }` once its modules are loaded, waits for
 * `{ startAtEpochMs }` (the same instant for every worker), then posts `{ ok, result | message }`.
 * Starting only after every worker is ready keeps a slow thread start (a loaded machine) from
 * eating into the measured window.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type LoopPlan, runLoops } from './load-loop.js';

export type WorkerStart = { startAtEpochMs: number };
export type WorkerMessage =
  | { ready: true }
  | { ok: true; result: Awaited<ReturnType<typeof runLoops>> }
  | { ok: false; message: string };

if (parentPort === null) throw new Error('load-worker.js must run as a worker thread');
const port = parentPort;
port.once('message', (start: WorkerStart) => {
  if (!Number.isFinite(start?.startAtEpochMs)) {
    port.postMessage({
      ok: false,
      message: 'bench worker: the start message carries no startAtEpochMs',
    } satisfies WorkerMessage);
    return;
  }
  runLoops({ ...(workerData as LoopPlan), startAtEpochMs: start.startAtEpochMs }).then(
    (result) => port.postMessage({ ok: true, result } satisfies WorkerMessage),
    (e: unknown) =>
      port.postMessage({
        ok: false,
        message: e instanceof Error ? (e.stack ?? e.message) : String(e),
      } satisfies WorkerMessage),
  );
});
port.postMessage({ ready: true } satisfies WorkerMessage);
