/**
 * Worker-thread entry of the load generator: runs its share of the closed loops (load-loop.ts)
 * and posts the LoopResult back. One Node event loop saturates at some tens of thousands of small
 * HTTP requests per second; worker threads keep the generator from being the bottleneck at high
 * connection counts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type LoopPlan, runLoops } from './load-loop.js';

if (parentPort === null) throw new Error('load-worker.js must run as a worker thread');
const port = parentPort;
runLoops(workerData as LoopPlan).then(
  (result) => port.postMessage({ ok: true, result }),
  (e: unknown) =>
    port.postMessage({ ok: false, message: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
);
