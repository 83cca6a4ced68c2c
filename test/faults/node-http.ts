/**
 * One HTTP attempt against one node, with a hard client timeout, classified for a history:
 * a reply (any status), `refused` (the connection was refused: the request never reached a
 * server, so it certainly had no effect) or `lost` (timeout, reset, closed mid-request: unknown).
 * No retries here: a workload records each attempt as one operation (Jepsen style).
 */
import { Agent, request } from 'node:http';

export type HttpOutcome =
  | { kind: 'reply'; status: number; body: Buffer; code: string | undefined }
  | { kind: 'refused'; reason: string }
  | { kind: 'lost'; reason: string };

/** Keep-alive connections per node, bounded. */
const MAX_SOCKETS_PER_NODE = 64;
/** A response body larger than this is not something the workloads ever read. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

export class NodeHttp {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS_PER_NODE });
  readonly port: number;

  constructor(readonly url: string) {
    this.port = Number(new URL(url).port);
    if (!Number.isInteger(this.port) || this.port <= 0) throw new Error(`NodeHttp: no port in ${url}`);
  }

  send(method: string, path: string, timeoutMs: number, body?: string, headers: Record<string, string> = {}): Promise<HttpOutcome> {
    return new Promise<HttpOutcome>((resolve) => {
      let settled = false;
      const settle = (o: HttpOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(o);
      };
      const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
      const req = request(
        {
          host: '127.0.0.1',
          port: this.port,
          method,
          path,
          agent: this.agent,
          headers: { ...(payload ? { 'content-length': payload.length } : {}), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy();
              settle({ kind: 'lost', reason: 'response too large' });
              return;
            }
            chunks.push(c);
          });
          res.on('error', (e) => settle({ kind: 'lost', reason: e.message }));
          res.on('aborted', () => settle({ kind: 'lost', reason: 'response aborted' }));
          res.on('end', () => {
            const data = Buffer.concat(chunks);
            settle({ kind: 'reply', status: res.statusCode ?? 0, body: data, code: errorCode(data) });
          });
        },
      );
      const timer = setTimeout(() => {
        req.destroy();
        settle({ kind: 'lost', reason: `client timeout ${timeoutMs} ms` });
      }, timeoutMs);
      req.on('error', (e: NodeJS.ErrnoException) => {
        // Refused at connect: nothing was sent. Anything else may have reached the server.
        if (e.code === 'ECONNREFUSED') settle({ kind: 'refused', reason: 'connection refused' });
        else settle({ kind: 'lost', reason: e.code ?? e.message });
      });
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function errorCode(body: Buffer): string | undefined {
  if (body.length === 0 || body[0] !== 0x7b) return undefined;
  try {
    return (JSON.parse(body.toString('utf8')) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

/**
 * How a write attempt ended, per HISTORY.md: `ok`; `fail` only when the system guarantees no
 * effect (refused connection, 4xx, and 503 — the node's not_leader / no_quorum / overloaded /
 * shutting_down answers mean the request was not proposed, docs/api.md); everything else `info`
 * (504 outcome_unknown, 500, timeouts, resets).
 */
export function writeCompletion(o: HttpOutcome): { type: 'ok' | 'fail' | 'info'; error?: string } {
  if (o.kind === 'refused') return { type: 'fail', error: o.reason };
  if (o.kind === 'lost') return { type: 'info', error: o.reason };
  if (o.status >= 200 && o.status < 300) return { type: 'ok' };
  const reason = `${o.status}${o.code ? ` ${o.code}` : ''}`;
  if ((o.status >= 400 && o.status < 500) || o.status === 503) return { type: 'fail', error: reason };
  return { type: 'info', error: reason };
}
