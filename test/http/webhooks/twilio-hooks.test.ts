import assert from 'node:assert/strict';
import { after, before, beforeEach, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import twilio from 'twilio';
import { ensureHookSecret } from '../../../src/services/hook-secret.ts';
import {
  interactionRows,
  PUBLIC_URL,
  type TestApp,
  TWILIO_SID,
  TWILIO_TOKEN,
  testApp,
} from '../../support/app.ts';
import { HookApp } from '../../support/hook-app.ts';
import { describeStores } from '../../support/stores.ts';

// The app's webhooks are plain http on 127.0.0.1, which only development allows.

const A = '+14155550101';
const B = '+14155550102';
const STRANGER = '+14155550999';
const SUPPORT = '+14155550000';
const PROXIES = ['+14155550200', '+14155550201', '+14155550202'];
const [X, , Z] = PROXIES as [string, string, string];
const ASK = '/ask';
const INTERCEPT = '/intercept';

const twiml = (inner: string) => `<?xml version="1.0" encoding="UTF-8"?><Response>${inner}</Response>`;
const NOT_AVAILABLE = twiml('<Say>The number you have dialled is not available.</Say><Hangup/>');

describeStores('Twilio webhooks with the app’s ask and intercept webhooks', (store) => {
  let t: TestApp;
  let app: HookApp;
  let secret: string;
  let sessionId: string;
  let proxyOfA: string;
  let proxyOfB: string;
  let seq = 0;

  before(async () => {
    app = new HookApp();
    await app.start();
    t = await testApp(store(), {
      NODE_ENV: 'development',
      VEIL_OUT_OF_SESSION: `ask:${app.url(ASK)}`,
      VEIL_INTERCEPT_URL: app.url(INTERCEPT),
    });
    for (const number of PROXIES) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'twilio' });
      assert.equal(r.statusCode, 201, r.body);
    }
    const s = await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] });
    assert.equal(s.statusCode, 201, s.body);
    sessionId = s.json().id;
    [proxyOfA, proxyOfB] = s.json().participants.map((p: { proxyNumber: string }) => p.proxyNumber);
    secret = await ensureHookSecret(t.veil.store.db);
  });
  beforeEach(() => {
    app.calls.length = 0;
  });
  after(async () => {
    await t?.close();
    await app?.close();
  });

  /** A webhook as Twilio sends it, signed with the real `twilio` package. */
  async function post(path: string, params: Record<string, string>) {
    const r = await t.app.inject({
      method: 'POST',
      url: path,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': twilio.getExpectedTwilioSignature(TWILIO_TOKEN, PUBLIC_URL + path, params),
      },
      payload: new URLSearchParams(params).toString(),
    });
    assert.equal(r.statusCode, 200, r.body);
    return r.body;
  }
  const voice = (from: string, to: string) =>
    post('/webhooks/twilio/voice', {
      AccountSid: TWILIO_SID,
      CallSid: `CA${String(++seq).padStart(32, '0')}`,
      From: from,
      To: to,
      CallStatus: 'ringing',
    });
  const sms = (from: string, to: string, body: string) =>
    post('/webhooks/twilio/sms', {
      AccountSid: TWILIO_SID,
      MessageSid: `SM${String(++seq).padStart(32, '0')}`,
      From: from,
      To: to,
      Body: body,
    });

  it('dials where ask answers for a stranger, once intercept allows, showing the pool number it chose', async () => {
    app.answer(ASK, { action: 'connect', to: SUPPORT, callerId: Z });
    app.answer(INTERCEPT, { action: 'allow' });
    assert.equal(await voice(STRANGER, X), twiml(`<Dial callerId="${Z}"><Number>${SUPPORT}</Number></Dial>`));
    const payload = { from: STRANGER, to: X, channel: 'voice' };
    assert.deepEqual(
      app.calls.map((c) => [c.path, c.json]),
      [
        [ASK, payload],
        [INTERCEPT, payload],
      ],
    );
    for (const call of app.calls) {
      assert.deepEqual(
        new Webhook(secret).verify(call.body, call.headers as Record<string, string>),
        payload,
      );
    }
  });

  it('forwards a stranger’s text where ask answers', async () => {
    app.answer(ASK, { action: 'connect', to: SUPPORT, callerId: Z });
    app.answer(INTERCEPT, { action: 'allow' });
    assert.equal(
      await sms(STRANGER, X, 'is it still for sale?'),
      twiml(`<Message to="${SUPPORT}" from="${Z}">is it still for sale?</Message>`),
    );
  });

  it('says the number is not available when ask rejects, without asking intercept', async () => {
    app.answer(ASK, { action: 'reject' });
    assert.equal(await voice(STRANGER, X), NOT_AVAILABLE);
    assert.deepEqual(
      app.calls.map((c) => c.path),
      [ASK],
    );
  });

  it('connects a call in session only as intercept allows; a veto is logged as intercepted', async () => {
    app.answer(INTERCEPT, { action: 'allow' });
    assert.equal(
      await voice(A, proxyOfA),
      twiml(`<Dial callerId="${proxyOfB}"><Number>${B}</Number></Dial>`),
    );
    assert.deepEqual(app.calls[0]?.json, { from: A, to: proxyOfA, channel: 'voice', sessionId });
    app.answer(INTERCEPT, { action: 'reject' });
    assert.equal(await voice(A, proxyOfA), NOT_AVAILABLE);
    assert.equal(await sms(A, proxyOfA, 'hello'), '<?xml version="1.0" encoding="UTF-8"?><Response/>');
    const rows = (await interactionRows(t)).filter((r) => r.reason === 'intercepted');
    assert.deepEqual(rows.map((r) => [r.provider, r.channel, r.action, r.session_id, r.status]).sort(), [
      ['twilio', 'sms', 'reject', sessionId, 'refused'],
      ['twilio', 'voice', 'reject', sessionId, 'refused'],
    ]);
    assert.ok(rows.every((r) => r.provider_call_id));
    assert.equal(app.calls.filter((c) => c.path === ASK).length, 0, 'a call in session is never put to ask');
  });
});
