import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import fc from 'fast-check';
import * as plivo from 'plivo';
import { ConfigError, loadConfig } from '../../../src/config.ts';
import type { RouteDecision } from '../../../src/domain/routing.ts';
import { DEFAULT_REJECT_MESSAGE as NOT_AVAILABLE_MESSAGE } from '../../../src/domain/routing.ts';
import { WRONG_EXTENSION_MESSAGE } from '../../../src/providers/carrier.ts';
import { PlivoAdapter } from '../../../src/providers/plivo/plivo-adapter.ts';
import {
  interactionRows as allInteractionRows,
  assertWebhookRefused,
  PUBLIC_URL,
  refusalLogged,
  type TestApp,
  testApp,
} from '../../support/app.ts';
import { plivoVoice } from '../../support/carriers/plivo.ts';
import {
  PLIVO_AUTH_ID,
  PLIVO_ENV,
  PLIVO_TOKEN,
  type PlivoParams,
  plivoDigits,
  plivoNonce,
  plivoSignatureV3,
  postPlivo,
} from '../../support/plivo.ts';
import { describeStores, TEST_KEY_ENV } from '../../support/stores.ts';

const FORM = 'application/x-www-form-urlencoded';
const PROXY_NUMBERS = ['+14155550300', '+14155550301'];
const A = '+14155550131';
const B = '+14155550132';
const C = '+14155550133';
const D = '+14155550134';
const STRANGER = '+14155550999';
const EVERY_REAL_NUMBER = [A, B, C, D, STRANGER];

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';
const plivoXml = (inner: string) => `${XML_DECLARATION}<Response>${inner}</Response>`;
const GOODBYE = `<Speak>${NOT_AVAILABLE_MESSAGE}</Speak><Hangup/>`;

/** A real number in every form it could leak in: E.164, Plivo's digits. */
const formsOf = (number: string) => [number, plivoDigits(number)];

function assertRevealsNone(text: string, numbers = EVERY_REAL_NUMBER) {
  for (const number of numbers)
    for (const form of formsOf(number)) assert.ok(!text.includes(form), `reveals ${form}`);
}

describeStores('Plivo webhooks', (store) => {
  let t: TestApp;
  const proxyOf = new Map<string, string>();
  let plainSession: string;
  let seq = 0;
  const nextUuid = () => `plivo-call-${String(++seq).padStart(8, '0')}`;

  before(async () => {
    t = await testApp(store(), PLIVO_ENV);
    for (const number of PROXY_NUMBERS) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'plivo' });
      assert.equal(r.statusCode, 201, r.body);
    }
    plainSession = await openSession([A, B]);
    await openSession([C, D], { maxCallSeconds: 300 });
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
  const voice = (from: string, to: string, id = nextUuid()) => plivoVoice({ from, to, id });
  const message = (from: string, to: string, text: string): PlivoParams => ({
    From: plivoDigits(from),
    To: plivoDigits(to),
    Type: 'sms',
    Text: text,
    MessageUUID: nextUuid(),
  });
  const hangup = (params: PlivoParams, extra: PlivoParams): PlivoParams => ({
    ...params,
    Event: 'Hangup',
    HangupSource: 'Caller',
    ...extra,
  });
  const assertRefused = (send: Parameters<typeof assertWebhookRefused>[1]) => assertWebhookRefused(t, send);

  describe('POST /webhooks/plivo/voice', () => {
    const path = '/webhooks/plivo/voice';

    it("dials the other's real number, shown the other's proxy, both as Plivo's digits", async () => {
      const r = await postPlivo(t, path, voice(A, proxy(A)));
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^text\/xml/);
      assert.equal(
        r.body,
        plivoXml(`<Dial callerId="${plivoDigits(proxy(B))}"><Number>${plivoDigits(B)}</Number></Dial>`),
      );
      const back = await postPlivo(t, path, voice(B, proxy(B)));
      assert.equal(
        back.body,
        plivoXml(`<Dial callerId="${plivoDigits(proxy(A))}"><Number>${plivoDigits(A)}</Number></Dial>`),
      );
    });

    it("limits the call to the session's maxCallSeconds with timeLimit, and only then", async () => {
      const r = await postPlivo(t, path, voice(C, proxy(C)));
      assert.equal(
        r.body,
        plivoXml(
          `<Dial callerId="${plivoDigits(proxy(D))}" timeLimit="300"><Number>${plivoDigits(D)}</Number></Dial>`,
        ),
      );
      assert.doesNotMatch((await postPlivo(t, path, voice(A, proxy(A)))).body, /timeLimit/);
    });

    it('writes one interaction with provider plivo, the CallUUID and the numbers in E.164', async () => {
      const before = (await allInteractionRows(t)).length;
      const params = voice(A, proxy(A));
      await postPlivo(t, path, params);
      const rows = await allInteractionRows(t);
      assert.equal(rows.length, before + 1);
      const row = rows.find((i) => i.provider_call_id === params.CallUUID);
      assert.ok(row, 'no interaction with the CallUUID');
      assert.equal(row.provider, 'plivo');
      assert.equal(row.session_id, plainSession);
      assert.equal(row.action, 'connect');
      assert.equal(row.from_number, A);
      assert.equal(row.to_number, proxy(A));
      assert.equal(row.target_number, B);
      assert.equal(row.caller_id, proxy(B));
    });

    it('refuses a stranger with the spoken default, then hangs up, revealing no participant', async () => {
      const r = await postPlivo(t, path, voice(STRANGER, proxy(A)));
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.body, plivoXml(GOODBYE));
      assertRevealsNone(r.body);
    });

    it('takes From and To with a + as well, and anything else as no number at all', async () => {
      const plus = await postPlivo(t, path, { ...voice(A, proxy(A)), From: A, To: proxy(A) });
      assert.match(plus.body, /<Dial /);
      for (const from of ['anonymous', 'sip:a@phone.plivo.com', '0014155550131', '']) {
        const r = await postPlivo(t, path, { ...voice(A, proxy(A)), From: from });
        assert.equal(r.body, plivoXml(GOODBYE), from);
      }
    });
  });

  describe('refuses a forged voice webhook with 403 and routes nothing', () => {
    const path = '/webhooks/plivo/voice';

    it('a signature for another URL: host, scheme, port, path or query', async () => {
      const params = voice(A, proxy(A));
      for (const signedUrl of [
        `https://evil.example${path}`,
        `http://veil.example.test${path}`,
        `https://veil.example.test:443${path}`,
        `https://veil.example.test:8443${path}`,
        `${PUBLIC_URL}/webhooks/plivo/sms`,
        `${PUBLIC_URL}${path}/`,
        `${PUBLIC_URL}${path}?tenant=other`,
      ]) {
        await assertRefused(() => postPlivo(t, path, params, { signedUrl }));
      }
      await assertRefused(() =>
        postPlivo(t, `${path}?tenant=other`, params, { signedUrl: PUBLIC_URL + path }),
      );
    });

    it('a signature for the Host header instead of VEIL_PUBLIC_URL', async () => {
      await assertRefused(() =>
        postPlivo(t, path, voice(A, proxy(A)), {
          signedUrl: `https://evil.example${path}`,
          headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
        }),
      );
    });

    it('a captured signature replayed with another nonce, or with a body changed', async () => {
      const signed = voice(STRANGER, proxy(A));
      const nonce = plivoNonce();
      await assertRefused(() => postPlivo(t, path, signed, { nonce: plivoNonce(), signedNonce: nonce }));
      await assertRefused(() =>
        postPlivo(t, path, { ...signed, From: plivoDigits(A) }, { signedParams: signed }),
      );
      await assertRefused(() => postPlivo(t, path, { ...signed, Digits: '1234' }, { signedParams: signed }));
    });

    it('even when the same request, signed, is accepted, one good signature among several', async () => {
      const params = voice(A, proxy(A));
      assert.match((await postPlivo(t, path, params)).body, /<Dial /);
      // Plivo lists a signature per auth token, comma-separated: one of them is enough. A request
      // of its own (its own nonce): the same nonce again would be refused as a replay.
      const nonce = plivoNonce();
      const good = plivoSignatureV3(PLIVO_TOKEN, PUBLIC_URL + path, params, nonce);
      const other = plivoSignatureV3('another-auth-token-0123456789abcdef', PUBLIC_URL + path, params, nonce);
      const listed = await postPlivo(t, path, params, {
        nonce,
        headers: { 'x-plivo-signature-v3': `${other},${good}` },
      });
      assert.equal(listed.statusCode, 200, listed.body);
      assert.match(listed.body, /<Dial /);
    });
  });

  describe('a refused signature says why, in a warning', () => {
    const path = '/webhooks/plivo/voice';
    const refused = (send: () => Promise<{ statusCode: number; body: string }>) =>
      refusalLogged(t, { provider: 'plivo', path, secret: PLIVO_TOKEN }, send);

    it('names the missing header', async () => {
      const unsigned = await refused(() => postPlivo(t, path, voice(A, proxy(A)), 'unsigned'));
      assert.equal(unsigned.warning.reason, 'missing X-Plivo-Signature-V3 header');
      const noNonce = await refused(() =>
        postPlivo(t, path, voice(A, proxy(A)), { headers: { 'x-plivo-signature-v3-nonce': '' } }),
      );
      assert.equal(noNonce.warning.reason, 'missing X-Plivo-Signature-V3-Nonce header');
    });

    it('says the signature does not match, and logs neither token, signature nor number', async () => {
      const params = voice(A, proxy(A));
      const other = 'another-auth-token-0123456789abcdef';
      const nonce = plivoNonce();
      const signature = plivoSignatureV3(other, PUBLIC_URL + path, params, nonce);
      const { warning, raw } = await refused(() => postPlivo(t, path, params, { token: other, nonce }));
      assert.equal(warning.reason, 'signature does not match the URL, parameters and nonce');
      assert.equal(warning.signatureMatchesUrl, undefined);
      assert.ok(!raw.includes(other), 'the token used is in the log');
      assert.ok(!raw.includes(signature), 'the signature is in the log');
      assertRevealsNone(raw);
    });

    it('names the URL the signature is good for when it was signed for http:// instead of https://', async () => {
      const signedUrl = PUBLIC_URL.replace(/^https:/, 'http:') + path;
      const { warning } = await refused(() => postPlivo(t, path, voice(A, proxy(A)), { signedUrl }));
      assert.equal(warning.signatureMatchesUrl, signedUrl);
    });

    it('reads a header sent twice as HTTP joins it: a nonce twice is not the nonce signed', async () => {
      const params = voice(A, proxy(A));
      const nonce = plivoNonce();
      const good = plivoSignatureV3(PLIVO_TOKEN, PUBLIC_URL + path, params, nonce);
      const { warning } = await refused(() =>
        postPlivo(t, path, params, { nonce, headers: { 'x-plivo-signature-v3-nonce': [nonce, nonce] } }),
      );
      assert.equal(warning.reason, 'signature does not match the URL, parameters and nonce');
      // The signature twice is a list, as Plivo writes several: good only when one of them is.
      const other = plivoSignatureV3('another-auth-token-0123456789abcdef', PUBLIC_URL + path, params, nonce);
      await refused(() =>
        postPlivo(t, path, params, { nonce, headers: { 'x-plivo-signature-v3': [other, other] } }),
      );
      const once = await postPlivo(t, path, params, {
        nonce,
        headers: { 'x-plivo-signature-v3': [good, other] },
      });
      assert.equal(once.statusCode, 200, once.body);
    });
  });

  describe('POST /webhooks/plivo/sms', () => {
    const path = '/webhooks/plivo/sms';

    it("relays a participant's text to the other from the other's proxy, escaped", async () => {
      const r = await postPlivo(t, path, message(A, proxy(A), 'at the door <5 min> & "waiting"'));
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^text\/xml/);
      assert.equal(
        r.body,
        plivoXml(
          `<Message src="${plivoDigits(proxy(B))}" dst="${plivoDigits(B)}" type="sms">at the door &lt;5 min&gt; &amp; "waiting"</Message>`,
        ),
      );
    });

    it('logs the text as one interaction with the MessageUUID', async () => {
      const params = message(B, proxy(B), 'ok');
      await postPlivo(t, path, params);
      const row = (await allInteractionRows(t)).find((i) => i.provider_call_id === params.MessageUUID);
      assert.equal(row?.provider, 'plivo');
      assert.equal(row?.channel, 'sms');
      assert.equal(row?.action, 'forward');
      assert.equal(row?.from_number, B);
    });

    it('answers a stranger with an empty response', async () => {
      const r = await postPlivo(t, path, message(STRANGER, proxy(A), 'who is this?'));
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.body, `${XML_DECLARATION}<Response/>`);
    });

    it('verifies a body re-encoded to the same parameters, as Plivo signs decoded values', async () => {
      const params = message(A, proxy(A), 'at the door + 5 ✓');
      const nonce = plivoNonce();
      const signature = plivoSignatureV3(PLIVO_TOKEN, PUBLIC_URL + path, params, nonce);
      const reencoded = Object.entries(params)
        .reverse()
        .map(([name, value]) => `${name}=${encodeURIComponent(value)}`)
        .join('&');
      const r = await t.app.inject({
        method: 'POST',
        url: path,
        headers: {
          'content-type': FORM,
          'x-plivo-signature-v3': signature,
          'x-plivo-signature-v3-nonce': nonce,
        },
        payload: reencoded,
      });
      assert.equal(r.statusCode, 200, r.body);
      assert.match(r.body, />at the door \+ 5 ✓<\/Message>/);
    });

    it('refuses unsigned, wrongly signed and altered texts with 403', async () => {
      const params = message(A, proxy(A), 'hi');
      await assertRefused(() => postPlivo(t, path, params, 'unsigned'));
      await assertRefused(() => postPlivo(t, path, params, { token: 'another-auth-token-0123456789abcdef' }));
      await assertRefused(() =>
        postPlivo(t, path, params, { signedUrl: `${PUBLIC_URL}/webhooks/plivo/voice` }),
      );
      await assertRefused(() => postPlivo(t, path, { ...params, Text: 'changed' }, { signedParams: params }));
    });
  });

  describe('POST /webhooks/plivo/status (the hangup callback)', () => {
    const path = '/webhooks/plivo/status';
    const interactionOf = async (uuid: string) =>
      (await allInteractionRows(t)).find((i) => i.provider_call_id === uuid);

    it("lands on the call's interaction: completed, with Duration (not BillDuration)", async () => {
      const call = voice(A, proxy(A));
      await postPlivo(t, '/webhooks/plivo/voice', call);
      assert.equal((await interactionOf(call.CallUUID as string))?.status, 'routed');
      const r = await postPlivo(
        t,
        path,
        hangup(call, {
          CallStatus: 'completed',
          HangupCause: 'Normal Hangup',
          HangupCauseCode: '4000',
          Duration: '42',
          BillDuration: '60',
        }),
      );
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.body, `${XML_DECLARATION}<Response/>`);
      const row = await interactionOf(call.CallUUID as string);
      assert.equal(row?.status, 'completed');
      assert.equal(row?.duration_seconds, 42);
    });

    it('reads a normal hangup cause as completed when no CallStatus is given, any other as failed', async () => {
      for (const [cause, code, status] of [
        ['Normal Hangup', '4000', 'completed'],
        ['End Of XML Instructions', '4010', 'completed'],
        ['NORMAL_CLEARING', '', 'completed'],
        ['Destination Out Of Service', '2010', 'failed'],
      ] as const) {
        const call = voice(A, proxy(A));
        await postPlivo(t, '/webhooks/plivo/voice', call);
        const { CallStatus: _ringing, ...rest } = call;
        await postPlivo(t, path, hangup(rest, { HangupCause: cause, HangupCauseCode: code, Duration: '7' }));
        assert.equal((await interactionOf(call.CallUUID as string))?.status, status, cause);
      }
    });

    it("re-creates a call's lost interaction from the hangup's numbers, as E.164", async () => {
      const call = voice(A, proxy(A));
      await postPlivo(t, '/webhooks/plivo/voice', call);
      await t.veil.interactions.flush();
      await t.veil.store.db
        .deleteFrom('interactions')
        .where('provider_call_id', '=', call.CallUUID as string)
        .execute();
      await postPlivo(t, path, hangup(call, { CallStatus: 'completed', Duration: '9' }));
      const row = await interactionOf(call.CallUUID as string);
      assert.equal(row?.status, 'completed');
      assert.equal(row?.from_number, A);
      assert.equal(row?.session_id, plainSession);
    });

    it('refuses a forged hangup with 403 and changes nothing', async () => {
      const call = voice(A, proxy(A));
      await postPlivo(t, '/webhooks/plivo/voice', call);
      const forged = hangup(call, { CallStatus: 'completed', Duration: '999' });
      for (const signing of [
        'unsigned' as const,
        { token: 'another-auth-token-0123456789abcdef' },
        { signedUrl: `${PUBLIC_URL}/webhooks/plivo/voice` },
        { signedParams: { ...forged, Duration: '1' } },
      ]) {
        const r = await postPlivo(t, path, forged, signing);
        assert.equal(r.statusCode, 403, r.body);
      }
      const row = await interactionOf(call.CallUUID as string);
      assert.equal(row?.status, 'routed');
      assert.equal(row?.duration_seconds, null);
    });
  });

  describe('takes the form body alone', () => {
    it('refuses JSON, any other media type or none with 415, writing nothing', async () => {
      const path = '/webhooks/plivo/voice';
      const params = voice(A, proxy(A));
      const nonce = plivoNonce();
      const headers = {
        'x-plivo-signature-v3': plivoSignatureV3(PLIVO_TOKEN, PUBLIC_URL + path, params, nonce),
        'x-plivo-signature-v3-nonce': nonce,
      };
      const before = (await allInteractionRows(t)).length;
      for (const [type, payload] of [
        ['application/json', JSON.stringify(params)],
        ['text/plain', new URLSearchParams(params).toString()],
        ['multipart/form-data; boundary=x', new URLSearchParams(params).toString()],
        [undefined, new URLSearchParams(params).toString()],
      ] as const) {
        const r = await t.app.inject({
          method: 'POST',
          url: path,
          headers: { ...headers, ...(type ? { 'content-type': type } : {}) },
          payload,
        });
        assert.equal(r.statusCode, 415, `${type}: ${r.body}`);
        assert.equal(r.json().error.code, 'unsupported_media_type');
        assert.equal(r.json().error.message, 'plivo webhooks take application/x-www-form-urlencoded only');
        assertRevealsNone(r.body);
      }
      assert.equal((await allInteractionRows(t)).length, before);
      // The control: the same request as Plivo sends it.
      const ok = await t.app.inject({
        method: 'POST',
        url: path,
        headers: { ...headers, 'content-type': FORM },
        payload: new URLSearchParams(params).toString(),
      });
      assert.match(ok.body, /<Dial /);
    });

    it('refuses a parameter given twice with 400, so a second From cannot ride along', async () => {
      const path = '/webhooks/plivo/voice';
      const params = voice(STRANGER, proxy(A));
      const r = await t.app.inject({
        method: 'POST',
        url: path,
        headers: { 'content-type': FORM },
        payload: `${new URLSearchParams(params).toString()}&From=${plivoDigits(A)}`,
      });
      assert.equal(r.statusCode, 400, r.body);
      assert.equal(r.json().error.field, 'From');
    });
  });

  it('never logs a real number in clear, accepted or refused', async () => {
    const from = t.logs.length;
    await postPlivo(t, '/webhooks/plivo/voice', voice(A, proxy(A)));
    await postPlivo(t, '/webhooks/plivo/voice', voice(STRANGER, proxy(A)), 'unsigned');
    await postPlivo(t, '/webhooks/plivo/sms', message(A, proxy(A), `call me on ${plivoDigits(C)}`));
    await postPlivo(t, '/webhooks/plivo/voice', { ...voice(A, proxy(A)), From: `${plivoDigits(A)}x` });
    const raw = t.logs.slice(from).join('');
    assert.ok(t.logs.length > from, 'nothing was logged: the check would prove nothing');
    assertRevealsNone(raw);
  });

  describe('without Plivo credentials', () => {
    let u: TestApp | undefined;
    before(async () => {
      u = await testApp(store(), { PLIVO_AUTH_ID: '', PLIVO_AUTH_TOKEN: '' });
    });
    after(async () => {
      await u?.close();
    });

    it('answers 404 on every Plivo webhook path, writing nothing', async () => {
      assert.ok(u);
      const restarted = u;
      const before = (await allInteractionRows(t)).length;
      for (const path of ['/webhooks/plivo/voice', '/webhooks/plivo/sms', '/webhooks/plivo/status']) {
        // A call that connects while Plivo is enabled.
        const r = await postPlivo(restarted, path, voice(A, proxy(A)));
        assert.equal(r.statusCode, 404, `${path}: ${r.body}`);
        assert.equal(r.json().error.code, 'not_found');
      }
      await restarted.veil.interactions.flush();
      assert.equal((await allInteractionRows(t)).length, before);
      assert.ok(!restarted.veil.carriers.has('plivo'));
    });
  });
});

describeStores('Plivo extension fallback', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store(), PLIVO_ENV);
  });
  afterEach(async () => {
    await t.close();
  });

  it('asks with GetDigits at VEIL_PUBLIC_URL, puts the Digits through, asks again, then ends the call', async () => {
    const r = await t.api('POST', '/v1/numbers', {
      number: '+14155550310',
      provider: 'plivo',
      maxSessions: 1,
    });
    assert.equal(r.statusCode, 201, r.body);
    const open = (numbers: string[]) =>
      t.api('POST', '/v1/sessions', {
        mode: 'shared',
        extensionFallback: true,
        participants: numbers.map((number) => ({ number })),
      });
    assert.equal((await open([A, B])).statusCode, 201);
    const shared = await open([C, D]);
    assert.equal(shared.statusCode, 201, shared.body);
    const [c] = shared.json().participants as { proxyNumber: string; extension: string }[];
    assert.ok(c?.extension);
    const x = c.proxyNumber;
    const path = '/webhooks/plivo/voice';
    const action = (n: number) => `${PUBLIC_URL}${path}?attempt=${n}`;
    const getDigits = (n: number, prompt: string) =>
      `<GetDigits action="${action(n)}" method="POST" numDigits="4"><Speak>${prompt}</Speak></GetDigits>${GOODBYE}`;

    const asked = await postPlivo(t, path, plivoVoice({ from: C, to: x, id: 'gather-1' }));
    assert.equal(asked.body, plivoXml(getDigits(1, 'Please enter the extension you were given.')));

    // Plivo posts the digits to the action URL, signed for it, query and all.
    const keyed = await postPlivo(t, `${path}?attempt=1`, {
      ...plivoVoice({ from: C, to: x, id: 'gather-1' }),
      Digits: c.extension,
    });
    assert.equal(
      keyed.body,
      plivoXml(`<Dial callerId="${plivoDigits(x)}"><Number>${plivoDigits(D)}</Number></Dial>`),
    );

    const wrong = (n: number) =>
      postPlivo(t, `${path}?attempt=${n}`, {
        ...plivoVoice({ from: C, to: x, id: 'gather-2' }),
        Digits: '0000',
      });
    const again = `${WRONG_EXTENSION_MESSAGE} Please enter the extension you were given.`;
    assert.equal((await wrong(1)).body, plivoXml(getDigits(2, again)));
    assert.equal((await wrong(2)).body, plivoXml(getDigits(3, again)));
    assert.equal((await wrong(3)).body, plivoXml(GOODBYE));

    // The attempt is signed with the URL: a caller cannot reset it.
    const params = { ...plivoVoice({ from: C, to: x, id: 'gather-forged' }), Digits: '0000' };
    const forged = await postPlivo(t, `${path}?attempt=1`, params, { signedUrl: action(3) });
    assert.equal(forged.statusCode, 403, forged.body);
    assert.ok(!(await allInteractionRows(t)).some((row) => row.provider_call_id === 'gather-forged'));
  });
});

describe('Plivo XML', () => {
  const adapter = new PlivoAdapter(PLIVO_TOKEN, PUBLIC_URL);
  const connect = (extra: Partial<Extract<RouteDecision, { action: 'connect' }>> = {}): RouteDecision => ({
    action: 'connect',
    to: B,
    callerId: '+14155550300',
    sessionId: 'ses_1',
    record: false,
    maxCallSeconds: null,
    ...extra,
  });

  it('speaks a reject’s message in its language and voice, or plays its recording', () => {
    const spoken = adapter.renderVoice({
      action: 'reject',
      reason: 'no_session',
      sessionId: null,
      message: { text: 'Nicht <erreichbar> & "weg"', language: 'de-DE', voice: 'Polly.Vicki' },
    });
    assert.equal(
      spoken.body,
      plivoXml(
        '<Speak voice="Polly.Vicki" language="de-DE">Nicht &lt;erreichbar&gt; &amp; "weg"</Speak><Hangup/>',
      ),
    );
    const played = adapter.renderVoice({
      action: 'reject',
      reason: 'no_session',
      sessionId: null,
      message: { text: 'gone', audioUrl: 'https://cdn.example/gone.mp3?a=1&b=2' },
    });
    assert.equal(played.body, plivoXml('<Play>https://cdn.example/gone.mp3?a=1&amp;b=2</Play><Hangup/>'));
  });

  it('asks a gather’s message in its voice', () => {
    const r = adapter.renderVoice({
      action: 'gather',
      numDigits: 4,
      prompt: 'Code?',
      sessionId: null,
      message: { text: 'Code?', language: 'en-GB', voice: 'WOMAN' },
    });
    assert.match(
      r.body,
      /<GetDigits [^>]*><Speak voice="WOMAN" language="en-GB">Code\?<\/Speak><\/GetDigits>/,
    );
  });

  it('is what the plivo package’s own builder writes, for any text and numbers', () => {
    const digits = fc.stringMatching(/^[1-9]\d{7,14}$/);
    const isXmlChar = (ch: string) => {
      const code = ch.codePointAt(0) ?? 0;
      return (
        code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code !== 0xfffe && code !== 0xffff)
      );
    };
    // Non-empty: the builder leaves an empty text out, and so does Veil (<Message .../>).
    const xmlText = fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 60 })
      .map((s) => [...s].filter(isXmlChar).join(''))
      .filter((s) => s.length > 0);
    fc.assert(
      fc.property(
        digits,
        digits,
        xmlText,
        fc.option(fc.integer({ min: 1, max: 86_400 })),
        (to, from, body, limit) => {
          const dial = plivo.Response();
          dial.addDial({ callerId: from, ...(limit ? { timeLimit: limit } : {}) }).addNumber(to);
          const connected = adapter.renderVoice(
            connect({ to: `+${to}`, callerId: `+${from}`, maxCallSeconds: limit }),
          );
          assert.equal(connected.body, XML_DECLARATION + dial.toXML());

          const sms = plivo.Response();
          sms.addMessage(body, { src: from, dst: to, type: 'sms' });
          const relayed = adapter.renderSms({
            action: 'forward',
            to: `+${to}`,
            from: `+${from}`,
            body,
            sessionId: null,
          });
          assert.equal(relayed.body, XML_DECLARATION + sms.toXML());

          const refused = plivo.Response();
          refused.addSpeak(body, { voice: 'WOMAN', language: 'en-US' });
          refused.addHangup();
          const rejected = adapter.renderVoice({
            action: 'reject',
            reason: 'no_session',
            sessionId: null,
            message: { text: body, voice: 'WOMAN', language: 'en-US' },
          });
          assert.equal(rejected.body, XML_DECLARATION + refused.toXML());
        },
      ),
    );
    const asked = plivo.Response();
    asked
      .addGetDigits({ action: `${PUBLIC_URL}/webhooks/plivo/voice?attempt=1`, method: 'POST', numDigits: 4 })
      .addSpeak('Please enter the extension you were given.');
    asked.addSpeak(NOT_AVAILABLE_MESSAGE);
    asked.addHangup();
    const gather = adapter.renderVoice({
      action: 'gather',
      numDigits: 4,
      prompt: 'Please enter the extension you were given.',
      sessionId: null,
    });
    assert.equal(gather.body, XML_DECLARATION + asked.toXML());
  });
});

describe('the signature the tests sign with', () => {
  it('is the one the plivo package’s validateV3Signature accepts, for any URL, query and parameters', () => {
    const name = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,12}$/);
    const value = fc.string({ maxLength: 20 });
    fc.assert(
      fc.property(
        fc.constantFrom('https://veil.example.test', 'http://127.0.0.1:3000', 'https://h.example:8443/base'),
        fc.dictionary(name, value, { maxKeys: 3 }),
        fc.dictionary(name, value, { maxKeys: 8 }),
        fc.string({ minLength: 1, maxLength: 20 }),
        (base, query, params, nonce) => {
          const search = new URLSearchParams(query).toString();
          const url = `${base}/webhooks/plivo/voice${search ? `?${search}` : ''}`;
          const signature = plivoSignatureV3(PLIVO_TOKEN, url, params, nonce);
          assert.equal(plivo.validateV3Signature('POST', url, nonce, PLIVO_TOKEN, signature, params), true);
          assert.equal(
            plivo.validateV3Signature('POST', url, `${nonce}x`, PLIVO_TOKEN, signature, params),
            false,
          );
        },
      ),
    );
  });
});

describe('PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN', () => {
  const refused = (env: Record<string, string>, key: string, secret?: string) => {
    try {
      loadConfig(env);
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.key, key);
      if (secret) assert.ok(!error.message.includes(secret), 'the token is in the message');
      return;
    }
    assert.fail(`${key} was accepted`);
  };

  it('enables Plivo with both, and not at all with neither', () => {
    assert.deepEqual(loadConfig(PLIVO_ENV).plivo, {
      authId: PLIVO_AUTH_ID,
      authToken: PLIVO_TOKEN,
      apiUrl: 'https://api.plivo.com',
    });
    assert.equal(
      loadConfig({ ...PLIVO_ENV, PLIVO_API_URL: 'http://127.0.0.1:4010/' }).plivo?.apiUrl,
      'http://127.0.0.1:4010',
    );
    assert.equal(loadConfig({}).plivo, undefined);
    assert.equal(loadConfig({ PLIVO_AUTH_ID: '', PLIVO_AUTH_TOKEN: '' }).plivo, undefined);
    assert.equal(
      loadConfig({ PLIVO_AUTH_ID: 'SA2025RK4E639VJFZAMM', PLIVO_AUTH_TOKEN: 't' }).plivo?.authId,
      'SA2025RK4E639VJFZAMM',
    );
  });

  it('refuses a half, naming the one missing, and a malformed Auth ID, never echoing the token', () => {
    refused({ PLIVO_AUTH_ID: PLIVO_AUTH_ID }, 'PLIVO_AUTH_TOKEN');
    refused({ PLIVO_AUTH_TOKEN: 'tok-s3cret' }, 'PLIVO_AUTH_ID', 'tok-s3cret');
    refused({ PLIVO_AUTH_ID: 'MA123', PLIVO_AUTH_TOKEN: 'tok-s3cret' }, 'PLIVO_AUTH_ID', 'tok-s3cret');
    // The token goes to PLIVO_API_URL: https in production, but for a loopback host.
    refused(
      {
        ...PLIVO_ENV,
        NODE_ENV: 'production',
        ...TEST_KEY_ENV,
        VEIL_API_KEY: 'k'.repeat(24),
        PLIVO_API_URL: 'http://relay.example',
      },
      'PLIVO_API_URL',
      PLIVO_TOKEN,
    );
  });
});
