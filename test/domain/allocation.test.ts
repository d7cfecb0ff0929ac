import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type ProxyHistory,
  type ProxyRequest,
  preferenceFor,
  proxySearchPlan,
} from '../../src/domain/allocation.ts';
import { type PhoneNumber, parsePhone } from '../../src/domain/phone.ts';
import type { Channel, GeoMatch } from '../../src/domain/session.ts';

const sf = parsePhone('+14155550123', 'n');
const ny = parsePhone('+12125550187', 'n');
const none = { held: new Set<string>(), cooling: new Set<string>() };

function request(
  people: PhoneNumber[],
  histories: ProxyHistory[],
  geoMatch: GeoMatch,
  channels: Channel[],
): ProxyRequest {
  return { tenantId: 't', people, histories, geoMatch, channels, preference: 'least-loaded' };
}

describe('proxySearchPlan', () => {
  it('prefers the region, then the country', () => {
    const plan = proxySearchPlan(request([sf], [none], 'region', ['voice']));
    assert.deepEqual(
      plan.map((s) => [s.country, s.region]),
      [
        ['US', '415'],
        ['US', undefined],
      ],
    );
  });

  it('never offers a number the person holds, and avoids recently released ones before giving up a region', () => {
    const history = { held: new Set(['n1']), cooling: new Set(['n2']) };
    const plan = proxySearchPlan(request([sf], [history], 'region', ['voice']));
    assert.deepEqual(
      plan.map((s) => [s.region, [...s.exclude].sort()]),
      [
        ['415', ['n1', 'n2']],
        [undefined, ['n1', 'n2']],
        ['415', ['n1']],
        [undefined, ['n1']],
      ],
    );
  });

  it('keeps to the region when strict, and ignores it for country matching', () => {
    assert.deepEqual(
      proxySearchPlan(request([sf], [none], 'region-strict', ['sms'])).map((s) => s.region),
      ['415'],
    );
    assert.deepEqual(
      proxySearchPlan(request([sf], [none], 'country', ['sms'])).map((s) => s.region),
      [undefined],
    );
  });

  it('for a shared number excludes what either person holds and tries both regions', () => {
    const plan = proxySearchPlan(
      request(
        [sf, ny],
        [
          { held: new Set(['a']), cooling: new Set() },
          { held: new Set(['b']), cooling: new Set() },
        ],
        'region',
        ['voice', 'sms'],
      ),
    );
    assert.deepEqual(
      plan.map((s) => [s.region, [...s.exclude].sort()]),
      [
        ['415', ['a', 'b']],
        ['212', ['a', 'b']],
        [undefined, ['a', 'b']],
      ],
    );
  });

  it('spreads per-participant sessions and packs shared ones', () => {
    assert.equal(preferenceFor('per-participant'), 'least-loaded');
    assert.equal(preferenceFor('shared'), 'most-loaded');
  });
});
