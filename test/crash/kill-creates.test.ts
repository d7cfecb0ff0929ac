import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeStores } from '../support/stores.ts';
import { faultDatabase, killUnderCreates } from './faults.ts';

/** Issue 18: a SIGKILL at least 20 times in CI (`npm run bench` kills more: bench/sections/faults.ts). */
const KILLS = 20;

describeStores('SIGKILL under a stream of session creates', (store) => {
  it(`loses no acknowledged session, half-writes none, keeps the invariant and delivers every session.created, over ${KILLS} kills`, async (t) => {
    const f = await killUnderCreates(faultDatabase(store()), {
      kills: KILLS,
      connections: 6,
      runMs: [150, 900],
      drainTimeoutMs: 60_000,
    });
    const figures =
      `${f.store}: ${f.kills} kills in ${f.seconds.toFixed(0)} s, ${f.attempts} creates sent, ` +
      `${f.acknowledged} acknowledged (${f.retriedFound} of the ${f.unanswered} unanswered found by their retry, ` +
      `${f.retriedMade} made by it), lost ${f.lost.length}, half-written ${f.halfWritten.length}, ` +
      `double-assigned ${f.doubleAssigned}, session.created undelivered ${f.undelivered.length}, ` +
      `duplicates at the receiver ${f.duplicates}, drained ${(f.drainMs / 1000).toFixed(1)} s after the last restart`;
    t.diagnostic(figures);
    assert.deepEqual(f.unexpected, [], 'answers other than 201 (or, to a retry, 200)');
    // The kills fell on creates in flight: otherwise this proves nothing about them.
    assert.ok(f.unanswered > 0, 'no create was in flight at any kill');
    assert.ok(f.acknowledged > f.kills, `only ${f.acknowledged} creates acknowledged`);
    assert.deepEqual(f.lost, [], 'acknowledged sessions not found as acknowledged');
    assert.deepEqual(f.halfWritten, []);
    assert.equal(f.doubleAssigned, 0, 'a person holds one proxy in two open sessions');
    assert.equal(f.loadMismatches, 0, 'numbers whose load is not their open sessions');
    assert.equal(f.forged, 0, 'deliveries whose signature did not verify');
    assert.deepEqual(f.undelivered, [], 'acknowledged creates whose session.created never arrived');
  });
});
