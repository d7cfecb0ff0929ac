import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ProcurementHooks } from '../../../src/services/procurement.ts';
import { type TestApp, testApp } from '../../support/app.ts';
import type { FakeNumbersApi, NumbersApiRequest } from '../../support/numbers-api.ts';
import { PLIVO_AUTH_ID, PLIVO_ENV, PLIVO_TOKEN } from '../../support/plivo.ts';
import { FakePlivoApi } from '../../support/plivo-api.ts';
import { describeStores } from '../../support/stores.ts';
import { TELNYX_API_KEY, TELNYX_KEYS } from '../../support/telnyx.ts';
import { FakeTelnyxApi } from '../../support/telnyx-api.ts';
import { VONAGE_API_KEY, VONAGE_API_SECRET, VONAGE_SIGNATURE_SECRET } from '../../support/vonage.ts';
import { FakeVonageApi } from '../../support/vonage-api.ts';

/** Numbers each fake carrier sells in area code 415 (and one in 212). */
const STOCK = ['+14155550170', '+14155550171', '+14155550172', '+14155550173', '+12125550174'];

/**
 * A carrier whose numbers API Veil buys through: its fake, the environment that points Veil at it,
 * and how its documented requests name what they ask for.
 */
interface Carrier {
  name: 'vonage' | 'plivo' | 'telnyx';
  /** The carrier's API for Veil's account, or for another (which refuses Veil's credentials). */
  fake(stock: Record<string, string[]>, another?: boolean): FakeNumbersApi;
  /** The account's secret, which no answer or log may show. */
  secret: string;
  env(url: string): Record<string, string>;
  /** Asserts that a search asked, in the carrier's words, for US numbers in 415 with voice and sms, `count` of them. */
  checkSearch(r: NumbersApiRequest, count: number): void;
  /** The number a purchase asked for, E.164. */
  bought(r: NumbersApiRequest): string;
  /** The number a lookup asked about, E.164. */
  lookedUp(r: NumbersApiRequest): string;
  /** Asserts that a release gave back the number `ref` names. */
  checkRelease(r: NumbersApiRequest, ref: string, number: string): void;
}

const PLIVO_ACCOUNT = `/v1/Account/${PLIVO_AUTH_ID}`;

const CARRIERS: Carrier[] = [
  {
    name: 'vonage',
    fake: (stock, another) =>
      new FakeVonageApi(VONAGE_API_KEY, another ? 'another-secret' : VONAGE_API_SECRET, stock),
    secret: VONAGE_API_SECRET,
    env: (url) => ({
      VONAGE_API_KEY,
      VONAGE_API_SECRET,
      VONAGE_SIGNATURE_SECRET,
      VONAGE_REST_URL: url,
    }),
    checkSearch(r, count) {
      assert.equal(r.path, '/number/search');
      assert.equal(r.query.get('country'), 'US');
      assert.equal(r.query.get('pattern'), '1415');
      assert.equal(r.query.get('search_pattern'), '0');
      assert.equal(r.query.get('features'), 'SMS,VOICE');
      assert.equal(r.query.get('size'), String(count));
    },
    bought(r) {
      assert.equal(r.form.get('country'), 'US');
      return `+${r.form.get('msisdn')}`;
    },
    lookedUp: (r) => `+${r.query.get('pattern')}`,
    checkRelease(r, ref, number) {
      assert.equal(r.path, '/number/cancel');
      assert.equal(ref, number.slice(1));
      assert.deepEqual(Object.fromEntries(r.form), { country: 'US', msisdn: number.slice(1) });
    },
  },
  {
    name: 'plivo',
    fake: (stock, another) => new FakePlivoApi(PLIVO_AUTH_ID, another ? 'another-token' : PLIVO_TOKEN, stock),
    secret: PLIVO_TOKEN,
    env: (url) => ({ ...PLIVO_ENV, PLIVO_API_URL: url }),
    checkSearch(r, count) {
      assert.equal(r.path, `${PLIVO_ACCOUNT}/PhoneNumber/`);
      assert.equal(r.query.get('country_iso'), 'US');
      assert.equal(r.query.get('type'), 'local');
      assert.equal(r.query.get('pattern'), '415');
      assert.equal(r.query.get('services'), 'voice,sms');
      assert.ok(Number(r.query.get('limit')) >= count);
    },
    bought(r) {
      const match = new RegExp(`^${PLIVO_ACCOUNT}/PhoneNumber/(\\d+)/$`).exec(r.path);
      assert.ok(match, r.path);
      return `+${match[1]}`;
    },
    lookedUp(r) {
      const match = new RegExp(`^${PLIVO_ACCOUNT}/Number/(\\d+)/$`).exec(r.path);
      assert.ok(match, r.path);
      return `+${match[1]}`;
    },
    checkRelease(r, ref, number) {
      assert.equal(ref, number.slice(1));
      assert.equal(r.path, `${PLIVO_ACCOUNT}/Number/${ref}/`);
    },
  },
  {
    name: 'telnyx',
    fake: (stock, another) => new FakeTelnyxApi(another ? 'KEYanother' : TELNYX_API_KEY, stock),
    secret: TELNYX_API_KEY,
    env: (url) => ({ TELNYX_API_KEY, TELNYX_PUBLIC_KEY: TELNYX_KEYS.publicKey, TELNYX_API_URL: url }),
    checkSearch(r, count) {
      assert.equal(r.path, '/v2/available_phone_numbers');
      assert.equal(r.query.get('filter[country_code]'), 'US');
      assert.equal(r.query.get('filter[national_destination_code]'), '415');
      assert.deepEqual(r.query.get('filter[features]')?.split(',').sort(), ['sms', 'voice']);
      assert.equal(r.query.get('filter[limit]'), String(count));
    },
    bought(r) {
      const body = r.json as { phone_numbers: { phone_number: string }[] };
      assert.equal(body.phone_numbers.length, 1);
      return body.phone_numbers[0]?.phone_number ?? '';
    },
    lookedUp: (r) => r.query.get('filter[phone_number]') ?? '',
    checkRelease(r, ref) {
      assert.match(ref, /^\d+$/);
      assert.equal(r.path, `/v2/phone_numbers/${ref}`);
    },
  },
];

for (const carrier of CARRIERS) {
  const provider = carrier.name;
  // A store for each test: the tests count the pool's and the journal's rows.
  describeStores(`POST /v1/numbers/import (purchase) on ${provider}`, { perTest: true }, (store) => {
    let t: TestApp;
    let fake: FakeNumbersApi;
    let crash: ProcurementHooks['afterBuy'];
    beforeEach(async () => {
      fake = carrier.fake({ US: [...STOCK] });
      await fake.start();
      crash = undefined;
      t = await testApp(store(), carrier.env(fake.url), {
        procurementHooks: { afterBuy: (number) => crash?.(number) },
      });
    });
    afterEach(async () => {
      await t.close();
      await fake.stop();
    });

    const pool = () => t.veil.store.db.selectFrom('numbers').selectAll().orderBy('number').execute();
    const journal = () => t.veil.store.db.selectFrom('purchases').selectAll().orderBy('number').execute();
    const buy = (body: Record<string, unknown>) => t.api('POST', '/v1/numbers/import', body);
    const purchases = () => fake.requests('buy').map((r) => carrier.bought(r));

    it('searches and buys through the API with the account’s credentials, adding the numbers active', async () => {
      const r = await buy({ provider, country: 'US', areaCode: '415', count: 2 });
      assert.equal(r.statusCode, 201, r.body);
      const data = r.json().data as Record<string, unknown>[];
      assert.deepEqual(
        data.map((n) => [n.number, n.provider, n.status, n.region, n.capabilities]),
        [
          ['+14155550170', provider, 'active', '415', ['voice', 'sms']],
          ['+14155550171', provider, 'active', '415', ['voice', 'sms']],
        ],
      );
      assert.deepEqual(r.json().purchase, { requested: 2, bought: 2 });
      const searches = fake.requests('search');
      assert.equal(searches.length, 1);
      carrier.checkSearch(searches[0] as NumbersApiRequest, 2);
      assert.deepEqual(purchases(), ['+14155550170', '+14155550171']);
      assert.equal(fake.requests('other').length, 0);
      for (const request of fake.received) assert.equal(request.authorization, fake.authorization);
      const rows = await journal();
      assert.deepEqual(
        rows.map((p) => [p.number, p.status, p.carrier_ref]),
        ['+14155550170', '+14155550171'].map((n) => {
          const ref = [...fake.owned].find(([, owned]) => owned === n)?.[0];
          assert.ok(ref);
          return [n, 'bought', ref];
        }),
      );
      assert.deepEqual(
        (await pool()).map((n) => [n.number, n.status]),
        [
          ['+14155550170', 'active'],
          ['+14155550171', 'active'],
        ],
      );
    });

    it('keeps what was bought when the carrier refuses midway, and says why it stopped', async () => {
      fake.failPurchase('+14155550171', { status: 400 });
      const r = await buy({ provider, country: 'US', areaCode: '415', count: 3 });
      assert.equal(r.statusCode, 201, r.body);
      assert.deepEqual(
        r.json().data.map((n: { number: string }) => n.number),
        ['+14155550170'],
      );
      assert.equal(r.json().purchase.requested, 3);
      assert.equal(r.json().purchase.bought, 1);
      assert.match(
        r.json().purchase.problem,
        new RegExp(`${provider} refused a purchase: .*HTTP 400.*; bought 1 of the 3`),
      );
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
      const r = await buy({ provider, country: 'US', areaCode: '415', count: 2 });
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().error.code, 'unavailable');
      assert.equal((await pool()).length, 0);
      assert.equal((await journal()).length, 0);
    });

    it('answers 503 pool_exhausted when the carrier has nothing in the area', async () => {
      const r = await buy({ provider, country: 'US', areaCode: '646', count: 2 });
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().error.code, 'pool_exhausted');
      assert.equal(fake.requests('buy').length, 0);
    });

    it('answers 503 unavailable, naming no secret, when the carrier refuses the credentials', async () => {
      // Veil pointed at another account's API: every request is answered 401.
      const other = carrier.fake({ US: [...STOCK] }, true);
      await other.start();
      try {
        await t.close();
        t = await testApp(store(), carrier.env(other.url));
        const r = await buy({ provider, country: 'US', count: 1 });
        assert.equal(r.statusCode, 503, r.body);
        assert.equal(r.json().error.code, 'unavailable');
        assert.match(r.json().error.message, /HTTP 401/);
        assert.equal(other.requests('search').length, 1);
        assert.equal(other.owned.size, 0);
        assert.ok(!r.body.includes(carrier.secret), 'the secret is in the answer');
        assert.ok(!t.logs.join('').includes(carrier.secret), 'the secret is in the log');
      } finally {
        await other.stop();
      }
    });

    describe('a purchase interrupted', () => {
      it('by a lost answer is settled at the next import: added if bought, dropped if not', async () => {
        fake.failPurchase('+14155550170', { status: 500, buyAnyway: true });
        const lost = await buy({ provider, country: 'US', areaCode: '415', count: 1 });
        assert.equal(lost.statusCode, 503, lost.body);
        assert.match(lost.json().error.message, /did not confirm a purchase/);
        fake.failPurchase('+14155550171', { status: 500 });
        const failed = await buy({ provider, country: 'US', areaCode: '415', count: 1 });
        assert.equal(failed.statusCode, 503, failed.body);
        assert.equal((await pool()).length, 0);
        assert.deepEqual(
          (await journal()).map((p) => p.status),
          ['buying', 'buying'],
        );
        const looked = fake.requests('lookup').length;
        t.clock.advance(180);
        const r = await buy({ provider, country: 'US', areaCode: '415', count: 1 });
        assert.equal(r.statusCode, 201, r.body);
        assert.deepEqual(
          (await pool()).map((n) => [n.number, n.status, n.provider]),
          [
            ['+14155550170', 'active', provider],
            ['+14155550171', 'active', provider],
          ],
        );
        // The carrier was asked about both before the import bought anything.
        const asked = fake
          .requests('lookup')
          .slice(looked)
          .map((l) => carrier.lookedUp(l));
        assert.deepEqual(asked.slice(0, 2), ['+14155550170', '+14155550171']);
        // 0170 was bought (its answer lost) and settled into the pool, once; 0171 was not, so it
        // was dropped and bought afresh by the import.
        assert.deepEqual(purchases(), ['+14155550170', '+14155550171', '+14155550171']);
        assert.equal(fake.owned.size, 2);
        assert.deepEqual(
          (await journal()).map((p) => [p.number, p.status]),
          [
            ['+14155550170', 'bought'],
            ['+14155550171', 'bought'],
          ],
        );
        assert.ok(!t.logs.join('').includes('+14155550170'), 'a number is logged in clear');
      });

      it('by a crash between the carrier’s answer and the insert is settled: added once, bought once', async () => {
        crash = (number) => {
          if (number === '+14155550171') throw new Error('crash: the process died here');
        };
        const r = await buy({ provider, country: 'US', areaCode: '415', count: 3 });
        assert.equal(r.statusCode, 500, r.body);
        crash = undefined;
        t.clock.advance(180);
        assert.deepEqual(await t.veil.procurement.settle(), { added: 1, dropped: 0 });
        const list = await t.api('GET', '/v1/numbers');
        assert.deepEqual(
          list.json().data.map((n: Record<string, unknown>) => [n.number, n.status, n.capabilities]),
          [
            ['+14155550170', 'active', ['voice', 'sms']],
            ['+14155550171', 'active', ['voice', 'sms']],
          ],
        );
        assert.deepEqual(purchases(), ['+14155550170', '+14155550171']);
        const [row] = (await journal()).filter((p) => p.number === '+14155550171');
        assert.equal(row?.status, 'bought');
        assert.equal(row?.carrier_ref, [...fake.owned].find(([, n]) => n === '+14155550171')?.[0]);
        assert.deepEqual(await t.veil.procurement.settle(), { added: 0, dropped: 0 });
      });
    });

    describe('DELETE /v1/numbers/:id', () => {
      const bought = async () => {
        const r = await buy({ provider, country: 'US', areaCode: '415', count: 1 });
        assert.equal(r.statusCode, 201, r.body);
        return r.json().data[0] as { id: string; number: string };
      };

      it('releases a bought number at the carrier when it retires', async () => {
        const n = await bought();
        const [ref] = fake.owned.keys();
        assert.ok(ref);
        const r = await t.api('DELETE', `/v1/numbers/${n.id}`);
        assert.equal(r.json().status, 'retired');
        const releases = fake.requests('release');
        assert.equal(releases.length, 1);
        carrier.checkRelease(releases[0] as NumbersApiRequest, ref, n.number);
        assert.equal(releases[0]?.authorization, fake.authorization);
        assert.equal(fake.owned.size, 0);
        assert.deepEqual(
          (await journal()).map((p) => p.status),
          ['released'],
        );
      });

      it('counts a number the account no longer has as released', async () => {
        const n = await bought();
        fake.owned.clear(); // given back in the carrier's console meanwhile
        const r = await t.api('DELETE', `/v1/numbers/${n.id}`);
        assert.equal(r.json().status, 'retired');
        assert.equal(fake.requests('release').length, 1);
        assert.deepEqual(
          (await journal()).map((p) => [p.status, p.release_attempts]),
          [['released', 0]],
        );
      });

      it('keeps the number retired when the carrier fails, logs it masked, and tries again', async () => {
        const n = await bought();
        fake.failReleases(500);
        const r = await t.api('DELETE', `/v1/numbers/${n.id}`);
        assert.equal(r.statusCode, 200, r.body);
        assert.equal(r.json().status, 'retired');
        assert.equal(fake.owned.size, 1);
        const logs = t.logs.join('');
        assert.match(logs, /could not release a retired number at its carrier/);
        assert.match(logs, /\+1415\*+70/);
        assert.ok(!logs.includes(n.number), 'the number is logged in clear');
        assert.ok(!logs.includes(n.number.slice(1)), 'the number is logged in clear, without +');
        assert.deepEqual(
          (await journal()).map((p) => [p.status, p.release_attempts]),
          [['bought', 1]],
        );
        assert.equal(await t.veil.procurement.releaseRetired(), 1);
        assert.equal(fake.owned.size, 0);
        assert.equal(fake.requests('release').length, 2);
        assert.deepEqual(
          (await journal()).map((p) => p.status),
          ['released'],
        );
      });
    });
  });
}
