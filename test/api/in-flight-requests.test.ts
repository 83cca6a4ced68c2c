import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DeadlineBound, InFlightRequests } from '../../src/api/http/in-flight-requests.js';

class FakeRequest implements DeadlineBound {
  expired = 0;
  constructor(
    public deadlineAt: number,
    private readonly owner: InFlightRequests<FakeRequest>,
  ) {}
  expire(): void {
    this.expired++;
    this.owner.remove(this);
  }
}

describe('InFlightRequests', () => {
  it('expires only requests whose deadline has passed, once each', () => {
    const requests = new InFlightRequests<FakeRequest>(100);
    const early = new FakeRequest(10, requests);
    const late = new FakeRequest(50, requests);
    const none = new FakeRequest(0, requests);
    for (const r of [early, late, none]) requests.tryAdd(r);
    requests.sweep(20);
    assert.deepEqual([early.expired, late.expired, none.expired], [1, 0, 0]);
    assert.equal(requests.size, 2);
    requests.sweep(1e9);
    assert.deepEqual([early.expired, late.expired, none.expired], [1, 1, 0]);
    assert.equal(requests.size, 1);
  });

  it('resolves whenIdle once the last request is removed, and refuses a double removal', async () => {
    const requests = new InFlightRequests<FakeRequest>(100);
    await requests.whenIdle();
    const r = new FakeRequest(0, requests);
    requests.tryAdd(r);
    let idle = false;
    const waiting = requests.whenIdle().then(() => {
      idle = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(idle, false);
    requests.remove(r);
    await waiting;
    assert.equal(idle, true);
    assert.throws(() => requests.remove(r), /removed twice/);
  });

  it('sweeps on its timer once started', async () => {
    const requests = new InFlightRequests<FakeRequest>(5);
    const r = new FakeRequest(performance.now(), requests);
    requests.tryAdd(r);
    requests.start();
    // The sweep timer is unref'd (it never keeps a process alive): hold the loop open meanwhile.
    const keepAlive = setTimeout(() => {}, 60_000);
    try {
      await requests.whenIdle();
      assert.equal(r.expired, 1);
    } finally {
      clearTimeout(keepAlive);
      requests.stop();
    }
  });

  it('refuses a sweep period that is not a positive integer', () => {
    assert.throws(() => new InFlightRequests(0), /positive integer/);
  });
});
