import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../../src/config.ts';
import type { RouteDecision } from '../../../src/domain/routing.ts';
import { TelnyxAdapter } from '../../../src/providers/telnyx/telnyx-adapter.ts';
import {
  interactionRows as allInteractionRows,
  assertWebhookRefused,
  PUBLIC_URL,
  refusalLogged,
  type TestApp,
  testApp,
} from '../../support/app.ts';
import { texmlCall } from '../../support/carriers/telnyx.ts';
import { describeStores } from '../../support/stores.ts';
import {
  FakeMessagingApi,
  messageReceived,
  OTHER_TELNYX_KEYS,
  postTelnyx,
  signTelnyx,
  TELNYX_API_KEY,
  TELNYX_KEYS,
} from '../../support/telnyx.ts';

const VOICE = '/webhooks/telnyx/voice';
const SMS = '/webhooks/telnyx/sms';
const STATUS = '/webhooks/telnyx/status';
const RECORDING = '/webhooks/telnyx/recording';
const FORM = 'application/x-www-form-urlencoded';

const PROXY_NUMBERS = ['+14155550300', '+14155550301'];
const A = '+14155550131';
const B = '+14155550132';
const C = '+14155550133';
const D = '+14155550134';
const E = '+14155550135';
const F = '+14155550136';
const STRANGER = '+14155550998';
const EVERY_REAL_NUMBER = [A, B, C, D, E, F, STRANGER];

const texml = (inner: string) => `<?xml version="1.0" encoding="UTF-8"?><Response>${inner}</Response>`;
const NOT_AVAILABLE = '<Say>The number you have dialled is not available.</Say><Hangup/>';

/** The forms a real number could take in a log or a reply: with and without '+'. */
const digitsOf = (number: string) => [number, number.slice(1)];

const telnyxEnv = (api: FakeMessagingApi) => ({
  TELNYX_API_KEY,
  TELNYX_PUBLIC_KEY: TELNYX_KEYS.publicKey,
  TELNYX_API_URL: api.url,
});

describeStores('Telnyx webhooks', (store) => {
  const api = new FakeMessagingApi();
  let t: TestApp;
  const proxyOf = new Map<string, string>();
  let plain: string;
  let recorded: string;
  let seq = 0;
  const callId = () => `v3:telnyx-call-${++seq}`;
  const messageId = () => `40318f5a-0000-4000-8000-${String(++seq).padStart(12, '0')}`;

  before(async () => {
    await api.start();
    t = await testApp(store(), telnyxEnv(api));
    // telnyx-timestamp is judged on the wall clock: keep the app's on it too.
    t.clock.now = Date.now();
    for (const number of PROXY_NUMBERS) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'telnyx' });
      assert.equal(r.statusCode, 201, r.body);
    }
    plain = await openSession([A, B]);
    recorded = await openSession([C, D], { record: true });
    await openSession([E, F], { maxCallSeconds: 90 });
  });
  after(async () => {
    // Whatever the suite did, no real number reached the log in clear.
    const log = t?.logs.join('') ?? '';
    await t?.close();
    await api.stop();
    for (const number of EVERY_REAL_NUMBER)
      for (const form of digitsOf(number)) assert.ok(!log.includes(form), `the log holds ${form}`);
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
  const call = (from: string, to: string, id = callId()) => texmlCall({ from, to, id });
  const voice = (from: string, to: string, id?: string) => postTelnyx(t, VOICE, { form: call(from, to, id) });
  const text = (from: string, to: string, body: string, extra: { id?: string; media?: string[] } = {}) => {
    const id = extra.id ?? messageId();
    return { id, event: messageReceived({ id, from, to, body, media: extra.media }) };
  };
  const interactionRows = () => allInteractionRows(t);
  async function interactionsOf(sessionId: string) {
    const r = await t.api('GET', `/v1/sessions/${sessionId}/interactions?limit=200`);
    assert.equal(r.statusCode, 200, r.body);
    return r.json().data as {
      providerCallId: string;
      status: string;
      durationSeconds: number | null;
      recording: { url: string | null; durationSeconds: number | null; status: string } | null;
    }[];
  }

  describe('POST /webhooks/telnyx/voice', () => {
    it("answers TeXML dialling the other's real number, shown the other's proxy", async () => {
      const id = callId();
      const r = await voice(A, proxy(A), id);
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^text\/xml/);
      assert.equal(r.body, texml(`<Dial callerId="${proxy(B)}"><Number>${B}</Number></Dial>`));
      const back = await voice(B, proxy(B));
      assert.equal(back.body, texml(`<Dial callerId="${proxy(A)}"><Number>${A}</Number></Dial>`));
      const row = (await interactionRows()).find((i) => i.provider_call_id === id);
      assert.equal(row?.provider, 'telnyx');
      assert.equal(row?.session_id, plain);
      assert.equal(row?.action, 'connect');
      assert.equal(row?.target_number, B);
    });

    it("limits the call to the session's maxCallSeconds with timeLimit", async () => {
      const r = await voice(E, proxy(E));
      assert.equal(r.body, texml(`<Dial callerId="${proxy(F)}" timeLimit="90"><Number>${F}</Number></Dial>`));
    });

    it('records a recorded session, reported at VEIL_PUBLIC_URL, and keeps the report', async () => {
      const id = callId();
      const r = await voice(C, proxy(C), id);
      assert.equal(
        r.body,
        texml(
          `<Dial callerId="${proxy(D)}" record="record-from-answer-dual" ` +
            `recordingStatusCallback="${PUBLIC_URL}${RECORDING}" recordingStatusCallbackEvent="completed">` +
            `<Number>${D}</Number></Dial>`,
        ),
      );
      const url = 'https://api.telnyx.com/v2/recordings/35094891-3290-4142-b2c2-b2eda57534cf.mp3';
      const report = await postTelnyx(t, RECORDING, {
        form: {
          AccountSid: 'f5586561-8ff0-4291-a51b-c7dfe4139ff9',
          CallSid: id,
          RecordingSid: '35094891-3290-4142-b2c2-b2eda57534cf',
          RecordingUrl: url,
          RecordingDuration: '37',
          RecordingStatus: 'completed',
          RecordingSource: 'DialVerb',
        },
      });
      assert.equal(report.statusCode, 200, report.body);
      const row = (await interactionsOf(recorded)).find((i) => i.providerCallId === id);
      assert.deepEqual(row?.recording, { url, durationSeconds: 37, status: 'completed' });
    });

    it('refuses a stranger with a short message and reveals no participant', async () => {
      const r = await voice(STRANGER, proxy(A));
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.body, texml(NOT_AVAILABLE));
      for (const number of EVERY_REAL_NUMBER)
        for (const form of digitsOf(number)) assert.ok(!r.body.includes(form), `reply reveals ${form}`);
    });
  });

  describe('POST /webhooks/telnyx/sms', () => {
    it('relays a text through the Messaging API, with the API key, and acknowledges it', async () => {
      const from = api.received.length;
      const { id, event } = text(A, proxy(A), 'at the door <5 min> & "waiting"');
      const r = await postTelnyx(t, SMS, { json: event });
      assert.equal(r.statusCode, 200, r.body);
      assert.deepEqual(r.json(), { ok: true });
      const sends = api.sendsSince(from);
      assert.equal(sends.length, 1);
      const [sent] = sends;
      assert.equal(sent?.headers.authorization, `Bearer ${TELNYX_API_KEY}`);
      assert.match(String(sent?.headers['content-type']), /^application\/json/);
      assert.deepEqual(sent?.body, { from: proxy(B), to: B, text: 'at the door <5 min> & "waiting"' });
      const row = (await interactionRows()).find((i) => i.provider_call_id === id);
      assert.equal(row?.provider, 'telnyx');
      assert.equal(row?.channel, 'sms');
      assert.equal(row?.action, 'forward');
    });

    it("relays an MMS's media as media_urls, dropping what is not an http(s) URL", async () => {
      const from = api.received.length;
      const media = [
        'https://media.telnyx.example/a.jpg',
        'javascript:alert(1)',
        'https://media.telnyx.example/b.png',
      ];
      const r = await postTelnyx(t, SMS, { json: text(B, proxy(B), '', { media }).event });
      assert.equal(r.statusCode, 200, r.body);
      const [sent] = api.sendsSince(from);
      assert.deepEqual(sent?.body, {
        from: proxy(A),
        to: A,
        media_urls: ['https://media.telnyx.example/a.jpg', 'https://media.telnyx.example/b.png'],
      });
    });

    it("sends nothing for a stranger's text, and answers 200", async () => {
      const from = api.received.length;
      const { id, event } = text(STRANGER, proxy(A), 'who is this?');
      const r = await postTelnyx(t, SMS, { json: event });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(api.received.length, from, 'a refused text reached the Messaging API');
      const row = (await interactionRows()).find((i) => i.provider_call_id === id);
      assert.equal(row?.action, 'reject');
    });

    it('acknowledges message.sent and message.finalized, routing and writing nothing', async () => {
      const from = api.received.length;
      const before = (await interactionRows()).length;
      for (const type of ['message.sent', 'message.finalized']) {
        const event = messageReceived({ id: messageId(), from: proxy(B), to: B, body: 'relayed' }) as {
          data: { event_type: string };
        };
        event.data.event_type = type;
        const r = await postTelnyx(t, SMS, { json: event });
        assert.equal(r.statusCode, 200, `${type}: ${r.body}`);
      }
      assert.equal(api.received.length, from);
      assert.equal((await interactionRows()).length, before);
    });

    it('answers 502 when the Messaging API refuses the send, and logs why without a number', async () => {
      api.behaviour = { answer: 'status', status: 422 };
      try {
        const logFrom = t.logs.length;
        const r = await postTelnyx(t, SMS, { json: text(A, proxy(A), 'secret words').event });
        assert.equal(r.statusCode, 502, r.body);
        assert.equal(r.json().error.code, 'relay_failed');
        const log = t.logs.slice(logFrom).join('');
        const warning = t.logs
          .slice(logFrom)
          .map((l) => JSON.parse(l))
          .find((l) => l.msg === 'text not relayed');
        assert.equal(warning?.reason, 'the Messaging API answered 422');
        assert.equal(warning?.provider, 'telnyx');
        assert.ok(!log.includes('secret words'), 'the text is in the log');
        for (const number of [A, B, proxy(A), proxy(B)])
          for (const form of digitsOf(number)) assert.ok(!log.includes(form), `the log holds ${form}`);
      } finally {
        api.behaviour = { answer: 'ok' };
      }
    });

    it('answers 502 when the Messaging API does not answer within 3 s, so that Telnyx retries', async () => {
      api.behaviour = { answer: 'hang' };
      try {
        const logFrom = t.logs.length;
        const started = performance.now();
        const r = await postTelnyx(t, SMS, { json: text(A, proxy(A), 'slow').event });
        const took = performance.now() - started;
        assert.equal(r.statusCode, 502, r.body);
        assert.ok(took >= 2900 && took < 4500, `took ${took} ms`);
        const warning = t.logs
          .slice(logFrom)
          .map((l) => JSON.parse(l))
          .find((l) => l.msg === 'text not relayed');
        assert.equal(warning?.reason, 'no answer from the Messaging API within 3000 ms');
      } finally {
        api.behaviour = { answer: 'ok' };
      }
    });

    it('refuses a text altered after signing, or signed by another key, sending nothing', async () => {
      const from = api.received.length;
      const { event } = text(STRANGER, proxy(A), 'hi');
      const signed = JSON.stringify(event);
      const altered = signed.replace(JSON.stringify(STRANGER), JSON.stringify(A));
      assert.notEqual(altered, signed);
      await assertWebhookRefused(t, () =>
        postTelnyx(t, SMS, { raw: altered, contentType: 'application/json' }, { signedBody: signed }),
      );
      await assertWebhookRefused(t, () =>
        postTelnyx(t, SMS, { json: event }, { key: OTHER_TELNYX_KEYS.privateKey }),
      );
      await assertWebhookRefused(t, () => postTelnyx(t, SMS, { json: event }, 'unsigned'));
      assert.equal(api.received.length, from);
    });
  });

  describe('POST /webhooks/telnyx/status', () => {
    it("lands the call's status and duration on its interaction", async () => {
      const id = callId();
      await voice(A, proxy(A), id);
      const r = await postTelnyx(t, STATUS, {
        form: { ...call(A, proxy(A), id), CallStatus: 'completed', CallDuration: '42' },
      });
      assert.equal(r.statusCode, 200, r.body);
      const row = (await interactionsOf(plain)).find((i) => i.providerCallId === id);
      assert.equal(row?.status, 'completed');
      assert.equal(row?.durationSeconds, 42);
    });

    it('refuses a forged status and changes nothing', async () => {
      const id = callId();
      await voice(A, proxy(A), id);
      const form = { ...call(A, proxy(A), id), CallStatus: 'completed', CallDuration: '999' };
      await assertWebhookRefused(t, () =>
        postTelnyx(t, STATUS, { form }, { key: OTHER_TELNYX_KEYS.privateKey }),
      );
      await assertWebhookRefused(t, () => postTelnyx(t, STATUS, { form }, { at: Date.now() - 600_000 }));
      const row = (await interactionsOf(plain)).find((i) => i.providerCallId === id);
      assert.equal(row?.status, 'routed');
      assert.equal(row?.durationSeconds, null);
    });
  });

  describe('one media type per path', () => {
    it('takes forms only on voice and status, JSON only on sms, and answers 415 otherwise', async () => {
      const before = (await interactionRows()).length;
      const from = api.received.length;
      const params = call(A, proxy(A));
      const cases = [
        [VOICE, JSON.stringify(params), 'application/json', `telnyx voice webhooks take ${FORM} only`],
        [STATUS, JSON.stringify(params), 'application/json', `telnyx status webhooks take ${FORM} only`],
        [
          SMS,
          new URLSearchParams({ From: A, To: proxy(A), Body: 'hi' }).toString(),
          FORM,
          'telnyx sms webhooks take application/json only',
        ],
        [
          SMS,
          JSON.stringify(text(A, proxy(A), 'hi').event),
          'text/plain',
          'telnyx sms webhooks take application/json only',
        ],
        [VOICE, new URLSearchParams(params).toString(), undefined, `telnyx voice webhooks take ${FORM} only`],
      ] as const;
      for (const [path, raw, contentType, message] of cases) {
        // Signed as Telnyx would sign the body: only the media type is wrong.
        const r = await postTelnyx(t, path, { raw, contentType });
        assert.equal(r.statusCode, 415, `${path} ${contentType}: ${r.body}`);
        assert.deepEqual(r.json(), { error: { code: 'unsupported_media_type', message } });
      }
      assert.equal((await interactionRows()).length, before);
      assert.equal(api.received.length, from);
      // The controls: each path in its own media type, with a charset.
      const ok = await postTelnyx(t, VOICE, {
        raw: new URLSearchParams(params).toString(),
        contentType: `${FORM}; charset=utf-8`,
      });
      assert.match(ok.body, /<Dial/);
    });
  });

  describe('a refused signature says why, in a warning', () => {
    const refused = (send: () => Promise<{ statusCode: number; body: string }>) =>
      refusalLogged(t, { provider: 'telnyx', path: VOICE, secret: TELNYX_API_KEY }, send);

    it('names the missing header', async () => {
      const { warning } = await refused(() => postTelnyx(t, VOICE, { form: call(A, proxy(A)) }, 'unsigned'));
      assert.equal(warning.reason, 'missing telnyx-signature-ed25519 header');
    });

    it('says the timestamp is outside the window', async () => {
      const { warning } = await refused(() =>
        postTelnyx(t, VOICE, { form: call(A, proxy(A)) }, { at: Date.now() - 3_600_000 }),
      );
      assert.equal(warning.reason, 'telnyx-timestamp outside the 300 s window');
    });

    it('says the signature does not match, without logging it', async () => {
      const form = call(A, proxy(A));
      const headers = signTelnyx(new URLSearchParams(form).toString(), { key: OTHER_TELNYX_KEYS.privateKey });
      const { warning, raw } = await refused(() => postTelnyx(t, VOICE, { form }, { headers }));
      assert.equal(warning.reason, 'signature does not match the timestamp and body');
      assert.ok(!raw.includes(headers['telnyx-signature-ed25519'] ?? '-'), 'the signature is in the log');
    });

    it('says a malformed signature is malformed, without quoting it', async () => {
      const { warning, raw } = await refused(() =>
        postTelnyx(
          t,
          VOICE,
          { form: call(A, proxy(A)) },
          { headers: { 'telnyx-signature-ed25519': 'forged~sig' } },
        ),
      );
      assert.equal(warning.reason, 'telnyx-signature-ed25519 is not a base64 Ed25519 signature');
      assert.ok(!raw.includes('forged~sig'));
    });
  });

  describe('without Telnyx credentials', () => {
    let u: TestApp | undefined;
    before(async () => {
      u = await testApp(store(), { TELNYX_API_KEY: '', TELNYX_PUBLIC_KEY: '' });
    });
    after(async () => {
      await u?.close();
    });

    it('answers 404 on every Telnyx webhook path', async () => {
      assert.ok(u);
      const restarted = u;
      const before = (await interactionRows()).length;
      for (const [path, body] of [
        [VOICE, { form: call(A, proxy(A)) }],
        [STATUS, { form: { ...call(A, proxy(A)), CallStatus: 'completed' } }],
        [SMS, { json: text(A, proxy(A), 'hi').event }],
      ] as const) {
        const r = await postTelnyx(restarted, path, body);
        assert.equal(r.statusCode, 404, `${path}: ${r.body}`);
        assert.equal(r.json().error.code, 'not_found');
      }
      await restarted.veil.interactions.flush();
      assert.equal((await interactionRows()).length, before);
    });
  });
});

describeStores('Telnyx webhooks: extension fallback', (store) => {
  const api = new FakeMessagingApi();
  let t: TestApp;
  let proxyNumber: string;
  let extension: string;

  before(async () => {
    await api.start();
    t = await testApp(store(), telnyxEnv(api));
    t.clock.now = Date.now();
    const r = await t.api('POST', '/v1/numbers', {
      number: '+14155550310',
      provider: 'telnyx',
      maxSessions: 1,
    });
    assert.equal(r.statusCode, 201, r.body);
    const people = (...numbers: string[]) => numbers.map((number) => ({ number }));
    assert.equal(
      (await t.api('POST', '/v1/sessions', { participants: people(A, B), mode: 'shared' })).statusCode,
      201,
    );
    const shared = await t.api('POST', '/v1/sessions', {
      participants: people(C, D),
      mode: 'shared',
      extensionFallback: true,
    });
    assert.equal(shared.statusCode, 201, shared.body);
    const [c] = shared.json().participants;
    proxyNumber = c.proxyNumber;
    extension = c.extension;
  });
  after(async () => {
    await t?.close();
    await api.stop();
  });

  // Each of the call's requests signed a second after the one before, as Telnyx would (a caller
  // keys each extension in turn): the same body and time again would be refused as a replay.
  let second = 0;
  const dial = (path: string, extra: Record<string, string> = {}) =>
    postTelnyx(
      t,
      path,
      { form: { ...texmlCall({ from: C, to: proxyNumber, id: 'v3:gather' }), ...extra } },
      { at: Date.now() + ++second * 1000 },
    );

  it('asks for the extension with a TeXML Gather whose action carries the attempt', async () => {
    const r = await dial(VOICE);
    assert.equal(
      r.body,
      texml(
        `<Gather input="dtmf" numDigits="4" action="${PUBLIC_URL}${VOICE}?attempt=1">` +
          '<Say>Please enter the extension you were given.</Say></Gather>' +
          NOT_AVAILABLE,
      ),
    );
  });

  it('puts the keyed extension through, shown the proxy', async () => {
    const r = await dial(`${VOICE}?attempt=1`, { Digits: extension });
    assert.equal(r.body, texml(`<Dial callerId="${proxyNumber}"><Number>${D}</Number></Dial>`));
  });

  it('asks again after a wrong extension, then ends the call', async () => {
    const wrong1 = await dial(`${VOICE}?attempt=1`, { Digits: '0000' });
    assert.equal(
      wrong1.body,
      texml(
        `<Gather input="dtmf" numDigits="4" action="${PUBLIC_URL}${VOICE}?attempt=2">` +
          '<Say>That extension is not valid. Please enter the extension you were given.</Say></Gather>' +
          NOT_AVAILABLE,
      ),
    );
    const wrong2 = await dial(`${VOICE}?attempt=2`, { Digits: '0000' });
    assert.match(wrong2.body, /attempt=3/);
    const wrong3 = await dial(`${VOICE}?attempt=3`, { Digits: '0000' });
    assert.equal(wrong3.body, texml(NOT_AVAILABLE));
  });
});

describe('TelnyxAdapter.renderVoice', () => {
  const adapter = new TelnyxAdapter(
    { apiKey: TELNYX_API_KEY, publicKey: TELNYX_KEYS.publicKey, apiUrl: 'http://127.0.0.1:9' },
    PUBLIC_URL,
  );
  const connect = (maxCallSeconds: number | null): RouteDecision => ({
    action: 'connect',
    to: B,
    callerId: '+14155550300',
    sessionId: 's',
    record: false,
    maxCallSeconds,
  });

  it('holds timeLimit to the 60 s to 4 h TeXML takes', () => {
    assert.match(adapter.renderVoice(connect(30)).body, /timeLimit="60"/);
    assert.match(adapter.renderVoice(connect(600)).body, /timeLimit="600"/);
    assert.match(adapter.renderVoice(connect(86_400)).body, /timeLimit="14400"/);
    assert.doesNotMatch(adapter.renderVoice(connect(null)).body, /timeLimit/);
  });

  it("speaks a reject's message in its language and voice, escaped", () => {
    const r = adapter.renderVoice({
      action: 'reject',
      reason: 'no_session',
      sessionId: null,
      message: { text: 'Nicht <verfügbar> & "weg"', language: 'de-DE', voice: 'Polly.Marlene' },
    });
    assert.equal(
      r.body,
      texml('<Say voice="Polly.Marlene" language="de-DE">Nicht &lt;verfügbar&gt; &amp; "weg"</Say><Hangup/>'),
    );
  });

  it("plays a reject's recording when it has one", () => {
    const r = adapter.renderVoice({
      action: 'reject',
      reason: 'no_session',
      sessionId: null,
      message: { text: 'Not available', audioUrl: 'https://cdn.example/closed.mp3?a=1&b=2' },
    });
    assert.equal(r.body, texml('<Play>https://cdn.example/closed.mp3?a=1&amp;b=2</Play><Hangup/>'));
  });

  it('escapes the numbers and URLs it writes into attributes', () => {
    const r = adapter.renderVoice({ ...connect(null), callerId: '+1"&<' } as RouteDecision);
    assert.match(r.body, /callerId="\+1&quot;&amp;&lt;"/);
  });
});

describe('Telnyx configuration', () => {
  const base = { TELNYX_API_KEY, TELNYX_PUBLIC_KEY: TELNYX_KEYS.publicKey };
  const configError = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error;
    }
    assert.fail('no ConfigError');
  };

  it('is enabled by both keys, with the default API URL', () => {
    assert.deepEqual(loadConfig(base).telnyx, {
      apiKey: TELNYX_API_KEY,
      publicKey: TELNYX_KEYS.publicKey,
      apiUrl: 'https://api.telnyx.com',
    });
    assert.equal(loadConfig({}).telnyx, undefined);
    assert.equal(
      loadConfig({ ...base, TELNYX_API_URL: 'http://127.0.0.1:8080/' }).telnyx?.apiUrl,
      'http://127.0.0.1:8080',
    );
  });

  it('names the missing half of a partial set', () => {
    assert.equal(configError({ TELNYX_API_KEY }).key, 'TELNYX_PUBLIC_KEY');
    assert.equal(configError({ TELNYX_PUBLIC_KEY: TELNYX_KEYS.publicKey }).key, 'TELNYX_API_KEY');
  });

  it('refuses a public key that is not 32 bytes of base64', () => {
    for (const key of [
      Buffer.alloc(31, 1).toString('base64'),
      Buffer.alloc(33, 1).toString('base64'),
      TELNYX_KEYS.publicKey.replace('=', ''),
      `${TELNYX_KEYS.publicKey.slice(0, 10)}*${TELNYX_KEYS.publicKey.slice(11)}`,
    ]) {
      const error = configError({ ...base, TELNYX_PUBLIC_KEY: key });
      assert.equal(error.key, 'TELNYX_PUBLIC_KEY');
      assert.match(error.message, /32-byte Ed25519 public key in base64/);
    }
  });

  it('refuses an API URL that is not http(s) or carries credentials', () => {
    assert.equal(configError({ ...base, TELNYX_API_URL: 'ftp://api.telnyx.com' }).key, 'TELNYX_API_URL');
    assert.equal(
      configError({ ...base, TELNYX_API_URL: 'https://user:pw@api.telnyx.com' }).key,
      'TELNYX_API_URL',
    );
  });
});

describeStores("Telnyx texts and the carrier's circuit", (store) => {
  const api = new FakeMessagingApi();
  let t: TestApp;
  let proxyOfA: string;

  before(async () => {
    await api.start();
    t = await testApp(store(), {
      ...telnyxEnv(api),
      VEIL_PROVIDER_FAILURES: '2',
      VEIL_PROVIDER_HALF_OPEN_MS: '200',
    });
    t.clock.now = Date.now();
    const added = await t.api('POST', '/v1/numbers', { number: PROXY_NUMBERS[0], provider: 'telnyx' });
    assert.equal(added.statusCode, 201, added.body);
    const r = await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] });
    assert.equal(r.statusCode, 201, r.body);
    proxyOfA = r.json().participants[0].proxyNumber;
  });
  after(async () => {
    await t?.close();
    await api.stop();
  });

  const send = (from: string, to: string) =>
    postTelnyx(t, SMS, { json: messageReceived({ id: `m-${Math.random()}`, from, to, body: 'hi' }) });
  const health = async () =>
    ((await t.api('GET', '/v1/providers')).json().data as { name: string; health: string }[]).find(
      (p) => p.name === 'telnyx',
    )?.health;

  it('takes no refused text for a trial of the carrier: down until a text is relayed again', async () => {
    api.behaviour = { answer: 'status', status: 503 };
    for (let i = 0; i < 2; i++) assert.equal((await send(A, proxyOfA)).statusCode, 502);
    assert.equal(await health(), 'down');
    await new Promise((r) => setTimeout(r, 250)); // the circuit's wait is over: the next relay tries
    // A stranger's text is refused without a word to the carrier: it says nothing of its health.
    assert.equal((await send(STRANGER, proxyOfA)).statusCode, 200);
    assert.notEqual(t.veil.health.circuit('telnyx'), 'closed');
    await new Promise((r) => setTimeout(r, 50)); // what a closing circuit writes, were it closed
    assert.equal(await health(), 'down');
    api.behaviour = { answer: 'ok' };
    assert.equal((await send(A, proxyOfA)).statusCode, 200);
    assert.equal(t.veil.health.circuit('telnyx'), 'closed');
    await new Promise((r) => setTimeout(r, 50)); // the closing circuit's write
    assert.notEqual(await health(), 'down');
  });
});
