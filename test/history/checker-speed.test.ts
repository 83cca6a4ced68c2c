/**
 * Speed at scale: a 100,000-operation linearizable history over 100 keys, from ~10 concurrent
 * clients of a simulated atomic register with overlapping operations, timeouts (info) and failures.
 * Asserts the verdict; reports the time as a figure (no timed assertion: the machine is shared).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkHistory } from '../../src/history/linearizability-checker.js';
import { HistoryBuilder } from './history-builder.js';
import { simulateRegisterHistory } from './register-simulation.js';

const OPERATIONS = 100_000;

describe('checker speed', () => {
  const events = simulateRegisterHistory({
    seed: 20240607,
    clients: 10,
    keys: 100,
    operations: OPERATIONS,
    infoRate: 0.01,
    failRate: 0.01,
    maxDuration: 20,
    tickNanos: 50_000,
  });

  it(`checks a ${OPERATIONS}-operation linearizable history over 100 keys`, (t) => {
    const started = process.hrtime.bigint();
    const result = checkHistory(events);
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    t.diagnostic(
      `checked ${result.operationCount} operations (${result.eventCount} events, ${result.keyCount} keys) in ${elapsedMs.toFixed(0)} ms; ${result.searchSteps} search steps`,
    );
    assert.equal(result.verdict, 'linearizable');
    assert.equal(result.operationCount, OPERATIONS);
    assert.equal(result.keyCount, 100);
    assert.deepEqual(result.lostWrites, []);
    const info = Object.values(result.counts).reduce((sum, c) => sum + c.info, 0);
    assert.ok(info > OPERATIONS / 200, `expected some info operations, got ${info}`);
  });

  it('finds and shrinks a stale read appended to the same history', (t) => {
    const h = new HistoryBuilder();
    for (const event of events) h.events.push(event);
    const last = events[events.length - 1].time;
    const tail = new HistoryBuilder().write(90_000, 'k42', 'x-1').write(90_000, 'k42', 'x-2').read(90_001, 'k42', 'x-1');
    for (const event of tail.events) h.events.push({ ...event, time: last + event.time });
    const started = process.hrtime.bigint();
    const result = checkHistory(h.events);
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    t.diagnostic(`found and minimized the violation in ${elapsedMs.toFixed(0)} ms`);
    assert.equal(result.verdict, 'not-linearizable');
    assert.equal(result.failures[0].key, 'k42');
    assert.deepEqual(
      result.failures[0].operations.map((op) => op.process),
      [90_000, 90_000, 90_001],
    );
  });
});
