import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BINDING_STATES,
  backoffMs,
  bindsRemotely,
  canMove,
  fitsRemoteBinding,
  routes,
  stateAtEnd,
  stateOnSuccess,
} from '../../src/domain/binding.ts';

describe('binding states', () => {
  it('moves only forward: not_bound → binding → bound → unbinding → unbound, failed from the pending ones', () => {
    const allowed = BINDING_STATES.flatMap((from) =>
      BINDING_STATES.filter((to) => canMove(from, to)).map((to) => `${from}→${to}`),
    );
    assert.deepEqual(allowed.sort(), [
      'binding→bound',
      'binding→failed',
      'binding→unbound',
      'bound→unbinding',
      'failed→unbound',
      'not_bound→binding',
      'not_bound→unbound',
      'unbinding→failed',
      'unbinding→unbound',
    ]);
    assert.equal(canMove('unbound', 'binding'), false, 'an ended binding never comes back');
    assert.equal(canMove('bound', 'bound'), false);
  });

  it('undoes at the carrier only what it confirmed when the session ends', () => {
    assert.equal(stateAtEnd('bound'), 'unbinding');
    for (const s of ['not_bound', 'binding', 'failed'] as const) assert.equal(stateAtEnd(s), 'unbound');
    assert.equal(stateAtEnd('unbinding'), 'unbinding');
    assert.equal(stateOnSuccess('binding'), 'bound');
    assert.equal(stateOnSuccess('unbinding'), 'unbound');
  });

  it('routes a participation without a binding, or a bound one, and nothing else', () => {
    assert.deepEqual(
      [null, ...BINDING_STATES].filter((s) => routes(s)),
      [null, 'bound'],
    );
  });

  it('sends only AXB sessions whose policies the carrier honours to a remote-binding carrier', () => {
    const session = { mode: 'shared', ttlMode: 'fixed', maxCallSeconds: null };
    const free = { canInitiate: true, revealNumber: false };
    assert.equal(fitsRemoteBinding(session, [free, free]), true);
    assert.equal(fitsRemoteBinding({ ...session, mode: 'per-participant' }, [free, free]), false);
    assert.equal(fitsRemoteBinding({ ...session, ttlMode: 'sliding' }, [free, free]), false);
    assert.equal(fitsRemoteBinding({ ...session, maxCallSeconds: 60 }, [free, free]), false);
    assert.equal(fitsRemoteBinding(session, [free, { ...free, canInitiate: false }]), false);
    assert.equal(fitsRemoteBinding(session, [{ ...free, revealNumber: true }, free]), false);
    assert.equal(bindsRemotely('aliyun'), true);
    assert.equal(bindsRemotely('twilio'), false);
    assert.equal(bindsRemotely(undefined), false);
  });
});

describe('backoff', () => {
  const backoff = { baseMs: 1_000, capMs: 60_000 };

  it('draws from zero up to the ceiling base·2^attempt, capped', () => {
    for (const [attempt, ceiling] of [
      [0, 1_000],
      [1, 2_000],
      [3, 8_000],
      [6, 60_000],
      [60, 60_000],
      [5000, 60_000],
    ] as const) {
      assert.equal(
        backoffMs(attempt, backoff, () => 0),
        0,
      );
      // The largest draw stays below the ceiling; half a draw is half of it.
      assert.ok(backoffMs(attempt, backoff, () => 0.999_999) < ceiling);
      assert.equal(
        backoffMs(attempt, backoff, () => 0.5),
        ceiling / 2,
      );
    }
  });

  it('spreads retries over the whole range with a real random source', () => {
    const draws = Array.from({ length: 2000 }, () => backoffMs(2, backoff));
    assert.ok(draws.every((d) => Number.isInteger(d) && d >= 0 && d < 4_000));
    assert.ok(Math.min(...draws) < 400 && Math.max(...draws) > 3_600, 'full jitter, not a fixed delay');
  });
});
