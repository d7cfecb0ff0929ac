import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signSimRequest } from '../../../src/providers/sim/sim-adapter.ts';
import {
  interactionRows as allInteractionRows,
  assertWebhookRefused,
  refusalLogged,
  SIM_SECRET,
  type TestApp,
  testApp,
} from '../../support/app.ts';
import { describeStores, TEST_KEY_ENV } from '../../support/stores.ts';

const PROXY_NUMBERS = ['+14155550300', '+14155550301'];
const A = '+14155550111';
const B = '+14155550112';
const STRANGER = '+14155550998';
const MINUTE_MS = 60_000;

interface Signing {
  secret?: string;
  /** When the request was signed (default: now). */
  at?: number;
  /** The body the signature covers (default: the one sent). */
  signedBody?: string;
  /** Headers replacing the signature headers. */
  headers?: Record<string, string>;
}

describeStores('simulator webhooks', (store) => {
  let t: TestApp;
  let sessionId: string;
  const proxyOf = new Map<string, string>();
  let callSeq = 0;

  before(async () => {
    t = await testApp(store());
    // The signature's freshness is judged on the wall clock; keep the app's clock on it too.
    t.clock.now = Date.now();
    for (const number of PROXY_NUMBERS) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'sim' });
      assert.equal(r.statusCode, 201, r.body);
    }
    const s = await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] });
    assert.equal(s.statusCode, 201, s.body);
    sessionId = s.json().id;
    for (const p of s.json().participants) proxyOf.set(p.number, p.proxyNumber);
  });
  after(async () => {
    await t?.close();
  });

  const proxy = (number: string): string => {
    const p = proxyOf.get(number);
    assert.ok(p);
    return p;
  };
  const nextCallId = () => `sim-call-${++callSeq}`;

  /** A simulator webhook: a JSON body, signed over its exact bytes unless 'unsigned'. */
  function post(app: TestApp, path: string, body: unknown, signing: Signing | 'unsigned' = {}) {
    const raw = JSON.stringify(body);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (signing !== 'unsigned') {
      Object.assign(
        headers,
        signing.headers ??
          signSimRequest(signing.secret ?? SIM_SECRET, signing.signedBody ?? raw, signing.at ?? Date.now()),
      );
    }
    return app.app.inject({ method: 'POST', url: path, headers, payload: raw });
  }

  const interactionRows = () => allInteractionRows(t);

  const assertRefused = (send: Parameters<typeof assertWebhookRefused>[1]) => assertWebhookRefused(t, send);

  describe('POST /webhooks/sim/voice', () => {
    it('answers a signed call with the neutral connect decision', async () => {
      const r = await post(t, '/webhooks/sim/voice', { from: A, to: proxy(A), callId: nextCallId() });
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      assert.deepEqual(r.json(), {
        action: 'connect',
        to: B,
        callerId: proxy(B),
        sessionId,
        record: false,
        maxCallSeconds: null,
      });
    });

    it('writes exactly one interaction with provider sim and the callId', async () => {
      const before = (await interactionRows()).length;
      const callId = nextCallId();
      await post(t, '/webhooks/sim/voice', { from: B, to: proxy(B), callId });
      const rows = await interactionRows();
      assert.equal(rows.length, before + 1);
      const row = rows.find((i) => i.provider_call_id === callId);
      assert.equal(row?.provider, 'sim');
      assert.equal(row?.session_id, sessionId);
      assert.equal(row?.target_number, A);
    });

    it('rejects a stranger without naming anyone', async () => {
      const r = await post(t, '/webhooks/sim/voice', { from: STRANGER, to: proxy(A) });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), {
        action: 'reject',
        reason: 'no_session',
        message: { text: 'The number you have dialled is not available.' },
        sessionId: null,
      });
    });

    it('accepts a signature a few minutes old (within the 5 minute window)', async () => {
      const r = await post(
        t,
        '/webhooks/sim/voice',
        { from: A, to: proxy(A) },
        { at: Date.now() - 4 * MINUTE_MS },
      );
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().action, 'connect');
    });

    describe('refuses with 403 and routes nothing', () => {
      const path = '/webhooks/sim/voice';
      const call = () => ({ from: A, to: proxy(A), callId: nextCallId() });

      it('a request signed with another secret', async () => {
        await assertRefused(() => post(t, path, call(), { secret: 'not-the-sim-secret' }));
      });

      it('a stale or future timestamp (more than 5 minutes off)', async () => {
        await assertRefused(() => post(t, path, call(), { at: Date.now() - 6 * MINUTE_MS }));
        await assertRefused(() => post(t, path, call(), { at: Date.now() + 6 * MINUTE_MS }));
      });

      it('a timestamp changed after signing', async () => {
        const body = call();
        const signed = signSimRequest(SIM_SECRET, JSON.stringify(body), Date.now() - 10 * MINUTE_MS);
        await assertRefused(() =>
          post(t, path, body, {
            headers: { ...signed, 'x-sim-timestamp': String(Math.floor(Date.now() / 1000)) },
          }),
        );
      });

      it('a body altered after signing', async () => {
        const signedBody = { from: STRANGER, to: proxy(A), callId: nextCallId() };
        await assertRefused(() =>
          post(t, path, { ...signedBody, from: A }, { signedBody: JSON.stringify(signedBody) }),
        );
        // Same JSON meaning, other bytes: the signature covers the bytes.
        const body = call();
        await assertRefused(() => post(t, path, body, { signedBody: JSON.stringify(body, null, 1) }));
      });

      it('half a signature, or a malformed one', async () => {
        const body = call();
        const full = signSimRequest(SIM_SECRET, JSON.stringify(body));
        await assertRefused(() =>
          post(t, path, body, { headers: { 'x-sim-signature': full['x-sim-signature'] as string } }),
        );
        await assertRefused(() =>
          post(t, path, body, { headers: { 'x-sim-timestamp': full['x-sim-timestamp'] as string } }),
        );
        await assertRefused(() =>
          post(t, path, body, { headers: { ...full, 'x-sim-timestamp': 'yesterday' } }),
        );
        await assertRefused(() => post(t, path, body, { headers: { ...full, 'x-sim-signature': '' } }));
      });

      it('an unsigned request', async () => {
        await assertRefused(() => post(t, path, call(), 'unsigned'));
      });
    });
  });

  describe('a refused signature says why, in a warning', () => {
    const path = '/webhooks/sim/voice';
    const call = () => ({ from: A, to: proxy(A), callId: nextCallId() });

    const refused = (send: () => Promise<{ statusCode: number; body: string }>) =>
      refusalLogged(t, { provider: 'sim', path, secret: SIM_SECRET }, send);

    it('an unsigned request: both headers missing', async () => {
      const { warning } = await refused(() => post(t, path, call(), 'unsigned'));
      assert.equal(warning.reason, 'missing X-Sim-Signature and X-Sim-Timestamp headers');
    });

    it('half a signature: the missing header named', async () => {
      const body = call();
      const full = signSimRequest(SIM_SECRET, JSON.stringify(body));
      const noTimestamp = await refused(() =>
        post(t, path, body, { headers: { 'x-sim-signature': full['x-sim-signature'] as string } }),
      );
      assert.equal(noTimestamp.warning.reason, 'missing X-Sim-Timestamp header');
      const noSignature = await refused(() =>
        post(t, path, body, { headers: { 'x-sim-timestamp': full['x-sim-timestamp'] as string } }),
      );
      assert.equal(noSignature.warning.reason, 'missing X-Sim-Signature header');
    });

    it('a stale timestamp: outside the window', async () => {
      const { warning } = await refused(() => post(t, path, call(), { at: Date.now() - 6 * MINUTE_MS }));
      assert.equal(warning.reason, 'X-Sim-Timestamp outside the 300 s window');
    });

    it('another secret: no match, and neither secret nor signature in the log', async () => {
      const body = call();
      const headers = signSimRequest('not-the-sim-secret', JSON.stringify(body));
      const { warning, raw } = await refused(() => post(t, path, body, { headers }));
      assert.equal(warning.reason, 'signature does not match the body');
      assert.ok(!raw.includes('not-the-sim-secret'));
      assert.ok(!raw.includes(headers['x-sim-signature'] as string), 'the signature is in the log');
    });
  });

  describe('POST /webhooks/sim/sms', () => {
    it('answers a signed text with the neutral forward decision', async () => {
      const r = await post(t, '/webhooks/sim/sms', { from: B, to: proxy(B), body: 'on my way' });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), {
        action: 'forward',
        to: A,
        from: proxy(A),
        body: 'on my way',
        sessionId,
      });
    });

    it('refuses an unsigned or altered text with 403', async () => {
      const text = { from: B, to: proxy(B), body: 'hi' };
      await assertRefused(() => post(t, '/webhooks/sim/sms', text, 'unsigned'));
      await assertRefused(() =>
        post(t, '/webhooks/sim/sms', { ...text, body: 'changed' }, { signedBody: JSON.stringify(text) }),
      );
    });
  });

  describe('POST /webhooks/sim/status', () => {
    it('updates the interaction when signed, and not when unsigned', async () => {
      const callId = nextCallId();
      await post(t, '/webhooks/sim/voice', { from: A, to: proxy(A), callId });
      const find = async () => (await interactionRows()).find((i) => i.provider_call_id === callId);

      const refused = await post(
        t,
        '/webhooks/sim/status',
        { callId, status: 'completed', durationSeconds: 999 },
        'unsigned',
      );
      assert.equal(refused.statusCode, 403, refused.body);
      assert.equal((await find())?.status, 'routed');
      assert.equal((await find())?.duration_seconds, null);

      const r = await post(t, '/webhooks/sim/status', { callId, status: 'completed', durationSeconds: 42 });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), { ok: true });
      assert.equal((await find())?.status, 'completed');
      assert.equal((await find())?.duration_seconds, 42);
    });
  });

  describe('POST /webhooks/sim/recording', () => {
    it("keeps a signed report's recording on the call, and refuses an unsigned one", async () => {
      const callId = nextCallId();
      await post(t, '/webhooks/sim/voice', { from: A, to: proxy(A), callId });
      const find = async () => (await interactionRows()).find((i) => i.provider_call_id === callId);
      const report = { callId, status: 'completed', url: 'https://sim.example/rec/1', durationSeconds: 12 };

      const refused = await post(t, '/webhooks/sim/recording', report, 'unsigned');
      assert.equal(refused.statusCode, 403, refused.body);
      assert.equal((await find())?.recording_status, null);

      const r = await post(t, '/webhooks/sim/recording', report);
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), { ok: true });
      const log = await t.api('GET', `/v1/sessions/${sessionId}/interactions?limit=200`);
      const call = log.json().data.find((i: { providerCallId: string }) => i.providerCallId === callId);
      assert.deepEqual(call.recording, {
        url: 'https://sim.example/rec/1',
        durationSeconds: 12,
        status: 'completed',
      });
    });
  });

  describe('POST /webhooks/sim/sms with media', () => {
    it('forwards the media it keeps (http(s) URLs, at most 10) in the decision', async () => {
      const ok = Array.from({ length: 11 }, (_, i) => `https://sim.example/m/${i}.jpg`);
      const r = await post(t, '/webhooks/sim/sms', {
        from: B,
        to: proxy(B),
        body: 'look',
        media: ['javascript:alert(1)', 7, ...ok],
      });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), {
        action: 'forward',
        to: A,
        from: proxy(A),
        body: 'look',
        media: ok.slice(0, 10),
        sessionId,
      });
    });
  });

  describe('takes JSON only', () => {
    const path = '/webhooks/sim/voice';

    /** A signed body of another media type: 415, nothing parsed, routed or written. */
    async function assertUnsupported(contentType: string | undefined, payload: string) {
      const before = (await interactionRows()).length;
      const r = await t.app.inject({
        method: 'POST',
        url: path,
        headers: {
          ...(contentType ? { 'content-type': contentType } : {}),
          ...signSimRequest(SIM_SECRET, payload),
        },
        payload,
      });
      assert.equal(r.statusCode, 415, r.body);
      assert.deepEqual(r.json(), {
        error: { code: 'unsupported_media_type', message: 'sim webhooks take application/json only' },
      });
      assert.equal((await interactionRows()).length, before, 'a refused webhook wrote an interaction');
    }

    it('refuses a form, text or untyped body with 415', async () => {
      const form = new URLSearchParams({ from: A, to: proxy(A) }).toString();
      await assertUnsupported('application/x-www-form-urlencoded', form);
      const json = JSON.stringify({ from: A, to: proxy(A) });
      await assertUnsupported('text/plain', json);
      await assertUnsupported(undefined, json);
      await assertUnsupported(undefined, '');
    });

    it('accepts application/json with a charset', async () => {
      const raw = JSON.stringify({ from: A, to: proxy(A) });
      const r = await t.app.inject({
        method: 'POST',
        url: path,
        headers: { 'content-type': 'application/json; charset=utf-8', ...signSimRequest(SIM_SECRET, raw) },
        payload: raw,
      });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().action, 'connect');
    });
  });

  describe('in production', () => {
    // The simulator's numbers reach nobody: production has no simulator.
    let prod: TestApp | undefined;
    before(async () => {
      // The same database: what the first app still holds must land before rows are counted here.
      await t.veil.interactions.flush();
      prod = await testApp(store(), { NODE_ENV: 'production', ...TEST_KEY_ENV });
      prod.clock.now = Date.now();
    });
    after(async () => {
      await prod?.close();
    });

    it('has no simulator webhooks: even a signed request is 404 and writes nothing', async () => {
      assert.ok(prod);
      const before = (await allInteractionRows(prod)).length;
      const r = await post(prod, '/webhooks/sim/voice', { from: A, to: proxy(A), callId: nextCallId() });
      assert.equal(r.statusCode, 404, r.body);
      assert.equal((await allInteractionRows(prod)).length, before);
    });

    it('refuses simulator numbers, and never allocates those added before', async () => {
      assert.ok(prod);
      const add = await prod.api('POST', '/v1/numbers', { number: '+14155550309', provider: 'sim' });
      assert.equal(add.statusCode, 400, add.body);
      assert.equal(add.json().error.field, 'provider');
      assert.match(add.json().error.message, /refused in production/);
      // The pool holds only this suite's sim numbers: a session finds none it may take.
      const s = await prod.api('POST', '/v1/sessions', {
        participants: [{ number: '+14155550121' }, { number: '+14155550122' }],
      });
      assert.equal(s.statusCode, 503, s.body);
      assert.equal(s.json().error.code, 'pool_exhausted');
    });
  });
});
