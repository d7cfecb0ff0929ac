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

  describe('GET /v1/pool', () => {
    beforeEach(() =>
      add([
        { number: '+14155550100', provider: 'sim' },
        { number: '+14155550101', provider: 'sim' },
        { number: '+14155550102', provider: 'sim', maxSessions: 1 },
        { number: '+12125550100', provider: 'sim' },
        { number: '+442079460101', provider: 'twilio', capabilities: ['voice'] },
      ]),
    );
    const pool = async (key?: string) => {
      const r = await t.api('GET', '/v1/pool', undefined, key);
      assert.equal(r.statusCode, 200, r.body);
      return r.json() as { data: Record<string, unknown>[]; nextCursor: null };
    };
    const group = (
      provider: string,
      country: string,
      region: string,
      counts: { active: number; inUse: number; free: number; draining: number },
    ) => ({ provider, country, region, ...counts });

    it('counts numbers free, in use and draining by country, region and carrier', async () => {
      assert.deepEqual(await pool(), {
        data: [
          group('twilio', 'GB', '20', { active: 1, inUse: 0, free: 1, draining: 0 }),
          group('sim', 'US', '212', { active: 1, inUse: 0, free: 1, draining: 0 }),
          group('sim', 'US', '415', { active: 3, inUse: 0, free: 3, draining: 0 }),
        ],
        nextCursor: null,
      });
      // Take the capped number for one person, and another 415 number for the other.
      const s = await t.api('POST', '/v1/sessions', {
        participants: [{ number: '+14155550123', proxyNumber: '+14155550102' }, { number: '+14155550187' }],
      });
      assert.equal(s.statusCode, 201, s.body);
      const held = (s.json().participants as { proxyNumber: string }[]).map((p) => p.proxyNumber);
      assert.equal(new Set(held).size, 2);
      assert.deepEqual(
        (await pool()).data.at(-1),
        group('sim', 'US', '415', { active: 3, inUse: 2, free: 2, draining: 0 }),
      );
      // Retiring a number held by the session drains it; one nobody holds leaves the counts.
      const numbers = (await t.api('GET', '/v1/numbers?country=US')).json().data as {
        id: string;
        number: string;
      }[];
      const other = numbers.find((n) => n.number === held.find((h) => h !== '+14155550102'));
      assert.ok(other);
      assert.equal((await t.api('DELETE', `/v1/numbers/${other.id}`)).json().status, 'draining');
      assert.deepEqual(
        (await pool()).data.at(-1),
        group('sim', 'US', '415', { active: 2, inUse: 1, free: 1, draining: 1 }),
      );
      const idle = numbers.find((n) => n.number === '+12125550100');
      assert.ok(idle);
      assert.equal((await t.api('DELETE', `/v1/numbers/${idle.id}`)).json().status, 'retired');
      assert.equal((await pool()).data.length, 2, 'a retired number is counted nowhere');
    });

    it('shows a tenant its own pool only, to a read key; a route key gets 403', async () => {
      const tenant = (await t.api('POST', '/v1/tenants', { name: 'other' })).json().id as string;
      const key = async (scopes: string[]) =>
        (await t.api('POST', '/v1/keys', { name: 'k', scopes, tenantId: tenant })).json().key as string;
      assert.deepEqual(await pool(await key(['read'])), { data: [], nextCursor: null });
      const refused = await t.api('GET', '/v1/pool', undefined, await key(['route']));
      assert.equal(refused.statusCode, 403);
      assert.equal(refused.json().error.code, 'forbidden');
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
