import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ProcurementHooks } from '../../../src/services/procurement.ts';
import { type TestApp, TWILIO_SID, TWILIO_TOKEN, testApp } from '../../support/app.ts';
import { describeStores, TEST_KEY_ENV } from '../../support/stores.ts';
import { FakeTwilioApi } from '../../support/twilio-api.ts';

/** Numbers the fake Twilio sells in area code 415 (and one in 212). */
const STOCK = ['+14155550170', '+14155550171', '+14155550172', '+14155550173', '+12125550174'];
const BASIC = `Basic ${Buffer.from(`${TWILIO_SID}:${TWILIO_TOKEN}`).toString('base64')}`;

// A store for each test: the tests count the pool's and the journal's rows.
describeStores('POST /v1/numbers/import (purchase)', { perTest: true }, (store) => {
  let t: TestApp;
  let fake: FakeTwilioApi;
  let crash: ProcurementHooks['afterBuy'];
  beforeEach(async () => {
    fake = new FakeTwilioApi(TWILIO_SID, TWILIO_TOKEN, { US: [...STOCK] });
    await fake.start();
    crash = undefined;
    t = await testApp(
      store(),
      { TWILIO_API_URL: fake.url },
      { procurementHooks: { afterBuy: (number) => crash?.(number) } },
    );
  });
  afterEach(async () => {
    await t.close();
    await fake.stop();
  });

  const pool = () => t.veil.store.db.selectFrom('numbers').selectAll().orderBy('number').execute();
  const journal = () => t.veil.store.db.selectFrom('purchases').selectAll().orderBy('number').execute();
  const buy = (body: Record<string, unknown>) => t.api('POST', '/v1/numbers/import', body);

  describe('on sim', () => {
    it('makes numbers up in the fictional 555-01xx range, skipping those in the pool', async () => {
      const before = await t.api('POST', '/v1/numbers/import', [{ number: '+14155550101', provider: 'sim' }]);
      assert.equal(before.statusCode, 201, before.body);
      const r = await buy({ provider: 'sim', country: 'US', areaCode: '415', count: 3 });
      assert.equal(r.statusCode, 201, r.body);
      const body = r.json();
      assert.deepEqual(
        body.data.map((n: { number: string }) => n.number),
        ['+14155550100', '+14155550102', '+14155550103'],
      );
      for (const n of body.data) {
        assert.equal(n.provider, 'sim');
        assert.equal(n.status, 'active');
        assert.equal(n.region, '415');
        assert.deepEqual(n.capabilities, ['voice', 'sms']);
      }
      assert.deepEqual(body.purchase, { requested: 3, bought: 3 });
      const again = await buy({ provider: 'sim', country: 'US', areaCode: '415', count: 2 });
      assert.deepEqual(
        again.json().data.map((n: { number: string }) => n.number),
        ['+14155550104', '+14155550105'],
      );
      assert.equal((await pool()).length, 6);
      assert.deepEqual(
        (await journal()).map((p) => p.status),
        ['bought', 'bought', 'bought', 'bought', 'bought'],
      );
    });

    it('stops at the end of the range: what it made is added and the answer says how many', async () => {
      await buy({ provider: 'sim', country: 'US', areaCode: '212', count: 60 });
      const r = await buy({ provider: 'sim', country: 'US', areaCode: '212', count: 60 });
      assert.equal(r.statusCode, 201, r.body);
      assert.equal(r.json().purchase.requested, 60);
      assert.equal(r.json().purchase.bought, 40);
      assert.match(r.json().purchase.problem, /only 40 of the 60/);
      const none = await buy({ provider: 'sim', country: 'US', areaCode: '212', count: 1 });
      assert.equal(none.statusCode, 503, none.body);
      assert.equal(none.json().error.code, 'pool_exhausted');
    });
  });

  describe('on twilio', () => {
    it('searches and buys through the REST API with the account’s Basic auth', async () => {
      const r = await buy({ provider: 'twilio', country: 'US', areaCode: '415', count: 2 });
      assert.equal(r.statusCode, 201, r.body);
      assert.deepEqual(
        r.json().data.map((n: { number: string; provider: string }) => [n.number, n.provider]),
        [
          ['+14155550170', 'twilio'],
          ['+14155550171', 'twilio'],
        ],
      );
      const [search] = fake.requests('search');
      assert.ok(search);
      assert.equal(search.path, `/2010-04-01/Accounts/${TWILIO_SID}/AvailablePhoneNumbers/US/Local.json`);
      assert.equal(search.query.get('AreaCode'), '415');
      const creates = fake.requests('create');
      assert.deepEqual(
        creates.map((c) => c.form.get('PhoneNumber')),
        ['+14155550170', '+14155550171'],
      );
      for (const request of fake.received) assert.equal(request.authorization, BASIC);
      const rows = await journal();
      assert.deepEqual(
        rows.map((p) => [p.number, p.status]),
        [
          ['+14155550170', 'bought'],
          ['+14155550171', 'bought'],
        ],
      );
      assert.ok(rows.every((p) => p.carrier_ref?.startsWith('PN')));
    });

    it('keeps what was bought when the carrier refuses midway, and says why it stopped', async () => {
      fake.failPurchase('+14155550171', { status: 400 });
      const r = await buy({ provider: 'twilio', country: 'US', areaCode: '415', count: 3 });
      assert.equal(r.statusCode, 201, r.body);
      assert.deepEqual(
        r.json().data.map((n: { number: string }) => n.number),
        ['+14155550170'],
      );
      assert.equal(r.json().purchase.requested, 3);
      assert.equal(r.json().purchase.bought, 1);
      assert.match(r.json().purchase.problem, /twilio refused a purchase: .*HTTP 400.*; bought 1 of the 3/);
      assert.ok(!r.body.includes('+14155550171'), 'the refused number is named in clear');
      // Refused outright: nothing is left to settle.
      assert.deepEqual(
        (await journal()).map((p) => [p.number, p.status]),
        [['+14155550170', 'bought']],
      );
      assert.equal((await pool()).length, 1);
    });

    it('answers 503 and adds nothing when the first purchase fails', async () => {
      fake.failPurchase('+14155550170', { status: 400 });
      const r = await buy({ provider: 'twilio', country: 'US', areaCode: '415', count: 2 });
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().error.code, 'unavailable');
      assert.equal((await pool()).length, 0);
      assert.equal((await journal()).length, 0);
    });

    it('answers 503 pool_exhausted when the carrier has nothing in the area', async () => {
      const r = await buy({ provider: 'twilio', country: 'US', areaCode: '646', count: 2 });
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().error.code, 'pool_exhausted');
      assert.equal(fake.requests('create').length, 0);
    });
  });

  describe('bad input', () => {
    it('answers 400 naming count or provider, and buys nothing', async () => {
      const cases: [Record<string, unknown>, string][] = [
        [{ provider: 'twilio', country: 'US', count: 0 }, 'count'],
        [{ provider: 'twilio', country: 'US', count: 101 }, 'count'],
        [{ provider: 'twilio', country: 'US', count: 2.5 }, 'count'],
        [{ provider: 'twilio', country: 'US', count: '3' }, 'count'],
        [{ provider: 'twilio', country: 'US' }, 'count'],
        [{ provider: 'nope', country: 'US', count: 1 }, 'provider'],
        [{ provider: 'vonage', country: 'US', count: 1 }, 'provider'],
        [{ provider: 'twilio', country: 'usa', count: 1 }, 'country'],
        [{ provider: 'twilio', country: 'US', areaCode: '41a', count: 1 }, 'areaCode'],
        [{ provider: 'twilio', country: 'US', count: 1, colour: 'red' }, 'colour'],
        [{ provider: 'sim', country: 'FR', count: 1 }, 'country'],
      ];
      for (const [body, field] of cases) {
        const r = await buy(body);
        assert.equal(r.statusCode, 400, `${JSON.stringify(body)} → ${r.body}`);
        assert.equal(r.json().error.code, 'invalid_request');
        assert.equal(r.json().error.field, field, `${JSON.stringify(body)} → ${r.body}`);
      }
      assert.match(
        (await buy({ provider: 'vonage', country: 'US', count: 1 })).json().error.message,
        /not enabled/,
      );
      assert.equal(fake.requests('create').length, 0);
      assert.equal((await pool()).length, 0);
      assert.equal((await journal()).length, 0);
    });

    it('still adds an array of numbers, all or none', async () => {
      const r = await t.api('POST', '/v1/numbers/import', [{ number: '+14155550190', provider: 'twilio' }]);
      assert.equal(r.statusCode, 201, r.body);
      assert.equal(r.json().purchase, undefined);
      assert.equal(fake.received.length, 0);
    });
  });

  describe('a purchase interrupted', () => {
    it('by a crash between the carrier’s answer and the insert is settled: added once, bought once', async () => {
      crash = (number) => {
        if (number === '+14155550171') throw new Error('crash: the process died here');
      };
      const r = await buy({ provider: 'twilio', country: 'US', areaCode: '415', count: 3 });
      assert.equal(r.statusCode, 500, r.body);
      crash = undefined;
      assert.deepEqual(
        (await pool()).map((n) => n.number),
        ['+14155550170'],
      );
      assert.deepEqual(
        (await journal()).map((p) => [p.number, p.status]),
        [
          ['+14155550170', 'bought'],
          ['+14155550171', 'buying'],
        ],
      );
      // A purchase right after does not touch an intent that may still be running: it buys others.
      const next = await buy({ provider: 'twilio', country: 'US', areaCode: '415', count: 1 });
      assert.equal(next.statusCode, 201, next.body);
      assert.deepEqual(
        next.json().data.map((n: { number: string }) => n.number),
        ['+14155550172'],
      );
      // Once no purchase can still be running, the carrier is asked and the number joins the pool.
      t.clock.advance(180);
      assert.deepEqual(await t.veil.procurement.settle(), { added: 1, dropped: 0 });
      assert.deepEqual(
        (await pool()).map((n) => [n.number, n.status, n.provider]),
        [
          ['+14155550170', 'active', 'twilio'],
          ['+14155550171', 'active', 'twilio'],
          ['+14155550172', 'active', 'twilio'],
        ],
      );
      assert.ok((await journal()).every((p) => p.status === 'bought'));
      const lookups = fake.requests('lookup');
      assert.deepEqual(
        lookups.map((l) => l.query.get('PhoneNumber')),
        ['+14155550171'],
      );
      // One purchase per number, ever.
      const creates = fake.requests('create').map((c) => c.form.get('PhoneNumber'));
      assert.deepEqual(creates, ['+14155550170', '+14155550171', '+14155550172']);
      assert.deepEqual(await t.veil.procurement.settle(), { added: 0, dropped: 0 });
      assert.ok(!t.logs.join('').includes('+14155550171'), 'a number is logged in clear');
    });

    it('by a lost answer is settled at the next import: added if bought, dropped if not', async () => {
      fake.failPurchase('+14155550170', { status: 500, buyAnyway: true });
      const lost = await buy({ provider: 'twilio', country: 'US', areaCode: '415', count: 1 });
      assert.equal(lost.statusCode, 503, lost.body);
      fake.failPurchase('+14155550171', { status: 500 });
      const failed = await buy({ provider: 'twilio', country: 'US', areaCode: '415', count: 1 });
      assert.equal(failed.statusCode, 503, failed.body);
      assert.equal((await pool()).length, 0);
      assert.deepEqual(
        (await journal()).map((p) => p.status),
        ['buying', 'buying'],
      );
      t.clock.advance(180);
      const r = await buy({ provider: 'twilio', country: 'US', areaCode: '415', count: 1 });
      assert.equal(r.statusCode, 201, r.body);
      assert.deepEqual(
        (await pool()).map((n) => n.number),
        ['+14155550170', '+14155550171'],
      );
      // 0170 was bought (its answer lost) and settled into the pool; 0171 was not, so it was
      // dropped and bought afresh by the import.
      const creates = fake.requests('create').map((c) => c.form.get('PhoneNumber'));
      assert.deepEqual(creates, ['+14155550170', '+14155550171', '+14155550171']);
      assert.equal(fake.owned.size, 2);
      assert.deepEqual(
        (await journal()).map((p) => [p.number, p.status]),
        [
          ['+14155550170', 'bought'],
          ['+14155550171', 'bought'],
        ],
      );
    });
  });

  describe('DELETE /v1/numbers/:id', () => {
    const bought = async () => {
      const r = await buy({ provider: 'twilio', country: 'US', areaCode: '415', count: 1 });
      assert.equal(r.statusCode, 201, r.body);
      return r.json().data[0] as { id: string; number: string };
    };

    it('releases a bought number at the carrier when it retires', async () => {
      const n = await bought();
      const [sid] = fake.owned.keys();
      const r = await t.api('DELETE', `/v1/numbers/${n.id}`);
      assert.equal(r.json().status, 'retired');
      const deletes = fake.requests('delete');
      assert.deepEqual(
        deletes.map((d) => d.path),
        [`/2010-04-01/Accounts/${TWILIO_SID}/IncomingPhoneNumbers/${sid}.json`],
      );
      assert.equal(deletes[0]?.authorization, BASIC);
      assert.equal(fake.owned.size, 0);
      assert.deepEqual(
        (await journal()).map((p) => p.status),
        ['released'],
      );
    });

    it('releases a draining number once its last session ends', async () => {
      const n = await bought();
      const s = await t.api('POST', '/v1/sessions', {
        participants: [{ number: '+14155550123' }, { number: '+14155550187' }],
      });
      assert.equal(s.statusCode, 201, s.body);
      assert.equal((await t.api('DELETE', `/v1/numbers/${n.id}`)).json().status, 'draining');
      assert.equal(fake.requests('delete').length, 0);
      await t.api('DELETE', `/v1/sessions/${s.json().id}`);
      assert.equal((await t.api('GET', `/v1/numbers/${n.id}`)).json().status, 'retired');
      assert.equal(await t.veil.procurement.releaseRetired(), 1);
      assert.equal(fake.requests('delete').length, 1);
      assert.equal(await t.veil.procurement.releaseRetired(), 0);
    });

    it('keeps the number retired when the carrier fails, logs it masked, and tries again', async () => {
      const n = await bought();
      fake.failDeletes(500);
      const r = await t.api('DELETE', `/v1/numbers/${n.id}`);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().status, 'retired');
      assert.equal(fake.owned.size, 1);
      const logs = t.logs.join('');
      assert.match(logs, /could not release a retired number at its carrier/);
      assert.match(logs, /\+1415\*+70/);
      assert.ok(!logs.includes(n.number), 'the number is logged in clear');
      assert.deepEqual(
        (await journal()).map((p) => [p.status, p.release_attempts]),
        [['bought', 1]],
      );
      assert.equal(await t.veil.procurement.releaseRetired(), 1);
      assert.equal(fake.owned.size, 0);
    });

    it('gives nothing back for a number added by hand, nor calls a carrier for sim', async () => {
      const added = await t.api('POST', '/v1/numbers/import', [
        { number: '+14155550190', provider: 'twilio' },
      ]);
      const sim = await buy({ provider: 'sim', country: 'US', count: 1 });
      for (const id of [added.json().data[0].id, sim.json().data[0].id]) {
        assert.equal((await t.api('DELETE', `/v1/numbers/${id}`)).json().status, 'retired');
      }
      assert.equal(fake.received.length, 0);
      assert.deepEqual(
        (await journal()).map((p) => [p.provider, p.status]),
        [['sim', 'released']],
      );
    });
  });
});

describeStores('POST /v1/numbers/import (purchase) in production', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store(), { NODE_ENV: 'production', ...TEST_KEY_ENV });
  });
  afterEach(() => t.close());

  it('refuses the simulator with 400 naming provider', async () => {
    const r = await t.api('POST', '/v1/numbers/import', { provider: 'sim', country: 'US', count: 1 });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(r.json().error.field, 'provider');
    assert.match(r.json().error.message, /refused in production/);
  });

  it('takes SIP trunk numbers (provider sip) with no carrier configured: listed, allocated, never bought', async () => {
    const added = await t.api('POST', '/v1/numbers', { number: '+14155550150', provider: 'sip' });
    assert.equal(added.statusCode, 201, added.body);
    assert.equal(added.json().provider, 'sip');
    const providers = (await t.api('GET', '/v1/providers')).json().data;
    const sip = providers.find((p: { name: string }) => p.name === 'sip');
    assert.equal(sip?.enabled, true, JSON.stringify(providers));
    assert.ok(!providers.some((p: { name: string }) => p.name === 'sim'), 'production lists the simulator');
    const session = await t.api('POST', '/v1/sessions', {
      participants: [{ number: '+14155550101' }, { number: '+14155550102' }],
    });
    assert.equal(session.statusCode, 201, session.body);
    const proxies = session.json().participants.map((p: { proxyNumber: string }) => p.proxyNumber);
    assert.deepEqual(proxies, ['+14155550150', '+14155550150']);

    const bought = await t.api('POST', '/v1/numbers/import', { provider: 'sip', country: 'US', count: 1 });
    assert.equal(bought.statusCode, 400, bought.body);
    assert.equal(bought.json().error.field, 'provider');
    assert.match(bought.json().error.message, /add them with POST \/v1\/numbers/);
  });
});
