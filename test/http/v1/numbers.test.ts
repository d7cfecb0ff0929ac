import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

// A store for each test: the tests count the pool's rows and retire its numbers.
describeStores('/v1/numbers', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store());
  });
  afterEach(async () => {
    await t.close();
  });
  const add = async (numbers: Record<string, unknown>[]) =>
    assert.equal((await t.api('POST', '/v1/numbers/import', numbers)).statusCode, 201);

  const count = async () =>
    Number(
      (
        await t.veil.store.db
          .selectFrom('numbers')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  describe('POST /v1/numbers', () => {
    it('adds a number with country and region derived from it', async () => {
      const r = await t.api('POST', '/v1/numbers', {
        number: '+14155550100',
        provider: 'sim',
        tags: { city: 'sf' },
      });
      assert.equal(r.statusCode, 201, r.body);
      const n = r.json();
      assert.equal(n.number, '+14155550100');
      assert.equal(n.country, 'US');
      assert.equal(n.region, '415');
      assert.deepEqual(n.capabilities, ['voice', 'sms']);
      assert.equal(n.status, 'active');
      assert.equal(n.load, 0);
      assert.deepEqual(n.tags, { city: 'sf' });
    });

    it('answers 409 for a number already in the pool, and adds nothing', async () => {
      await add([{ number: '+14155550100', provider: 'sim' }]);
      const before = await count();
      const r = await t.api('POST', '/v1/numbers', { number: '+14155550100', provider: 'sim' });
      assert.equal(r.statusCode, 409);
      assert.equal(r.json().error.code, 'conflict');
      assert.equal(await count(), before);
    });

    it('refuses a malformed number, an unknown provider and unknown fields with 400', async () => {
      const before = await count();
      for (const [body, field] of [
        [{ number: '4155550100', provider: 'sim' }, 'number'],
        [{ number: '+1415555', provider: 'sim' }, 'number'],
        [{ number: '+14155550109', provider: 'nope' }, 'provider'],
        [{ number: '+14155550109', provider: 'sim', colour: 'red' }, 'colour'],
        [{ number: '+14155550109', provider: 'sim', maxSessions: 0 }, 'maxSessions'],
      ] as const) {
        const r = await t.api('POST', '/v1/numbers', body);
        assert.equal(r.statusCode, 400, `${JSON.stringify(body)} → ${r.body}`);
        assert.equal(r.json().error.code, 'invalid_request');
        assert.equal(r.json().error.field, field);
      }
      assert.equal(await count(), before);
    });

    it('needs an admin key', async () => {
      const r = await t.api('POST', '/v1/numbers', { number: '+14155550108', provider: 'sim' }, 'wrong-key');
      assert.equal(r.statusCode, 401);
      assert.equal(r.json().error.code, 'unauthorized');
    });
  });

  describe('POST /v1/numbers/import', () => {
    it('adds all the numbers in one go', async () => {
      const r = await t.api('POST', '/v1/numbers/import', [
        { number: '+14155550101', provider: 'sim' },
        { number: '+442079460101', provider: 'twilio', capabilities: ['voice'] },
      ]);
      assert.equal(r.statusCode, 201, r.body);
      assert.deepEqual(
        r.json().data.map((n: { number: string; country: string }) => [n.number, n.country]),
        [
          ['+14155550101', 'US'],
          ['+442079460101', 'GB'],
        ],
      );
    });

    it('adds none when one entry is a duplicate, naming it', async () => {
      await add([{ number: '+14155550101', provider: 'sim' }]);
      const before = await count();
      const r = await t.api('POST', '/v1/numbers/import', [
        { number: '+14155550102', provider: 'sim' },
        { number: '+14155550101', provider: 'sim' },
      ]);
      assert.equal(r.statusCode, 409);
      assert.match(r.json().error.message, /^1: /);
      assert.equal(await count(), before);
    });
  });

  describe('GET /v1/numbers', () => {
    beforeEach(() =>
      add([
        { number: '+14155550100', provider: 'sim' },
        { number: '+14155550101', provider: 'sim' },
        { number: '+442079460101', provider: 'twilio', capabilities: ['voice'] },
      ]),
    );

    it('lists with filters and cursor pagination', async () => {
      const first = await t.api('GET', '/v1/numbers?limit=2');
      assert.equal(first.statusCode, 200);
      assert.equal(first.json().data.length, 2);
      assert.ok(first.json().nextCursor);
      const second = await t.api('GET', `/v1/numbers?limit=2&cursor=${first.json().nextCursor}`);
      const all = [...first.json().data, ...second.json().data].map((n: { number: string }) => n.number);
      assert.equal(new Set(all).size, all.length);
      const gb = await t.api('GET', '/v1/numbers?country=GB');
      assert.deepEqual(
        gb.json().data.map((n: { number: string }) => n.number),
        ['+442079460101'],
      );
      const twilio = await t.api('GET', '/v1/numbers?provider=twilio');
      assert.equal(twilio.json().data.length, 1);
    });
  });

  describe('PATCH and DELETE /v1/numbers/:id', () => {
    beforeEach(() =>
      add([
        { number: '+14155550100', provider: 'sim' },
        { number: '+14155550101', provider: 'sim' },
      ]),
    );

    it('changes tags and cap, then drains a number in use and retires it when its session ends', async () => {
      const list = await t.api('GET', '/v1/numbers?country=US&status=active');
      const ids = list.json().data.map((n: { id: string }) => n.id);
      // Only one US number stays active, so the session must use it.
      for (const id of ids.slice(1))
        assert.equal((await t.api('DELETE', `/v1/numbers/${id}`)).json().status, 'retired');
      const id = ids[0];
      const patched = await t.api('PATCH', `/v1/numbers/${id}`, { tags: { city: 'la' }, maxSessions: 5 });
      assert.equal(patched.statusCode, 200, patched.body);
      assert.deepEqual(patched.json().tags, { city: 'la' });
      assert.equal(patched.json().maxSessions, 5);

      const s = await t.api('POST', '/v1/sessions', {
        participants: [{ number: '+14155550123' }, { number: '+14155550187' }],
      });
      assert.equal(s.statusCode, 201, s.body);
      const drained = await t.api('DELETE', `/v1/numbers/${id}`);
      assert.equal(drained.json().status, 'draining');
      assert.equal(drained.json().load, 1);
      // A draining number takes no new session.
      const refused = await t.api('POST', '/v1/sessions', {
        participants: [{ number: '+14155550124' }, { number: '+14155550188' }],
      });
      assert.equal(refused.statusCode, 503);
      assert.equal(refused.json().error.code, 'pool_exhausted');
      await t.api('DELETE', `/v1/sessions/${s.json().id}`);
      const after = await t.api('GET', `/v1/numbers/${id}`);
      assert.equal(after.json().status, 'retired');
      assert.equal(after.json().load, 0);
    });

    it('answers 404 for an unknown id', async () => {
      assert.equal((await t.api('PATCH', '/v1/numbers/num_nope', { tags: {} })).statusCode, 404);
      assert.equal((await t.api('DELETE', '/v1/numbers/num_nope')).statusCode, 404);
    });
  });
});
