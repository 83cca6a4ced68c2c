/**
 * The checker against an independent brute-force checker on many small random histories, some
 * linearizable by construction and some mutated; and the minimizer's report checked by brute force
 * to be non-linearizable and 1-minimal.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { HistoryEvent } from '../../src/history/history-event.js';
import type { HistoryOperation } from '../../src/history/history-operation.js';
import { checkHistory } from '../../src/history/linearizability-checker.js';
import { bruteForceLinearizable } from './brute-force-checker.js';
import { mutateHistory, simulateRegisterHistory } from './register-simulation.js';

const smallHistory = fc.record({
  seed: fc.integer(),
  clients: fc.integer({ min: 1, max: 4 }),
  keys: fc.integer({ min: 1, max: 2 }),
  operations: fc.integer({ min: 1, max: 8 }),
  infoRate: fc.constantFrom(0, 0.15, 0.3),
  failRate: fc.constantFrom(0, 0.15),
  maxDuration: fc.integer({ min: 1, max: 12 }),
});

/**
 * Rebuilds a history from a failure report's operations, as the checker judged them: operations
 * still pending at the failure point have an unknown outcome (info, completing after everything).
 */
function historyOf(operations: readonly HistoryOperation[], failurePoint: number): HistoryEvent[] {
  const placed: { position: number; event: HistoryEvent }[] = [];
  const late = failurePoint + 1;
  operations.forEach((op, n) => {
    const value = op.value;
    placed.push({ position: op.invokeIndex, event: { process: op.process, type: 'invoke', f: op.f, key: op.key, value, time: 0 } as HistoryEvent });
    const pending = op.completeIndex > failurePoint;
    const type = pending ? 'info' : op.outcome;
    const completionValue = op.f === 'read' ? (type === 'ok' ? op.output : null) : value;
    const error = !pending && op.error !== null ? { error: op.error } : {};
    placed.push({
      position: pending ? late + n : op.completeIndex,
      event: { process: op.process, type, f: op.f, key: op.key, value: completionValue, time: 0, ...error } as HistoryEvent,
    });
  });
  return placed.sort((a, b) => a.position - b.position).map((entry) => entry.event);
}

describe('linearizability checker vs brute force', () => {
  it('agrees on random small histories, linearizable by construction and mutated', () => {
    let mutatedNonLinearizable = 0;
    let total = 0;
    fc.assert(
      fc.property(smallHistory, fc.integer(), fc.boolean(), (params, mutationSeed, mutate) => {
        const generated = simulateRegisterHistory(params);
        const events = mutate ? mutateHistory(generated, mutationSeed) : generated;
        const expected = bruteForceLinearizable(events);
        if (!mutate) assert.equal(expected, true, 'the simulated register is atomic: brute force must accept');
        const result = checkHistory(events);
        assert.equal(result.verdict, expected ? 'linearizable' : 'not-linearizable');
        total += 1;
        if (!expected) mutatedNonLinearizable += 1;
      }),
      { numRuns: 600 },
    );
    // The property must exercise both answers, or it proves little.
    assert.ok(mutatedNonLinearizable > total / 20, `only ${mutatedNonLinearizable} of ${total} histories were non-linearizable`);
  });

  it('reports a failing set that brute force rejects and that is 1-minimal', () => {
    let checked = 0;
    fc.assert(
      fc.property(smallHistory, fc.integer(), (params, mutationSeed) => {
        const events = mutateHistory(simulateRegisterHistory(params), mutationSeed);
        const result = checkHistory(events);
        if (result.linearizable) return;
        checked += 1;
        for (const failure of result.failures) {
          assert.ok(failure.minimized);
          const reported = historyOf(failure.operations, failure.failurePoint);
          assert.equal(bruteForceLinearizable(reported), false, 'the reported operations must not be linearizable');
          // Removing any one operation that installs no value observed by the rest makes it linearizable.
          failure.operations.forEach((op, i) => {
            // A failed write listed as context (it did not happen): removing it changes nothing.
            const context = op.outcome === 'fail' && op.error !== 'mismatch' && op.completeIndex <= failure.failurePoint;
            if (context) return;
            const rest = failure.operations.filter((_, j) => j !== i);
            const settled = (o: HistoryOperation): boolean => o.completeIndex <= failure.failurePoint && o.outcome === 'ok';
            const observed = new Set<string | null>();
            for (const o of rest) {
              if (settled(o) && o.f === 'read') observed.add(o.output);
              if (settled(o) && o.f === 'cas') observed.add((o.value as [string | null, string])[0]);
            }
            const installs =
              op.f === 'write' ? op.value : op.f === 'cas' ? (op.value as [string | null, string])[1] : op.f === 'delete' ? null : undefined;
            const mayHaveHappened = op.outcome !== 'fail' || op.completeIndex > failure.failurePoint;
            if (installs !== undefined && mayHaveHappened && observed.has(installs as string | null)) return;
            assert.equal(bruteForceLinearizable(historyOf(rest, failure.failurePoint)), true, `operation ${op.id} is not needed`);
          });
        }
      }),
      { numRuns: 300 },
    );
    assert.ok(checked > 20, `only ${checked} mutated histories failed`);
  });

  it('accepts larger histories that are linearizable by construction', () => {
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer(),
          clients: fc.integer({ min: 2, max: 12 }),
          keys: fc.integer({ min: 1, max: 4 }),
          operations: fc.integer({ min: 50, max: 400 }),
          infoRate: fc.constantFrom(0, 0.05, 0.2),
          failRate: fc.constantFrom(0, 0.1),
          maxDuration: fc.integer({ min: 1, max: 60 }),
        }),
        (params) => {
          const result = checkHistory(simulateRegisterHistory(params));
          assert.equal(result.verdict, 'linearizable');
          assert.deepEqual(result.lostWrites, []);
        },
      ),
      { numRuns: 150 },
    );
  });
});
