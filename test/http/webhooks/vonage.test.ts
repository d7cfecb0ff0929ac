import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../../src/config.ts';
import {
  DEFAULT_GATHER_PROMPT,
  DEFAULT_REJECT_MESSAGE as NOT_AVAILABLE_MESSAGE,
  type RouteDecision,
} from '../../../src/domain/routing.ts';
import { RelayError } from '../../../src/providers/carrier.ts';
import { MessagesApi } from '../../../src/providers/vonage/messages-api.ts';
import { VonageAdapter, verifyVonageRequest } from '../../../src/providers/vonage/vonage-adapter.ts';
import {
  interactionRows as allInteractionRows,
  assertWebhookRefused,
  PUBLIC_URL,
  refusalLogged,
  type TestApp,
  testApp,
} from '../../support/app.ts';
import { describeStores, TEST_KEY_ENV } from '../../support/stores.ts';
import {
  answerBody,
  digits,
  FakeMessagesApi,
  inboundSms,
  postVonage,
  VONAGE_API_KEY,
  VONAGE_API_SECRET,
  VONAGE_SIGNATURE_SECRET,
  type VonageBody,
  vonageToken,
} from '../../support/vonage.ts';

const PROXY_NUMBERS = ['+14155550200', '+14155550201'];
const A = '+14155550101';
const B = '+14155550102';
const C = '+14155550103';
const D = '+14155550104';
const STRANGER = '+14155550999';
const EVERY_REAL_NUMBER = [A, B, C, D, STRANGER];

const VOICE = '/webhooks/vonage/voice';
const SMS = '/webhooks/vonage/sms';
const STATUS = '/webhooks/vonage/status';

const vonageEnv = (api: FakeMessagesApi) => ({
  VONAGE_API_KEY,
  VONAGE_API_SECRET,
  VONAGE_SIGNATURE_SECRET,
  VONAGE_API_URL: api.url,
});

/** Asserts that no form of a real number (with or without '+') is in `text`. */
function assertNoNumbers(text: string, what: string): void {
  for (const number of EVERY_REAL_NUMBER)
    for (const form of [number, digits(number)]) assert.ok(!text.includes(form), `${what} reveals ${form}`);
}

describeStores('Vonage webhooks', (store) => {
  const api = new FakeMessagesApi();
  let t: TestApp;
  const proxyOf = new Map<string, string>();
  let plainSession: string;
  let seq = 0;
  const uuid = () => `vonage-${++seq}-0000-0000-000000000000`;

  before(async () => {
    await api.start();
    t = await testApp(store(), vonageEnv(api));
    for (const number of PROXY_NUMBERS) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'vonage' });
      assert.equal(r.statusCode, 201, r.body);
    }
    plainSession = await openSession([A, B]);
    await openSession([C, D], { record: true, maxCallSeconds: 600 });
  });
  after(async () => {
    await t?.close();
    await api.stop();
  });

  async function openSession(numbers: string[], options: Record<string, unknown> = {}): Promise<string> {
    const r = await t.api('POST', '/v1/sessions', {
      ...options,
      participants: numbers.map((number) => ({ number })),
    });
    assert.equal(r.statusCode, 201, r.body);
    const session = r.json();
    for (const p of session.participants) proxyOf.set(p.number, p.proxyNumber);
    return session.id;
  }
  const proxy = (number: string): string => {
    const p = proxyOf.get(number);
    assert.ok(p, `no proxy for ${number}`);
    return p;
  };
  const interactionRows = () => allInteractionRows(t);

  describe('POST /webhooks/vonage/voice', () => {
    it("answers an NCCO that connects the other's real number, shown the other's proxy, in digits", async () => {
      const r = await postVonage(t, VOICE, answerBody(A, proxy(A), uuid()));
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      assert.deepEqual(r.json(), [
        { action: 'connect', from: digits(proxy(B)), endpoint: [{ type: 'phone', number: digits(B) }] },
      ]);
    });

    it('logs one interaction with provider vonage, the call uuid and E.164 numbers', async () => {
      const id = uuid();
      const before = (await interactionRows()).length;
      await postVonage(t, VOICE, answerBody(B, proxy(B), id));
      const rows = await interactionRows();
      assert.equal(rows.length, before + 1);
      const row = rows.find((i) => i.provider_call_id === id);
      assert.ok(row);
      assert.equal(row.provider, 'vonage');
      assert.equal(row.session_id, plainSession);
      assert.equal(row.action, 'connect');
      assert.equal(row.from_number, B);
      assert.equal(row.to_number, proxy(B));
      assert.equal(row.target_number, A);
    });

    it("records a recorded session's call and limits it to the session's maxCallSeconds", async () => {
      const r = await postVonage(t, VOICE, answerBody(C, proxy(C), uuid()));
      assert.deepEqual(r.json(), [
        { action: 'record', split: 'conversation', channels: 2, eventUrl: [`${PUBLIC_URL}${STATUS}`] },
        {
          action: 'connect',
          from: digits(proxy(D)),
          endpoint: [{ type: 'phone', number: digits(D) }],
          limit: 600,
        },
      ]);
    });

    it('tells a stranger the number is not available, and nothing else', async () => {
      const r = await postVonage(t, VOICE, answerBody(STRANGER, proxy(A), uuid()));
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), [{ action: 'talk', text: NOT_AVAILABLE_MESSAGE }]);
      assertNoNumbers(r.body, 'the NCCO');
    });

    it('refuses forged calls with 403 and routes nothing', async () => {
      const body = answerBody(STRANGER, proxy(A), 'forged-1');
      await assertWebhookRefused(t, () => postVonage(t, VOICE, body, 'unsigned'));
      await assertWebhookRefused(t, () =>
        postVonage(t, VOICE, { ...body, from: digits(A) }, { signedBody: JSON.stringify(body) }),
      );
      // The control: the same request, signed, is routed.
      assert.equal((await postVonage(t, VOICE, body)).statusCode, 200);
    });
  });

  describe('a refused signature says why, in a warning', () => {
    const refused = (send: () => Promise<{ statusCode: number; body: string }>) =>
      refusalLogged(t, { provider: 'vonage', path: VOICE, secret: VONAGE_SIGNATURE_SECRET }, send);
    const body = () => answerBody(A, proxy(A), uuid());

    it('names each cause, and logs neither secret nor token', async () => {
      // Each signing made as it is sent: a time read up front would drift toward the window on a busy machine.
      const cases: [() => Parameters<typeof postVonage>[3], string][] = [
        [() => 'unsigned', 'missing Authorization header'],
        [() => ({ header: (token) => token }), 'Authorization is not a Bearer JWT'],
        [
          () => ({ secret: 'another-secret-0123456789' }),
          'JWT signature does not match the signature secret, or the token expired',
        ],
        [
          () => ({ at: Date.now() - 60_000, expires: Date.now() - 1000 }),
          'JWT signature does not match the signature secret, or the token expired',
        ],
        [() => ({ at: Date.now() - 301_000 }), 'JWT iat outside the 300 s window'],
        [() => ({ at: Date.now() + 301_000 }), 'JWT iat outside the 300 s window'],
        [() => ({ signedBody: null }), 'JWT has no payload_hash claim'],
        [() => ({ signedBody: '{}' }), 'JWT payload_hash does not match the body'],
      ];
      for (const [signing, reason] of cases) {
        const from = t.logs.length;
        const { warning, raw } = await refused(() => postVonage(t, VOICE, body(), signing()));
        assert.equal(warning.reason, reason);
        assert.ok(!/eyJ/.test(raw), 'a token is in the log');
        assertNoNumbers(t.logs.slice(from).join(''), 'the log');
      }
    });

    it('accepts a token issued within the window either way', async () => {
      for (const at of [Date.now() - 280_000, Date.now() + 280_000]) {
        const r = await postVonage(t, VOICE, body(), { at });
        assert.equal(r.statusCode, 200, r.body);
      }
    });
  });

  describe('POST /webhooks/vonage/sms', () => {
    it("relays a participant's text through the Messages API, from the other's proxy, and acknowledges", async () => {
      const before = api.received.length;
      const id = uuid();
      const r = await postVonage(t, SMS, inboundSms(A, proxy(A), 'at the door <5 min> & "waiting"', id));
      assert.equal(r.statusCode, 200, r.body);
      const sent = api.received.slice(before);
      assert.equal(sent.length, 1);
      const [request] = sent;
      assert.ok(request);
      assert.equal(request.method, 'POST');
      assert.equal(request.url, '/v1/messages');
      assert.match(String(request.headers['content-type']), /^application\/json/);
      assert.equal(
        request.headers.authorization,
        `Basic ${Buffer.from(`${VONAGE_API_KEY}:${VONAGE_API_SECRET}`).toString('base64')}`,
      );
      assert.deepEqual(request.json, {
        message_type: 'text',
        channel: 'sms',
        to: digits(B),
        from: digits(proxy(B)),
        text: 'at the door <5 min> & "waiting"',
      });
      const row = (await interactionRows()).find((i) => i.provider_call_id === id);
      assert.equal(row?.provider, 'vonage');
      assert.equal(row?.channel, 'sms');
      assert.equal(row?.action, 'forward');
    });

    it("sends a stranger's text nowhere and acknowledges it", async () => {
      const before = api.received.length;
      const r = await postVonage(t, SMS, inboundSms(STRANGER, proxy(A), 'who is this?', uuid()));
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.body, '');
      assert.equal(api.received.length, before);
    });

    it('relays nothing that came on another channel than SMS', async () => {
      const before = api.received.length;
      const whatsapp = { ...inboundSms(A, proxy(A), 'hi', uuid()), channel: 'whatsapp' };
      const r = await postVonage(t, SMS, whatsapp);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(api.received.length, before);
    });

    it('answers 502 when the Messages API refuses the text, logging no number, and relays it on retry', async () => {
      const body = inboundSms(A, proxy(A), 'try again', uuid());
      api.answerNext({ status: 500, body: JSON.stringify({ title: 'Internal', detail: `to ${digits(B)}` }) });
      const from = t.logs.length;
      const r = await postVonage(t, SMS, body);
      assert.equal(r.statusCode, 502, r.body);
      assert.equal(r.json().error.code, 'relay_failed');
      assertNoNumbers(r.body, 'the answer');
      const log = t.logs.slice(from).join('');
      assertNoNumbers(log, 'the log');
      assert.ok(!log.includes('try again'), 'the text is in the log');
      const warning = t.logs
        .slice(from)
        .map((l) => JSON.parse(l))
        .find((l) => l.msg === 'text not relayed');
      assert.ok(warning, log);
      assert.equal(warning.reason, 'status 500');
      assert.equal(warning.sessionId, plainSession);
      // Vonage delivers the message again: relayed this time.
      const before = api.received.length;
      const retried = await postVonage(t, SMS, body);
      assert.equal(retried.statusCode, 200, retried.body);
      assert.equal(api.received.length, before + 1);
    });

    it('answers 502 when the Messages API does not answer within 3 s', async () => {
      api.answerNext({ hangMs: 4000 });
      const from = t.logs.length;
      const started = performance.now();
      const r = await postVonage(t, SMS, inboundSms(B, proxy(B), 'slow', uuid()));
      const took = performance.now() - started;
      assert.equal(r.statusCode, 502, r.body);
      assert.ok(took >= 2900 && took < 3900, `took ${took} ms`);
      const warning = t.logs
        .slice(from)
        .map((l) => JSON.parse(l))
        .find((l) => l.reason === 'timeout');
      assert.ok(warning, t.logs.slice(from).join(''));
      assertNoNumbers(t.logs.slice(from).join(''), 'the log');
    });

    it('refuses forged texts with 403 and sends nothing', async () => {
      const before = api.received.length;
      const body = inboundSms(STRANGER, proxy(A), 'hi', 'forged-sms');
      await assertWebhookRefused(t, () => postVonage(t, SMS, body, 'unsigned'));
      await assertWebhookRefused(t, () =>
        postVonage(t, SMS, { ...body, from: digits(A) }, { signedBody: JSON.stringify(body) }),
      );
      await assertWebhookRefused(t, () =>
        postVonage(t, SMS, { ...body, from: digits(A) }, { secret: 'x'.repeat(32) }),
      );
      assert.equal(api.received.length, before);
    });
  });

  describe('POST /webhooks/vonage/status', () => {
    const event = (
      id: string,
      from: string,
      to: string,
      status: string,
      extra: VonageBody = {},
    ): VonageBody => ({
      from: digits(from),
      to: digits(to),
      uuid: id,
      conversation_uuid: `CON-${id}`,
      status,
      direction: 'inbound',
      timestamp: '2026-01-01T00:00:00.000Z',
      ...extra,
    });
    const rowOf = async (id: string) => (await interactionRows()).filter((i) => i.provider_call_id === id);

    it("updates the call's interaction: answered is in-progress, completed with its duration", async () => {
      const id = uuid();
      await postVonage(t, VOICE, answerBody(A, proxy(A), id));
      const answered = await postVonage(t, STATUS, event(id, A, proxy(A), 'answered'));
      assert.equal(answered.statusCode, 200, answered.body);
      assert.equal((await rowOf(id))[0]?.status, 'in-progress');
      const r = await postVonage(t, STATUS, event(id, A, proxy(A), 'completed', { duration: '42' }));
      assert.equal(r.statusCode, 200, r.body);
      const [row] = await rowOf(id);
      assert.equal(row?.status, 'completed');
      assert.equal(row?.duration_seconds, 42);
    });

    it('re-creates a lost inbound call from its event, and never a row from the outbound leg', async () => {
      const id = uuid();
      await postVonage(t, VOICE, answerBody(A, proxy(A), id));
      await t.veil.interactions.flush();
      await t.veil.store.db.deleteFrom('interactions').where('provider_call_id', '=', id).execute();
      await postVonage(t, STATUS, event(id, A, proxy(A), 'completed', { duration: '7' }));
      const rows = await rowOf(id);
      assert.equal(rows.length, 1);
      assert.equal(rows[0]?.status, 'completed');
      assert.equal(rows[0]?.target_number, B);
      // The leg the connect dialled: from the proxy to the real callee, under a uuid of its own.
      const leg = uuid();
      const r = await postVonage(t, STATUS, {
        ...event(leg, proxy(B), B, 'completed', { duration: '7' }),
        direction: 'outbound',
      });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal((await rowOf(leg)).length, 0);
    });

    it('acknowledges a message status and a recording report, changing nothing', async () => {
      const before = (await interactionRows()).length;
      for (const body of [
        { message_uuid: uuid(), to: digits(B), from: digits(proxy(B)), status: 'delivered', channel: 'sms' },
        {
          recording_url: 'https://api.nexmo.com/v1/files/abc',
          recording_uuid: uuid(),
          conversation_uuid: 'CON-1',
        },
      ]) {
        const r = await postVonage(t, STATUS, body);
        assert.equal(r.statusCode, 200, r.body);
      }
      assert.equal((await interactionRows()).length, before);
    });

    it('refuses a forged event with 403 and changes nothing', async () => {
      const id = uuid();
      await postVonage(t, VOICE, answerBody(A, proxy(A), id));
      const forged = event(id, A, proxy(A), 'completed', { duration: '999' });
      await assertWebhookRefused(t, () => postVonage(t, STATUS, forged, 'unsigned'));
      await assertWebhookRefused(t, () =>
        postVonage(t, STATUS, forged, { signedBody: JSON.stringify({ ...forged, duration: '1' }) }),
      );
      const [row] = await rowOf(id);
      assert.equal(row?.status, 'routed');
      assert.equal(row?.duration_seconds, null);
    });
  });

  describe('takes JSON only', () => {
    it('refuses a signed form body, or none, with 415 and routes nothing', async () => {
      const body = answerBody(A, proxy(A), uuid());
      const form = new URLSearchParams(body as Record<string, string>).toString();
      const before = (await interactionRows()).length;
      for (const type of ['application/x-www-form-urlencoded', 'text/plain', undefined]) {
        const r = await t.app.inject({
          method: 'POST',
          url: VOICE,
          headers: {
            ...(type ? { 'content-type': type } : {}),
            authorization: `Bearer ${vonageToken(form)}`,
          },
          payload: form,
        });
        assert.equal(r.statusCode, 415, r.body);
        assert.equal(r.json().error.code, 'unsupported_media_type');
        assert.equal(r.json().error.message, 'vonage webhooks take application/json only');
      }
      assert.equal((await interactionRows()).length, before);
    });
  });

  describe('without Vonage credentials', () => {
    let u: TestApp | undefined;
    before(async () => {
      u = await testApp(store());
    });
    after(async () => {
      await u?.close();
    });

    it('answers 404 on every Vonage webhook path', async () => {
      assert.ok(u);
      const restarted = u;
      const before = api.received.length;
      for (const [path, body] of [
        [VOICE, answerBody(A, proxy(A), uuid())],
        [SMS, inboundSms(A, proxy(A), 'hi', uuid())],
        [STATUS, { uuid: uuid(), status: 'completed', duration: '1' }],
      ] as const) {
        const r = await postVonage(restarted, path, body);
        assert.equal(r.statusCode, 404, `${path}: ${r.body}`);
        assert.equal(r.json().error.code, 'not_found');
      }
      assert.equal(api.received.length, before);
    });
  });
});

describeStores('Vonage extension fallback', (store) => {
  const api = new FakeMessagesApi();
  let t: TestApp;
  let x: string;
  let extension: string;
  let seq = 0;
  const uuid = () => `gather-${++seq}`;

  before(async () => {
    await api.start();
    t = await testApp(store(), vonageEnv(api));
    const r = await t.api('POST', '/v1/numbers', {
      number: PROXY_NUMBERS[0],
      provider: 'vonage',
      maxSessions: 1,
    });
    assert.equal(r.statusCode, 201, r.body);
    await t.api('POST', '/v1/sessions', { mode: 'shared', participants: [{ number: A }, { number: B }] });
    const s = await t.api('POST', '/v1/sessions', {
      mode: 'shared',
      extensionFallback: true,
      participants: [{ number: C }, { number: D }],
    });
    assert.equal(s.statusCode, 201, s.body);
    const c = s.json().participants[0];
    x = c.proxyNumber;
    extension = c.extension;
    assert.match(extension, /^\d{4}$/);
  });
  after(async () => {
    await t?.close();
    await api.stop();
  });

  const gatherNcco = (prompt: string, attempt: number) => [
    { action: 'talk', text: prompt, bargeIn: true },
    {
      action: 'input',
      type: ['dtmf'],
      dtmf: { maxDigits: 4, timeOut: 5 },
      eventUrl: [`${PUBLIC_URL}${VOICE}?attempt=${attempt}`],
      eventMethod: 'POST',
    },
  ];
  /** The input action's result, as Vonage POSTs it to the input's eventUrl. */
  const keyed = (attempt: number, keys: string, id = uuid()) =>
    postVonage(t, `${VOICE}?attempt=${attempt}`, {
      ...answerBody(C, x, id),
      dtmf: { digits: keys, timed_out: keys === '' },
      speech: { results: [] },
      timestamp: '2026-01-01T00:00:00.000Z',
    });
  const goodbye = [{ action: 'talk', text: NOT_AVAILABLE_MESSAGE }];
  const retryPrompt = (attempt: number) =>
    gatherNcco(`That extension is not valid. ${DEFAULT_GATHER_PROMPT}`, attempt);

  it('asks for the extension with a talk and a DTMF input reported at VEIL_PUBLIC_URL', async () => {
    const r = await postVonage(t, VOICE, answerBody(C, x, uuid()));
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), gatherNcco(DEFAULT_GATHER_PROMPT, 1));
  });

  it('puts the keyed extension through to the other participant', async () => {
    const r = await keyed(1, extension);
    assert.deepEqual(r.json(), [
      { action: 'connect', from: digits(x), endpoint: [{ type: 'phone', number: digits(D) }] },
    ]);
  });

  it('asks again after a wrong extension, and lets the caller go after the last attempt', async () => {
    assert.deepEqual((await keyed(1, '0000')).json(), retryPrompt(2));
    assert.deepEqual((await keyed(2, '0000')).json(), retryPrompt(3));
    assert.deepEqual((await keyed(3, '0000')).json(), goodbye);
  });

  it('counts silence as an attempt', async () => {
    assert.deepEqual((await keyed(1, '')).json(), gatherNcco(DEFAULT_GATHER_PROMPT, 2));
    assert.deepEqual((await keyed(3, '')).json(), goodbye);
  });

  it('trusts the unsigned attempt in the URL no further than one past the last', async () => {
    assert.deepEqual((await keyed(99, '0000')).json(), goodbye);
    assert.deepEqual((await keyed(0, '0000')).json(), retryPrompt(2));
  });

  it('refuses an unsigned input result with 403', async () => {
    await assertWebhookRefused(t, () =>
      postVonage(
        t,
        `${VOICE}?attempt=1`,
        { ...answerBody(C, x, 'forged'), dtmf: { digits: extension } },
        'unsigned',
      ),
    );
  });
});

describe('VonageAdapter announcements', () => {
  const adapter = new VonageAdapter('secret', new MessagesApi('http://127.0.0.1:1', 'k', 's'), {
    publicUrl: PUBLIC_URL,
  });
  const ncco = (decision: RouteDecision) => JSON.parse(adapter.renderVoice(decision).body);

  it("speaks a reject's message in its language and voice style, or plays its recording", () => {
    assert.deepEqual(
      ncco({
        action: 'reject',
        reason: 'no_session',
        sessionId: null,
        message: { text: 'Nicht erreichbar.', language: 'de-DE', voice: '2' },
      }),
      [{ action: 'talk', text: 'Nicht erreichbar.', language: 'de-DE', style: 2 }],
    );
    assert.deepEqual(
      ncco({
        action: 'reject',
        reason: 'no_session',
        sessionId: null,
        message: { text: 'Not available.', voice: 'Polly.Amy', audioUrl: 'https://app.example/na.mp3' },
      }),
      [{ action: 'stream', streamUrl: ['https://app.example/na.mp3'] }],
    );
  });

  it("asks a gather's prompt as its message says", () => {
    const [prompt] = ncco({
      action: 'gather',
      numDigits: 4,
      prompt: 'Code?',
      sessionId: null,
      message: { text: 'Code?', language: 'en-GB' },
    });
    assert.deepEqual(prompt, { action: 'talk', text: 'Code?', language: 'en-GB', bargeIn: true });
  });

  it('caps the call limit at Vonage’s two hours', () => {
    const [connect] = ncco({
      action: 'connect',
      to: B,
      callerId: PROXY_NUMBERS[0] as string,
      sessionId: 'ses_1',
      record: false,
      maxCallSeconds: 86_400,
    });
    assert.equal(connect.limit, 7200);
  });
});

describe('verifyVonageRequest', () => {
  const raw = '{"from":"14155550101"}';
  const headers = (token: string) => ({ authorization: `Bearer ${token}` });

  it('accepts Vonage’s token for exactly this body and refuses a second Authorization header', () => {
    const token = vonageToken(raw);
    assert.deepEqual(verifyVonageRequest(VONAGE_SIGNATURE_SECRET, headers(token), raw, Date.now()), {
      ok: true,
    });
    assert.equal(
      verifyVonageRequest(VONAGE_SIGNATURE_SECRET, headers(token), `${raw} `, Date.now()).ok,
      false,
    );
    const twice = { authorization: [`Bearer ${token}`, `Bearer ${token}`] };
    assert.deepEqual(verifyVonageRequest(VONAGE_SIGNATURE_SECRET, twice, raw, Date.now()), {
      ok: false,
      reason: 'Authorization header sent more than once',
    });
  });
});

describe('MessagesApi', () => {
  it('throws a RelayError when the API cannot be reached', async () => {
    const messages = new MessagesApi('http://127.0.0.1:1', 'k', 's', 1000);
    await assert.rejects(
      () => messages.send({ to: '14155550102', from: '14155550200', text: 'hi' }),
      (error: unknown) => error instanceof RelayError && error.message === 'unreachable',
    );
  });
});

describe('Vonage configuration', () => {
  const credentials = {
    VONAGE_API_KEY: 'key',
    VONAGE_API_SECRET: 'api-s3cret',
    VONAGE_SIGNATURE_SECRET: 'sig-s3cret',
  };

  it('enables Vonage with all three credentials, on api.nexmo.com unless told otherwise', () => {
    assert.deepEqual(loadConfig(credentials).vonage, {
      apiKey: 'key',
      apiSecret: 'api-s3cret',
      signatureSecret: 'sig-s3cret',
      apiUrl: 'https://api.nexmo.com',
      restUrl: 'https://rest.nexmo.com',
    });
    assert.equal(
      loadConfig({ ...credentials, VONAGE_REST_URL: 'http://127.0.0.1:4010/' }).vonage?.restUrl,
      'http://127.0.0.1:4010',
    );
    assert.equal(
      loadConfig({ ...credentials, VONAGE_API_URL: 'https://api-eu.vonage.com/' }).vonage?.apiUrl,
      'https://api-eu.vonage.com',
    );
    assert.equal(loadConfig({}).vonage, undefined);
    assert.equal(
      loadConfig({ VONAGE_API_KEY: '', VONAGE_API_SECRET: '', VONAGE_SIGNATURE_SECRET: '' }).vonage,
      undefined,
    );
  });

  it('refuses a partial set, naming the missing variable and echoing no secret', () => {
    for (const missing of Object.keys(credentials)) {
      const env = { ...credentials, [missing]: '' };
      assert.throws(
        () => loadConfig(env),
        (error: unknown) =>
          error instanceof ConfigError && error.key === missing && !error.message.includes('s3cret'),
      );
    }
    assert.throws(() => loadConfig({ VONAGE_SIGNATURE_SECRET: 'sig-s3cret' }), {
      message: 'VONAGE_API_KEY: is required when VONAGE_SIGNATURE_SECRET is set',
    });
  });

  it('takes VONAGE_API_URL over https in production, http only on a loopback host', () => {
    const production = {
      ...credentials,
      NODE_ENV: 'production',
      ...TEST_KEY_ENV,
      VEIL_API_KEY: 'a'.repeat(24),
    };
    assert.throws(
      () => loadConfig({ ...production, VONAGE_API_URL: 'http://api.nexmo.com' }),
      /VONAGE_API_URL/,
    );
    assert.throws(
      () => loadConfig({ ...production, VONAGE_REST_URL: 'http://rest.nexmo.com' }),
      /VONAGE_REST_URL/,
    );
    assert.equal(
      loadConfig({ ...production, VONAGE_API_URL: 'http://127.0.0.1:8080' }).vonage?.apiUrl,
      'http://127.0.0.1:8080',
    );
    assert.equal(
      loadConfig({ ...credentials, VONAGE_API_URL: 'http://relay.internal' }).vonage?.apiUrl,
      'http://relay.internal',
    );
    for (const bad of [
      'not a url',
      'ftp://api.nexmo.com',
      'https://u:p@api.nexmo.com',
      'https://api.nexmo.com/?x=1',
    ]) {
      assert.throws(() => loadConfig({ ...credentials, VONAGE_API_URL: bad }), /VONAGE_API_URL/, bad);
    }
  });
});
