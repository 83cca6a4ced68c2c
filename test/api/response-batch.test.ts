import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResponseBatch } from '../../src/api/http/response-batch.js';
import type { Http1Response } from '../../src/http1/http1-response.js';

/** The part of an Http1Response the batch uses, recording what it was given. */
class FakeResponse {
  ended: Array<Buffer | string> = [];
  destroyed = false;
  constructor(
    private readonly log: string[],
    readonly name: string,
    private readonly fail = false,
  ) {}
  end(body: Buffer | string): void {
    if (this.fail) throw new Error(`${this.name} cannot end`);
    this.ended.push(body);
    this.log.push(this.name);
  }
  destroy(): void {
    this.destroyed = true;
  }
}

const asResponse = (r: FakeResponse) => r as unknown as Http1Response;

describe('ResponseBatch', () => {
  it('ends the answers of one turn together, after the turn, in order', async () => {
    const log: string[] = [];
    const errors: string[] = [];
    const batch = new ResponseBatch({ error: (_f, m) => errors.push(m) });
    const a = new FakeResponse(log, 'a');
    const b = new FakeResponse(log, 'b');
    batch.end(asResponse(a), Buffer.from('1'));
    batch.end(asResponse(b), '{"x":"é"}');
    assert.equal(batch.size, 2);
    assert.deepEqual(log, [], 'nothing is written within the turn');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(log, ['a', 'b']);
    assert.deepEqual(a.ended, [Buffer.from('1')]);
    assert.deepEqual(b.ended, ['{"x":"é"}']);
    assert.equal(batch.size, 0);
    assert.deepEqual(errors, []);
  });

  it('keeps going past a response that throws, destroying only that one', () => {
    const log: string[] = [];
    const errors: string[] = [];
    const batch = new ResponseBatch({ error: (_f, m) => errors.push(m) });
    const bad = new FakeResponse(log, 'bad', true);
    const good = new FakeResponse(log, 'good');
    batch.end(asResponse(bad), 'x');
    batch.end(asResponse(good), 'y');
    batch.flush();
    assert.deepEqual(log, ['good']);
    assert.equal(bad.destroyed, true);
    assert.equal(good.destroyed, false);
    assert.equal(errors.length, 1);
  });
});
