/**
 * A trivial HTTP server for measuring the load generator's own ceiling: it reads each request's
 * body and answers `200 {}` at once, so whatever rate `atlas bench` reaches against it is a lower
 * bound of what the generator can drive (bench/compare.ts runs it in its own process).
 *
 *   node dist/src/bench/trivial-http-server.js <port>     (prints "listening <port>" when ready)
 */
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';

const ANSWER = Buffer.from('{}');

export function startTrivialServer(port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': ANSWER.length });
      res.end(ANSWER);
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write('usage: trivial-http-server.js <port 1-65535>\n');
    process.exit(2);
  }
  const server = await startTrivialServer(port);
  process.stdout.write(`listening ${port}\n`);
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
