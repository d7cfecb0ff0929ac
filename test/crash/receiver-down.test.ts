import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeStores } from '../support/stores.ts';
import { faultDatabase, receiverDown } from './faults.ts';

describeStores('a webhook receiver down for seconds', (store) => {
  it('loses no event and delivers the events of each session in the order they were made once it is back', async (t) => {
    const f = await receiverDown(faultDatabase(store()), {
      downMs: 4_000,
      clients: 3,
      pauseMs: 100,
      retryMaxSeconds: 2,
      drainTimeoutMs: 30_000,
    });
    const figures =
      `${f.store}: receiver down ${f.downMs / 1000} s (503, then refused): ${f.sessions} sessions, ` +
      `${f.events} events; ${f.failed503} attempts answered 503, ${f.refused} refused; lost ${f.lost.length}, ` +
      `dead ${f.dead}, out of order ${f.outOfOrder.length}, duplicates ${f.duplicates}, ` +
      `drained ${(f.drainMs / 1000).toFixed(1)} s after it came back`;
    t.diagnostic(figures);
    assert.deepEqual(f.unexpected, []);
    // The outage was seen both ways: otherwise the order was never put to the test.
    assert.ok(f.failed503 > 0, 'no attempt met the 503s');
    assert.ok(f.refused > 0, 'no attempt met the closed port');
    assert.ok(f.sessions > 3, `only ${f.sessions} sessions`);
    assert.deepEqual(f.lost, [], 'events never delivered');
    assert.equal(f.dead, 0);
    assert.deepEqual(f.outOfOrder, [], 'events that overtook an earlier one of their session');
    assert.equal(f.forged, 0, 'deliveries whose signature did not verify');
  });
});
