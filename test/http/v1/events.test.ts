import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

describeStores('/v1/events', (store) => {
  let t: TestApp;
  /** The events of three sessions made in turn: oldest first, as the outbox lists them. */
  let made: string[];
  before(async () => {
    t = await testApp(store());
    await t.api('POST', '/v1/numbers/import', [
      { number: '+14155550200', provider: 'sim' },
      { number: '+14155550201', provider: 'sim' },
    ]);
    for (let i = 0; i < 3; i++) {
      const r = await t.api('POST', '/v1/sessions', {
        externalId: `order-${i}`,
        participants: [{ number: `+1415555011${i}` }, { number: `+1415555012${i}` }],
      });
      assert.equal(r.statusCode, 201, r.body);
    }
    made = (await t.api('GET', '/v1/events?limit=100')).json().data.map((e: { id: string }) => e.id);
    assert.equal(made.length, 3);
  });
  after(() => t.close());

  const ids = async (query: string) => {
    const r = await t.api('GET', `/v1/events?${query}`);
    assert.equal(r.statusCode, 200, r.body);
    const page = r.json() as { data: { id: string }[]; nextCursor: string | null };
    return { ids: page.data.map((e) => e.id), nextCursor: page.nextCursor };
  };

  describe('GET /v1/events?order=newest', () => {
    it('lists the newest first; its cursor leads to older ones', async () => {
      const [first, second, third] = made;
      const page = await ids('order=newest&limit=2');
      assert.deepEqual(page.ids, [third, second]);
      assert.equal(page.nextCursor, second);
      assert.deepEqual(await ids(`order=newest&limit=2&cursor=${page.nextCursor}`), {
        ids: [first],
        nextCursor: null,
      });
    });

    it('still bounds the list from below with after', async () => {
      const [first, second, third] = made;
      assert.deepEqual((await ids(`order=newest&after=${first}`)).ids, [third, second]);
      assert.deepEqual((await ids(`order=oldest&after=${first}`)).ids, [second, third]);
    });
  });
});
