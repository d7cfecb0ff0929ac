import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ProxyRequest, preferenceFor, proxySearchPlan } from '../../src/domain/allocation.ts';
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
