/**
 * Answers whose headers are set are finished (res.end) together, once per event-loop turn, in the
 * check phase right after the poll phase that read their requests, instead of each inside the
 * socket callback that parsed it.
 *
 * Why: a read served at once from the local store (serializable) was written back from within
 * the read callback of its own socket, one request at a time; measured on the 2-core development
 * machine at 64 connections (3-node cluster, load average 9-10), finishing the answers of a turn
 * together cut the leader's CPU per serializable read from 93-119 to 58-69 µs (4 paired runs)
 * and raised throughput from 3.4-5.2k to 7.1-8.3k req/s. The wait is at most the rest of the
 * current turn (no timer: setImmediate).
 *
 * Answers that waited for the node (writes, linearizable reads) are produced in the node's own
 * turn, in the check phase, after this batch's flush of that turn may already have run; waiting for
 * the next turn's check phase there put a whole loop iteration (0.3-0.6 ms traced at 1 connection
 * on a loaded machine) between a commit and its answer. Those are ended at once (`promptly`), in
 * the continuation that produced them, which runs before the node's peer sends of that turn.
 *
 * Bounded: the queue holds at most the answers produced in one turn, which are at most the
 * requests in flight (InFlightRequests caps those).
 */
import type { Http1Response } from '../../http1/http1-response.js';

export interface ResponseBatchLogger {
  error(fields: Record<string, unknown>, message: string): void;
}

export class ResponseBatch {
  /** Flat pairs: response, body. */
  private readonly pending: Array<Http1Response | Buffer | string> = [];
  /** A flush is queued for this turn's check phase. */
  private scheduled = false;
  private readonly flushNow = () => {
    this.scheduled = false;
    this.flush();
  };

  constructor(private readonly logger: ResponseBatchLogger) {}

  /** Answers waiting for the flush. */
  get size(): number {
    return this.pending.length / 2;
  }

  /**
   * Ends `res` with `body` at the end of this turn, or at once when `promptly` (an answer that waited
   * for the node). Its status and headers must be set already.
   */
  end(res: Http1Response, body: Buffer | string, promptly = false): void {
    if (promptly) {
      this.finish(res, body);
      return;
    }
    this.pending.push(res, body);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushNow);
    }
  }

  /** Ends every waiting answer now, in the order they were given. */
  flush(): void {
    const pending = this.pending;
    for (let i = 0; i < pending.length; i += 2) {
      this.finish(pending[i] as Http1Response, pending[i + 1] as Buffer | string);
    }
    pending.length = 0;
  }

  private finish(res: Http1Response, body: Buffer | string): void {
    try {
      res.end(body);
    } catch (error) {
      // One broken response must not keep the others from going out.
      this.logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        'could not finish an HTTP answer; closing its connection',
      );
      res.destroy();
    }
  }
}
