/** Helpers for the HTTP API tests: a server over MemoryKvService and a raw HTTP caller. */
import { type Agent, type IncomingHttpHeaders, request } from 'node:http';
import type { HttpApiLimits } from '../../src/api/http/api-context.js';
import { AtlasMetrics } from '../../src/api/http/api-metrics.js';
import { HttpApiServer } from '../../src/api/http/http-api-server.js';
import { MemoryKvService } from './memory-kv-service.js';

export interface TestServer {
  service: MemoryKvService;
  server: HttpApiServer;
  metrics: AtlasMetrics;
  url: string;
  port: number;
}

export async function startServer(
  options: { limits?: Partial<HttpApiLimits>; service?: MemoryKvService } = {},
): Promise<TestServer> {
  const service = options.service ?? new MemoryKvService();
  const metrics = new AtlasMetrics({ nodeId: service.id, processMetrics: false });
  const server = new HttpApiServer({ service, metrics, limits: options.limits ?? {}, shutdownGraceMs: 5000 });
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  return { service, server, metrics, url: server.url, port: bound.port };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  reusedSocket: boolean;
  text(): string;
  json<T = unknown>(): T;
  /** The error code of a JSON error reply. */
  code(): string | undefined;
}

export interface CallOptions {
  body?: Buffer | string;
  /** Send the body with chunked transfer encoding (no Content-Length), in 64 KiB pieces. */
  chunked?: boolean;
  headers?: Record<string, string | number>;
  agent?: Agent;
}

/** Sends one request with the path exactly as given (no normalization). */
export function call(port: number, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: {
          ...(body && !options.chunked ? { 'content-length': body.length } : {}),
          ...options.headers,
        },
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const data = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: data,
            reusedSocket: req.reusedSocket,
            text: () => data.toString('utf8'),
            json: <T>() => JSON.parse(data.toString('utf8')) as T,
            code: () => {
              try {
                return (JSON.parse(data.toString('utf8')) as { error?: { code?: string } }).error?.code;
              } catch {
                return undefined;
              }
            },
          });
        });
      },
    );
    req.on('error', reject);
    if (body && options.chunked) {
      for (let at = 0; at < body.length; at += 64 * 1024) req.write(body.subarray(at, at + 64 * 1024));
      req.end();
    } else if (body) req.end(body);
    else req.end();
  });
}

/** Percent-encodes every byte, so any binary key can travel in a path. */
export function encodeKey(key: Buffer | string): string {
  return [...Buffer.from(key)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
}
