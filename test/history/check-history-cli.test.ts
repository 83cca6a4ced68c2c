/** `atlas check-history`, run as a real process: exit codes, report, JSON, errors. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { HistoryBuilder } from './history-builder.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function atlas(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('atlas check-history', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-check-history-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string): string => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  it('exits 0 for a linearizable history', async () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').invoke(2, 'write', 'k', 'b').info(2).read(3, 'k', 'a');
    const run = await atlas(['check-history', file('ok.jsonl', h.toJsonLines())]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^linearizable: 3 operations on 1 keys/);
    assert.match(run.stdout, /write\s+1\s+0\s+1/);
    assert.match(run.stdout, /Lost writes: none/);
  });

  it('exits 1 for a non-linearizable history, naming the key and the operations', async () => {
    const h = new HistoryBuilder().write(1, 'other', 'z').write(1, 'k7', 'a').write(1, 'k7', 'b').read(2, 'k7', 'a');
    const run = await atlas(['check-history', file('stale.jsonl', h.toJsonLines())]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stdout, /^NOT linearizable: 1 of 2 keys/);
    assert.match(run.stdout, /Key "k7" \(3 operations\): its history stops being linearizable at line 8/);
    assert.match(run.stdout, /#1\s+lines 3-4\s+process 1\s+write "a"/);
    assert.match(run.stdout, /#2\s+lines 5-6\s+process 1\s+write "b"/);
    assert.match(run.stdout, /#3\s+lines 7-8\s+process 2\s+read -> "a"/);
    assert.match(run.stdout, /#1 < #2, #2 < #3/);
    assert.match(run.stdout, /Lost writes: 1\n {2}key "k7": process 1 write "b"/);
  });

  it('prints one JSON object with --json', async () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').read(2, 'k', null);
    const run = await atlas(['check-history', file('lost.jsonl', h.toJsonLines()), '--json']);
    assert.equal(run.code, 1);
    const result = JSON.parse(run.stdout) as { verdict: string; failures: { key: string; operations: unknown[] }[]; lostWrites: unknown[] };
    assert.equal(result.verdict, 'not-linearizable');
    assert.equal(result.failures[0].key, 'k');
    assert.equal(result.failures[0].operations.length, 2);
    assert.equal(result.lostWrites.length, 1);
  });

  it('exits 2 with the line and the problem for a malformed file', async () => {
    const text = `${new HistoryBuilder().write(1, 'k', 'a').toJsonLines()}{"process":2,"type":"ok"}\n`;
    const run = await atlas(['check-history', file('bad.jsonl', text)]);
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /bad\.jsonl: malformed history \(1 problem\):\n {2}line 3: missing field "f"/);
    const json = await atlas(['check-history', file('bad.jsonl', text), '--json']);
    assert.equal(json.code, 2);
    assert.deepEqual((JSON.parse(json.stdout) as { issues: unknown }).issues, [{ line: 3, message: 'missing field "f"' }]);
  });

  it('exits 2 for a missing or empty file and for usage errors', async () => {
    const missing = await atlas(['check-history', join(dir, 'nope.jsonl')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*nope\.jsonl: no such file/);
    const empty = await atlas(['check-history', file('empty.jsonl', '')]);
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /the history is empty/);
    const noFile = await atlas(['check-history']);
    assert.equal(noFile.code, 2);
    assert.match(noFile.stderr, /missing required argument 'file'/);
    const badOption = await atlas(['check-history', file('x.jsonl', ''), '--max-steps-per-key', 'lots']);
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /--max-steps-per-key/);
    const unknownCommand = await atlas(['check-histories']);
    assert.equal(unknownCommand.code, 2);
  });

  it('exits 3 when the budget runs out before a verdict', async () => {
    const h = new HistoryBuilder();
    for (let p = 0; p < 14; p++) h.invoke(p, 'write', 'k', `v${p}`);
    for (let p = 0; p < 14; p++) h.invoke(100 + p, 'read', 'k');
    for (let p = 0; p < 14; p++) h.ok(100 + p, `v${p}`);
    for (let p = 0; p < 14; p++) h.ok(p);
    h.read(999, 'k', 'never-written');
    const run = await atlas(['check-history', file('hard.jsonl', h.toJsonLines()), '--max-steps-per-key', '2000']);
    assert.equal(run.code, 3, run.stdout + run.stderr);
    assert.match(run.stdout, /^UNKNOWN/);
    assert.match(run.stdout, /Undecided keys \(budget ran out\): "k"/);
  });

  it('shows help with exit 0', async () => {
    const run = await atlas(['check-history', '--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /Usage: atlas check-history \[options\] <file>/);
  });
});
