import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ConfigError } from '../../src/config.ts';
import { BUDGET_WINDOW_MS } from '../../src/domain/replenish.ts';
import { payloadOf, type TestApp, TWILIO_SID, TWILIO_TOKEN, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';
import { FakeTwilioApi } from '../support/twilio-api.ts';

/** Numbers the fake Twilio sells in area code 415. */
const STOCK = Array.from({ length: 12 }, (_, i) => `+141555501${70 + i}`);

describeStores('the replenisher', { perTest: true }, (store) => {
  let t: TestApp;
  let fake: FakeTwilioApi;
  const start = async (env: Record<string, string>) => {
    fake = new FakeTwilioApi(TWILIO_SID, TWILIO_TOKEN, { US: [...STOCK] });
    await fake.start();
    t = await testApp(store(), { TWILIO_API_URL: fake.url, ...env });
  };
  afterEach(async () => {
    await t?.close();
    await fake?.stop();
  });

  const events = () =>
    t.veil.store.db
      .selectFrom('events')
      .selectAll()
      .where('type', '=', 'pool.low')
      .orderBy('id')
      .execute()
      .then((rows) => rows.map((r) => payloadOf(t.veil.store.db, r.payload)));
  const pool = () =>
    t.veil.store.db
      .selectFrom('numbers')
      .selectAll()
      .where('status', '=', 'active')
      .orderBy('number')
      .execute();
  const journal = () => t.veil.store.db.selectFrom('purchases').selectAll().orderBy('number').execute();
  const add = async (numbers: string[], extra: Record<string, unknown> = {}) => {
    const r = await t.api(
      'POST',
      '/v1/numbers/import',
      numbers.map((number) => ({ number, provider: 'sim', ...extra })),
    );
    assert.equal(r.statusCode, 201, r.body);
    return r.json().data as { id: string; number: string }[];
  };
  const createSession = (i: number) =>
    t.api('POST', '/v1/sessions', {
      participants: [
        { number: `+1415200${String(1000 + 2 * i)}` },
        { number: `+1415200${String(1001 + 2 * i)}` },
      ],
    });

  describe('alerting (a rule without a carrier)', () => {
    beforeEach(() => start({ VEIL_REPLENISH: 'US/415=2' }));

    it('writes one pool.low when free numbers fall below the mark, and again only after they recovered', async () => {
      const numbers = await add(['+14155550100', '+14155550101', '+14155550102']);
      assert.deepEqual(await t.veil.replenisher.check(), [
        { scope: 'US/415', free: 3, minFree: 2, low: false, bought: 0 },
      ]);
      assert.deepEqual(await events(), []);

      // Two numbers taken out: one free, below the mark of two.
      for (const n of numbers.slice(0, 2)) {
        assert.equal((await t.api('DELETE', `/v1/numbers/${n.id}`)).statusCode, 200);
      }
      assert.deepEqual(await t.veil.replenisher.check(), [
        { scope: 'US/415', free: 1, minFree: 2, low: true, bought: 0 },
      ]);
      await t.veil.replenisher.check(); // still low: no second event
      assert.deepEqual(await events(), [
        {
          scope: 'US/415',
          country: 'US',
          region: '415',
          free: 1,
          minFree: 2,
          provider: null,
          buying: 0,
          budgetLeft: 20,
        },
      ]);
      assert.ok(t.logs.some((l) => l.includes('the pool is running low')));

      await add(['+14155550103', '+14155550104']);
      assert.equal((await t.veil.replenisher.check())?.[0]?.low, false);
      assert.ok(t.logs.some((l) => l.includes('above its low-water mark')));
      await t.api('DELETE', `/v1/numbers/${numbers[2]?.id}`);
      const more = await pool();
      for (const n of more.slice(0, 2)) await t.api('DELETE', `/v1/numbers/${n.id}`);
      await t.veil.replenisher.check();
      assert.equal((await events()).length, 2, 'a second fall is a second event');
    });

    it('warns before the pool runs out: pool.low is written before the first pool_exhausted', async () => {
      // Four numbers that carry one session each; each session takes one or two of them.
      await add(['+14155550100', '+14155550101', '+14155550102', '+14155550103'], { maxSessions: 1 });
      let exhaustedAt: number | undefined;
      for (let i = 0; i < 6 && exhaustedAt === undefined; i++) {
        const r = await createSession(i);
        if (r.statusCode === 503) exhaustedAt = i;
        else assert.equal(r.statusCode, 201, r.body);
        await t.veil.replenisher.check();
      }
      assert.ok(exhaustedAt !== undefined, 'the pool never ran out');
      const low = await events();
      assert.equal(low.length, 1);
      assert.ok(low[0].free < 2 && low[0].free >= 0);
      // The free count is what the rows say: active, unowned, under the cap.
      const rows = await pool();
      const free = rows.filter(
        (n) => n.dedicated_to === null && Number(n.load) < Number(n.max_sessions),
      ).length;
      assert.equal((await t.veil.replenisher.check())?.[0]?.free, free);
    });

    it('counts only the scope’s numbers: another area code or country is not free here', async () => {
      await add(['+14155550100', '+12125550100', '+442079460000']);
      assert.deepEqual(
        (await t.veil.replenisher.check())?.map((r) => r.free),
        [1],
      );
    });
  });

  describe('buying (a rule with a carrier)', () => {
    beforeEach(() =>
      start({
        VEIL_REPLENISH: 'US/415=3@twilio',
        VEIL_REPLENISH_BATCH: '2',
        VEIL_REPLENISH_BUDGET: '5',
      }),
    );

    it('buys whole batches through the carrier to get back above the mark, within the budget', async () => {
      const [report] = (await t.veil.replenisher.check()) ?? [];
      assert.deepEqual(report, { scope: 'US/415', free: 0, minFree: 3, low: true, bought: 4 });
      const bought = await pool();
      assert.equal(bought.length, 4);
      assert.ok(bought.every((n) => n.provider === 'twilio' && n.region === '415'));
      assert.ok((await journal()).every((p) => p.origin === 'replenish' && p.status === 'bought'));
      assert.deepEqual(
        (await events()).map((e) => [e.free, e.provider, e.buying, e.budgetLeft]),
        [[0, 'twilio', 4, 5]],
      );
      assert.equal((await t.veil.replenisher.check())?.[0]?.low, false);

      // An operator's import does not count against the budget.
      const imported = await t.api('POST', '/v1/numbers/import', {
        provider: 'twilio',
        country: 'US',
        areaCode: '415',
        count: 1,
      });
      assert.equal(imported.statusCode, 201, imported.body);

      // Three retired (released at Twilio): two free, below three. A batch of two would do, but
      // one is all the budget has left.
      for (const n of (await pool()).slice(0, 4)) await t.api('DELETE', `/v1/numbers/${n.id}`);
      const [second] = (await t.veil.replenisher.check()) ?? [];
      assert.deepEqual(second, { scope: 'US/415', free: 1, minFree: 3, low: true, bought: 1 });

      // Spent: the scope stays low, nothing is bought, the operator is told.
      for (const n of await pool()) await t.api('DELETE', `/v1/numbers/${n.id}`);
      const [third] = (await t.veil.replenisher.check()) ?? [];
      assert.equal(third?.bought, 0);
      assert.match(third?.problem ?? '', /budget of 5 numbers in 30 days is spent/);
      assert.ok(t.logs.some((l) => l.includes('"level":50') && l.includes('is spent')));
      const creates = fake.requests('create').length;
      assert.equal(creates, 4 + 1 + 1);

      // Thirty days later the budget is there again.
      t.clock.advance(BUDGET_WINDOW_MS / 1000 + 1);
      assert.equal((await t.veil.replenisher.check())?.[0]?.bought, 4);
    });

    it('reports a carrier that fails, keeps the alert, and logs no number in clear', async () => {
      fake.failPurchase(STOCK[0] as string, { status: 400 });
      const [report] = (await t.veil.replenisher.check()) ?? [];
      assert.equal(report?.bought, 0);
      assert.match(report?.problem ?? '', /twilio refused a purchase/);
      assert.equal((await events()).length, 1);
      assert.ok(t.logs.some((l) => l.includes('could not buy all the numbers')));
      for (const n of STOCK) assert.ok(!t.logs.join('').includes(n), `${n} logged in clear`);
      // The next check tries again, and buys.
      assert.equal((await t.veil.replenisher.check())?.[0]?.bought, 4);
      assert.equal((await events()).length, 1, 'still the same fall: one event');
    });

    it('checks on one instance at a time: two checks at once buy one batch', async () => {
      const [a, b] = await Promise.all([t.veil.replenisher.check(), t.veil.replenisher.check()]);
      assert.ok((a === undefined) !== (b === undefined), 'exactly one check ran');
      assert.equal((await pool()).length, 4);
      assert.equal(fake.requests('create').length, 4);
      // The lease is given back: the next check runs.
      assert.notEqual(await t.veil.replenisher.check(), undefined);
    });
  });

  it('refuses to start when a rule names a carrier that cannot buy here', async () => {
    await assert.rejects(
      testApp(store(), { VEIL_REPLENISH: 'GB=5@vonage' }),
      (error: unknown) =>
        error instanceof ConfigError && /VEIL_REPLENISH.*vonage, which is not enabled/.test(error.message),
    );
  });
});
