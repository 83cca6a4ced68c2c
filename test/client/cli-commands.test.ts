import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import type { CliIo } from '../../src/cli/client-command.js';
import { registerClusterCommand } from '../../src/cli/cluster-command.js';
import { registerDelCommand } from '../../src/cli/del-command.js';
import { registerGetCommand } from '../../src/cli/get-command.js';
import { registerPutCommand } from '../../src/cli/put-command.js';
import { registerScanCommand } from '../../src/cli/scan-command.js';
import { registerTxnCommand } from '../../src/cli/txn-command.js';
import { NodeError } from '../../src/node/errors.js';
import { type TestServer, startServer } from '../api/http-fixtures.js';

class CliExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

interface Run {
  code: number;
  stdout: Buffer;
  out: string;
  err: string;
}

/** Runs `atlas <args>` in-process with captured I/O. */
async function atlas(
  args: string[],
  options: { stdin?: Buffer | string; env?: Record<string, string> } = {},
): Promise<Run> {
  const stdout: Buffer[] = [];
  let err = '';
  let code = 0;
  const io: CliIo = {
    stdout: (data) => stdout.push(Buffer.from(data)),
    stderr: (text) => {
      err += text;
    },
    stdin: async () => Buffer.from(options.stdin ?? ''),
    stdoutIsTty: false,
    env: options.env ?? {},
    setExitCode: (c) => {
      code = c;
    },
    exit: (c) => {
      throw new CliExit(c);
    },
  };
  const program = new Command('atlas').exitOverride();
  program.configureOutput({ writeOut: (t) => io.stdout(t), writeErr: (t) => io.stderr(t) });
  for (const register of [
    registerGetCommand,
    registerPutCommand,
    registerDelCommand,
    registerScanCommand,
    registerTxnCommand,
    registerClusterCommand,
  ]) {
    register(program, io);
  }
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (error) {
    if (!(error instanceof CliExit)) throw error;
    code = error.code;
  }
  const all = Buffer.concat(stdout);
  return { code, stdout: all, out: all.toString('utf8'), err };
}

describe('atlas client commands', () => {
  let t: TestServer;
  let ep: string[];
  before(async () => {
    t = await startServer();
    ep = ['--endpoints', t.url];
  });
  after(async () => {
    await t.server.close();
  });

  it('put then get prints the value; a missing key exits 1', async () => {
    const put = await atlas(['put', 'greeting', 'hello', ...ep]);
    assert.equal(put.code, 0, put.err);
    assert.match(put.out, /^OK revision \d+\n$/);
    const get = await atlas(['get', 'greeting', ...ep]);
    assert.deepEqual({ code: get.code, out: get.out }, { code: 0, out: 'hello' });
    const missing = await atlas(['get', 'nope', ...ep]);
    assert.equal(missing.code, 1);
    assert.equal(missing.out, '');
    assert.match(missing.err, /key not found: nope/);
  });

  it('reads the value from standard input byte for byte, and prints it back unchanged', async () => {
    const bytes = Buffer.from([0x00, 0xff, 0x0a, 0x80]);
    assert.equal((await atlas(['put', 'bin', '-', ...ep], { stdin: bytes })).code, 0);
    assert.equal((await atlas(['put', 'bin2', ...ep], { stdin: bytes })).code, 0);
    assert.deepEqual((await atlas(['get', 'bin', ...ep])).stdout, bytes);
    assert.deepEqual(t.service.peek('bin2')!.value, bytes);
    const json = JSON.parse((await atlas(['get', 'bin', '--json', ...ep])).out);
    assert.equal(json.base64, true);
    assert.deepEqual(Buffer.from(json.value, 'base64'), bytes);
  });

  it('prints JSON for scripts', async () => {
    const put = JSON.parse((await atlas(['put', 'j', 'v1', '--json', ...ep])).out);
    const get = JSON.parse((await atlas(['get', 'j', '--json', '--consistency', 'serializable', ...ep])).out);
    assert.deepEqual(get, {
      key: 'j',
      value: 'v1',
      createRevision: put.revision,
      modRevision: put.revision,
      version: 1,
    });
    assert.equal(t.service.calls.at(-1)!.consistency, 'serializable');
  });

  it('conditional put and delete exit 1 when the condition fails', async () => {
    assert.equal((await atlas(['put', 'c', 'v', '--if-absent', ...ep])).code, 0);
    const again = await atlas(['put', 'c', 'v', '--if-absent', ...ep]);
    assert.equal(again.code, 1);
    assert.match(again.err, /precondition failed/);
    const rev = t.service.peek('c')!.modRevision;
    assert.equal((await atlas(['put', 'c', 'w', '--if-match', String(rev + 9), ...ep])).code, 1);
    assert.equal((await atlas(['del', 'c', '--if-match', String(rev + 9), ...ep])).code, 1);
    const del = await atlas(['del', 'c', '--if-match', String(rev), ...ep]);
    assert.equal(del.code, 0);
    assert.match(del.out, /^deleted \(revision \d+\)\n$/);
    const gone = await atlas(['del', 'c', ...ep]);
    assert.equal(gone.code, 1);
    assert.match(gone.err, /key not found/);
  });

  it('scans readably and as JSON', async () => {
    for (const k of ['s/1', 's/2', 's/3']) await atlas(['put', k, `v${k}`, ...ep]);
    const lines = await atlas(['scan', 's/', ...ep]);
    assert.equal(lines.out, 's/1\tvs/1\ns/2\tvs/2\ns/3\tvs/3\n');
    const limited = await atlas(['scan', 's/', '--limit', '2', '--reverse', '--keys-only', ...ep]);
    assert.equal(limited.out, 's/3\ns/2\n');
    assert.match(limited.err, /more keys/);
    const json = JSON.parse((await atlas(['scan', '--start', 's/2', '--end', 's/3', '--json', ...ep])).out);
    assert.deepEqual(
      json.kvs.map((kv: { key: string }) => kv.key),
      ['s/2'],
    );
    assert.equal(json.more, false);
  });

  it('runs a transaction from a file or standard input; exit 1 when the compares fail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'atlas-cli-'));
    try {
      await atlas(['put', 'tx', 'a', ...ep]);
      const txn = {
        compare: [{ key: 'tx', target: 'value', op: '=', value: 'a' }],
        success: [
          { type: 'put', key: 'tx', value: 'b' },
          { type: 'get', key: 'tx' },
        ],
        failure: [{ type: 'get', key: 'tx' }],
      };
      const file = join(dir, 'txn.json');
      writeFileSync(file, JSON.stringify(txn));
      const ok = await atlas(['txn', '--file', file, ...ep]);
      assert.equal(ok.code, 0, ok.err);
      assert.match(ok.out, /^SUCCEEDED revision \d+\nput revision \d+\nget tx\tb\n$/);
      const failed = await atlas(['txn', '--json', ...ep], { stdin: JSON.stringify(txn) });
      assert.equal(failed.code, 1);
      const result = JSON.parse(failed.out);
      assert.equal(result.succeeded, false);
      assert.equal(result.responses[0].kv.value, 'b');

      const bad = await atlas(['txn', ...ep], { stdin: '{"success":[{"type":"upsert","key":"a"}]}' });
      assert.equal(bad.code, 2);
      assert.match(bad.err, /success\[0\]\.type/);
      const missing = await atlas(['txn', '--file', join(dir, 'absent.json'), ...ep]);
      assert.equal(missing.code, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('manages the cluster', async () => {
    const status = await atlas(['cluster', 'status', ...ep]);
    assert.equal(status.code, 0);
    assert.match(status.out, /^node n1: leader, term 3, leader n1\n/);
    assert.match(status.out, /ID\s+ROLE\s+PEER ADDRESS\s+CLIENT URL/);
    const add = await atlas([
      'cluster',
      'add',
      'n2',
      '127.0.0.1:7002',
      '--client-url',
      'http://127.0.0.1:8002',
      ...ep,
    ]);
    assert.equal(add.code, 0, add.err);
    assert.match(add.out, /n2\s+learner\s+127\.0\.0\.1:7002\s+http:\/\/127\.0\.0\.1:8002/);
    const promote = JSON.parse((await atlas(['cluster', 'promote', 'n2', '--json', ...ep])).out);
    assert.equal(promote.members.find((m: { id: string }) => m.id === 'n2').role, 'voter');
    const members = JSON.parse((await atlas(['cluster', 'members', '--json', ...ep])).out);
    assert.equal(members.members.length, 2);
    assert.equal((await atlas(['cluster', 'transfer', 'n2', ...ep])).out, 'leader is now n2\n');
    assert.equal((await atlas(['cluster', 'remove', 'n2', ...ep])).code, 0);
    const missing = await atlas(['cluster', 'remove', 'n2', ...ep]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no member n2/);
    t.service.leader = 'n1';
  });

  it('takes endpoints from ATLAS_ENDPOINTS', async () => {
    const run = await atlas(['get', 'greeting'], { env: { ATLAS_ENDPOINTS: t.url } });
    assert.equal(run.out, 'hello');
  });

  it('exits 2 on usage errors', async () => {
    assert.equal((await atlas(['get', ...ep])).code, 2);
    assert.equal((await atlas(['scan', '--limit', 'lots', ...ep])).code, 2);
    assert.equal((await atlas(['get', 'k', '--consistency', 'strong', ...ep])).code, 2);
    assert.equal((await atlas(['put', 'k', 'v', '--if-match', '3', '--if-absent', ...ep])).code, 2);
    assert.equal((await atlas(['put', 'k'.repeat(5000), 'v', ...ep])).code, 2);
    assert.equal((await atlas(['get', 'k', '--endpoints', 'not-a-url'])).code, 5);
    const help = await atlas(['get', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /--endpoints/);
  });

  it('exits 3 when no endpoint answers, and 4 when a write outcome is unknown', async () => {
    const dead = await startServer();
    const url = dead.url;
    await dead.server.close();
    const down = await atlas(['put', 'k', 'v', '--endpoints', url, '--timeout', '300']);
    assert.equal(down.code, 3);
    assert.match(down.err, /ECONNREFUSED/);
    const downJson = await atlas(['get', 'k', '--json', '--endpoints', url, '--timeout', '300']);
    assert.equal(downJson.code, 3);
    assert.equal(JSON.parse(downJson.err).error.code, 'unavailable');

    t.service.failNext('write', new NodeError('outcome_unknown', 'lost'), { times: 1000 });
    const unknown = await atlas(['put', 'k', 'v', '--timeout', '300', ...ep]);
    t.service.clearFaults();
    assert.equal(unknown.code, 4);
    assert.match(unknown.err, /may or may not/);
  });
});
