import type { LightMyRequestResponse } from 'fastify';
import { PUBLIC_URL, type TestApp } from '../app.ts';
import type { CarrierHarness, Forgery, Outcome } from '../carriers.ts';
import {
  PLIVO_AUTH_ID,
  PLIVO_ENV,
  PLIVO_TOKEN,
  type PlivoParams,
  type PlivoSigning,
  plivoDigits,
  plivoNonce,
  plivoSignatureV3,
  postPlivo,
} from '../plivo.ts';

const unescapeXml = (s: string) =>
  s.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&quot;', '"').replaceAll('&amp;', '&');

/** A number from Plivo XML (digits) in E.164; anything else as written, so a test sees it. */
const e164 = (s: string) => (/^\d+$/.test(s) ? `+${s}` : s);

/** What Plivo XML told Plivo: a <Dial> to one <Number>, a <Message>, or neither. */
function outcome(r: LightMyRequestResponse): Outcome {
  if (r.statusCode !== 200) return { status: r.statusCode, action: 'reject' };
  const dial = /<Dial callerId="([^"]*)"[^>]*><Number>([^<]*)<\/Number><\/Dial>/.exec(r.body);
  if (dial)
    return {
      status: 200,
      action: 'connect',
      to: e164(unescapeXml(dial[2] ?? '')),
      callerId: e164(unescapeXml(dial[1] ?? '')),
    };
  const message = /<Message src="([^"]*)" dst="([^"]*)" type="sms">([^<]*)<\/Message>/.exec(r.body);
  if (message)
    return {
      status: 200,
      action: 'forward',
      to: e164(unescapeXml(message[2] ?? '')),
      from: e164(unescapeXml(message[1] ?? '')),
      body: unescapeXml(message[3] ?? ''),
    };
  return { status: 200, action: 'reject' };
}

/** An answer callback as Plivo posts it for an inbound call (numbers as digits). */
export const plivoVoice = (c: { from: string; to: string; id: string }): PlivoParams => ({
  CallUUID: c.id,
  Direction: 'inbound',
  From: plivoDigits(c.from),
  To: plivoDigits(c.to),
  CallStatus: 'ringing',
  Event: 'StartApp',
  ParentAuthID: PLIVO_AUTH_ID,
});

export const plivoHarness: CarrierHarness = {
  name: 'plivo',
  env: () => PLIVO_ENV,
  call: async (t, c) => outcome(await postPlivo(t, '/webhooks/plivo/voice', plivoVoice(c))),
  text: async (t, c) =>
    outcome(
      await postPlivo(t, '/webhooks/plivo/sms', {
        From: plivoDigits(c.from),
        To: plivoDigits(c.to),
        Type: 'sms',
        Text: c.body,
        MessageUUID: c.id,
      }),
    ),
  status: (t, c) =>
    postPlivo(t, '/webhooks/plivo/status', {
      ...plivoVoice(c),
      CallStatus: 'completed',
      Event: 'Hangup',
      HangupCause: 'Normal Hangup',
      HangupCauseCode: '4000',
      HangupSource: 'Caller',
      Duration: String(c.durationSeconds),
      BillDuration: String(c.durationSeconds + 18),
    }),
  forgeries(c): Forgery[] {
    const path = '/webhooks/plivo/voice';
    const params = plivoVoice(c);
    const send =
      (signing: PlivoSigning | 'unsigned', sent = params, url = path) =>
      (t: TestApp) =>
        postPlivo(t, url, sent, signing);
    const nonce = plivoNonce();
    const good = plivoSignatureV3(PLIVO_TOKEN, PUBLIC_URL + path, params, nonce);
    const other = plivoSignatureV3('another-auth-token-0123456789abcdef', PUBLIC_URL + path, params, nonce);
    return [
      { name: 'unsigned', send: send('unsigned') },
      {
        name: 'a signature without its nonce',
        send: (t) =>
          t.app.inject({
            method: 'POST',
            url: path,
            headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-plivo-signature-v3': good },
            payload: new URLSearchParams(params).toString(),
          }),
      },
      {
        name: 'signed with another auth token',
        send: send({ token: 'another-auth-token-0123456789abcdef' }),
      },
      { name: 'signed for another host', send: send({ signedUrl: `https://attacker.example${path}` }) },
      {
        name: 'signed for http',
        send: send({ signedUrl: `${PUBLIC_URL.replace('https:', 'http:')}${path}` }),
      },
      { name: 'signed for another port', send: send({ signedUrl: `${PUBLIC_URL}:8443${path}` }) },
      { name: 'signed for another path', send: send({ signedUrl: `${PUBLIC_URL}/webhooks/plivo/sms` }) },
      { name: 'signed for another query', send: send({ signedUrl: `${PUBLIC_URL}${path}?attempt=2` }) },
      {
        name: 'sent with a query not signed',
        send: send({ signedUrl: PUBLIC_URL + path }, params, `${path}?attempt=2`),
      },
      { name: 'signed with another nonce', send: send({ signedNonce: plivoNonce() }) },
      { name: 'a changed From', send: send({ signedParams: { ...params, From: plivoDigits(c.to) } }) },
      { name: 'a parameter added', send: send({ signedParams: params }, { ...params, Extra: '1' }) },
      {
        name: 'a parameter removed',
        send: send({ signedParams: params }, Object.fromEntries(Object.entries(params).slice(1))),
      },
      {
        name: 'signatures listed that are all wrong',
        send: send({ nonce, headers: { 'x-plivo-signature-v3': `${other},${other.slice(1)}` } }),
      },
      {
        name: 'the signature header twice, neither good',
        send: send({ nonce, headers: { 'x-plivo-signature-v3': [other, other.slice(1)] } }),
      },
      {
        name: 'the nonce header twice',
        send: send({ nonce, headers: { 'x-plivo-signature-v3-nonce': [nonce, nonce] } }),
      },
    ];
  },
};
