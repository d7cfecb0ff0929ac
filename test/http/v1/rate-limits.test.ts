import assert from 'node:assert/strict';
import { after, before, beforeEach, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { type TestApp, TWILIO_SID, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';
import { openSession, postTwilio } from '../../support/twilio.ts';

/** Small budgets, so that a test can use one up. */
const PER_MINUTE = 6;
const ROUTES_PER_MINUTE = 8;
const POOL = ['+14155550150', '+14155550151'];
const A = '+14155550123';
const B = '+14155550187';

/** The API's error body for a limit reached, with the rate-limit headers. */
function assertLimited(r: LightMyRequestResponse, limit: number) {
  assert.equal(r.statusCode, 429, r.body);
  const body = r.json();
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, 'rate_limited');
  assert.match(body.error.message, /requests/);
  assert.equal(r.headers['x-ratelimit-limit'], String(limit));
  assert.equal(r.headers['x-ratelimit-remaining'], '0');
  const retryAfter = Number(r.headers['retry-after']);
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `retry-after ${r.headers['retry-after']}`);
  assert.equal(r.headers['x-ratelimit-reset'], String(retryAfter));
}

/**
 * Each API key's requests per minute (VEIL_RATE_LIMIT_PER_MINUTE), and its routes apart
 * (VEIL_RATE_LIMIT_ROUTE_PER_MINUTE): beyond, 429 rate_limited with the rate-limit headers and
 * nothing done; another key is not slowed; requests without a valid key are refused before they
 * are counted; carriers' signed webhooks are not counted at all.
 */
describeStores('per-key rate limits', (store) => {
  let t: TestApp;
  let keyA: string;
  let keyB: string;
  /** A's proxy in the session of A and B. */
  let proxy: string;
  before(async () => {
    t = await testApp(store(), {
      VEIL_RATE_LIMIT_PER_MINUTE: String(PER_MINUTE),
      VEIL_RATE_LIMIT_ROUTE_PER_MINUTE: String(ROUTES_PER_MINUTE),
    });
    await t.veil.numbers.import(
      'default',
      POOL.map((number) => ({ number, provider: 'twilio' })),
    );
    proxy = (await openSession(t, [A, B])).proxyOf.get(A) as string;
  });
  after(() => t.close());
  // Fresh keys for each test, made without a request: each test's budgets are its own.
  beforeEach(async () => {
    keyA = (await t.veil.keys.create('default', 'a', ['admin'])).secret;
    keyB = (await t.veil.keys.create('default', 'b', ['admin'])).secret;
  });

  it('tells a key where it stands on every answer, and refuses it with 429 once its minute is used up', async () => {
    for (let i = 1; i <= PER_MINUTE; i++) {
      const r = await t.api('GET', '/v1/sessions', undefined, keyA);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.headers['x-ratelimit-limit'], String(PER_MINUTE));
      assert.equal(r.headers['x-ratelimit-remaining'], String(PER_MINUTE - i));
      assert.ok(Number(r.headers['x-ratelimit-reset']) > 0);
    }
    assertLimited(await t.api('GET', '/v1/sessions', undefined, keyA), PER_MINUTE);
    // Refused before the handler: nothing written.
    const blocked = await t.api('POST', '/v1/blocklist', { number: '+14155550999' }, keyA);
    assertLimited(blocked, PER_MINUTE);
    assert.equal((await t.veil.store.db.selectFrom('blocklist').selectAll().execute()).length, 0);
  });

  it("one key's burst never limits another key: A exhausted, B still 2xx", async () => {
    const burst = await Promise.all(
      Array.from({ length: PER_MINUTE + 4 }, () => t.api('GET', '/v1/numbers', undefined, keyA)),
    );
    assert.deepEqual(burst.map((r) => r.statusCode).sort(), [
      ...Array(PER_MINUTE).fill(200),
      ...Array(4).fill(429),
    ]);
    for (let i = 0; i < PER_MINUTE; i++) {
      const r = await t.api('GET', '/v1/sessions', undefined, keyB);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.headers['x-ratelimit-remaining'], String(PER_MINUTE - 1 - i));
    }
    assertLimited(await t.api('GET', '/v1/numbers', undefined, keyA), PER_MINUTE);
    assertLimited(await t.api('GET', '/v1/numbers', undefined, keyB), PER_MINUTE);
    // Another key, untouched by both.
    const keyC = (await t.veil.keys.create('default', 'c', ['read'])).secret;
    assert.equal((await t.api('GET', '/v1/numbers', undefined, keyC)).statusCode, 200);
  });

  it('counts POST /v1/route apart: a key out of API requests still routes, and out of routes still reads', async () => {
    const route = (key: string) => t.api('POST', '/v1/route', { from: A, to: proxy, channel: 'voice' }, key);
    for (let i = 0; i < PER_MINUTE; i++)
      assert.equal((await t.api('GET', '/v1/numbers', undefined, keyA)).statusCode, 200);
    assertLimited(await t.api('GET', '/v1/numbers', undefined, keyA), PER_MINUTE);
    for (let i = 1; i <= ROUTES_PER_MINUTE; i++) {
      const r = await route(keyA);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().action, 'connect');
      assert.equal(r.headers['x-ratelimit-remaining'], String(ROUTES_PER_MINUTE - i));
    }
    await t.veil.interactions.flush();
    const logged = async () =>
      (await t.veil.store.db.selectFrom('interactions').selectAll().execute()).length;
    const before = await logged();
    assertLimited(await route(keyA), ROUTES_PER_MINUTE);
    await t.veil.interactions.flush();
    assert.equal(await logged(), before, 'a refused route was logged');
    // B's routes and the admin key's reads are their own.
    assert.equal((await route(keyB)).json().action, 'connect');
    assert.equal((await t.api('GET', '/v1/numbers', undefined, keyB)).statusCode, 200);
  });

  it('refuses a request without a valid key with 401 before counting it, and answers 401 however many come', async () => {
    for (let i = 0; i < PER_MINUTE * 2; i++) {
      const r = await t.api('GET', '/v1/numbers', undefined, 'not-a-key-0123456789');
      assert.equal(r.statusCode, 401, r.body);
      assert.equal(r.headers['x-ratelimit-limit'], undefined);
    }
    const r = await t.api('GET', '/v1/numbers', undefined, keyA);
    assert.equal(r.headers['x-ratelimit-remaining'], String(PER_MINUTE - 1));
  });

  it("does not count carriers' signed webhooks: a live call's webhook is never refused for a budget", async () => {
    for (let i = 0; i < PER_MINUTE + ROUTES_PER_MINUTE; i++) {
      const r = await postTwilio(t, '/webhooks/twilio/voice', {
        From: A,
        To: proxy,
        CallSid: `CA${String(i).padStart(32, '0')}`,
        AccountSid: TWILIO_SID,
      });
      assert.equal(r.statusCode, 200, r.body);
      assert.match(r.body, /<Dial/);
      assert.equal(r.headers['x-ratelimit-limit'], undefined);
    }
  });
});
