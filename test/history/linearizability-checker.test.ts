/**
 * Hand-made histories with a known answer: the classic anomalies are caught and reported with the
 * operations that cannot be ordered; the semantics of info, fail and cas "mismatch" are applied;
 * a pathological history ends "unknown" within its budget; lost writes follow their definition.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeOperation, formatHistoryCheckResult } from '../../src/history/check-report.js';
import { HistoryFormatError } from '../../src/history/history-event.js';
import { checkHistory, type HistoryCheckResult } from '../../src/history/linearizability-checker.js';
import { HistoryBuilder } from './history-builder.js';
import { simulateRegisterHistory } from './register-simulation.js';

function check(h: HistoryBuilder, options = {}): HistoryCheckResult {
  return checkHistory(h.events, options);
}

/** The reported operations of the only failing key, as "process: description outcome". */
function reported(result: HistoryCheckResult): string[] {
  assert.equal(result.verdict, 'not-linearizable');
  assert.equal(result.linearizable, false);
  assert.equal(result.failures.length, 1);
  return result.failures[0].operations.map((op) => `${op.process}: ${describeOperation(op)} ${op.outcome}`);
}

describe('checkHistory: non-linearizable histories', () => {
  it('a stale read', () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').write(1, 'k', 'b').read(2, 'k', 'a');
    const result = check(h);
    assert.deepEqual(reported(result), ['1: write "a" ok', '1: write "b" ok', '2: read -> "a" ok']);
    assert.equal(result.failures[0].key, 'k');
    assert.equal(result.failures[0].failurePoint, 5);
    assert.equal(result.failures[0].minimized, true);
  });

  it('a lost write: acknowledged, then a read sees the key as it was before', () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').read(2, 'k', null);
    const result = check(h);
    assert.deepEqual(reported(result), ['1: write "a" ok', '2: read -> (absent) ok']);
    assert.equal(result.lostWrites.length, 1);
    assert.equal(result.lostWrites[0].write.value, 'a');
  });

  it('a failed write that is later seen', () => {
    const h = new HistoryBuilder().invoke(1, 'write', 'k', 'a').fail(1, 'rejected').read(2, 'k', 'a');
    const result = check(h);
    // The failed write did not happen: the read is what cannot be explained; the write is context.
    assert.deepEqual(reported(result), ['1: write "a" fail', '2: read -> "a" ok']);
    assert.match(formatHistoryCheckResult(result), /no operation that may have taken effect wrote this value/);
  });

  it('two successful cas from the same expected value', () => {
    const h = new HistoryBuilder()
      .write(1, 'k', 'a')
      .invoke(2, 'cas', 'k', ['a', 'b'])
      .invoke(3, 'cas', 'k', ['a', 'c'])
      .ok(2)
      .ok(3);
    assert.deepEqual(reported(check(h)), ['1: write "a" ok', '2: cas "a" -> "b" ok', '3: cas "a" -> "c" ok']);
  });

  it('a read of a value never written', () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').read(2, 'k', 'zzz');
    assert.deepEqual(reported(check(h)), ['2: read -> "zzz" ok']);
  });

  it('a cas "mismatch" when the key did hold the expected value throughout', () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').casMismatch(2, 'k', 'a', 'b');
    assert.deepEqual(reported(check(h)), ['1: write "a" ok', '2: cas "a" -> "b" fail']);
  });

  it('a read that goes back in time between two reads of one client', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'write', 'k', 'b')
      .write(2, 'k', 'a')
      .read(3, 'k', 'b')
      .read(3, 'k', 'a')
      .ok(1);
    assert.equal(check(h).verdict, 'not-linearizable');
  });

  it('a delete that is undone', () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').delete(1, 'k').read(2, 'k', 'a');
    assert.deepEqual(reported(check(h)), ['1: write "a" ok', '1: delete ok', '2: read -> "a" ok']);
  });

  it('reports only the failing key, keeps the others', () => {
    const h = new HistoryBuilder().write(1, 'x', 'a').read(2, 'x', 'a').write(1, 'y', 'b').read(2, 'y', null);
    const result = check(h);
    assert.equal(result.failingKeyCount, 1);
    assert.equal(result.failures[0].key, 'y');
    assert.equal(result.keyCount, 2);
  });

  it('finds the shortest failing prefix in a long history and a small set of operations', () => {
    const events = simulateRegisterHistory({ seed: 11, clients: 6, keys: 2, operations: 3000, infoRate: 0.02, failRate: 0.02 });
    assert.equal(checkHistory(events).verdict, 'linearizable');
    const last = events[events.length - 1].time;
    const h = new HistoryBuilder();
    for (const event of events) h.events.push(event);
    // Fresh processes, after everything: an acknowledged write, then a stale read of k0.
    const tail = new HistoryBuilder().write(900, 'k0', 'late-1').write(900, 'k0', 'late-2').read(901, 'k0', 'late-1');
    for (const event of tail.events) h.events.push({ ...event, time: last + event.time });
    const result = check(h);
    assert.deepEqual(reported(result), ['900: write "late-1" ok', '900: write "late-2" ok', '901: read -> "late-1" ok']);
    assert.equal(result.failures[0].failurePoint, h.events.length - 1);
  });
});

describe('checkHistory: linearizable histories', () => {
  it('a read concurrent with a write may see the old or the new value', () => {
    for (const seen of ['a', 'b']) {
      const h = new HistoryBuilder().write(1, 'k', 'a').invoke(1, 'write', 'k', 'b').read(2, 'k', seen).ok(1);
      assert.equal(check(h).verdict, 'linearizable', `read saw ${seen}`);
    }
  });

  it('an info write may take effect later, or never', () => {
    const later = new HistoryBuilder()
      .write(1, 'k', 'a')
      .invoke(2, 'write', 'k', 'b')
      .info(2)
      .read(3, 'k', 'a')
      .read(3, 'k', 'b')
      .read(3, 'k', 'b');
    assert.equal(check(later).verdict, 'linearizable');
    const never = new HistoryBuilder().write(1, 'k', 'a').invoke(2, 'write', 'k', 'b').info(2).read(3, 'k', 'a');
    assert.equal(check(never).verdict, 'linearizable');
    // But not before it was invoked.
    const early = new HistoryBuilder().read(3, 'k', 'b').invoke(2, 'write', 'k', 'b').info(2);
    assert.equal(check(early).verdict, 'not-linearizable');
  });

  it('an info cas takes effect only if its expected value is there', () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').invoke(2, 'cas', 'k', ['a', 'b']).info(2).read(3, 'k', 'b');
    assert.equal(check(h).verdict, 'linearizable');
    const wrong = new HistoryBuilder().write(1, 'k', 'x').invoke(2, 'cas', 'k', ['a', 'b']).info(2).read(3, 'k', 'b');
    assert.equal(check(wrong).verdict, 'not-linearizable');
  });

  it('a failed write did not happen; a failed read observed nothing', () => {
    const h = new HistoryBuilder()
      .write(1, 'k', 'a')
      .invoke(2, 'write', 'k', 'b')
      .fail(2)
      .invoke(3, 'read', 'k')
      .fail(3)
      .read(3, 'k', 'a');
    assert.equal(check(h).verdict, 'linearizable');
  });

  it('cas: success from absent, mismatch observed while another value was there', () => {
    const h = new HistoryBuilder()
      .cas(1, 'k', null, 'a')
      .casMismatch(2, 'k', null, 'b')
      .cas(2, 'k', 'a', 'c')
      .read(1, 'k', 'c')
      .delete(1, 'k')
      .read(2, 'k', null)
      .casMismatch(2, 'k', 'c', 'd');
    assert.equal(check(h).verdict, 'linearizable');
  });

  it('counts ok, fail and info per function', () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').read(1, 'k', 'a').casMismatch(1, 'k', 'x', 'y');
    h.invoke(1, 'delete', 'k').info(1);
    const result = check(h);
    assert.deepEqual(result.counts, {
      read: { ok: 1, fail: 0, info: 0 },
      write: { ok: 1, fail: 0, info: 0 },
      cas: { ok: 0, fail: 1, info: 0 },
      delete: { ok: 0, fail: 0, info: 1 },
    });
    assert.equal(result.operationCount, 4);
    assert.equal(result.eventCount, 8);
  });

  it('an empty history is linearizable', () => {
    const result = checkHistory([]);
    assert.equal(result.verdict, 'linearizable');
    assert.equal(result.operationCount, 0);
  });

  it('rejects a malformed in-memory history', () => {
    const h = new HistoryBuilder().write(1, 'k', 'a');
    assert.throws(() => checkHistory([h.events[1]]), HistoryFormatError);
  });
});

describe('checkHistory: budget', () => {
  /** Many overlapping writes, then a read of a value none wrote: every subset gets searched. */
  function pathological(writers: number): HistoryBuilder {
    const h = new HistoryBuilder();
    for (let p = 0; p < writers; p++) h.invoke(p, 'write', 'k', `v${p}`);
    for (let p = 0; p < writers; p++) h.invoke(100 + p, 'read', 'k');
    for (let p = 0; p < writers; p++) h.ok(100 + p, `v${p}`);
    h.invoke(999, 'cas', 'k', ['v0', 'w']);
    for (let p = 0; p < writers; p++) h.ok(p);
    return h.ok(999).read(999, 'k', 'v1');
  }

  it('reports unknown, not a verdict, when the step budget runs out', () => {
    const result = check(pathological(14), { maxStepsPerKey: 5_000 });
    assert.equal(result.verdict, 'unknown');
    assert.equal(result.linearizable, false);
    assert.deepEqual(result.unknownKeys, ['k']);
    assert.ok(result.searchSteps >= 5_000);
    assert.match(formatHistoryCheckResult(result), /^UNKNOWN/);
  });

  it('reports unknown when the time limit passes', () => {
    const result = check(pathological(22), { timeLimitMs: 50 });
    assert.equal(result.verdict, 'unknown');
  });

  it('still decides it with enough budget', () => {
    assert.equal(check(pathological(8)).verdict, 'not-linearizable');
  });

  it('rejects invalid options', () => {
    assert.throws(() => checkHistory([], { maxStepsPerKey: 0 }), RangeError);
    assert.throws(() => checkHistory([], { timeLimitMs: -1 }), RangeError);
  });
});

describe('lost writes', () => {
  const lost = (h: HistoryBuilder) => check(h).lostWrites.map((l) => `${describeOperation(l.write)} <- ${describeOperation(l.evidence)}`);

  it('an acknowledged write that later reads show undone', () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').write(1, 'k', 'b').read(2, 'k', 'a').read(2, 'k', 'a');
    assert.deepEqual(lost(h), ['write "b" <- read -> "a"']);
  });

  it('counts an acknowledged cas, and a write lost and then overwritten', () => {
    const h = new HistoryBuilder().write(1, 'k', 'a').cas(1, 'k', 'a', 'b').read(2, 'k', 'a').write(3, 'k', 'c').read(2, 'k', 'c');
    assert.deepEqual(lost(h), ['cas "a" -> "b" <- read -> "a"']);
  });

  it('not lost: overwritten, seen again later, or never read afterwards', () => {
    assert.deepEqual(lost(new HistoryBuilder().write(1, 'k', 'a').write(1, 'k', 'b').read(2, 'k', 'b')), []);
    assert.deepEqual(lost(new HistoryBuilder().write(1, 'k', 'a').write(1, 'k', 'b').read(2, 'k', 'a').read(2, 'k', 'b')), []);
    assert.deepEqual(lost(new HistoryBuilder().write(1, 'k', 'a')), []);
  });

  it('not lost when the value read may have been written after it (concurrent or info)', () => {
    const concurrent = new HistoryBuilder().invoke(2, 'write', 'k', 'x').write(1, 'k', 'a').ok(2).read(3, 'k', 'x');
    assert.deepEqual(lost(concurrent), []);
    const info = new HistoryBuilder().invoke(2, 'write', 'k', 'x').info(2).write(1, 'k', 'a').read(3, 'k', 'x');
    assert.deepEqual(lost(info), []);
    const deleted = new HistoryBuilder().write(1, 'k', 'a').invoke(2, 'delete', 'k').info(2).read(3, 'k', null);
    assert.deepEqual(lost(deleted), []);
  });

  it('a read of a value nobody wrote is not evidence of loss', () => {
    assert.deepEqual(lost(new HistoryBuilder().write(1, 'k', 'a').read(2, 'k', 'garbage')), []);
  });
});
