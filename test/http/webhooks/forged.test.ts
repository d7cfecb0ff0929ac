import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import twilio from 'twilio';
import { signSimRequest } from '../../../src/providers/sim/sim-adapter.ts';
import { RETRY_WINDOW_MS, ReplayGuard } from '../../../src/services/replay-guard.ts';
import {
  interactionRows,
  PUBLIC_URL,
  SIM_SECRET,
  type TestApp,
  TWILIO_SID,
  TWILIO_TOKEN,
  testApp,
} from '../../support/app.ts';
import { plivoVoice } from '../../support/carriers/plivo.ts';
import { telnyxHarness, texmlCall } from '../../support/carriers/telnyx.ts';
import { twilioVoice } from '../../support/carriers/twilio.ts';
import { vonageHarness } from '../../support/carriers/vonage.ts';
import { PLIVO_ENV, PLIVO_TOKEN, plivoDigits, plivoNonce, plivoSignatureV3 } from '../../support/plivo.ts';
import { describeStores } from '../../support/stores.ts';
import { messageReceived, OTHER_TELNYX_KEYS, signTelnyx } from '../../support/telnyx.ts';
import { openSession } from '../../support/twilio.ts';
import {
  answerBody,
  digits,
  FakeMessagesApi,
  inboundSms,
  VONAGE_API_KEY,
  VONAGE_API_SECRET,
  VONAGE_SIGNATURE_SECRET,
  vonageToken,
} from '../../support/vonage.ts';

/**
 * The forged-webhook matrix: for every webhook route of every carrier the app serves, a genuine
 * request signed as the carrier signs it (with its own package where it has one) is accepted,
 * and at least MIN_VARIANTS forged variants of it (a parameter tampered with, another URL,
 * scheme, port or query, a re-encoded body, another secret, a header missing, doubled or
 * garbled, a stale timestamp, the same request replayed) are each refused with 403, writing
 * nothing. Signatures are checked against VEIL_PUBLIC_URL only: a genuine request stays genuine
 * whatever Host and X-Forwarded-* say, and one signed for the URL those headers name is refused.
 * The figures are printed as a table (README, "Forged webhooks").
 */

const MIN_VARIANTS = 30;
const ROUTES = ['voice', 'sms', 'status', 'recording'] as const;
type Route = (typeof ROUTES)[number];
type Format = 'form' | 'json';
type Body = Record<string, unknown>;

const CUSTOMER = '+14155550121';
const COURIER = '+14155550122';
const POOL = ['+14155550420', '+14155550421'];
const ATTACKER_HOST = 'attacker.example';
const HOUR_MS = 3_600_000;
/** Past every carrier's 300 s window, either way, with room for a slow machine. */
const PAST_WINDOW_MS = 330_000;

/** A webhook request as it goes over the wire. */
interface Wire {
  path: string;
  headers: Record<string, string | string[]>;
  payload: string;
}

interface SignOptions {
  /** Sign with another account's secret (or key). */
  otherSecret?: boolean;
  /** The URL signed, for a carrier that signs it (default: VEIL_PUBLIC_URL + the path sent). */
  url?: string;
  /** When it was signed, in ms (default: now). */
  at?: number;
}

interface Variant {
  name: string;
  wire: () => Wire;
}

/** One carrier's signing scheme and the bodies of its webhooks, as the carrier sends them. */
interface Scheme {
  name: string;
  env(): Record<string, string>;
  start?(): Promise<void>;
  stop?(): Promise<void>;
  format(route: Route): Format;
  /** The webhook of `route` for a call from CUSTOMER to their proxy; `n` varies what a report says. */
  body(route: Route, call: { from: string; to: string; id: string }, n: number): Body | undefined;
  sign(path: string, format: Format, body: Body, options?: SignOptions): Wire;
  /** The headers that carry the signature. */
  signatureHeaders: string[];
  /** Whether the signature covers the URL (Twilio, Plivo) rather than only the body. */
  signsUrl: boolean;
  /** Whether the signature carries a time, refused outside a window. */
  timed: boolean;
  /** Forged variants of this scheme's own (a JWT's algorithm, Plivo's signature list). */
  own?(path: string, format: Format, body: Body): Variant[];
}

function encode(format: Format, body: Body): string {
  return format === 'form'
    ? new URLSearchParams(body as Record<string, string>).toString()
    : JSON.stringify(body);
}

const contentType = (format: Format) =>
  format === 'form' ? 'application/x-www-form-urlencoded' : 'application/json';

const twilioScheme: Scheme = {
  name: 'twilio',
  env: () => ({}),
  format: () => 'form',
  body(route, c, n) {
    const call = twilioVoice(c);
    switch (route) {
      case 'voice':
        return call;
      case 'sms':
        return {
          AccountSid: TWILIO_SID,
          MessageSid: c.id,
          From: c.from,
          To: c.to,
          Body: 'at the door',
          NumMedia: '0',
        };
      case 'status':
        return { ...call, CallStatus: 'completed', CallDuration: String(40 + n) };
      case 'recording':
        return {
          AccountSid: TWILIO_SID,
          CallSid: c.id,
          RecordingSid: `RE${String(n).padStart(32, '0')}`,
          RecordingUrl: `https://api.twilio.com/2010-04-01/Accounts/${TWILIO_SID}/Recordings/RE${n}`,
          RecordingStatus: 'completed',
          RecordingDuration: String(30 + n),
          RecordingChannels: '2',
          RecordingSource: 'DialVerb',
        };
    }
  },
  sign(path, format, body, o = {}) {
    const token = o.otherSecret ? 'another-auth-token-0123456789ab' : TWILIO_TOKEN;
    return {
      path,
      headers: {
        'content-type': contentType(format),
        'x-twilio-signature': twilio.getExpectedTwilioSignature(
          token,
          o.url ?? PUBLIC_URL + path,
          body as Record<string, string>,
        ),
      },
      payload: encode(format, body),
    };
  },
  signatureHeaders: ['x-twilio-signature'],
  signsUrl: true,
  timed: false,
};

const plivoScheme: Scheme = {
  name: 'plivo',
  env: () => PLIVO_ENV,
  format: () => 'form',
  body(route, c, n) {
    switch (route) {
      case 'voice':
        return plivoVoice(c);
      case 'sms':
        return {
          From: plivoDigits(c.from),
          To: plivoDigits(c.to),
          Type: 'sms',
          Text: 'at the door',
          MessageUUID: c.id,
        };
      case 'status':
        return {
          ...plivoVoice(c),
          CallStatus: 'completed',
          Event: 'Hangup',
          HangupCause: 'Normal Hangup',
          HangupCauseCode: '4000',
          Duration: String(40 + n),
          BillDuration: String(60 + n),
        };
      case 'recording':
        return undefined;
    }
  },
  sign(path, format, body, o = {}) {
    const nonce = plivoNonce();
    const token = o.otherSecret ? 'another-auth-token-0123456789abcdef' : PLIVO_TOKEN;
    return {
      path,
      headers: {
        'content-type': contentType(format),
        'x-plivo-signature-v3-nonce': nonce,
        'x-plivo-signature-v3': plivoSignatureV3(
          token,
          o.url ?? PUBLIC_URL + path,
          body as Record<string, string>,
          nonce,
        ),
      },
      payload: encode(format, body),
    };
  },
  signatureHeaders: ['x-plivo-signature-v3', 'x-plivo-signature-v3-nonce'],
  signsUrl: true,
  timed: false,
  own(path, format, body) {
    return [
      {
        name: 'a list of signatures, none good',
        wire: () => {
          const other = plivoScheme.sign(path, format, body, { otherSecret: true });
          const wrong = String(other.headers['x-plivo-signature-v3']);
          return {
            ...other,
            headers: { ...other.headers, 'x-plivo-signature-v3': `${wrong},${wrong.slice(2)}` },
          };
        },
      },
      {
        name: 'signed with another nonce',
        wire: () => {
          const wire = plivoScheme.sign(path, format, body);
          return { ...wire, headers: { ...wire.headers, 'x-plivo-signature-v3-nonce': plivoNonce() } };
        },
      },
    ];
  },
};

const vonageScheme: Scheme = {
  name: 'vonage',
  env: () => vonageHarness.env(),
  start: () => vonageHarness.start?.() ?? Promise.resolve(),
  stop: () => vonageHarness.stop?.() ?? Promise.resolve(),
  format: () => 'json',
  body(route, c, n) {
    switch (route) {
      case 'voice':
        return answerBody(c.from, c.to, c.id);
      case 'sms':
        return inboundSms(c.from, c.to, 'at the door', c.id);
      case 'status':
        return {
          from: digits(c.from),
          to: digits(c.to),
          uuid: c.id,
          conversation_uuid: `CON-${c.id}`,
          status: 'completed',
          direction: 'inbound',
          timestamp: '2026-01-01T00:00:42.000Z',
          duration: String(40 + n),
          rate: '0.00450000',
          network: '310260',
        };
      case 'recording':
        return undefined;
    }
  },
  sign(path, format, body, o = {}) {
    const raw = encode(format, body);
    const token = vonageToken(raw, {
      ...(o.otherSecret ? { secret: 'another-signature-secret-0000000000' } : {}),
      ...(o.at === undefined ? {} : { at: o.at }),
    });
    return {
      path,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      payload: raw,
    };
  },
  signatureHeaders: ['authorization'],
  signsUrl: false,
  timed: true,
  own(path, _format, body) {
    const raw = JSON.stringify(body);
    const bearer =
      (header: (token: string) => string, options: Parameters<typeof vonageToken>[1] = {}) =>
      () => ({
        path,
        headers: { 'content-type': 'application/json', authorization: header(vonageToken(raw, options)) },
        payload: raw,
      });
    const plain = (token: string) => `Bearer ${token}`;
    return [
      { name: 'an unsigned (alg none) token', wire: bearer(plain, { alg: 'none' }) },
      { name: 'a token signed with HS512', wire: bearer(plain, { alg: 'HS512' }) },
      { name: 'a token without payload_hash', wire: bearer(plain, { signedBody: null }) },
      {
        name: 'an expired token',
        wire: bearer(plain, { at: Date.now() - 120_000, expires: Date.now() - 60_000 }),
      },
      { name: 'a token without the Bearer scheme', wire: bearer((token) => token) },
      { name: 'a token under the Basic scheme', wire: bearer((token) => `Basic ${token}`) },
    ];
  },
};

const telnyxScheme: Scheme = {
  name: 'telnyx',
  env: () => telnyxHarness.env(),
  start: () => telnyxHarness.start?.() ?? Promise.resolve(),
  stop: () => telnyxHarness.stop?.() ?? Promise.resolve(),
  format: (route) => (route === 'sms' ? 'json' : 'form'),
  body(route, c, n) {
    switch (route) {
      case 'voice':
        return texmlCall(c);
      case 'sms':
        return messageReceived({ id: c.id, from: c.from, to: c.to, body: 'at the door' }) as Body;
      case 'status':
        return { ...texmlCall(c), CallStatus: 'completed', CallDuration: String(40 + n) };
      case 'recording':
        return {
          AccountSid: texmlCall(c).AccountSid,
          CallSid: c.id,
          RecordingSid: `rec-${n}`,
          RecordingUrl: `https://recordings.telnyx.example/${c.id}-${n}.mp3`,
          RecordingStatus: 'completed',
          RecordingDuration: String(30 + n),
        };
    }
  },
  sign(path, format, body, o = {}) {
    const raw = encode(format, body);
    return {
      path,
      headers: {
        'content-type': contentType(format),
        ...signTelnyx(raw, {
          ...(o.otherSecret ? { key: OTHER_TELNYX_KEYS.privateKey } : {}),
          ...(o.at === undefined ? {} : { at: o.at }),
        }),
      },
      payload: raw,
    };
  },
  signatureHeaders: ['telnyx-signature-ed25519', 'telnyx-timestamp'],
  signsUrl: false,
  timed: true,
};

const simScheme: Scheme = {
  name: 'sim',
  env: () => ({}),
  format: () => 'json',
  body(route, c, n) {
    switch (route) {
      case 'voice':
        return { from: c.from, to: c.to, callId: c.id };
      case 'sms':
        return { from: c.from, to: c.to, body: 'at the door', callId: c.id };
      case 'status':
        return { callId: c.id, status: 'completed', durationSeconds: 40 + n, from: c.from, to: c.to };
      case 'recording':
        return {
          callId: c.id,
          status: 'completed',
          url: `https://recordings.sim.example/${c.id}-${n}.wav`,
          durationSeconds: 30 + n,
        };
    }
  },
  sign(path, format, body, o = {}) {
    const raw = encode(format, body);
    return {
      path,
      headers: {
        'content-type': 'application/json',
        ...signSimRequest(o.otherSecret ? 'not-the-sim-secret' : SIM_SECRET, raw, o.at),
      },
      payload: raw,
    };
  },
  signatureHeaders: ['x-sim-signature', 'x-sim-timestamp'],
  signsUrl: false,
  timed: true,
};

const SCHEMES = [simScheme, twilioScheme, vonageScheme, plivoScheme, telnyxScheme];

const withHeaders = (wire: Wire, headers: Wire['headers']): Wire => ({
  ...wire,
  headers: { ...wire.headers, ...headers },
});

const withoutHeader = (wire: Wire, name: string): Wire => {
  const { [name]: _, ...headers } = wire.headers;
  return { ...wire, headers };
};

/** A header's value with its last character changed: the same length, not the same value. */
const garbled = (value: string) => value.slice(0, -1) + (value.endsWith('A') ? 'B' : 'A');

/** The paths to every value of a JSON body (an empty object or array is a value), or a form's names. */
function leaves(body: unknown, at: string[] = []): string[][] {
  if (body && typeof body === 'object' && Object.keys(body).length > 0)
    return Object.entries(body).flatMap(([key, value]) => leaves(value, [...at, key]));
  return [at];
}

/** A copy of `body` with the value at `path` replaced (`undefined`: left out). */
function changedAt(body: Body, path: string[], value: unknown): Body {
  const copy = structuredClone(body) as Record<string, unknown>;
  let parent: Record<string, unknown> = copy;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, unknown>;
  const last = path.at(-1) as string;
  if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else parent[last] = value;
  return copy;
}

function valueAt(body: Body, path: string[]): unknown {
  return path.reduce<unknown>((v, key) => (v as Record<string, unknown>)[key], body);
}

/** A genuine request the app accepted: as sent, and its body. */
interface Genuine {
  wire: Wire;
  body: Body;
}

/**
 * The forged variants of the genuine request of `route` the app accepted. `earlier`: the genuine
 * requests of the carrier's other routes accepted before, each of which is also sent here as it was.
 */
function forgeries(scheme: Scheme, route: Route, genuine: Genuine, earlier: Wire[]): Variant[] {
  const path = `/webhooks/${scheme.name}/${route}`;
  const format = scheme.format(route);
  const { body } = genuine;
  const sign = (options?: SignOptions) => scheme.sign(path, format, body, options);
  // The captured request with its body changed: what an attacker without the secret can send.
  const sentAs = (sent: Body) => () => ({ ...genuine.wire, payload: encode(format, sent) });
  const variants: Variant[] = [];

  // The body changed after signing: each value changed, each left out, one added.
  for (const at of leaves(body)) {
    const name = at.join('.');
    const value = valueAt(body, at);
    const other = typeof value === 'string' ? `${value}0` : format === 'json' ? 'changed' : '0';
    variants.push({ name: `${name} changed`, wire: sentAs(changedAt(body, at, other)) });
    variants.push({ name: `${name} left out`, wire: sentAs(changedAt(body, at, undefined)) });
    if (format === 'json')
      variants.push({ name: `${name} as a list`, wire: sentAs(changedAt(body, at, [value])) });
  }
  variants.push({ name: 'a parameter added', wire: sentAs({ ...body, Extra: '1' }) });

  // The signature: another account's, or its headers missing, empty, doubled, garbled, cut short.
  variants.push({ name: 'signed with another secret', wire: () => sign({ otherSecret: true }) });
  variants.push({
    name: 'unsigned',
    wire: () => scheme.signatureHeaders.reduce((wire, header) => withoutHeader(wire, header), genuine.wire),
  });
  for (const header of scheme.signatureHeaders) {
    const value = String(genuine.wire.headers[header]);
    const sentWith = (v: string | string[]) => () => withHeaders(genuine.wire, { [header]: v });
    if (scheme.signatureHeaders.length > 1)
      variants.push({ name: `${header} missing`, wire: () => withoutHeader(genuine.wire, header) });
    variants.push({ name: `${header} empty`, wire: sentWith('') });
    variants.push({ name: `${header} twice`, wire: sentWith([value, value]) });
    variants.push({ name: `${header} garbled`, wire: sentWith(garbled(value)) });
    variants.push({ name: `${header} cut short`, wire: sentWith(value.slice(0, -4)) });
  }

  // The URL: another host, scheme, port, path or query, for a carrier that signs it.
  if (scheme.signsUrl) {
    const base = PUBLIC_URL.replace('https://', '');
    const signedFor = (name: string, url: string, headers: Wire['headers'] = {}) =>
      variants.push({ name, wire: () => withHeaders(sign({ url }), headers) });
    signedFor('signed for another host', `https://${ATTACKER_HOST}${path}`);
    signedFor('signed for http', `http://${base}${path}`);
    signedFor('signed for port 8443', `https://${base}:8443${path}`);
    signedFor('signed with a trailing slash', `${PUBLIC_URL}${path}/`);
    signedFor('signed for the path in upper case', `${PUBLIC_URL}${path.toUpperCase()}`);
    signedFor('signed with a query not sent', `${PUBLIC_URL}${path}?attempt=2`);
    for (const other of ROUTES.filter((r) => r !== route))
      signedFor(`signed for /${other}`, `${PUBLIC_URL}/webhooks/${scheme.name}/${other}`);
    variants.push({
      name: 'sent with a query not signed',
      wire: () => ({ ...sign(), path: `${path}?attempt=2` }),
    });
    variants.push({
      name: 'sent with another query than signed',
      wire: () => ({ ...sign({ url: `${PUBLIC_URL}${path}?attempt=2` }), path: `${path}?attempt=3` }),
    });
    variants.push({
      name: 'the query re-encoded to another meaning (%3D)',
      wire: () => ({ ...sign({ url: `${PUBLIC_URL}${path}?attempt=2` }), path: `${path}?attempt%3D2` }),
    });
    // Signed for the URL the request's own headers name: the check never reads them.
    signedFor('signed for its Host header’s URL', `https://${ATTACKER_HOST}${path}`, { host: ATTACKER_HOST });
    signedFor('signed for its X-Forwarded-Host’s URL', `https://${ATTACKER_HOST}${path}`, {
      'x-forwarded-host': ATTACKER_HOST,
      'x-forwarded-proto': 'https',
    });
    signedFor('signed for its X-Forwarded-Proto’s scheme', `http://${base}${path}`, {
      'x-forwarded-proto': 'http',
    });
    signedFor('signed for its X-Forwarded-Port’s port', `https://${base}:8443${path}`, {
      'x-forwarded-port': '8443',
    });
  }

  // The time: stale or from the future, past the carrier's window.
  if (scheme.timed) {
    variants.push({ name: 'signed an hour ago', wire: () => sign({ at: Date.now() - HOUR_MS }) });
    variants.push({
      name: 'signed just past the window',
      wire: () => sign({ at: Date.now() - PAST_WINDOW_MS }),
    });
    variants.push({ name: 'signed an hour ahead', wire: () => sign({ at: Date.now() + HOUR_MS }) });
    variants.push({
      name: 'signed just ahead of the window',
      wire: () => sign({ at: Date.now() + PAST_WINDOW_MS }),
    });
  }

  // Re-encoded: the captured request's parameters in other bytes. A carrier signing the raw body
  // refuses them; one signing the decoded parameters (Twilio, Plivo) sees the same request again.
  const raw = genuine.wire.payload;
  const reencoded = (name: string, payload: string) =>
    variants.push({ name, wire: () => ({ ...genuine.wire, payload }) });
  if (format === 'form') {
    reencoded('the form in another order', raw.split('&').reverse().join('&'));
    reencoded(
      'the form’s escapes in lower case',
      raw.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()),
    );
    reencoded(
      'the form’s first letter percent-escaped',
      `%${raw.charCodeAt(0).toString(16).toUpperCase()}${raw.slice(1)}`,
    );
  } else {
    reencoded('the JSON re-serialised with whitespace', JSON.stringify(body, null, 2));
    reencoded(
      'the JSON’s keys in another order',
      JSON.stringify(Object.fromEntries(Object.entries(body).reverse())),
    );
    reencoded('the JSON with a key given twice', `${raw.slice(0, -1)},"${Object.keys(body)[0]}":"x"}`);
  }

  // Replayed: the genuine request again, and each genuine request of another route of the same
  // format (a carrier that does not sign the URL signs nothing that ties a request to its path).
  variants.push({ name: 'replayed', wire: () => genuine.wire });
  for (const wire of earlier) {
    if (wire.headers['content-type'] !== genuine.wire.headers['content-type']) continue;
    variants.push({
      name: `the request accepted at ${wire.path} sent here`,
      wire: () => ({ ...wire, path }),
    });
  }
  variants.push(...(scheme.own?.(path, format, body) ?? []));
  return variants;
}

/** Genuine requests sent with headers a proxy (or an attacker) sets: each is as good as without them. */
const PROXY_HEADERS: [string, Wire['headers']][] = [
  ['Host of another site', { host: ATTACKER_HOST }],
  ['X-Forwarded-Host of another site', { 'x-forwarded-host': ATTACKER_HOST }],
  ['X-Forwarded-Proto http', { 'x-forwarded-proto': 'http' }],
  ['X-Forwarded-Port 8443', { 'x-forwarded-port': '8443' }],
  [
    'all of them',
    {
      host: `${ATTACKER_HOST}:8443`,
      'x-forwarded-host': ATTACKER_HOST,
      'x-forwarded-proto': 'http',
      'x-forwarded-port': '8443',
    },
  ],
];

interface Figure {
  carrier: string;
  route: Route;
  forged: number;
  refused: number;
  genuine: number;
  accepted: number;
}

const send = (t: TestApp, wire: Wire): Promise<LightMyRequestResponse> =>
  t.app.inject({ method: 'POST', url: wire.path, headers: wire.headers, payload: wire.payload });

/** What a forged request could have written: the interaction log, the outbox, the sessions. */
async function written(t: TestApp) {
  const db = t.veil.store.db;
  return {
    interactions: await interactionRows(t),
    events: await db.selectFrom('events').select('id').orderBy('id').execute(),
    sessions: await db.selectFrom('sessions').select(['id', 'status', 'expires_at']).orderBy('id').execute(),
  };
}

describeStores('carrier webhooks: forged variants refused, genuine accepted', { perTest: true }, (store) => {
  const figures: Figure[] = [];

  after(() => {
    if (figures.length === 0) return;
    const pad = (s: string | number, n: number) => String(s).padEnd(n);
    const lines = [
      `forged webhooks (${store().name}): carrier × route → forged variants refused, genuine requests accepted`,
      `${pad('carrier', 8)} ${pad('route', 10)} ${pad('refused', 12)} accepted`,
      ...figures.map(
        (f) =>
          `${pad(f.carrier, 8)} ${pad(f.route, 10)} ${pad(`${f.refused}/${f.forged}`, 12)} ${f.accepted}/${f.genuine}`,
      ),
      `total: ${figures.reduce((n, f) => n + f.refused, 0)}/${figures.reduce((n, f) => n + f.forged, 0)} refused, ${figures.reduce((n, f) => n + f.accepted, 0)}/${figures.reduce((n, f) => n + f.genuine, 0)} accepted`,
    ];
    console.log(lines.join('\n'));
  });

  for (const scheme of SCHEMES) {
    it(`${scheme.name}: every webhook route refuses each forged variant and accepts the genuine`, async () => {
      await scheme.start?.();
      const t = await testApp(store(), scheme.env());
      try {
        // Signatures with a time in them are judged on the wall clock; the app's is kept on it.
        t.clock.now = Date.now();
        for (const number of POOL) {
          const r = await t.api('POST', '/v1/numbers', { number, provider: scheme.name });
          assert.equal(r.statusCode, 201, r.body);
        }
        const session = await openSession(t, [CUSTOMER, COURIER]);
        const proxy = session.proxyOf.get(CUSTOMER) as string;
        const callId = `${scheme.name}-call-1`;
        const call = { from: CUSTOMER, to: proxy, id: callId };
        let seq = 0;
        const earlier: Wire[] = [];

        const served = ROUTES.filter((route) =>
          t.app.hasRoute({ method: 'POST', url: `/webhooks/${scheme.name}/${route}` }),
        );
        assert.ok(served.includes('voice') && served.includes('sms') && served.includes('status'));
        for (const route of served) {
          const format = scheme.format(route);
          const path = `/webhooks/${scheme.name}/${route}`;
          const bodyOf = (id: string) => {
            const body = scheme.body(route, { ...call, id }, ++seq);
            assert.ok(body, `${scheme.name} serves ${path}: the matrix needs its body`);
            return body;
          };
          // Voice and texts are new calls, each with an id of its own; reports are on the call.
          const idOf = () =>
            route === 'voice' || route === 'sms' ? `${scheme.name}-${route}-${seq + 1}` : callId;

          const genuine = async (headers: Wire['headers'] = {}): Promise<Genuine> => {
            const id = idOf();
            const body = bodyOf(id);
            const wire = withHeaders(scheme.sign(path, format, body), headers);
            const r = await send(t, wire);
            assert.equal(r.statusCode, 200, `${path}: a genuine request was refused: ${r.body}`);
            await assertEffect(t, route, id, body, r);
            return { wire, body };
          };

          const first = await genuine();
          // Past the window in which Twilio's own retry of a request is answered again as it was.
          t.clock.advance(RETRY_WINDOW_MS / 1000 + 1);
          const variants = forgeries(scheme, route, first, earlier);
          earlier.push(first.wire);
          assert.ok(variants.length >= MIN_VARIANTS, `${path}: ${variants.length} variants`);

          const before = await written(t);
          const admitted: string[] = [];
          for (const variant of variants) {
            const r = await send(t, variant.wire());
            if (r.statusCode !== 403 || r.json().error?.code !== 'forbidden')
              admitted.push(`${variant.name}: ${r.statusCode}`);
          }
          assert.deepEqual(admitted, [], `${path}: forged variants not refused`);
          assert.deepEqual(await written(t), before, `${path}: a forged variant wrote something`);

          let proxied = 0;
          for (const [, headers] of PROXY_HEADERS) {
            await genuine(headers);
            proxied += 1;
          }
          figures.push({
            carrier: scheme.name,
            route,
            forged: variants.length,
            refused: variants.length - admitted.length,
            genuine: 1 + proxied,
            accepted: 1 + proxied,
          });
        }
      } finally {
        await t.close();
        await scheme.stop?.();
      }
    });
  }
});

/** What a genuine request must have done: a call put through, a text relayed, a report kept. */
async function assertEffect(t: TestApp, route: Route, id: string, body: Body, r: LightMyRequestResponse) {
  const rows = await interactionRows(t);
  const row = rows.find((i) => i.provider_call_id === id && (route !== 'voice' || i.channel === 'voice'));
  assert.ok(row, `${route}: no interaction for ${id}`);
  switch (route) {
    case 'voice':
      assert.equal(row.action, 'connect');
      assert.ok(r.body.includes(digits(COURIER)), `the answer puts the call through: ${r.body}`);
      break;
    case 'sms':
      assert.equal(row.action, 'forward');
      break;
    case 'status': {
      const duration = body.CallDuration ?? body.Duration ?? body.duration ?? body.durationSeconds;
      assert.equal(row.status, 'completed');
      assert.equal(row.duration_seconds, Number(duration));
      break;
    }
    case 'recording': {
      const duration = body.RecordingDuration ?? body.durationSeconds;
      assert.equal(row.recording_status, 'completed');
      assert.equal(row.recording_duration_seconds, Number(duration));
      break;
    }
  }
}

describeStores('carrier webhooks: the same signed request again', { perTest: true }, (store) => {
  let t: TestApp;
  let proxy: string;
  let seq = 0;
  const voice = () => {
    const body = twilioScheme.body(
      'voice',
      { from: CUSTOMER, to: proxy, id: `CA-retry-${++seq}` },
      seq,
    ) as Body;
    return twilioScheme.sign('/webhooks/twilio/voice', 'form', body);
  };
  const connects = async () => (await interactionRows(t)).filter((r) => r.action === 'connect').length;

  const open = async (env: Record<string, string> = {}, provider = 'twilio') => {
    t = await testApp(store(), env);
    t.clock.now = Date.now();
    for (const number of POOL) await t.api('POST', '/v1/numbers', { number, provider });
    proxy = (await openSession(t, [CUSTOMER, COURIER])).proxyOf.get(CUSTOMER) as string;
  };

  it("answers Twilio's retry within its window as the request was, routing and writing nothing again", async () => {
    await open();
    try {
      const wire = voice();
      const first = await send(t, wire);
      assert.equal(first.statusCode, 200, first.body);
      t.clock.advance(RETRY_WINDOW_MS / 1000 - 1);
      const retry = await send(t, wire);
      assert.equal(retry.statusCode, 200);
      assert.equal(retry.body, first.body);
      assert.equal(await connects(), 1);
      t.clock.advance(2);
      const replay = await send(t, wire);
      assert.equal(replay.statusCode, 403);
      assert.match(replay.json().error.message, /replayed/);
      assert.equal(await connects(), 1);
    } finally {
      await t.close();
    }
  });

  it('refuses it by its written receipt where it was never seen (another instance, or this one restarted)', async () => {
    await open();
    try {
      const wire = voice();
      assert.equal((await send(t, wire)).statusCode, 200);
      // The receipt goes with the interaction log's next batch; then a guard that remembers nothing.
      await t.veil.interactions.flush();
      t.veil.replays = new ReplayGuard(t.veil.store, t.veil.interactions, t.clock.read);
      const replay = await send(t, wire);
      assert.equal(replay.statusCode, 403);
      assert.match(replay.json().error.message, /replayed/);
      assert.equal(await connects(), 1);
      // A request it has not seen is still taken.
      assert.equal((await send(t, voice())).statusCode, 200);
      assert.equal(await connects(), 2);
    } finally {
      await t.close();
    }
  });

  it('takes the same request again after it failed (5xx): the carrier delivers it again', async () => {
    const api = new FakeMessagesApi();
    await api.start();
    await open(
      { VONAGE_API_KEY, VONAGE_API_SECRET, VONAGE_SIGNATURE_SECRET, VONAGE_API_URL: api.url },
      'vonage',
    );
    try {
      const body = vonageScheme.body('sms', { from: CUSTOMER, to: proxy, id: 'msg-failed' }, 1) as Body;
      const wire = vonageScheme.sign('/webhooks/vonage/sms', 'json', body);
      // The Messages API fails the first relay: Vonage is answered 502, and delivers the text again.
      api.answerNext({ status: 500 });
      assert.equal((await send(t, wire)).statusCode, 502);
      const again = await send(t, wire);
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(api.received.length, 2);
      assert.equal((await send(t, wire)).statusCode, 403);
      assert.equal(api.received.length, 2);
    } finally {
      await t.close();
      await api.stop();
    }
  });

  it("prunes receipts once the carrier's own check would refuse their request", async () => {
    await open();
    try {
      assert.equal((await send(t, voice())).statusCode, 200);
      // The receipt is written behind the answer, with the interaction log's next batch.
      await t.veil.interactions.flush();
      const receipts = () => t.veil.store.db.selectFrom('webhook_receipts').selectAll().execute();
      assert.equal((await receipts()).length, 1);
      assert.equal(await t.veil.replays.prune(), 0);
      t.clock.advance(86_400 + 1);
      assert.equal(await t.veil.replays.prune(), 1);
      assert.deepEqual(await receipts(), []);
    } finally {
      await t.close();
    }
  });
});

// Several instances share one PostgreSQL database (a SQLite file serves one).
describeStores('carrier webhooks: a request taken on one instance', { only: 'postgres' }, (store) => {
  it('is refused on another', async () => {
    const one = await testApp(store());
    const other = await testApp(store());
    try {
      one.clock.now = Date.now();
      other.clock.now = one.clock.now;
      for (const number of POOL) await one.api('POST', '/v1/numbers', { number, provider: 'twilio' });
      const proxy = (await openSession(one, [CUSTOMER, COURIER])).proxyOf.get(CUSTOMER) as string;
      const body = twilioScheme.body(
        'voice',
        { from: CUSTOMER, to: proxy, id: 'CA-two-instances' },
        1,
      ) as Body;
      const wire = twilioScheme.sign('/webhooks/twilio/voice', 'form', body);
      assert.equal((await send(one, wire)).statusCode, 200);
      // Once the receipt is written (the interaction log's batch, within 100 ms); sent to the other
      // instance before that, the request would be taken there once more.
      await one.veil.interactions.flush();
      assert.equal((await send(other, wire)).statusCode, 403);
      const rows = await interactionRows(one);
      assert.equal(rows.filter((r) => r.provider_call_id === 'CA-two-instances').length, 1);
    } finally {
      await other.close();
      await one.close();
    }
  });
});
