import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { proxySearchPlan } from '../../src/domain/allocation.ts';
import { parsePhone } from '../../src/domain/phone.ts';

const sf = parsePhone('+14155550123', 'n');
const ny = parsePhone('+12125550187', 'n');
const none = { held: new Set<string>(), cooling: new Set<string>() };

describe('proxySearchPlan', () => {
  it('prefers the region, then the country', () => {
    const plan = proxySearchPlan('t', [sf], [none], 'region', ['voice']);
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
    const plan = proxySearchPlan('t', [sf], [history], 'region', ['voice']);
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
      proxySearchPlan('t', [sf], [none], 'region-strict', ['sms']).map((s) => s.region),
      ['415'],
    );
    assert.deepEqual(
      proxySearchPlan('t', [sf], [none], 'country', ['sms']).map((s) => s.region),
      [undefined],
    );
  });

  it('for a shared number excludes what either person holds and tries both regions', () => {
    const plan = proxySearchPlan(
      't',
      [sf, ny],
      [
        { held: new Set(['a']), cooling: new Set() },
        { held: new Set(['b']), cooling: new Set() },
      ],
      'region',
      ['voice', 'sms'],
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
});
