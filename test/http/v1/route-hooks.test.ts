import assert from 'node:assert/strict';
import { after, before, beforeEach, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { generateWebhookSecret } from '../../../src/domain/ids.ts';
import { DEFAULT_REJECT_MESSAGE } from '../../../src/domain/routing.ts';
import { HOOK_TIMEOUT_MS, MAX_ANSWER_BYTES } from '../../../src/services/app-hooks.ts';
import { ensureHookSecret } from '../../../src/services/hook-secret.ts';
import { interactionRows, type TestApp, testApp } from '../../support/app.ts';
import { HookApp, type HookCall, type HookReply } from '../../support/hook-app.ts';
import { describeStores } from '../../support/stores.ts';

/** What a refused caller hears when nothing else is configured. */
const REFUSED = { text: DEFAULT_REJECT_MESSAGE };

// The app's webhooks are plain http on 127.0.0.1 here, which only development allows (production
// refuses any but https at start, test/config.test.ts): these apps run with NODE_ENV=development.

const A = '+14155550123';
const B = '+14155550187';
const STRANGER = '+14155550199';
const SUPPORT = '+14155550000';
/** Sim numbers of the default tenant's pool. */
const POOL = ['+14155550150', '+14155550151', '+14155550152'];
const [P1, , P3] = POOL as [string, string, string];
const TWILIO_NUMBER = '+14155550160';
const VOICE_ONLY = '+14155550161';
const RETIRED = '+14155550162';
const OTHER_TENANTS = '+14155550170';
const NOT_IN_POOL = '+14155550999';

const ASK = '/ask';
const INTERCEPT = '/intercept';

interface Decision {
  action: string;
  reason?: string;
  sessionId: string | null;
  to?: string;
  from?: string;
  callerId?: string;
  body?: string;
}

/** The app and Veil, configured with `env(app)`, over a pool and one session between A and B. */
function setUp(store: () => Parameters<typeof testApp>[0], env: (app: HookApp) => Record<string, string>) {
  const ctx = {} as { t: TestApp; app: HookApp; sessionId: string; proxyOfA: string; secret: string };
  before(async () => {
    ctx.app = new HookApp();
    await ctx.app.start();
    ctx.t = await testApp(store(), { NODE_ENV: 'development', ...env(ctx.app) });
    const { t } = ctx;
    for (const number of POOL) await add(t, { number, provider: 'sim' });
    await add(t, { number: TWILIO_NUMBER, provider: 'twilio' });
    await add(t, { number: VOICE_ONLY, provider: 'sim', capabilities: ['voice'] });
    const retired = await add(t, { number: RETIRED, provider: 'sim' });
    assert.equal((await t.api('DELETE', `/v1/numbers/${retired.id}`)).statusCode, 200);
    await t.veil.store.db
      .insertInto('tenants')
      .values({ id: 'other', name: 'other', created_at: t.clock.now })
      .execute();
    await t.veil.numbers.add('other', { number: OTHER_TENANTS, provider: 'sim' });
    const s = await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] });
    assert.equal(s.statusCode, 201, s.body);
    ctx.sessionId = s.json().id;
    ctx.proxyOfA = s.json().participants[0].proxyNumber;
    ctx.secret = await ensureHookSecret(t.veil.store.db);
  });
  beforeEach(() => {
    ctx.app.calls.length = 0;
  });
  after(async () => {
    await ctx.t?.close();
    await ctx.app?.close();
  });
  return ctx;
}

async function add(t: TestApp, body: Record<string, unknown>) {
  const r = await t.api('POST', '/v1/numbers', body);
  assert.equal(r.statusCode, 201, r.body);
  return r.json() as { id: string };
}

async function route(t: TestApp, body: Record<string, unknown>): Promise<Decision> {
  const r = await t.api('POST', '/v1/route', body);
  assert.equal(r.statusCode, 200, r.body);
  return r.json();
}

/** The newest interaction row, once the log has written it. */
async function lastInteraction(t: TestApp) {
  const rows = await interactionRows(t);
  const [last] = rows.sort((x, y) => (x.id < y.id ? 1 : -1));
  assert.ok(last, 'no interaction');
  return last;
}

/** Asserts that `call` carries a valid Standard Webhooks signature under `secret` (and no other). */
function assertSigned(call: HookCall | undefined, secret: string): void {
  assert.ok(call, 'the app got no request');
  const headers = call.headers as Record<string, string>;
  assert.match(headers['webhook-id'] ?? '', /^msg_/);
  assert.match(headers['webhook-signature'] ?? '', /^v1,[A-Za-z0-9+/]+=*$/);
  assert.deepEqual(new Webhook(secret).verify(call.body, headers), call.json);
  assert.throws(() => new Webhook(generateWebhookSecret()).verify(call.body, headers), /signature/);
  assert.equal(headers['content-type'], 'application/json');
}

/** The warnings the app's webhooks caused since `from`, parsed. */
function hookWarnings(t: TestApp, from: number): Record<string, unknown>[] {
  return t.logs
    .slice(from)
    .map((line) => JSON.parse(line))
    .filter((l) => typeof l.hook === 'string');
}

describeStores('POST /v1/route with VEIL_OUT_OF_SESSION=ask:URL', (store) => {
  const ctx = setUp(store, (app) => ({ VEIL_OUT_OF_SESSION: `ask:${app.url(ASK)}` }));

  it('asks the app about a stranger’s call, signed, and connects it as the app answers', async () => {
    const { t, app } = ctx;
    app.answer(ASK, { action: 'connect', to: SUPPORT, callerId: P3 });
    const decision = await route(t, { from: STRANGER, to: P1, channel: 'voice' });
    assert.deepEqual(decision, {
      action: 'connect',
      to: SUPPORT,
      callerId: P3,
      sessionId: null,
      record: false,
      maxCallSeconds: null,
    });
    assert.equal(app.calls.length, 1);
    const [call] = app.calls;
    assert.equal(call?.path, ASK);
    assert.deepEqual(call?.json, { from: STRANGER, to: P1, channel: 'voice' });
    assertSigned(call, ctx.secret);
    const logged = await lastInteraction(t);
    assert.deepEqual(
      [logged.action, logged.target_number, logged.caller_id, logged.session_id, logged.reason],
      ['connect', SUPPORT, P3, null, null],
    );
  });

  it('forwards a stranger’s text to the app’s `to` from its callerId, never sending the app the text', async () => {
    const { t, app } = ctx;
    app.answer(ASK, { action: 'connect', to: SUPPORT, callerId: P3 });
    const decision = await route(t, { from: STRANGER, to: P1, channel: 'sms', body: 'where is my order' });
    assert.deepEqual(decision, {
      action: 'forward',
      to: SUPPORT,
      from: P3,
      body: 'where is my order',
      sessionId: null,
    });
    assert.deepEqual(app.calls[0]?.json, { from: STRANGER, to: P1, channel: 'sms' });
    assert.ok(!app.calls[0]?.body.includes('order'));
  });

  it('refuses as no_session when the app answers reject, and logs no warning', async () => {
    const { t, app } = ctx;
    app.answer(ASK, { action: 'reject' });
    const from = t.logs.length;
    const decision = await route(t, { from: STRANGER, to: P1, channel: 'voice' });
    assert.deepEqual(decision, { action: 'reject', reason: 'no_session', message: REFUSED, sessionId: null });
    assert.equal(app.calls.length, 1);
    assert.deepEqual(hookWarnings(t, from), []);
    const logged = await lastInteraction(t);
    assert.deepEqual([logged.action, logged.reason, logged.session_id], ['reject', 'no_session', null]);
  });

  it('refuses on an answer it cannot use, logging why and the URL, never a number', async () => {
    const { t, app } = ctx;
    const connect = (fields: Record<string, unknown>) => ({
      body: JSON.stringify({ action: 'connect', to: SUPPORT, callerId: P3, ...fields }),
    });
    const cases: [string, HookReply, RegExp, ('voice' | 'sms')?][] = [
      ['a 500', { status: 500, ...connect({}) }, /^status 500$/],
      [
        'a redirect, not followed',
        { status: 307, headers: { location: app.url('/elsewhere') } },
        /^status 307$/,
      ],
      ['not JSON', { body: 'connect them' }, /^malformed: the answer is not JSON$/],
      ['an empty body', { body: '' }, /^malformed: the answer is not JSON$/],
      ['an array', { body: '[]' }, /^malformed: the answer is not a JSON object$/],
      ['another action', connect({ action: 'forward' }), /^malformed: action is neither connect nor reject$/],
      ['to not E.164', connect({ to: '4155550000' }), /^malformed: to is not an E.164 number$/],
      ['no callerId', connect({ callerId: undefined }), /^malformed: callerId is not an E.164 number$/],
      ['callerId as a number', connect({ callerId: 14155550152 }), /^malformed: callerId is not an E.164/],
      ['callerId outside the pool', connect({ callerId: NOT_IN_POOL }), /callerId is not a number of the/],
      ['callerId of another tenant', connect({ callerId: OTHER_TENANTS }), /callerId is not a number of the/],
      ['callerId retired', connect({ callerId: RETIRED }), /callerId is a retired number/],
      [
        'callerId on another carrier',
        connect({ callerId: TWILIO_NUMBER }),
        /not on the dialled number's carrier/,
      ],
      ['callerId without sms', connect({ callerId: VOICE_ONLY }), /callerId cannot carry sms/, 'sms'],
      ['to a pool number (a loop)', connect({ to: POOL[1] }), /^not allowed: to is a pool number$/],
      [
        'an answer over the limit',
        connect({ padding: 'x'.repeat(MAX_ANSWER_BYTES) }),
        new RegExp(`^an answer over ${MAX_ANSWER_BYTES} bytes$`),
      ],
      [
        'an answer over the limit, chunked',
        { ...connect({ padding: 'x'.repeat(MAX_ANSWER_BYTES) }), chunked: true },
        new RegExp(`^an answer over ${MAX_ANSWER_BYTES} bytes$`),
      ],
    ];
    for (const [name, reply, reason, channel = 'voice'] of cases) {
      app.calls.length = 0;
      app.reply(ASK, reply);
      const from = t.logs.length;
      const decision = await route(t, { from: STRANGER, to: P1, channel, body: 'hi' });
      assert.deepEqual(
        decision,
        {
          action: 'reject',
          reason: 'no_session',
          ...(channel === 'voice' ? { message: REFUSED } : {}),
          sessionId: null,
        },
        name,
      );
      assert.equal(app.calls.length, 1, name);
      const warnings = hookWarnings(t, from);
      assert.equal(warnings.length, 1, name);
      const [warning] = warnings;
      assert.equal(warning?.hook, 'ask', name);
      assert.equal(warning?.url, app.url(ASK), name);
      assert.match(String(warning?.reason), reason, name);
      assert.deepEqual(Object.keys(warning ?? {}).sort(), [
        'hook',
        'hostname',
        'level',
        'msg',
        'pid',
        'reason',
        'time',
        'url',
      ]);
    }
  });

  it('refuses an app that does not answer in time, answering the route within 3.5 s', async () => {
    const { t, app } = ctx;
    app.reply(ASK, 'never');
    const from = t.logs.length;
    const started = performance.now();
    const decision = await route(t, { from: STRANGER, to: P1, channel: 'voice' });
    const took = performance.now() - started;
    assert.deepEqual(decision, { action: 'reject', reason: 'no_session', message: REFUSED, sessionId: null });
    assert.ok(took >= HOOK_TIMEOUT_MS - 50, `answered after ${took} ms, before the timeout`);
    assert.ok(took < 3500, `answered after ${took} ms`);
    assert.match(String(hookWarnings(t, from)[0]?.reason), /^timeout: no answer in time$/);
  });

  it('never asks about a call or text in session, nor about a refusal in session', async () => {
    const { t, app } = ctx;
    app.answer(ASK, { action: 'reject' });
    const call = await route(t, { from: A, to: ctx.proxyOfA, channel: 'voice' });
    assert.deepEqual([call.action, call.to, call.sessionId], ['connect', B, ctx.sessionId]);
    const text = await route(t, { from: A, to: ctx.proxyOfA, channel: 'sms', body: 'hi' });
    assert.deepEqual([text.action, text.to], ['forward', B]);
    const s = await t.api('POST', '/v1/sessions', {
      channels: ['voice'],
      participants: [{ number: '+14155550124' }, { number: '+14155550188' }],
    });
    const [p] = s.json().participants;
    const refused = await route(t, { from: p.number, to: p.proxyNumber, channel: 'sms', body: 'x' });
    assert.deepEqual([refused.action, refused.reason], ['reject', 'channel_not_allowed']);
    assert.equal(app.calls.length, 0);
  });

  it('asks nobody about a number outside the pool, or in another tenant’s', async () => {
    const { t, app } = ctx;
    app.answer(ASK, { action: 'connect', to: SUPPORT, callerId: P3 });
    const outside = await route(t, { from: STRANGER, to: NOT_IN_POOL, channel: 'voice' });
    assert.deepEqual(outside, { action: 'reject', reason: 'no_session', message: REFUSED, sessionId: null });
    const theirs = await route(t, { from: STRANGER, to: OTHER_TENANTS, channel: 'voice' });
    assert.deepEqual(theirs, { action: 'reject', reason: 'no_session', message: REFUSED, sessionId: null });
    assert.equal(app.calls.length, 0);
  });
});

describeStores('POST /v1/route with VEIL_INTERCEPT_URL', (store) => {
  const ctx = setUp(store, (app) => ({
    VEIL_INTERCEPT_URL: app.url(INTERCEPT),
    VEIL_OUT_OF_SESSION: `forward:${SUPPORT}`,
  }));

  it('puts each call and text in session to the app, signed, and connects what it allows', async () => {
    const { t, app } = ctx;
    app.answer(INTERCEPT, { action: 'allow' });
    const call = await route(t, { from: A, to: ctx.proxyOfA, channel: 'voice' });
    assert.deepEqual([call.action, call.to, call.sessionId], ['connect', B, ctx.sessionId]);
    const text = await route(t, { from: A, to: ctx.proxyOfA, channel: 'sms', body: 'at the door' });
    assert.deepEqual([text.action, text.to, text.body], ['forward', B, 'at the door']);
    assert.deepEqual(
      app.calls.map((c) => [c.path, c.json]),
      [
        [INTERCEPT, { from: A, to: ctx.proxyOfA, channel: 'voice', sessionId: ctx.sessionId }],
        [INTERCEPT, { from: A, to: ctx.proxyOfA, channel: 'sms', sessionId: ctx.sessionId }],
      ],
    );
    for (const c of app.calls) assertSigned(c, ctx.secret);
  });

  it('refuses what the app vetoes as intercepted, in its session, and logs it so', async () => {
    const { t, app } = ctx;
    app.answer(INTERCEPT, { action: 'reject' });
    const from = t.logs.length;
    for (const channel of ['voice', 'sms']) {
      const decision = await route(t, { from: A, to: ctx.proxyOfA, channel, body: 'x' });
      assert.deepEqual(decision, {
        action: 'reject',
        reason: 'intercepted',
        ...(channel === 'voice' ? { message: REFUSED } : {}),
        sessionId: ctx.sessionId,
      });
      const logged = await lastInteraction(t);
      assert.deepEqual(
        [logged.action, logged.reason, logged.session_id, logged.channel, logged.target_number],
        ['reject', 'intercepted', ctx.sessionId, channel, null],
      );
    }
    assert.deepEqual(hookWarnings(t, from), [], 'a veto is the app’s answer, not a failure');
    // The session's log, through the API (whose schema must know the reason).
    const listed = await t.api('GET', `/v1/sessions/${ctx.sessionId}/interactions?limit=200`);
    assert.equal(listed.statusCode, 200, listed.body);
    const reasons = listed.json().data.map((i: { reason: string | null }) => i.reason);
    assert.equal(reasons.filter((r: string | null) => r === 'intercepted').length, 2);
  });

  it('refuses as intercepted on any answer but allow', async () => {
    const { t, app } = ctx;
    const cases: [string, HookReply, RegExp][] = [
      ['a 500 saying allow', { status: 500, body: '{"action":"allow"}' }, /^status 500$/],
      ['not JSON', { body: 'allow' }, /^malformed: the answer is not JSON$/],
      [
        'a connect answer',
        { body: '{"action":"connect"}' },
        /^malformed: action is neither allow nor reject$/,
      ],
      ['no action', { body: '{}' }, /^malformed: action is neither allow nor reject$/],
      ['a string', { body: '"allow"' }, /^malformed: the answer is not a JSON object$/],
    ];
    for (const [name, reply, reason] of cases) {
      app.reply(INTERCEPT, reply);
      const from = t.logs.length;
      const decision = await route(t, { from: A, to: ctx.proxyOfA, channel: 'voice' });
      assert.deepEqual(
        decision,
        { action: 'reject', reason: 'intercepted', message: REFUSED, sessionId: ctx.sessionId },
        name,
      );
      const [warning] = hookWarnings(t, from);
      assert.deepEqual([warning?.hook, warning?.url], ['intercept', app.url(INTERCEPT)], name);
      assert.match(String(warning?.reason), reason, name);
    }
  });

  it('refuses as intercepted when the app does not answer within 3 s', async () => {
    const { t, app } = ctx;
    app.reply(INTERCEPT, 'never');
    const started = performance.now();
    const decision = await route(t, { from: A, to: ctx.proxyOfA, channel: 'voice' });
    const took = performance.now() - started;
    assert.deepEqual(decision, {
      action: 'reject',
      reason: 'intercepted',
      message: REFUSED,
      sessionId: ctx.sessionId,
    });
    assert.ok(took >= HOOK_TIMEOUT_MS - 50 && took < 3500, `answered after ${took} ms`);
  });

  it('puts an out-of-session forward to the app too, without a sessionId; refusals it never sees', async () => {
    const { t, app } = ctx;
    app.answer(INTERCEPT, { action: 'allow' });
    const forwarded = await route(t, { from: STRANGER, to: P1, channel: 'voice' });
    assert.deepEqual([forwarded.action, forwarded.to, forwarded.callerId], ['connect', SUPPORT, P1]);
    assert.deepEqual(app.calls[0]?.json, { from: STRANGER, to: P1, channel: 'voice' });
    app.answer(INTERCEPT, { action: 'reject' });
    const vetoed = await route(t, { from: STRANGER, to: P1, channel: 'voice' });
    assert.deepEqual(vetoed, { action: 'reject', reason: 'intercepted', message: REFUSED, sessionId: null });
    app.calls.length = 0;
    const s = await t.api('POST', '/v1/sessions', {
      participants: [{ number: '+14155550125' }, { number: '+14155550189', canInitiate: false }],
    });
    const [, q] = s.json().participants;
    const refused = await route(t, { from: q.number, to: q.proxyNumber, channel: 'voice' });
    assert.deepEqual([refused.action, refused.reason], ['reject', 'not_allowed']);
    assert.equal(app.calls.length, 0);
  });
});

describeStores('POST /v1/route with both ask and intercept', (store) => {
  const ctx = setUp(store, (app) => ({
    VEIL_OUT_OF_SESSION: `ask:${app.url(ASK)}`,
    VEIL_INTERCEPT_URL: app.url(INTERCEPT),
  }));

  it('puts what ask connects to intercept, which may still veto it', async () => {
    const { t, app } = ctx;
    app.answer(ASK, { action: 'connect', to: SUPPORT, callerId: P3 });
    app.answer(INTERCEPT, { action: 'allow' });
    const allowed = await route(t, { from: STRANGER, to: P1, channel: 'voice' });
    assert.deepEqual([allowed.action, allowed.to, allowed.callerId], ['connect', SUPPORT, P3]);
    const payload = { from: STRANGER, to: P1, channel: 'voice' };
    assert.deepEqual(
      app.calls.map((c) => [c.path, c.json]),
      [
        [ASK, payload],
        [INTERCEPT, payload],
      ],
    );
    app.answer(INTERCEPT, { action: 'reject' });
    const vetoed = await route(t, { from: STRANGER, to: P1, channel: 'voice' });
    assert.deepEqual(vetoed, { action: 'reject', reason: 'intercepted', message: REFUSED, sessionId: null });
    app.calls.length = 0;
    app.answer(ASK, { action: 'reject' });
    await route(t, { from: STRANGER, to: P1, channel: 'voice' });
    assert.deepEqual(
      app.calls.map((c) => c.path),
      [ASK],
      'a refusal is not put to intercept',
    );
  });

  it('gives both webhooks together 3 s: a slow ask leaves intercept the rest', async () => {
    const { t, app } = ctx;
    app.reply(ASK, { delayMs: 2000, body: JSON.stringify({ action: 'connect', to: SUPPORT, callerId: P3 }) });
    app.reply(INTERCEPT, 'never');
    const started = performance.now();
    const decision = await route(t, { from: STRANGER, to: P1, channel: 'voice' });
    const took = performance.now() - started;
    assert.deepEqual(decision, {
      action: 'reject',
      reason: 'intercepted',
      message: REFUSED,
      sessionId: null,
    });
    assert.ok(took >= HOOK_TIMEOUT_MS - 50 && took < 3500, `answered after ${took} ms`);
  });
});
