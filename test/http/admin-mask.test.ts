import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as browser from '../../public/admin/mask.js';
import { maskNumber } from '../../src/domain/phone.ts';

// The dashboard masks in the browser with its own copy of the rule: the two must agree.
describe('the dashboard’s number masking (public/admin/mask.js)', () => {
  const NUMBERS = [
    '+14155550101',
    '+442079460150',
    '+4930901820',
    '+8613800138000',
    '+6834002',
    '+12345',
    '14155550101',
    '+123456789012345',
  ];

  it('masks as src/domain/phone.ts maskNumber does, whatever the length', () => {
    for (const number of NUMBERS) assert.equal(browser.maskNumber(number), maskNumber(number), number);
    assert.equal(browser.maskNumber('+14155550102'), '+1415*****02');
  });

  it('masks every number in an event’s summary, and leaves ids and times alone', () => {
    assert.equal(
      browser.maskNumbersInText('from: +14155550101, to: 4155550102, id: ses_01a24ebc73c7000074a09dd0955c'),
      'from: +1415*****01, to: 415*****02, id: ses_01a24ebc73c7000074a09dd0955c',
    );
    assert.equal(browser.maskNumbersInText('ttlSeconds: 86400'), 'ttlSeconds: 86400');
  });

  it('shows a pool number in clear and any other masked', () => {
    const proxies = new Set(['+14155550150']);
    assert.equal(browser.shown('+14155550150', proxies), '+14155550150');
    assert.equal(browser.shown('+14155550101', proxies), '+1415*****01');
    assert.equal(browser.shown(null, proxies), '');
  });
});
