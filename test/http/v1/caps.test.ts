import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { type TestApp, TWILIO_SID, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';
import { openSession, postTwilio } from '../../support/twilio.ts';

const SESSIONS_PER_MINUTE = 3;
const CALLS_PER_HOUR = 3;
const POOL = ['+14155550150', '+14155550151', '+14155550152', '+14155550153'];
const OTHER_TENANT = 'ten_other';

/** A new person's number for each call, so that no one runs out of proxies in the small pool. */
let people = 100;
const person = () => `+1415555${String(people++).padStart(4, '0')}`;
const pair = () => ({ participants: [{ number: person() }, { number: person() }] });

function assertRateLimited(r: LightMyRequestResponse, message: RegExp) {
  assert.equal(r.statusCode, 429, r.body);
  const body = r.json();
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, 'rate_limited');
  assert.match(body.error.message, message);
  assert.ok(Number(r.headers['retry-after']) >= 1, `retry-after ${r.headers['retry-after']}`);
}

/**
 * The toll-fraud guards: a tenant's new sessions per minute (VEIL_MAX_SESSIONS_PER_MINUTE) and a
 * session's calls per hour (VEIL_MAX_CALLS_PER_SESSION_HOUR), through the API and a carrier's
 * webhook, on the clock the test moves.
 */
describeStores('abuse caps', (store) => {
  let t: TestApp;
  let otherKey: string;
  before(async () => {
    t = await testApp(store(), {
      VEIL_MAX_SESSIONS_PER_MINUTE: String(SESSIONS_PER_MINUTE),
      VEIL_MAX_CALLS_PER_SESSION_HOUR: String(CALLS_PER_HOUR),
    });
    await t.veil.numbers.import(
      'default',
      POOL.map((number) => ({ number, provider: 'twilio' })),
    );
    await t.veil.store.db
      .insertInto('tenants')
      .values({ id: OTHER_TENANT, name: 'other', created_at: t.clock.now })
      .execute();
    await t.veil.numbers.import(OTHER_TENANT, [{ number: '+14155550160', provider: 'twilio' }]);
    otherKey = (await t.veil.keys.create(OTHER_TENANT, 'other', ['admin'])).secret;
  });
  after(() => t.close());

  const sessionRows = async () =>
    (await t.veil.store.db.selectFrom('sessions').select('id').execute()).length;

  describe('POST /v1/sessions: sessions per minute per tenant', () => {
    it('opens as many as the cap, then refuses with 429 and writes nothing, until the minute is over', async () => {
      t.clock.advance(120);
      // Refused requests do not count: a 400 and a 409 first.
      assert.equal((await t.api('POST', '/v1/sessions', { participants: [] })).statusCode, 400);
      const first = await t.api('POST', '/v1/sessions', { externalId: 'order-1', ...pair() });
      assert.equal(first.statusCode, 201, first.body);
      const conflict = await t.api('POST', '/v1/sessions', { externalId: 'order-1', ...pair() });
      assert.equal(conflict.statusCode, 409, conflict.body);
      for (let i = 1; i < SESSIONS_PER_MINUTE; i++) {
        const r = await t.api('POST', '/v1/sessions', pair());
        assert.equal(r.statusCode, 201, r.body);
      }
      const before = await sessionRows();
      const refused = await t.api('POST', '/v1/sessions', pair());
      assertRateLimited(refused, /VEIL_MAX_SESSIONS_PER_MINUTE/);
      assert.ok(Number(refused.headers['retry-after']) <= 60);
      assert.equal(await sessionRows(), before, 'a refused create wrote a session');

      // Another tenant's creates are its own.
      const other = await t.api('POST', '/v1/sessions', pair(), otherKey);
      assert.equal(other.statusCode, 201, other.body);

      t.clock.advance(60);
      const later = await t.api('POST', '/v1/sessions', pair());
      assert.equal(later.statusCode, 201, later.body);
    });

    it('does not count a retry that finds its session (200)', async () => {
      t.clock.advance(120);
      const body = { externalId: 'order-retried', ...pair() };
      assert.equal((await t.api('POST', '/v1/sessions', body)).statusCode, 201);
      for (let i = 0; i < SESSIONS_PER_MINUTE; i++) {
        assert.equal((await t.api('POST', '/v1/sessions', body)).statusCode, 200);
      }
      for (let i = 1; i < SESSIONS_PER_MINUTE; i++) {
        assert.equal((await t.api('POST', '/v1/sessions', pair())).statusCode, 201);
      }
      assertRateLimited(await t.api('POST', '/v1/sessions', pair()), /sessions/);
    });
  });

  describe('routing: calls per session per hour', () => {
    const route = (from: string, to: string, channel = 'voice') =>
      t.api('POST', '/v1/route', { from, to, channel, body: channel === 'sms' ? 'hi' : undefined });
    const voice = (from: string, to: string, n: number) =>
      postTwilio(t, '/webhooks/twilio/voice', {
        AccountSid: TWILIO_SID,
        CallSid: `CA${String(n).padStart(32, '0')}`,
        From: from,
        To: to,
        CallStatus: 'ringing',
        Direction: 'inbound',
      });

    it('connects as many calls as the cap in an hour, both ways together, then refuses with reason call_limit', async () => {
      t.clock.advance(120);
      const [a, b] = [person(), person()];
      const session = await openSession(t, [a, b]);
      const proxy = (n: string) => session.proxyOf.get(n) as string;
      const calls = [route(a, proxy(a)), route(b, proxy(b)), route(a, proxy(a))];
      for (const r of await Promise.all(calls)) assert.equal(r.json().action, 'connect', r.body);

      const refused = (await route(b, proxy(b))).json();
      assert.equal(refused.action, 'reject');
      assert.equal(refused.reason, 'call_limit');
      assert.equal(refused.sessionId, session.id);
      assert.equal(refused.to, undefined);
      // Through the carrier too: no Dial, nothing revealed.
      const webhook = await voice(a, proxy(a), 1);
      assert.equal(webhook.statusCode, 200, webhook.body);
      assert.doesNotMatch(webhook.body, /<Dial/);
      assert.ok(!webhook.body.includes(b.slice(1)), webhook.body);
      // Texts are not calls: still relayed.
      assert.equal((await route(a, proxy(a), 'sms')).json().action, 'forward');

      await t.veil.interactions.flush();
      const logged = await t.api('GET', `/v1/sessions/${session.id}/interactions`);
      assert.equal(logged.statusCode, 200, logged.body);
      const mine = logged.json().data.filter((i: { reason: string }) => i.reason === 'call_limit');
      assert.equal(mine.length, 2);
      assert.ok(mine.every((i: { action: string }) => i.action === 'reject'));

      // An hour after the first call, the session may call again.
      t.clock.advance(3600);
      assert.equal((await voice(a, proxy(a), 2)).body.includes('<Dial'), true);
    });

    it("counts each session apart: one session's calls never refuse another's", async () => {
      t.clock.advance(120);
      const [a, b, c, d] = [person(), person(), person(), person()];
      const first = await openSession(t, [a, b]);
      const second = await openSession(t, [c, d]);
      for (let i = 0; i < CALLS_PER_HOUR; i++) {
        assert.equal((await route(a, first.proxyOf.get(a) as string)).json().action, 'connect');
      }
      assert.equal((await route(a, first.proxyOf.get(a) as string)).json().reason, 'call_limit');
      assert.equal((await route(c, second.proxyOf.get(c) as string)).json().action, 'connect');
    });

    it("does not count refused calls: a stranger's calls leave the session's hour untouched", async () => {
      t.clock.advance(120);
      const [a, b] = [person(), person()];
      const session = await openSession(t, [a, b]);
      const proxy = session.proxyOf.get(a) as string;
      for (let i = 0; i < CALLS_PER_HOUR * 2; i++) {
        assert.equal((await route(person(), proxy)).json().reason, 'no_session');
      }
      for (let i = 0; i < CALLS_PER_HOUR; i++) {
        assert.equal((await route(a, proxy)).json().action, 'connect');
      }
    });
  });
});
