import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { type TestApp, testApp } from '../../support/app.ts';
import { describeStores, TEST_KEY_ENV } from '../../support/stores.ts';

const URL = 'https://app.example.test/veil/events';

/** A second tenant with an admin key of its own; its secret. */
async function otherTenant(t: TestApp): Promise<string> {
  await t.veil.store.db
    .insertInto('tenants')
    .values({ id: 'other', name: 'other', created_at: t.clock.now })
    .execute();
  return (await t.veil.keys.create('other', 'other app', ['admin'])).secret;
}

describeStores('/v1/webhook-endpoints', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store());
  });
  afterEach(async () => {
    await t.close();
  });

  const rows = () => t.veil.store.db.selectFrom('webhook_endpoints').selectAll().orderBy('id').execute();

  describe('POST /v1/webhook-endpoints', () => {
    it('makes an endpoint (201) with a Standard Webhooks secret shown this once', async () => {
      const r = await t.api('POST', '/v1/webhook-endpoints', { url: URL, events: ['session.created'] });
      assert.equal(r.statusCode, 201, r.body);
      const body = r.json();
      assert.match(body.id, /^whe_/);
      assert.equal(body.url, URL);
      assert.deepEqual(body.events, ['session.created']);
      assert.equal(body.createdAt, new Date(t.clock.now).toISOString());
      assert.match(body.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
      assert.ok(Buffer.from(body.secret.slice('whsec_'.length), 'base64').length >= 24);
      // The standardwebhooks package reads it, and it is the one kept.
      new Webhook(body.secret);
      const [row] = await rows();
      assert.equal(row?.tenant_id, 'default');
      assert.equal(row?.secret, body.secret);

      const all = await t.api('POST', '/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook' });
      assert.equal(all.statusCode, 201, all.body);
      assert.equal(all.json().events, null, 'no events given: all of them');
      assert.notEqual(all.json().secret, body.secret);
    });

    it('refuses bad URLs, unknown or no event types and unknown fields with 400 naming the field', async () => {
      const cases: [unknown, string, RegExp?][] = [
        [{ url: 'ftp://app.example.test/x' }, 'url'],
        [{ url: 'not a url' }, 'url'],
        [{ url: 'https://user:pw@app.example.test/x' }, 'url'],
        [{ url: `https://app.example.test/${'x'.repeat(2100)}` }, 'url'],
        [{}, 'url'],
        [{ url: URL, events: [] }, 'events'],
        [{ url: URL, events: ['session.created', 'session.exploded'] }, 'events/1', /session\.exploded/],
        [{ url: URL, secret: 'whsec_mine' }, 'secret'],
      ];
      for (const [body, field, message] of cases) {
        const r = await t.api('POST', '/v1/webhook-endpoints', body);
        assert.equal(r.statusCode, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.body}`);
        assert.equal(r.json().error.code, 'invalid_request');
        assert.equal(r.json().error.field, field, r.body);
        if (message) assert.match(r.json().error.message, message);
      }
      assert.deepEqual(await rows(), []);
    });

    it('takes https only in production: events carry real numbers', async () => {
      await t.close();
      t = await testApp(store(), { NODE_ENV: 'production', ...TEST_KEY_ENV });
      const r = await t.api('POST', '/v1/webhook-endpoints', { url: 'http://app.example.test/x' });
      assert.equal(r.statusCode, 400, r.body);
      assert.equal(r.json().error.field, 'url');
      assert.match(r.json().error.message, /https/);
      assert.equal((await t.api('POST', '/v1/webhook-endpoints', { url: URL })).statusCode, 201);
    });
  });

  describe('GET and DELETE /v1/webhook-endpoints', () => {
    it('lists, reads and deletes the tenant’s endpoints, never showing a secret again', async () => {
      const made = [];
      for (let i = 0; i < 3; i++) {
        t.clock.advance(1);
        made.push((await t.api('POST', '/v1/webhook-endpoints', { url: `${URL}/${i}` })).json());
      }
      const first = await t.api('GET', '/v1/webhook-endpoints?limit=2');
      assert.equal(first.statusCode, 200, first.body);
      const { secret: _, ...shown } = made[0];
      assert.deepEqual(first.json().data[0], shown);
      assert.ok(!first.body.includes('whsec_'), 'a secret is in the list');
      assert.equal(first.json().nextCursor, made[1].id);
      const second = await t.api('GET', `/v1/webhook-endpoints?cursor=${first.json().nextCursor}`);
      assert.deepEqual(
        second.json().data.map((e: { id: string }) => e.id),
        [made[2].id],
      );
      assert.equal(second.json().nextCursor, null);

      const one = await t.api('GET', `/v1/webhook-endpoints/${made[1].id}`);
      assert.equal(one.statusCode, 200, one.body);
      assert.ok(!one.body.includes('whsec_'));
      assert.equal(one.json().url, `${URL}/1`);

      const gone = await t.api('DELETE', `/v1/webhook-endpoints/${made[1].id}`);
      assert.equal(gone.statusCode, 204, gone.body);
      assert.equal((await t.api('GET', `/v1/webhook-endpoints/${made[1].id}`)).statusCode, 404);
      assert.equal((await t.api('DELETE', `/v1/webhook-endpoints/${made[1].id}`)).statusCode, 404);
      const left = (await t.api('GET', '/v1/webhook-endpoints')).json().data.map((e: { id: string }) => e.id);
      assert.deepEqual(left, [made[0].id, made[2].id]);
    });

    it('keeps tenants apart: another tenant’s endpoint is 404 on every verb', async () => {
      const mine = (await t.api('POST', '/v1/webhook-endpoints', { url: URL })).json();
      const theirKey = await otherTenant(t);
      assert.deepEqual((await t.api('GET', '/v1/webhook-endpoints', undefined, theirKey)).json().data, []);
      for (const method of ['GET', 'DELETE'] as const) {
        const r = await t.api(method, `/v1/webhook-endpoints/${mine.id}`, undefined, theirKey);
        assert.equal(r.statusCode, 404, `${method}: ${r.body}`);
        assert.equal(r.json().error.code, 'not_found');
      }
      assert.equal((await t.api('GET', `/v1/webhook-endpoints/${mine.id}`)).statusCode, 200);
    });

    it('needs an admin key', async () => {
      const reader = (await t.veil.keys.create('default', 'reader', ['read'])).secret;
      for (const [method, url] of [
        ['GET', '/v1/webhook-endpoints'],
        ['POST', '/v1/webhook-endpoints'],
      ] as const) {
        const r = await t.api(method, url, method === 'POST' ? { url: URL } : undefined, reader);
        assert.equal(r.statusCode, 403, r.body);
      }
    });
  });
});
