import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeStores } from '../support/stores.ts';
import { faultDatabase, twoInstances } from './faults.ts';

// Two processes share a database only on PostgreSQL (SQLite is the one-process store): without
// TEST_DATABASE_URL the suite is reported skipped, "needs TEST_DATABASE_URL".
describeStores('two Veil processes on one database', { only: 'postgres' }, (store) => {
  it('assigns no proxy twice and delivers each event once per webhook-id, in order, creates and updates split across both', async (t) => {
    const f = await twoInstances(faultDatabase(store()), {
      creates: 600,
      connections: 8,
      drainTimeoutMs: 30_000,
    });
    const figures =
      `${f.store}: ${f.acknowledged[0]} + ${f.acknowledged[1]} creates acknowledged by the two processes, ` +
      `double-assigned ${f.doubleAssigned}, ${f.events} events (created, updated), ${f.delivered} delivered, ` +
      `webhook-ids received more than once ${f.receivedTwice.length}, out of order ${f.outOfOrder.length}, drained in ${(f.drainMs / 1000).toFixed(1)} s`;
    t.diagnostic(figures);
    assert.deepEqual(f.unexpected, []);
    assert.ok(f.acknowledged[0] > 0 && f.acknowledged[1] > 0, 'one process took no create');
    assert.equal(f.doubleAssigned, 0, 'a person holds one proxy in two open sessions');
    assert.equal(f.loadMismatches, 0);
    assert.deepEqual(f.lost, []);
    assert.deepEqual(f.halfWritten, []);
    assert.equal(f.forged, 0, 'deliveries whose signature did not verify');
    assert.deepEqual(f.undelivered, []);
    assert.equal(f.delivered, f.events, 'events not delivered');
    assert.deepEqual(f.receivedTwice, [], 'webhook-ids received more than once');
    assert.deepEqual(f.outOfOrder, [], 'events that overtook an earlier one of their session');
  });
});
