import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DeadlineBound, InFlightRequests } from '../../src/api/http/in-flight-requests.js';

class FakeRequest implements DeadlineBound {
  expired = 0;
  inFlightSlot = -1;
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

  it('keeps every other request tracked, and checks each once, when the sweep expires many', () => {
    const requests = new InFlightRequests<FakeRequest>(100);
    const all = Array.from({ length: 50 }, (_, i) => new FakeRequest(i % 3 === 0 ? 0 : i, requests));
    for (const r of all) assert.equal(requests.tryAdd(r), true);
    assert.throws(() => requests.tryAdd(all[0]!), /added twice/);
    requests.sweep(25);
    for (const [i, r] of all.entries())
      assert.equal(r.expired, i % 3 !== 0 && i <= 25 ? 1 : 0, `request ${i}`);
    assert.equal(requests.size, all.filter((r) => r.expired === 0).length);
    requests.sweep(1e9);
    assert.equal(requests.size, 17, 'those without a deadline stay');
    for (const r of all) if (r.expired === 0) requests.remove(r);
    assert.equal(requests.size, 0);
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
