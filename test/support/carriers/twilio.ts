import type { LightMyRequestResponse } from 'fastify';
import { PUBLIC_URL, type TestApp, TWILIO_SID } from '../app.ts';
import type { CarrierHarness, Forgery, Outcome } from '../carriers.ts';
import { postTwilio, type TwilioParams } from '../twilio.ts';

const unescapeXml = (s: string) =>
  s.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&quot;', '"').replaceAll('&amp;', '&');

/** What TwiML told Twilio: a <Dial> to one <Number>, a <Message>, or neither. */
function outcome(r: LightMyRequestResponse): Outcome {
  if (r.statusCode !== 200) return { status: r.statusCode, action: 'reject' };
  const dial = /<Dial callerId="([^"]*)"[^>]*><Number>([^<]*)<\/Number><\/Dial>/.exec(r.body);
  if (dial)
    return {
      status: 200,
      action: 'connect',
      to: unescapeXml(dial[2] ?? ''),
      callerId: unescapeXml(dial[1] ?? ''),
    };
  const message = /<Message to="([^"]*)" from="([^"]*)">([^<]*)<\/Message>/.exec(r.body);
  if (message)
    return {
      status: 200,
      action: 'forward',
      to: unescapeXml(message[1] ?? ''),
      from: unescapeXml(message[2] ?? ''),
      body: unescapeXml(message[3] ?? ''),
    };
  return { status: 200, action: 'reject' };
}

/** An inbound call's voice webhook as Twilio posts it. */
export const twilioVoice = (c: { from: string; to: string; id: string }): TwilioParams => ({
  AccountSid: TWILIO_SID,
  CallSid: c.id,
  From: c.from,
  To: c.to,
  CallStatus: 'ringing',
  Direction: 'inbound',
});

export const twilioHarness: CarrierHarness = {
  name: 'twilio',
  env: () => ({}),
  call: async (t, c) => outcome(await postTwilio(t, '/webhooks/twilio/voice', twilioVoice(c))),
  text: async (t, c) =>
    outcome(
      await postTwilio(t, '/webhooks/twilio/sms', {
        AccountSid: TWILIO_SID,
        MessageSid: c.id,
        From: c.from,
        To: c.to,
        Body: c.body,
        NumMedia: '0',
      }),
    ),
  status: (t, c) =>
    postTwilio(t, '/webhooks/twilio/status', {
      ...twilioVoice(c),
      CallStatus: 'completed',
      CallDuration: String(c.durationSeconds),
    }),
  forgeries(c): Forgery[] {
    const path = '/webhooks/twilio/voice';
    const params = twilioVoice(c);
    const send = (signing: Parameters<typeof postTwilio>[3]) => (t: TestApp) =>
      postTwilio(t, path, params, signing);
    return [
      { name: 'unsigned', send: send('unsigned') },
      { name: 'signed with another auth token', send: send({ token: 'another-auth-token-0123456789ab' }) },
      { name: 'signed for another host', send: send({ signedUrl: `https://attacker.example${path}` }) },
      {
        name: 'signed for http',
        send: send({ signedUrl: `${PUBLIC_URL.replace('https:', 'http:')}${path}` }),
      },
      { name: 'signed for another path', send: send({ signedUrl: `${PUBLIC_URL}/webhooks/twilio/sms` }) },
      { name: 'a changed From', send: send({ signedParams: { ...params, From: c.to } }) },
      { name: 'a parameter added', send: send({ signedParams: { ...params, Extra: '1' } }) },
    ];
  },
};
