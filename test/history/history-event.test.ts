/** The strict history parser: every malformed line gets an error naming the line and the problem. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  decodeHistoryEvent,
  type HistoryEvent,
  HistoryFormatError,
  parseHistory,
  readHistoryFile,
  validateHistoryEvents,
} from '../../src/history/history-event.js';

/** The example of HISTORY.md, verbatim. */
const EXAMPLE = [
  '{"process":3,"type":"invoke","f":"write","key":"k7","value":"v-3-41","time":120034567}',
  '{"process":3,"type":"ok","f":"write","key":"k7","value":"v-3-41","time":121998000}',
  '{"process":1,"type":"invoke","f":"read","key":"k7","value":null,"time":122000100}',
  '{"process":1,"type":"ok","f":"read","key":"k7","value":"v-3-41","time":122501000}',
  '{"process":2,"type":"invoke","f":"cas","key":"k7","value":["v-3-41","v-2-9"],"time":123000000}',
  '{"process":2,"type":"fail","f":"cas","key":"k7","value":["v-3-41","v-2-9"],"time":123400000}',
];

function line(fields: Record<string, unknown>): string {
  return JSON.stringify(fields);
}

/** The issues parseHistory reports for `text` (it must throw). */
function issuesOf(text: string, options = {}): { line: number; message: string }[] {
  try {
    parseHistory(text, options);
  } catch (err) {
    assert.ok(err instanceof HistoryFormatError, `expected HistoryFormatError, got ${err}`);
    return [...err.issues];
  }
  assert.fail('parseHistory accepted a malformed history');
}

function expectIssue(lines: string[], lineNumber: number, fragment: string | RegExp): void {
  const issues = issuesOf(lines.join('\n'));
  const found = issues.find((issue) => issue.line === lineNumber);
  assert.ok(found, `no issue on line ${lineNumber}; got ${JSON.stringify(issues)}`);
  if (typeof fragment === 'string') assert.ok(found.message.includes(fragment), `"${found.message}" lacks "${fragment}"`);
  else assert.match(found.message, fragment);
}

const write = (process: number, type: string, value: unknown, time: unknown, extra = {}) =>
  line({ process, type, f: 'write', key: 'k', value, time, ...extra });

describe('parseHistory', () => {
  it('parses the HISTORY.md example, with or without a final newline, with CRLF', () => {
    const events = parseHistory(EXAMPLE.join('\n'));
    assert.equal(events.length, 6);
    assert.deepEqual(events[4], { process: 2, type: 'invoke', f: 'cas', key: 'k7', value: ['v-3-41', 'v-2-9'], time: 123000000 });
    assert.deepEqual(parseHistory(`${EXAMPLE.join('\n')}\n`), events);
    assert.deepEqual(parseHistory(`${EXAMPLE.join('\r\n')}\r\n`), events);
  });

  it('keeps the error of fail and info completions', () => {
    const events = parseHistory(
      [write(1, 'invoke', 'a', 1), write(1, 'info', 'a', 2, { error: 'timeout' })].join('\n'),
    );
    assert.equal(events[1].error, 'timeout');
  });

  it('names the line of JSON that does not parse, or is not an object', () => {
    expectIssue([write(1, 'invoke', 'a', 1), '{"process":1,'], 2, 'not valid JSON');
    expectIssue(['[1,2]'], 1, 'must be a JSON object, not an array');
    expectIssue(['"text"'], 1, 'must be a JSON object');
  });

  it('rejects empty lines, missing and unknown fields', () => {
    expectIssue([write(1, 'invoke', 'a', 1), '', write(1, 'ok', 'a', 2)], 2, 'empty line');
    expectIssue([line({ process: 1, type: 'invoke', f: 'write', key: 'k', value: 'a' })], 1, 'missing field "time"');
    expectIssue([write(1, 'invoke', 'a', 1, { valeu: 'x' })], 1, 'unknown field "valeu"');
  });

  it('checks each field', () => {
    expectIssue([write(-1, 'invoke', 'a', 1)], 1, '"process" must be a non-negative integer');
    expectIssue([write(1.5, 'invoke', 'a', 1)], 1, '"process" must be a non-negative integer');
    expectIssue([write(1, 'start', 'a', 1)], 1, '"type" must be one of invoke, ok, fail, info');
    expectIssue([line({ process: 1, type: 'invoke', f: 'append', key: 'k', value: 'a', time: 1 })], 1, 'unsupported "f"');
    expectIssue([line({ process: 1, type: 'invoke', f: 'write', key: '', value: 'a', time: 1 })], 1, '"key" must be a non-empty string');
    expectIssue([line({ process: 1, type: 'invoke', f: 'write', key: 7, value: 'a', time: 1 })], 1, '"key" must be a non-empty string');
    expectIssue([write(1, 'invoke', 'a', -5)], 1, '"time" must be a non-negative integer');
    expectIssue([write(1, 'invoke', 'a', '12')], 1, '"time" must be a non-negative integer');
    expectIssue([write(1, 'invoke', 'a', 1, { error: 'x' })], 1, '"error" is only allowed on fail and info');
    expectIssue([write(1, 'invoke', 'a', 1), write(1, 'fail', 'a', 2, { error: 3 })], 2, '"error" must be a string');
  });

  it('checks the value of each function', () => {
    const op = (f: string, type: string, value: unknown, time = 1) => line({ process: 1, type, f, key: 'k', value, time });
    expectIssue([op('write', 'invoke', 5)], 1, 'value" of a write must be the string written');
    expectIssue([op('read', 'invoke', 'x')], 1, 'value" of a read invoke must be null');
    expectIssue([op('read', 'invoke', null), op('read', 'ok', 3, 2)], 2, 'ok read must be the string read or null');
    expectIssue([op('read', 'invoke', null), op('read', 'info', 'x', 2)], 2, 'read info must be null');
    expectIssue([op('cas', 'invoke', ['a'])], 1, 'must be [expected, new]');
    expectIssue([op('cas', 'invoke', ['a', null])], 1, 'must be [expected, new]');
    expectIssue([op('cas', 'invoke', 'a')], 1, 'must be [expected, new]');
    expectIssue([op('delete', 'invoke', 'a')], 1, 'value" of a delete must be null');
  });

  it('checks the structural rules', () => {
    expectIssue([write(1, 'invoke', 'a', 10), write(2, 'invoke', 'b', 9)], 2, 'earlier than time 10 on line 1');
    expectIssue([write(1, 'invoke', 'a', 1), write(1, 'invoke', 'b', 2)], 2, 'still outstanding');
    expectIssue([write(1, 'ok', 'a', 1)], 1, 'has no outstanding invoke');
    expectIssue(
      [write(1, 'invoke', 'a', 1), line({ process: 1, type: 'ok', f: 'delete', key: 'k', value: null, time: 2 })],
      2,
      'is a delete but process 1 invoked a write on line 1',
    );
    expectIssue(
      [write(1, 'invoke', 'a', 1), line({ process: 1, type: 'ok', f: 'write', key: 'other', value: 'a', time: 2 })],
      2,
      'for key "other" but process 1 invoked key "k"',
    );
    expectIssue([write(1, 'invoke', 'a', 1), write(1, 'ok', 'b', 2)], 2, 'has value "b" but the write invoked on line 1 has value "a"');
    expectIssue(
      [
        line({ process: 1, type: 'invoke', f: 'cas', key: 'k', value: ['a', 'b'], time: 1 }),
        line({ process: 1, type: 'fail', f: 'cas', key: 'k', value: ['a', 'c'], time: 2 }),
      ],
      2,
      'has value ["a","c"]',
    );
    expectIssue([write(1, 'invoke', 'a', 1), write(1, 'info', 'a', 2), write(1, 'invoke', 'b', 3)], 3, 'invokes again after its info completion on line 2');
    expectIssue([write(1, 'invoke', 'a', 1), write(2, 'invoke', 'b', 2), write(2, 'ok', 'b', 3)], 1, 'never completes');
  });

  it('reports several problems at once, up to the limit', () => {
    const lines = Array.from({ length: 30 }, (_, i) => `bad ${i}`);
    const issues = issuesOf(lines.join('\n'), { maxIssues: 5 });
    assert.deepEqual(
      issues.map((issue) => issue.line),
      [1, 2, 3, 4, 5],
    );
    try {
      parseHistory(lines.join('\n'), { maxIssues: 5 });
    } catch (err) {
      assert.ok(err instanceof HistoryFormatError);
      assert.equal(err.truncated, true);
      assert.match(err.message, /line 3: not valid JSON/);
      assert.match(err.message, /stopped after 5 problems/);
    }
  });

  it('enforces the line length and event count limits', () => {
    const tooLong = issuesOf(write(1, 'invoke', 'x'.repeat(100), 1), { maxLineBytes: 50 });
    assert.deepEqual(tooLong, [{ line: 1, message: 'line longer than 50 bytes (the limit for one event)' }]);
    const issues = issuesOf([write(1, 'invoke', 'a', 1), write(1, 'ok', 'a', 2), write(2, 'invoke', 'b', 3)].join('\n'), {
      maxEvents: 2,
    });
    assert.match(issues[0].message, /more than 2 events/);
  });
});

describe('readHistoryFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-history-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string | Buffer): string => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  it('reads the same events as parseHistory', async () => {
    const text = `${EXAMPLE.join('\n')}\n`;
    assert.deepEqual(await readHistoryFile(file('example.jsonl', text)), parseHistory(text));
  });

  it('reports problems with line numbers, invalid UTF-8 included', async () => {
    const content = Buffer.concat([
      Buffer.from(`${write(1, 'invoke', 'a', 1)}\n`),
      Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]),
      Buffer.from(`${write(1, 'ok', 'a', 2)}\nnope\n`),
    ]);
    await assert.rejects(readHistoryFile(file('bad.jsonl', content)), (err: unknown) => {
      assert.ok(err instanceof HistoryFormatError);
      assert.deepEqual(
        err.issues.map((issue) => [issue.line, issue.message.slice(0, 14)]),
        [
          [2, 'not valid UTF-'],
          [4, 'not valid JSON'],
        ],
      );
      return true;
    });
  });

  it('stops a long line at the limit without holding it, and goes on with the next', async () => {
    const long = write(1, 'invoke', 'x'.repeat(200_000), 1);
    const path = file('long.jsonl', `${long}\n${write(2, 'invoke', 'b', 2)}\n{oops\n`);
    await assert.rejects(readHistoryFile(path, { maxLineBytes: 1000 }), (err: unknown) => {
      assert.ok(err instanceof HistoryFormatError);
      assert.deepEqual(
        err.issues.map((issue) => issue.line),
        [1, 3, 2],
      );
      assert.match(err.issues[0].message, /longer than 1000 bytes/);
      return true;
    });
  });

  it('rejects with the I/O error for a missing file', async () => {
    await assert.rejects(readHistoryFile(join(dir, 'missing.jsonl')), { code: 'ENOENT' });
  });
});

describe('validateHistoryEvents', () => {
  it('checks in-memory events by the same rules, numbering events from 1', () => {
    const events: unknown[] = [
      { process: 1, type: 'invoke', f: 'write', key: 'k', value: 'a', time: 1 },
      { process: 1, type: 'ok', f: 'write', key: 'k', value: 'a', time: 2 },
      { process: 1, type: 'ok', f: 'write', key: 'k', value: 'a', time: 3 },
    ];
    assert.throws(
      () => validateHistoryEvents(events),
      (err: unknown) => err instanceof HistoryFormatError && err.issues[0].line === 3,
    );
    assert.equal(validateHistoryEvents(events.slice(0, 2)).length, 2);
  });

  it('decodes an event into a fresh object and rejects a wrong shape', () => {
    const raw = { process: 1, type: 'invoke', f: 'cas', key: 'k', value: ['a', 'b'], time: 1 };
    const event: HistoryEvent = decodeHistoryEvent(raw);
    assert.deepEqual(event, raw);
    assert.notEqual(event.value, raw.value);
    assert.throws(() => decodeHistoryEvent(null), /must be a JSON object/);
  });
});
