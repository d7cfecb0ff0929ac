import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { InjectOptions } from 'fastify';
import twilio from 'twilio';
import { formParameters, MAX_FORM_PARAMETERS } from '../../../src/http/webhooks.ts';
import {
  interactionRows as allInteractionRows,
  assertWebhookRefused,
  PUBLIC_URL,
  refusalLogged,
  type TestApp,
  TWILIO_SID,
  TWILIO_TOKEN,
  testApp,
} from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

type Params = Record<string, string>;

const FORM = 'application/x-www-form-urlencoded';

const PROXY_NUMBERS = ['+14155550200', '+14155550201'];
const A = '+14155550101';
const B = '+14155550102';
const C = '+14155550103';
const D = '+14155550104';
const E = '+14155550105';
const F = '+14155550106';
const STRANGER = '+14155550999';
const EVERY_REAL_NUMBER = [A, B, C, D, E, F];

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';
const twiml = (inner: string) => `${XML_DECLARATION}<Response>${inner}</Response>`;

interface Signing {
  /** The auth token to sign with (default: the configured one). */
  token?: string;
  /** The URL to sign (default: VEIL_PUBLIC_URL + the path requested). */
  signedUrl?: string;
  /** The params to sign (default: those sent). */
  signedParams?: Params;
  headers?: Record<string, string>;
}

/** The real digits of a number with and without '+', as they could leak into a reply. */
function digitsOf(number: string): string[] {
  return [number, number.slice(1)];
}

describeStores('Twilio webhooks', (store) => {
  let t: TestApp;
  /** Each real number's proxy in its session. */
  const proxyOf = new Map<string, string>();
  let plainSession: string;
  let recordedSession: string;
  let callSeq = 0;

  before(async () => {
    t = await testApp(store());
    for (const number of PROXY_NUMBERS) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'twilio' });
      assert.equal(r.statusCode, 201, r.body);
    }
    plainSession = await openSession([A, B]);
    recordedSession = await openSession([C, D], { record: true });
    await openSession([E, F], { ttlSeconds: 60 });
  });
  after(async () => {
    await t?.close();
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

  const nextCallSid = () => `CA${String(++callSeq).padStart(32, '0')}`;

  /** A webhook as Twilio sends it: form-encoded, signed over VEIL_PUBLIC_URL + path and the params. */
  function post(path: string, params: Params, signing: Signing | 'unsigned' = {}) {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (signing !== 'unsigned') {
      headers['x-twilio-signature'] = twilio.getExpectedTwilioSignature(
        signing.token ?? TWILIO_TOKEN,
        signing.signedUrl ?? PUBLIC_URL + path,
        signing.signedParams ?? params,
      );
      Object.assign(headers, signing.headers);
    }
    const options: InjectOptions = {
      method: 'POST',
      url: path,
      headers,
      payload: new URLSearchParams(params).toString(),
    };
    return t.app.inject(options);
  }

  const voiceParams = (from: string, to: string, callSid = nextCallSid()): Params => ({
    AccountSid: TWILIO_SID,
    CallSid: callSid,
    From: from,
    To: to,
    CallStatus: 'ringing',
    Direction: 'inbound',
  });

  const smsParams = (from: string, to: string, body: string): Params => ({
    AccountSid: TWILIO_SID,
    MessageSid: `SM${String(++callSeq).padStart(32, '0')}`,
    From: from,
    To: to,
    Body: body,
    NumMedia: '0',
  });

  const interactionRows = () => allInteractionRows(t);

  async function interactionsOf(sessionId: string) {
    const r = await t.api('GET', `/v1/sessions/${sessionId}/interactions?limit=200`);
    assert.equal(r.statusCode, 200, r.body);
    return r.json().data as { providerCallId: string; status: string; durationSeconds: number | null }[];
  }

  const assertRefused = (send: Parameters<typeof assertWebhookRefused>[1]) => assertWebhookRefused(t, send);

  describe('POST /webhooks/twilio/voice', () => {
    it("connects a participant to the other's real number, shown the other's proxy", async () => {
      const r = await post('/webhooks/twilio/voice', voiceParams(A, proxy(A)));
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^text\/xml/);
      assert.equal(r.body, twiml(`<Dial callerId="${proxy(B)}"><Number>${B}</Number></Dial>`));
      // And the other way round.
      const back = await post('/webhooks/twilio/voice', voiceParams(B, proxy(B)));
      assert.equal(back.body, twiml(`<Dial callerId="${proxy(A)}"><Number>${A}</Number></Dial>`));
    });

    it('writes exactly one interaction with provider twilio and the CallSid', async () => {
      const before = await interactionRows();
      const callSid = nextCallSid();
      const r = await post('/webhooks/twilio/voice', voiceParams(A, proxy(A), callSid));
      assert.equal(r.statusCode, 200, r.body);
      const rows = await interactionRows();
      assert.equal(rows.length, before.length + 1);
      const row = rows.find((i) => i.provider_call_id === callSid);
      assert.ok(row, 'no interaction with the CallSid');
      assert.equal(row.provider, 'twilio');
      assert.equal(row.session_id, plainSession);
      assert.equal(row.channel, 'voice');
      assert.equal(row.action, 'connect');
      assert.equal(row.from_number, A);
      assert.equal(row.to_number, proxy(A));
      assert.equal(row.target_number, B);
      assert.equal(row.caller_id, proxy(B));
    });

    it('refuses a stranger with a short message and reveals no participant', async () => {
      const r = await post('/webhooks/twilio/voice', voiceParams(STRANGER, proxy(A)));
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^text\/xml/);
      assert.match(r.body, /^<\?xml[^>]*\?><Response><Say>[^<]+<\/Say><Hangup\/><\/Response>$/);
      assert.doesNotMatch(r.body, /<Dial|<Number/);
      for (const number of EVERY_REAL_NUMBER)
        for (const form of digitsOf(number)) assert.ok(!r.body.includes(form), `reply reveals ${form}`);
    });

    it('refuses a participant dialling a proxy that is not theirs in any session', async () => {
      const notMine = PROXY_NUMBERS.find((n) => n !== proxy(A));
      assert.ok(notMine);
      const r = await post('/webhooks/twilio/voice', voiceParams(A, notMine));
      assert.equal(r.statusCode, 200, r.body);
      assert.match(r.body, /<Hangup\/>/);
      assert.doesNotMatch(r.body, /<Dial/);
    });

    it('records the call when the session asks for it, reported at VEIL_PUBLIC_URL, and only then', async () => {
      const r = await post('/webhooks/twilio/voice', voiceParams(C, proxy(C)));
      assert.equal(r.statusCode, 200, r.body);
      assert.match(
        r.body,
        new RegExp(
          `<Dial callerId="\\${proxy(D)}" record="record-from-answer[^"]*" ` +
            `recordingStatusCallback="${PUBLIC_URL}/webhooks/twilio/recording" ` +
            `recordingStatusCallbackEvent="completed absent"><Number>\\${D}</Number></Dial>`,
        ),
      );
      const plain = await post('/webhooks/twilio/voice', voiceParams(A, proxy(A)));
      assert.doesNotMatch(plain.body, /record=/);
      const session = await t.api('GET', `/v1/sessions/${recordedSession}`);
      assert.equal(session.json().record, true);
    });

    it('refuses a call in a session past its ttl', async () => {
      // Still open a second before the end.
      t.clock.advance(59);
      const open = await post('/webhooks/twilio/voice', voiceParams(E, proxy(E)));
      assert.match(open.body, /<Dial callerId=/);
      t.clock.advance(2);
      const r = await post('/webhooks/twilio/voice', voiceParams(E, proxy(E)));
      assert.equal(r.statusCode, 200, r.body);
      assert.match(r.body, /<Say>[^<]+<\/Say><Hangup\/>/);
      assert.doesNotMatch(r.body, /<Dial/);
      for (const form of digitsOf(F)) assert.ok(!r.body.includes(form));
    });

    describe('refuses with 403 and routes nothing', () => {
      const path = '/webhooks/twilio/voice';
      it('an unsigned request', async () => {
        await assertRefused(() => post(path, voiceParams(A, proxy(A)), 'unsigned'));
        await assertRefused(() =>
          post(path, voiceParams(A, proxy(A)), { headers: { 'x-twilio-signature': '' } }),
        );
      });

      it('a request signed with another auth token', async () => {
        await assertRefused(() =>
          post(path, voiceParams(A, proxy(A)), { token: 'another-accounts-auth-token-000000' }),
        );
      });

      it('a request signed for another URL', async () => {
        const params = voiceParams(A, proxy(A));
        await assertRefused(() => post(path, params, { signedUrl: `http://evil.example${path}` }));
        await assertRefused(() => post(path, params, { signedUrl: `${PUBLIC_URL}/webhooks/twilio/sms` }));
        // The query string is part of what is signed, both ways.
        await assertRefused(() => post(path, params, { signedUrl: `${PUBLIC_URL}${path}?tenant=other` }));
        await assertRefused(() => post(`${path}?tenant=other`, params, { signedUrl: PUBLIC_URL + path }));
      });

      it('a request signed for the Host header instead of VEIL_PUBLIC_URL', async () => {
        const params = voiceParams(A, proxy(A));
        await assertRefused(() =>
          post(path, params, {
            signedUrl: `http://evil.example${path}`,
            headers: { host: 'evil.example' },
          }),
        );
        await assertRefused(() =>
          post(path, params, {
            signedUrl: `https://evil.example${path}`,
            headers: {
              host: 'evil.example',
              'x-forwarded-host': 'evil.example',
              'x-forwarded-proto': 'https',
            },
          }),
        );
      });

      it('a body altered after signing', async () => {
        const signed = voiceParams(STRANGER, proxy(A));
        // The stranger replays a signed request of their own with A's number as caller.
        await assertRefused(() => post(path, { ...signed, From: A }, { signedParams: signed }));
        // Or adds a parameter.
        await assertRefused(() => post(path, { ...signed, Extra: '1' }, { signedParams: signed }));
      });

      it('even when the same request, signed, is accepted', async () => {
        // The control for the cases above: only the signature differs.
        const r = await post(path, voiceParams(A, proxy(A)));
        assert.equal(r.statusCode, 200, r.body);
      });
    });
  });

  describe('a refused signature says why, in a warning', () => {
    const path = '/webhooks/twilio/voice';

    const refused = (send: () => Promise<{ statusCode: number; body: string }>) =>
      refusalLogged(t, { provider: 'twilio', path, secret: TWILIO_TOKEN }, send);

    it('names the missing X-Twilio-Signature header', async () => {
      const { warning } = await refused(() => post(path, voiceParams(A, proxy(A)), 'unsigned'));
      assert.equal(warning.reason, 'missing X-Twilio-Signature header');
      assert.equal(warning.signatureMatchesUrl, undefined);
    });

    it('says the signature does not match, and logs neither token nor signature', async () => {
      const params = voiceParams(A, proxy(A));
      const other = 'another-accounts-auth-token-000000';
      const signature = twilio.getExpectedTwilioSignature(other, PUBLIC_URL + path, params);
      const { warning, raw } = await refused(() => post(path, params, { token: other }));
      assert.equal(warning.reason, 'signature does not match the URL and parameters');
      assert.equal(warning.signatureMatchesUrl, undefined);
      assert.ok(!raw.includes(other), 'the token used is in the log');
      assert.ok(!raw.includes(signature), 'the signature is in the log');
    });

    it('names the URL the signature is good for when it was signed for http:// instead of https://', async () => {
      const signedUrl = PUBLIC_URL.replace(/^https:/, 'http:') + path;
      const { warning } = await refused(() => post(path, voiceParams(A, proxy(A)), { signedUrl }));
      assert.equal(warning.reason, 'signature does not match the URL and parameters');
      assert.equal(warning.signatureMatchesUrl, signedUrl);
    });

    it("names the URL of a proxy's forwarded host that the carrier signed instead", async () => {
      const signedUrl = `https://internal.example.test${path}`;
      const { warning } = await refused(() =>
        post(path, voiceParams(A, proxy(A)), {
          signedUrl,
          headers: { 'x-forwarded-host': 'internal.example.test', 'x-forwarded-proto': 'https' },
        }),
      );
      assert.equal(warning.signatureMatchesUrl, signedUrl);
    });

    it('logs no warning for a webhook it accepts', async () => {
      const from = t.logs.length;
      const r = await post(path, voiceParams(A, proxy(A)));
      assert.equal(r.statusCode, 200, r.body);
      assert.ok(!t.logs.slice(from).some((l) => l.includes('webhook signature refused')));
    });
  });

  describe('POST /webhooks/twilio/sms', () => {
    const path = '/webhooks/twilio/sms';
    it("forwards a participant's text to the other, from the other's proxy", async () => {
      const r = await post(path, smsParams(A, proxy(A), 'at the door <5 min> & waiting'));
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^text\/xml/);
      assert.equal(
        r.body,
        twiml(`<Message to="${B}" from="${proxy(B)}">at the door &lt;5 min&gt; &amp; waiting</Message>`),
      );
    });

    it('logs the text as one interaction with the MessageSid', async () => {
      const before = (await interactionRows()).length;
      const params = smsParams(B, proxy(B), 'ok');
      await post(path, params);
      const rows = await interactionRows();
      assert.equal(rows.length, before + 1);
      const row = rows.find((i) => i.provider_call_id === params.MessageSid);
      assert.equal(row?.provider, 'twilio');
      assert.equal(row?.channel, 'sms');
      assert.equal(row?.action, 'forward');
    });

    it('answers a stranger with an empty response', async () => {
      const r = await post(path, smsParams(STRANGER, proxy(A), 'who is this?'));
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.body, `${XML_DECLARATION}<Response/>`);
    });

    it('refuses unsigned, wrongly signed and altered texts with 403', async () => {
      const params = smsParams(A, proxy(A), 'hi');
      await assertRefused(() => post(path, params, 'unsigned'));
      await assertRefused(() => post(path, params, { token: 'another-accounts-auth-token-000000' }));
      await assertRefused(() => post(path, params, { signedUrl: `http://evil.example${path}` }));
      await assertRefused(() => post(path, { ...params, Body: 'changed' }, { signedParams: params }));
    });
  });

  describe('POST /webhooks/twilio/status', () => {
    const path = '/webhooks/twilio/status';
    const statusParams = (callSid: string, status: string, duration: string): Params => ({
      AccountSid: TWILIO_SID,
      CallSid: callSid,
      CallStatus: status,
      CallDuration: duration,
    });

    it("updates the call's interaction with the status and duration", async () => {
      const callSid = nextCallSid();
      await post('/webhooks/twilio/voice', voiceParams(A, proxy(A), callSid));
      const routed = (await interactionsOf(plainSession)).find((i) => i.providerCallId === callSid);
      assert.equal(routed?.status, 'routed');
      assert.equal(routed?.durationSeconds, null);

      const r = await post(path, statusParams(callSid, 'completed', '42'));
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^text\/xml/);
      const done = (await interactionsOf(plainSession)).find((i) => i.providerCallId === callSid);
      assert.equal(done?.status, 'completed');
      assert.equal(done?.durationSeconds, 42);
    });

    it("re-creates a call's lost interaction from its status callback, once", async () => {
      const callSid = nextCallSid();
      await post('/webhooks/twilio/voice', voiceParams(A, proxy(A), callSid));
      await t.veil.interactions.flush();
      // What a kill -9 between the answer and the batch write leaves: the call with no row.
      await t.veil.store.db.deleteFrom('interactions').where('provider_call_id', '=', callSid).execute();
      assert.equal(
        (await interactionsOf(plainSession)).filter((i) => i.providerCallId === callSid).length,
        0,
      );

      const withNumbers = { ...statusParams(callSid, 'completed', '42'), From: A, To: proxy(A) };
      assert.equal((await post(path, withNumbers)).statusCode, 200);
      assert.equal((await post(path, withNumbers)).statusCode, 200);
      const rows = (await interactionsOf(plainSession)).filter((i) => i.providerCallId === callSid);
      assert.equal(rows.length, 1, 'the callback re-created the row once, and updated it the second time');
      assert.equal(rows[0]?.status, 'completed');
      assert.equal(rows[0]?.durationSeconds, 42);

      // Without the call's numbers there is nothing to re-create it from: acknowledged, not logged.
      const other = nextCallSid();
      assert.equal((await post(path, statusParams(other, 'completed', '5'))).statusCode, 200);
      assert.equal((await interactionRows()).filter((i) => i.provider_call_id === other).length, 0);
    });

    it('refuses an unsigned or forged status with 403 and changes nothing', async () => {
      const callSid = nextCallSid();
      await post('/webhooks/twilio/voice', voiceParams(A, proxy(A), callSid));
      const forged = statusParams(callSid, 'completed', '999');
      const refuse = async (signing: Signing | 'unsigned', params = forged) => {
        const r = await post(path, params, signing);
        assert.equal(r.statusCode, 403, r.body);
        assert.equal(r.json().error.code, 'forbidden');
      };
      await refuse('unsigned');
      await refuse({ token: 'another-accounts-auth-token-000000' });
      await refuse({ signedUrl: `http://evil.example${path}` });
      await refuse({ signedParams: statusParams(callSid, 'completed', '1') });
      const row = (await interactionsOf(plainSession)).find((i) => i.providerCallId === callSid);
      assert.equal(row?.status, 'routed');
      assert.equal(row?.durationSeconds, null);
    });
  });

  describe('takes the form body alone, each parameter once', () => {
    const path = '/webhooks/twilio/voice';
    const signatureOf = (params: Record<string, string | string[]>, url = PUBLIC_URL + path) =>
      twilio.getExpectedTwilioSignature(TWILIO_TOKEN, url, params);

    /** A body sent byte for byte as given, with this content type (none when undefined). */
    const postRaw = (payload: string, contentType: string | undefined, signature: string, url = path) =>
      t.app.inject({
        method: 'POST',
        url,
        headers: {
          ...(contentType ? { 'content-type': contentType } : {}),
          'x-twilio-signature': signature,
        },
        payload,
      });

    /** Asserts the error answer and that nothing was written; returns the error. */
    async function assertError(
      status: number,
      code: string,
      send: () => Promise<{ statusCode: number; body: string; json(): unknown }>,
    ) {
      const before = (await interactionRows()).length;
      const r = await send();
      assert.equal(r.statusCode, status, r.body);
      const body = r.json() as { error: { code: string; message: string; field?: string } };
      assert.deepEqual(Object.keys(body), ['error']);
      assert.equal(body.error.code, code);
      assert.equal((await interactionRows()).length, before, 'a refused webhook wrote an interaction');
      for (const number of [...EVERY_REAL_NUMBER, STRANGER])
        for (const form of digitsOf(number)) assert.ok(!r.body.includes(form), `answer reveals ${form}`);
      return body.error;
    }

    const FORM_ONLY = 'twilio webhooks take application/x-www-form-urlencoded only';

    it('refuses a captured request replayed as JSON with 415', async () => {
      const params = voiceParams(A, proxy(A));
      const signature = signatureOf(params);
      const error = await assertError(415, 'unsupported_media_type', () =>
        postRaw(JSON.stringify(params), 'application/json', signature),
      );
      assert.equal(error.message, FORM_ONLY);
      // The control: the same request as Twilio sent it.
      const r = await postRaw(new URLSearchParams(params).toString(), FORM, signature);
      assert.equal(r.statusCode, 200, r.body);
      assert.match(r.body, /<Dial/);
    });

    it('refuses any other media type, or none, with 415', async () => {
      const params = voiceParams(A, proxy(A));
      const form = new URLSearchParams(params).toString();
      const signature = signatureOf(params);
      for (const type of ['text/plain', 'multipart/form-data; boundary=x', 'application/xml', undefined]) {
        const error = await assertError(415, 'unsupported_media_type', () => postRaw(form, type, signature));
        assert.equal(error.message, FORM_ONLY);
      }
      await assertError(415, 'unsupported_media_type', () => postRaw('', undefined, signature));
    });

    it('accepts the form with a charset parameter', async () => {
      const params = voiceParams(A, proxy(A));
      const r = await postRaw(
        new URLSearchParams(params).toString(),
        `${FORM}; charset=utf-8`,
        signatureOf(params),
      );
      assert.equal(r.statusCode, 200, r.body);
      assert.match(r.body, /<Dial/);
    });

    it('verifies a body re-encoded to the same parameters, as Twilio signs decoded values', async () => {
      const params = smsParams(A, proxy(A), 'at the door + 5');
      const signature = twilio.getExpectedTwilioSignature(
        TWILIO_TOKEN,
        `${PUBLIC_URL}/webhooks/twilio/sms`,
        params,
      );
      // Other order, lower-case escapes, %20 for a space: the same parameters.
      const reencoded = Object.entries(params)
        .reverse()
        .map(([name, value]) => `${name}=${encodeURIComponent(value).replace(/%2B/g, '%2b')}`)
        .join('&');
      assert.notEqual(reencoded, new URLSearchParams(params).toString());
      const r = await postRaw(reencoded, FORM, signature, '/webhooks/twilio/sms');
      assert.equal(r.statusCode, 200, r.body);
      assert.match(r.body, new RegExp(`<Message to="\\${B}"[^>]*>at the door \\+ 5</Message>`));
    });

    it('refuses a parameter given twice with 400, naming it and not its values', async () => {
      const params = voiceParams(STRANGER, proxy(A));
      const form = new URLSearchParams(params).toString();
      // The twilio package signs an array's distinct values, sorted: a second From would pass.
      for (const from of [
        [STRANGER, A],
        [STRANGER, STRANGER],
      ]) {
        const signature = signatureOf({ ...params, From: from });
        const error = await assertError(400, 'invalid_request', () =>
          postRaw(`${form}&From=${encodeURIComponent(from[1] as string)}`, FORM, signature),
        );
        assert.equal(error.message, 'form parameter From is given more than once');
        assert.equal(error.field, 'From');
      }
      // Unsigned too: the shape is refused before the signature is looked at.
      await assertError(400, 'invalid_request', () => postRaw(`${form}&CallSid=CA1`, FORM, ''));
    });

    it('takes no parameter from the query string', async () => {
      // Signed for a URL whose query names A as caller: the query is part of the URL, not a parameter.
      const url = `${path}?From=${encodeURIComponent(A)}`;
      const params = voiceParams(STRANGER, proxy(A));
      const r = await postRaw(
        new URLSearchParams(params).toString(),
        FORM,
        signatureOf(params, PUBLIC_URL + url),
        url,
      );
      assert.equal(r.statusCode, 200, r.body);
      assert.match(r.body, /<Hangup\/>/);
      assert.doesNotMatch(r.body, /<Dial/);
      // Nor does a signature over the query's parameters pass.
      await assertRefused(() =>
        postRaw(
          new URLSearchParams(params).toString(),
          FORM,
          signatureOf({ ...params, From: A }, PUBLIC_URL + url),
          url,
        ),
      );
    });

    it('refuses a malformed percent-escape with 400', async () => {
      const params = voiceParams(A, proxy(A));
      const form = `${new URLSearchParams(params).toString()}&Caller=%E2%82`;
      const error = await assertError(400, 'invalid_request', () => postRaw(form, FORM, signatureOf(params)));
      assert.equal(error.message, 'the form body has a malformed percent-escape');
    });

    it(`accepts up to ${MAX_FORM_PARAMETERS} parameters and refuses more with 400, quickly`, async () => {
      const pad = (count: number): Params => ({
        ...voiceParams(A, proxy(A)),
        ...Object.fromEntries(Array.from({ length: count }, (_, i) => [`X${i}`, 'x'])),
      });
      const most = pad(MAX_FORM_PARAMETERS - Object.keys(voiceParams(A, proxy(A))).length);
      assert.equal(Object.keys(most).length, MAX_FORM_PARAMETERS);
      const ok = await postRaw(new URLSearchParams(most).toString(), FORM, signatureOf(most));
      assert.equal(ok.statusCode, 200, ok.body);
      const tooMany = pad(MAX_FORM_PARAMETERS);
      await assertError(400, 'invalid_request', () =>
        postRaw(new URLSearchParams(tooMany).toString(), FORM, signatureOf(tooMany)),
      );
      // Half a million parameters in just under 1 MiB, forged: refused without sorting them.
      const huge = 'a&'.repeat(500_000);
      const started = performance.now();
      await assertError(400, 'invalid_request', () => postRaw(huge, FORM, 'forged'));
      assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
    });
  });

  describe('without Twilio credentials', () => {
    // The same database, restarted without the Twilio account: its numbers stay, its webhooks go.
    let u: TestApp | undefined;
    before(async () => {
      u = await testApp(store(), { TWILIO_ACCOUNT_SID: '', TWILIO_AUTH_TOKEN: '' });
    });
    after(async () => {
      await u?.close();
    });

    it('answers 404 on every Twilio webhook path', async () => {
      assert.ok(u);
      const restarted = u;
      const before = (await interactionRows()).length;
      for (const path of ['/webhooks/twilio/voice', '/webhooks/twilio/sms', '/webhooks/twilio/status']) {
        // A call that would connect if Twilio were enabled.
        const params = voiceParams(A, proxy(A));
        const r = await restarted.app.inject({
          method: 'POST',
          url: path,
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            'x-twilio-signature': twilio.getExpectedTwilioSignature(TWILIO_TOKEN, PUBLIC_URL + path, params),
          },
          payload: new URLSearchParams(params).toString(),
        });
        assert.equal(r.statusCode, 404, `${path}: ${r.body}`);
        assert.equal(r.json().error.code, 'not_found');
      }
      await restarted.veil.interactions.flush();
      assert.equal((await interactionRows()).length, before);
    });
  });
});

describe('formParameters', () => {
  it('decodes each name and value as the form encoding does', () => {
    assert.deepEqual(formParameters('From=%2B14155550101&Body=at+the%20door%2b&Empty=&Flag'), {
      From: '+14155550101',
      Body: 'at the door+',
      Empty: '',
      Flag: '',
    });
  });

  it('keeps bracketed and prototype names as flat string parameters', () => {
    const params = formParameters('From[]=a&From[x]=b&__proto__=c&constructor=d');
    assert.deepEqual(Object.keys(params), ['From[]', 'From[x]', '__proto__', 'constructor']);
    assert.ok(Object.values(params).every((v) => typeof v === 'string'));
    assert.equal(params.From, undefined);
    assert.equal(Object.getPrototypeOf(params), Object.prototype);
  });

  it('refuses a name given twice, even with the same value', () => {
    assert.throws(() => formParameters('From=a&To=b&From=a'), /form parameter From is given more than once/);
    assert.throws(() => formParameters('From=a&Fr%6Fm=b'), /From is given more than once/);
  });
});
