import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  carrierRounds,
  type ProxyRequest,
  preferenceFor,
  proxySearchPlan,
} from '../../src/domain/allocation.ts';
import { parsePhone } from '../../src/domain/phone.ts';

const sf = parsePhone('+14155550123', 'n');
const ny = parsePhone('+12125550187', 'n');

function request(overrides: Partial<ProxyRequest> = {}): ProxyRequest {
  return {
    use: 'direct',
    tenantId: 't',
    carriers: ['sim'],
    people: [sf],
    geoMatch: 'region',
    channels: ['voice'],
    preference: 'least-loaded',
    ...overrides,
  };
}

describe('proxySearchPlan', () => {
  it('prefers the region, then the country, never a number the people hold', () => {
    const plan = proxySearchPlan(request());
    assert.deepEqual(
      plan.map((s) => [s.country, s.region, s.people, s.releasedSince]),
      [
        ['US', '415', ['+14155550123'], undefined],
        ['US', undefined, ['+14155550123'], undefined],
      ],
    );
  });

  it('avoids recently released numbers before giving up a region, then accepts them', () => {
    const plan = proxySearchPlan(request({ coolingSince: 1000 }));
    assert.deepEqual(
      plan.map((s) => [s.region, s.releasedSince]),
      [
        ['415', 1000],
        [undefined, 1000],
        ['415', undefined],
        [undefined, undefined],
      ],
    );
  });

  it('keeps to the region when strict, and ignores it for country matching', () => {
    assert.deepEqual(
      proxySearchPlan(request({ geoMatch: 'region-strict' })).map((s) => s.region),
      ['415'],
    );
    assert.deepEqual(
      proxySearchPlan(request({ geoMatch: 'country' })).map((s) => s.region),
      [undefined],
    );
  });

  it('for a shared number searches for both people and tries both regions', () => {
    const plan = proxySearchPlan(
      request({ people: [sf, ny], channels: ['voice', 'sms'], preference: 'most-loaded' }),
    );
    assert.deepEqual(
      plan.map((s) => [s.region, s.people, s.preference]),
      [
        ['415', ['+14155550123', '+12125550187'], 'most-loaded'],
        ['212', ['+14155550123', '+12125550187'], 'most-loaded'],
        [undefined, ['+14155550123', '+12125550187'], 'most-loaded'],
      ],
    );
  });

  it('spreads per-participant sessions and packs shared ones', () => {
    assert.equal(preferenceFor('per-participant'), 'least-loaded');
    assert.equal(preferenceFor('shared'), 'most-loaded');
  });
});

describe('carrierRounds (gray release)', () => {
  const carriers = ['sim', 'twilio', 'telnyx'];
  const london = parsePhone('+442079460123', 'n');
  /** A seeded generator, so that the draws are the same on every run. */
  const seeded = (seed: number) => () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };

  it('tries every carrier at once without weights, or when the rule weighs none of them', () => {
    assert.deepEqual(carrierRounds(carriers, undefined, sf), [carriers]);
    assert.deepEqual(carrierRounds(carriers, { default: { vonage: 5 }, scoped: {} }, sf), [carriers]);
  });

  it('tries the weighted carriers one at a time, then the others together', () => {
    const weights = { default: { twilio: 1 }, scoped: {} };
    assert.deepEqual(carrierRounds(carriers, weights, sf), [['twilio'], ['sim', 'telnyx']]);
    const none = { default: { twilio: 1, telnyx: 0 }, scoped: {} };
    assert.deepEqual(carrierRounds(carriers, none, sf), [['twilio'], ['sim', 'telnyx']]);
  });

  it('takes the region’s rule over the country’s over everyone’s', () => {
    const weights = {
      default: { twilio: 1 },
      scoped: { '415': { telnyx: 1 }, US: { sim: 1 }, GB: { telnyx: 2, twilio: 0 } },
    };
    assert.deepEqual(carrierRounds(carriers, weights, sf)[0], ['telnyx']);
    assert.deepEqual(carrierRounds(carriers, weights, ny)[0], ['sim']);
    assert.deepEqual(carrierRounds(carriers, weights, london)[0], ['telnyx']);
  });

  it('puts a carrier first as often as its weight says', () => {
    const weights = { default: { twilio: 3, telnyx: 1 }, scoped: {} };
    const random = seeded(7);
    const firsts = { twilio: 0, telnyx: 0 } as Record<string, number>;
    for (let i = 0; i < 4000; i++) {
      const rounds = carrierRounds(carriers, weights, sf, random);
      assert.equal(rounds.length, 3);
      assert.deepEqual(rounds[2], ['sim']);
      const first = rounds[0]?.[0] as string;
      firsts[first] = (firsts[first] ?? 0) + 1;
    }
    // 3 : 1, within a few percent.
    assert.ok(Math.abs((firsts.twilio ?? 0) / 4000 - 0.75) < 0.03, JSON.stringify(firsts));
  });
});
