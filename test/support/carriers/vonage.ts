import type { LightMyRequestResponse } from 'fastify';
import type { TestApp } from '../app.ts';
import type { CarrierHarness, Forgery, Outcome } from '../carriers.ts';
import {
  answerBody,
  FakeMessagesApi,
  inboundSms,
  postVonage,
  VONAGE_API_KEY,
  VONAGE_API_SECRET,
  VONAGE_SIGNATURE_SECRET,
  type VonageSigning,
} from '../vonage.ts';

const plus = (digits: unknown) => `+${String(digits)}`;

/** What an NCCO told Vonage: a connect to one phone, or no connect at all. */
function callOutcome(r: LightMyRequestResponse): Outcome {
  if (r.statusCode !== 200) return { status: r.statusCode, action: 'reject' };
  const ncco = r.json() as { action: string; from?: string; endpoint?: { type: string; number: string }[] }[];
  const connect = ncco.find((a) => a.action === 'connect');
  const phone = connect?.endpoint?.[0];
  if (!connect || phone?.type !== 'phone' || connect.endpoint?.length !== 1) {
    return { status: 200, action: 'reject' };
  }
  return { status: 200, action: 'connect', to: plus(phone.number), callerId: plus(connect.from) };
}

const messagesApi = new FakeMessagesApi();

/**
 * Vonage as the contract suite drives it: JSON webhooks signed with a Bearer JWT, NCCO answers,
 * and texts relayed through a local fake of the Messages API, whose received requests tell what
 * became of a text.
 */
export const vonageHarness: CarrierHarness = {
  name: 'vonage',
  env: () => ({
    VONAGE_API_KEY,
    VONAGE_API_SECRET,
    VONAGE_SIGNATURE_SECRET,
    VONAGE_API_URL: messagesApi.url,
  }),
  start: () => messagesApi.start(),
  stop: () => messagesApi.stop(),
  call: async (t, c) =>
    callOutcome(await postVonage(t, '/webhooks/vonage/voice', answerBody(c.from, c.to, c.id))),
  async text(t, c) {
    const before = messagesApi.received.length;
    const r = await postVonage(t, '/webhooks/vonage/sms', inboundSms(c.from, c.to, c.body, c.id));
    const sent = messagesApi.received.slice(before);
    if (r.statusCode !== 200 || sent.length === 0) return { status: r.statusCode, action: 'reject' };
    if (sent.length !== 1) throw new Error(`one text relayed ${sent.length} times`);
    const { to, from, text } = sent[0]?.json ?? {};
    return { status: 200, action: 'forward', to: plus(to), from: plus(from), body: String(text) };
  },
  status: (t, c) =>
    postVonage(t, '/webhooks/vonage/status', {
      from: c.from.slice(1),
      to: c.to.slice(1),
      uuid: c.id,
      conversation_uuid: `CON-${c.id}`,
      status: 'completed',
      direction: 'inbound',
      timestamp: '2026-01-01T00:00:00.000Z',
      start_time: '2026-01-01T00:00:00.000Z',
      end_time: '2026-01-01T00:00:42.000Z',
      duration: String(c.durationSeconds),
      rate: '0.00450000',
      price: '0.00315000',
      network: '310260',
    }),
  forgeries(c): Forgery[] {
    const path = '/webhooks/vonage/voice';
    const body = answerBody(c.from, c.to, c.id);
    const send = (signing: VonageSigning | 'unsigned') => (t: TestApp) => postVonage(t, path, body, signing);
    const hour = 3_600_000;
    return [
      { name: 'unsigned', send: send('unsigned') },
      { name: 'signed with another secret', send: send({ secret: 'another-signature-secret-0000000000' }) },
      {
        name: 'a changed body (payload_hash of another)',
        send: send({ signedBody: JSON.stringify({ ...body, from: c.to.slice(1) }) }),
      },
      { name: 'a token without payload_hash', send: send({ signedBody: null }) },
      { name: 'an expired token', send: send({ at: Date.now() - 120_000, expires: Date.now() - 60_000 }) },
      { name: 'a token issued an hour ago', send: send({ at: Date.now() - hour }) },
      { name: 'a token issued an hour ahead', send: send({ at: Date.now() + hour }) },
      { name: 'a token without the Bearer scheme', send: send({ header: (token) => token }) },
      { name: 'a token under the Basic scheme', send: send({ header: (token) => `Basic ${token}` }) },
      { name: 'an unsigned (alg none) token', send: send({ alg: 'none' }) },
      { name: 'a token signed with HS512', send: send({ alg: 'HS512' }) },
      { name: 'a garbled token', send: send({ header: (token) => `Bearer ${token.slice(0, -4)}AAAA` }) },
    ];
  },
};
