import { sign } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import type { TestApp } from '../app.ts';
import type { CarrierHarness, Forgery, Outcome } from '../carriers.ts';
import {
  FakeMessagingApi,
  messageReceived,
  OTHER_TELNYX_KEYS,
  postTelnyx,
  signTelnyx,
  TELNYX_API_KEY,
  TELNYX_KEYS,
} from '../telnyx.ts';

const ACCOUNT_SID = 'f5586561-8ff0-4291-a51b-c7dfe4139ff9';

const unescapeXml = (s: string) =>
  s.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&quot;', '"').replaceAll('&amp;', '&');

/** What TeXML told Telnyx: a <Dial> to one <Number>, or not. */
function callOutcome(r: LightMyRequestResponse): Outcome {
  if (r.statusCode !== 200) return { status: r.statusCode, action: 'reject' };
  const dial = /<Dial callerId="([^"]*)"[^>]*><Number>([^<]*)<\/Number><\/Dial>/.exec(r.body);
  if (dial)
    return {
      status: 200,
      action: 'connect',
      to: unescapeXml(dial[2] ?? ''),
      callerId: unescapeXml(dial[1] ?? ''),
    };
  return { status: 200, action: 'reject' };
}

/** A TeXML call's parameters, as Telnyx posts them to the voice URL. */
export const texmlCall = (c: { from: string; to: string; id: string }): Record<string, string> => ({
  AccountSid: ACCOUNT_SID,
  CallSid: c.id,
  CallSidLegacy: c.id,
  ConnectionId: '1234567890',
  From: c.from,
  To: c.to,
  CallStatus: 'ringing',
  Direction: 'inbound',
});

const api = new FakeMessagingApi();

/**
 * Telnyx: TeXML calls as signed forms, texts as signed `message.received` JSON events. A text's
 * outcome is what reached the fake Messaging API: one send is a forward, none a refusal.
 */
export const telnyxHarness: CarrierHarness = {
  name: 'telnyx',
  env: () => ({
    TELNYX_API_KEY,
    TELNYX_PUBLIC_KEY: TELNYX_KEYS.publicKey,
    TELNYX_API_URL: api.url,
  }),
  start: () => api.start(),
  stop: () => api.stop(),
  call: async (t, c) => callOutcome(await postTelnyx(t, '/webhooks/telnyx/voice', { form: texmlCall(c) })),
  async text(t, c) {
    const from = api.received.length;
    const r = await postTelnyx(t, '/webhooks/telnyx/sms', { json: messageReceived({ ...c, body: c.body }) });
    const sends = api.sendsSince(from);
    if (r.statusCode !== 200 || sends.length !== 1) return { status: r.statusCode, action: 'reject' };
    const sent = sends[0]?.body ?? {};
    return {
      status: r.statusCode,
      action: 'forward',
      to: String(sent.to),
      from: String(sent.from),
      body: String(sent.text ?? ''),
    };
  },
  status: (t, c) =>
    postTelnyx(t, '/webhooks/telnyx/status', {
      form: { ...texmlCall(c), CallStatus: 'completed', CallDuration: String(c.durationSeconds) },
    }),
  forgeries(c): Forgery[] {
    const path = '/webhooks/telnyx/voice';
    const form = texmlCall(c);
    const raw = new URLSearchParams(form).toString();
    const send = (signing: Parameters<typeof postTelnyx>[3]) => (t: TestApp) =>
      postTelnyx(t, path, { form }, signing);
    const now = () => Math.floor(Date.now() / 1000);
    const valid = () => signTelnyx(raw);
    return [
      { name: 'unsigned', send: send('unsigned') },
      { name: 'signed by another account’s key', send: send({ key: OTHER_TELNYX_KEYS.privateKey }) },
      {
        name: 'a changed From',
        send: send({ signedBody: new URLSearchParams({ ...form, From: c.to }).toString() }),
      },
      {
        name: 'a parameter added',
        send: (t) =>
          postTelnyx(
            t,
            path,
            { raw: `${raw}&Extra=1`, contentType: 'application/x-www-form-urlencoded' },
            { signedBody: raw },
          ),
      },
      { name: 'signed an hour ago', send: send({ at: Date.now() - 3_600_000 }) },
      { name: 'signed just past the 300 s window', send: send({ at: Date.now() - 302_000 }) },
      { name: 'signed an hour ahead', send: send({ at: Date.now() + 3_600_000 }) },
      { name: 'a timestamp changed after signing', send: send({ timestamp: String(now() - 1) }) },
      { name: 'a timestamp that is not unix seconds', send: send({ timestamp: `${now()}.0` }) },
      {
        name: 'the body signed without the timestamp',
        send: send({
          headers: {
            'telnyx-signature-ed25519': sign(null, Buffer.from(raw), TELNYX_KEYS.privateKey).toString(
              'base64',
            ),
          },
        }),
      },
      {
        name: 'a malformed base64 signature',
        send: send({ headers: { 'telnyx-signature-ed25519': 'not*base64!' } }),
      },
      {
        name: 'a signature of the wrong length',
        send: send({ headers: { 'telnyx-signature-ed25519': Buffer.alloc(32, 1).toString('base64') } }),
      },
      { name: 'an empty signature', send: send({ headers: { 'telnyx-signature-ed25519': '' } }) },
      {
        name: 'the signature header twice',
        send: (t) => {
          const headers = valid();
          return postTelnyx(
            t,
            path,
            { form },
            {
              headers: {
                'telnyx-signature-ed25519': [
                  headers['telnyx-signature-ed25519'] ?? '',
                  headers['telnyx-signature-ed25519'] ?? '',
                ],
              },
            },
          );
        },
      },
      {
        name: 'the timestamp header twice',
        send: (t) => {
          const headers = valid();
          return postTelnyx(
            t,
            path,
            { form },
            {
              headers: {
                'telnyx-timestamp': [headers['telnyx-timestamp'] ?? '', headers['telnyx-timestamp'] ?? ''],
              },
            },
          );
        },
      },
      {
        name: 'no timestamp header',
        send: (t) =>
          t.app.inject({
            method: 'POST',
            url: path,
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              'telnyx-signature-ed25519': valid()['telnyx-signature-ed25519'] ?? '',
            },
            payload: raw,
          }),
      },
    ];
  },
};
