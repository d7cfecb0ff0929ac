import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import twilio from 'twilio';
import { DEFAULT_REJECT_MESSAGE } from '../../../src/domain/routing.ts';
import {
  interactionRows,
  numberOf,
  PUBLIC_URL,
  type TestApp,
  TWILIO_SID,
  TWILIO_TOKEN,
  testApp,
} from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

const A = '+14155550123';
const B = '+14155550187';
const C = '+14155550124';
const STRANGER = '+14155550199';
const OTHER_STRANGER = '+14155550198';
const SUPPORT = '+14155550000';
const PROXIES = ['+14155550150', '+14155550151', '+14155550152'];
const OTHER_TENANT = 'other';

/** The path of a number's entry, its '+' URL-encoded as a client would send it. */
const entryPath = (number: string) => `/v1/blocklist/${encodeURIComponent(number)}`;

/** A second tenant with an admin key of its own; its secret. */
async function otherTenant(t: TestApp): Promise<string> {
  await t.veil.store.db
    .insertInto('tenants')
    .values({ id: OTHER_TENANT, name: 'other', created_at: t.clock.now })
    .execute();
  return (await t.veil.keys.create(OTHER_TENANT, 'other app', ['admin'])).secret;
}

// A store for each test: the tests count the blocklist's rows.
describeStores('/v1/blocklist', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store());
  });
  afterEach(async () => {
    await t.close();
  });

  const rows = async () =>
    (await t.veil.store.db.selectFrom('blocklist').selectAll().execute())
      .map((r) => ({ ...r, number: numberOf(t.veil.store.db, r) }))
      .sort((a, b) => (a.number < b.number ? -1 : 1));

  describe('POST /v1/blocklist', () => {
    it('blocks a number (201) and keeps it with its reason, for the key’s tenant', async () => {
      const r = await t.api('POST', '/v1/blocklist', { number: A, reason: 'abusive calls' });
      assert.equal(r.statusCode, 201, r.body);
      const createdAt = new Date(t.clock.now).toISOString();
      assert.deepEqual(r.json(), { number: A, reason: 'abusive calls', createdAt });
      assert.deepEqual(
        (await rows()).map(({ tenant_id, number, reason, created_at }) => ({
          tenant_id,
          number,
          reason,
          created_at,
        })),
        [{ tenant_id: 'default', number: A, reason: 'abusive calls', created_at: t.clock.now }],
      );
      const bare = await t.api('POST', '/v1/blocklist', { number: B });
      assert.equal(bare.statusCode, 201, bare.body);
      assert.equal(bare.json().reason, null);
    });

    it('answers a repeat with 200 and the entry as it was: the first reason and time stay', async () => {
      const first = await t.api('POST', '/v1/blocklist', { number: A, reason: 'fraud' });
      assert.equal(first.statusCode, 201, first.body);
      t.clock.advance(60);
      for (const body of [{ number: A, reason: 'something else' }, { number: A }]) {
        const again = await t.api('POST', '/v1/blocklist', body);
        assert.equal(again.statusCode, 200, again.body);
        assert.deepEqual(again.json(), first.json());
      }
      assert.equal((await rows()).length, 1);
    });

    it('refuses a malformed number and unknown fields with 400 naming the field, writing nothing', async () => {
      for (const [body, field] of [
        [{ number: '4155550123' }, 'number'],
        [{ number: '+1415555' }, 'number'],
        [{ number: 'anonymous' }, 'number'],
        [{}, 'number'],
        [{ number: A, reason: '' }, 'reason'],
        [{ number: A, colour: 'red' }, 'colour'],
      ] as const) {
        const r = await t.api('POST', '/v1/blocklist', body);
        assert.equal(r.statusCode, 400, `${JSON.stringify(body)} → ${r.body}`);
        assert.equal(r.json().error.code, 'invalid_request');
        assert.equal(r.json().error.field, field);
        assert.ok(!r.body.includes('4155550123'), `the error echoes the number: ${r.body}`);
      }
      assert.deepEqual(await rows(), []);
    });

    it('needs an admin key: a read key is forbidden, no key unauthorized', async () => {
      const { secret } = await t.veil.keys.create('default', 'reader', ['read']);
      const forbidden = await t.api('POST', '/v1/blocklist', { number: A }, secret);
      assert.equal(forbidden.statusCode, 403, forbidden.body);
      const anonymous = await t.api('POST', '/v1/blocklist', { number: A }, 'wrong-key');
      assert.equal(anonymous.statusCode, 401, anonymous.body);
      assert.deepEqual(await rows(), []);
    });
  });

  describe('GET /v1/blocklist', () => {
    it('lists the entries a page at a time, in an order that tells nothing of the numbers', async () => {
      for (const number of [C, A, B, STRANGER]) {
        assert.equal((await t.api('POST', '/v1/blocklist', { number })).statusCode, 201);
      }
      const first = await t.api('GET', '/v1/blocklist?limit=3');
      assert.equal(first.statusCode, 200, first.body);
      const page = first.json();
      assert.equal(page.data.length, 3);
      // The cursor is opaque: no number is in it.
      assert.ok(![A, B, C, STRANGER].some((n) => page.nextCursor.includes(n.slice(1))), page.nextCursor);
      const next = (
        await t.api('GET', `/v1/blocklist?limit=3&cursor=${encodeURIComponent(page.nextCursor)}`)
      ).json();
      assert.equal(next.data.length, 1);
      assert.equal(next.nextCursor, null);
      const listed = [...page.data, ...next.data].map((e: { number: string }) => e.number);
      assert.deepEqual([...listed].sort(), [A, B, C, STRANGER].sort());
      assert.deepEqual(next.data[0], {
        number: next.data[0].number,
        reason: null,
        createdAt: page.data[0].createdAt,
      });
    });

    it('is readable with a read key', async () => {
      await t.api('POST', '/v1/blocklist', { number: A });
      const { secret } = await t.veil.keys.create('default', 'reader', ['read']);
      const r = await t.api('GET', '/v1/blocklist', undefined, secret);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().data.length, 1);
    });
  });

  describe('DELETE /v1/blocklist/:number', () => {
    it('unblocks a number given URL-encoded (204), then answers 404 for it', async () => {
      await t.api('POST', '/v1/blocklist', { number: A });
      await t.api('POST', '/v1/blocklist', { number: B });
      const r = await t.api('DELETE', entryPath(A));
      assert.equal(r.statusCode, 204, r.body);
      assert.equal(r.body, '');
      assert.deepEqual(
        (await rows()).map((e) => e.number),
        [B],
      );
      const again = await t.api('DELETE', entryPath(A));
      assert.equal(again.statusCode, 404, again.body);
      assert.equal(again.json().error.code, 'not_found');
      assert.ok(!again.body.includes('4155550123'), `the error reveals the number: ${again.body}`);
    });

    it('answers 404 for a number never blocked and 400 naming the field for a malformed one', async () => {
      assert.equal((await t.api('DELETE', entryPath(C))).statusCode, 404);
      for (const bad of ['4155550123', '+1415555', 'anonymous']) {
        const r = await t.api('DELETE', entryPath(bad));
        assert.equal(r.statusCode, 400, `${bad} → ${r.body}`);
        assert.equal(r.json().error.code, 'invalid_request');
        assert.equal(r.json().error.field, 'number');
      }
    });

    it('needs an admin key', async () => {
      await t.api('POST', '/v1/blocklist', { number: A });
      const { secret } = await t.veil.keys.create('default', 'reader', ['read']);
      assert.equal((await t.api('DELETE', entryPath(A), undefined, secret)).statusCode, 403);
      assert.equal((await rows()).length, 1);
    });
  });

  it('keeps each tenant’s blocklist its own: another tenant neither sees nor changes it', async () => {
    const other = await otherTenant(t);
    await t.api('POST', '/v1/blocklist', { number: A, reason: 'ours' });
    assert.deepEqual((await t.api('GET', '/v1/blocklist', undefined, other)).json(), {
      data: [],
      nextCursor: null,
    });
    assert.equal((await t.api('DELETE', entryPath(A), undefined, other)).statusCode, 404);
    // The same number blocked by the other tenant is a new entry of its own.
    const theirs = await t.api('POST', '/v1/blocklist', { number: A, reason: 'theirs' }, other);
    assert.equal(theirs.statusCode, 201, theirs.body);
    assert.equal(theirs.json().reason, 'theirs');
    assert.equal((await t.api('DELETE', entryPath(A), undefined, other)).statusCode, 204);
    const ours = (await t.api('GET', '/v1/blocklist')).json().data;
    assert.deepEqual(
      ours.map((e: { number: string; reason: string }) => [e.number, e.reason]),
      [[A, 'ours']],
    );
  });
});

interface ParticipantView {
  number: string;
  proxyNumber: string;
}

/** A Twilio webhook as Twilio sends it: form-encoded and signed over VEIL_PUBLIC_URL + path. */
function twilioWebhook(t: TestApp, path: string, params: Record<string, string>) {
  return t.app.inject({
    method: 'POST',
    url: path,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': twilio.getExpectedTwilioSignature(TWILIO_TOKEN, PUBLIC_URL + path, params),
    },
    payload: new URLSearchParams(params).toString(),
  });
}

let callSeq = 0;
const twilioCall = (t: TestApp, from: string, to: string) =>
  twilioWebhook(t, '/webhooks/twilio/voice', {
    AccountSid: TWILIO_SID,
    CallSid: `CA${String(++callSeq).padStart(32, '0')}`,
    From: from,
    To: to,
    CallStatus: 'ringing',
    Direction: 'inbound',
  });
const twilioText = (t: TestApp, from: string, to: string, body: string) =>
  twilioWebhook(t, '/webhooks/twilio/sms', {
    AccountSid: TWILIO_SID,
    MessageSid: `SM${String(++callSeq).padStart(32, '0')}`,
    From: from,
    To: to,
    Body: body,
    NumMedia: '0',
  });

/** The refusal Twilio gets for a call: a short message and a hang-up, no number in it. */
const REFUSED_CALL = /^<\?xml[^>]*\?><Response><Say>[^<]+<\/Say><Hangup\/><\/Response>$/;

describeStores('routing with the blocklist', (store) => {
  let t: TestApp;
  let a: ParticipantView;
  let b: ParticipantView;
  let sessionId: string;
  before(async () => {
    t = await testApp(store());
    for (const number of PROXIES) {
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'twilio' })).statusCode, 201);
    }
    const s = (await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] })).json();
    sessionId = s.id;
    [a, b] = s.participants;
  });
  after(async () => {
    await t.close();
  });

  const route = async (from: string, to: string, channel: 'voice' | 'sms' = 'voice') =>
    (
      await t.api('POST', '/v1/route', { from, to, channel, ...(channel === 'sms' ? { body: 'hi' } : {}) })
    ).json();
  const block = async (number: string, key?: string) =>
    assert.equal((await t.api('POST', '/v1/blocklist', { number }, key)).statusCode, 201);
  const unblock = async (number: string, key?: string) =>
    assert.equal((await t.api('DELETE', entryPath(number), undefined, key)).statusCode, 204);
  const refused = { action: 'reject', reason: 'blocked', sessionId: undefined as string | undefined };

  it('refuses a blocked caller’s calls and texts, and calls and texts to them, with reason blocked', async () => {
    assert.equal((await route(A, a.proxyNumber)).action, 'connect');
    await block(A);
    // A refused call says what the caller hears; a refused text says nothing.
    const expected = { ...refused, sessionId };
    const call = { ...expected, message: { text: DEFAULT_REJECT_MESSAGE } };
    assert.deepEqual(await route(A, a.proxyNumber), call);
    assert.deepEqual(await route(A, a.proxyNumber, 'sms'), expected);
    assert.deepEqual(await route(B, b.proxyNumber), call);
    assert.deepEqual(await route(B, b.proxyNumber, 'sms'), expected);
    await unblock(A);
  });

  it('logs each refusal as a reject with reason blocked in the session’s interactions', async () => {
    await block(B);
    await route(A, a.proxyNumber);
    await route(B, b.proxyNumber, 'sms');
    await unblock(B);
    await t.veil.interactions.flush();
    const log = (await t.api('GET', `/v1/sessions/${sessionId}/interactions?limit=200`)).json().data;
    // In the order they happened: these two were the last.
    const [callToB, textFromB] = (log as Record<string, unknown>[]).slice(-2);
    assert.deepEqual(
      [callToB?.from, callToB?.channel, callToB?.action, callToB?.reason, callToB?.target],
      [A, 'voice', 'reject', 'blocked', null],
    );
    assert.deepEqual(
      [textFromB?.from, textFromB?.channel, textFromB?.action, textFromB?.reason],
      [B, 'sms', 'reject', 'blocked'],
    );
  });

  it('connects again once the number is unblocked', async () => {
    await block(A);
    assert.equal((await route(B, b.proxyNumber)).reason, 'blocked');
    await unblock(A);
    const back = await route(B, b.proxyNumber);
    assert.deepEqual([back.action, back.to, back.callerId], ['connect', A, a.proxyNumber]);
    const there = await route(A, a.proxyNumber);
    assert.deepEqual([there.action, there.to], ['connect', B]);
  });

  it('applies a tenant’s blocklist to its own sessions only', async () => {
    const other = await otherTenant(t);
    await block(A, other);
    assert.equal((await route(A, a.proxyNumber)).action, 'connect');
    assert.equal((await route(B, b.proxyNumber)).action, 'connect');
    await unblock(A, other);
  });

  it('answers Twilio’s webhook for a blocked caller with the refusal, revealing no number', async () => {
    await block(A);
    const call = await twilioCall(t, A, a.proxyNumber);
    assert.equal(call.statusCode, 200, call.body);
    assert.match(String(call.headers['content-type']), /^text\/xml/);
    assert.match(call.body, REFUSED_CALL);
    const toBlocked = await twilioCall(t, B, b.proxyNumber);
    assert.match(toBlocked.body, REFUSED_CALL);
    // A refused text gets no reply at all.
    const text = await twilioText(t, A, a.proxyNumber, 'hello');
    assert.match(text.body, /^<\?xml[^>]*\?><Response\/>$/);
    for (const r of [call, toBlocked, text]) {
      for (const n of [A, B]) assert.ok(!r.body.includes(n.slice(1)), `the reply reveals ${n}: ${r.body}`);
    }
    const rows = (await interactionRows(t)).filter((i) => i.provider === 'twilio');
    assert.deepEqual(
      rows.map((i) => [i.from_number, i.channel, i.action, i.reason, i.session_id]),
      [
        [A, 'voice', 'reject', 'blocked', sessionId],
        [B, 'voice', 'reject', 'blocked', sessionId],
        [A, 'sms', 'reject', 'blocked', sessionId],
      ],
    );
    await unblock(A);
    assert.match((await twilioCall(t, A, a.proxyNumber)).body, /<Dial callerId=/);
    // Nothing of this wrote a real number in clear to the log.
    const logs = t.logs.join('');
    for (const n of [A, B]) assert.ok(!logs.includes(n.slice(1)), `the log shows ${n}`);
  });
});

describeStores('routing with the blocklist and VEIL_OUT_OF_SESSION=forward', (store) => {
  let t: TestApp;
  before(async () => {
    t = await testApp(store(), { VEIL_OUT_OF_SESSION: `forward:${SUPPORT}` });
    for (const number of PROXIES) {
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'twilio' })).statusCode, 201);
    }
    assert.equal((await t.api('POST', '/v1/blocklist', { number: STRANGER })).statusCode, 201);
  });
  after(async () => {
    await t.close();
  });

  const route = async (from: string, channel: 'voice' | 'sms' = 'voice') =>
    (
      await t.api('POST', '/v1/route', {
        from,
        to: PROXIES[0],
        channel,
        ...(channel === 'sms' ? { body: 'hi' } : {}),
      })
    ).json();

  it('never forwards a blocked stranger, but forwards one who is not blocked', async () => {
    const refused = { action: 'reject', reason: 'blocked', sessionId: null };
    assert.deepEqual(await route(STRANGER), { ...refused, message: { text: DEFAULT_REJECT_MESSAGE } });
    assert.deepEqual(await route(STRANGER, 'sms'), refused);
    const call = await route(OTHER_STRANGER);
    assert.deepEqual([call.action, call.to, call.callerId], ['connect', SUPPORT, PROXIES[0]]);
    const text = await route(OTHER_STRANGER, 'sms');
    assert.deepEqual([text.action, text.to, text.from], ['forward', SUPPORT, PROXIES[0]]);
    const rows = (await interactionRows(t)).filter((i) => i.from_number === STRANGER);
    assert.deepEqual(
      rows.map((i) => [i.tenant_id, i.channel, i.action, i.reason, i.target_number]),
      [
        ['default', 'voice', 'reject', 'blocked', null],
        ['default', 'sms', 'reject', 'blocked', null],
      ],
    );
  });

  it('judges a stranger on a carrier webhook by the blocklist of the tenant owning the number dialled', async () => {
    const refusal = await twilioCall(t, STRANGER, PROXIES[1] as string);
    assert.match(refusal.body, REFUSED_CALL);
    // Blocked by another tenant only: the dialled number's tenant forwards them.
    const other = await otherTenant(t);
    assert.equal((await t.api('POST', '/v1/blocklist', { number: OTHER_STRANGER }, other)).statusCode, 201);
    const forwarded = await twilioCall(t, OTHER_STRANGER, PROXIES[1] as string);
    assert.match(
      forwarded.body,
      new RegExp(`<Dial callerId="\\${PROXIES[1]}"><Number>\\${SUPPORT}</Number>`),
    );
  });

  it('forwards a stranger again once unblocked', async () => {
    assert.equal((await t.api('DELETE', entryPath(STRANGER))).statusCode, 204);
    const call = await route(STRANGER);
    assert.deepEqual([call.action, call.to], ['connect', SUPPORT]);
    assert.equal((await t.api('POST', '/v1/blocklist', { number: STRANGER })).statusCode, 201);
    assert.equal((await route(STRANGER)).reason, 'blocked');
  });
});
