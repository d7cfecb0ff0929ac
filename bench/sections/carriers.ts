import { randomBytes, randomUUID } from 'node:crypto';
import { formParameters } from '../../src/http/webhooks.ts';
import type { CarrierAdapter, WebhookRequest } from '../../src/providers/carrier.ts';
import { PlivoAdapter } from '../../src/providers/plivo/plivo-adapter.ts';
import { TelnyxAdapter } from '../../src/providers/telnyx/telnyx-adapter.ts';
import { TwilioAdapter } from '../../src/providers/twilio/twilio-adapter.ts';
import { MessagesApi } from '../../src/providers/vonage/messages-api.ts';
import { VonageAdapter } from '../../src/providers/vonage/vonage-adapter.ts';
import { plivoNonce, plivoSignatureV3, telnyxSignature, vonageToken } from '../../test/support/signatures.ts';
import type { BenchDatabase } from '../databases.ts';
import {
  PLIVO_AUTH_TOKEN,
  PUBLIC_URL,
  startVeil,
  TELNYX_KEYS,
  TWILIO_AUTH_TOKEN,
  VONAGE_API_KEY,
  VONAGE_SIGNATURE_SECRET,
  withCarriers,
} from '../launch.ts';
import { interleave, type LoadResult, medianRatio, runLoad, type Summary, summarize } from '../load.ts';
import type { BenchPlan } from '../plan.ts';
import type { ServerProcess } from '../processes.ts';
import { seededRandom, shuffle } from '../random.ts';
import type { RoutePair, SeededData } from '../seed.ts';
import { type CallRequest, requestFor, signedFor } from './route.ts';

/** What §5 measures on one server: the API's route and each carrier's voice webhook. */
export const CARRIER_ENDPOINTS = ['route', 'twilio', 'vonage', 'plivo', 'telnyx'] as const;
export type CarrierEndpoint = (typeof CARRIER_ENDPOINTS)[number];
type Carrier = Exclude<CarrierEndpoint, 'route'>;

/** Distinct calls the runs go through; each request signed anew, with a call id of its own (signedFor). */
const SIGNED_CALLS = 3_000;
/** Calls of each endpoint checked one by one before the load: each must be put through to the callee. */
const PROBED_CALLS = 20;
/** Signature checks timed per carrier in-process, after a tenth as many to warm up. */
const TIMED_CHECKS = 1_000;

export interface CarrierRow {
  endpoint: CarrierEndpoint;
  path: string;
  summary: Summary;
  /** Median over rounds of req/s divided by POST /v1/route's in the same round. */
  ratio: number;
  /** POST /v1/route's CPU per request over this endpoint's: the ratio in CPU, which a busy neighbour disturbs less. */
  cpuRatio: number;
  /** The server's CPU per request less POST /v1/route's: what the carrier's webhook costs beyond the API's route. */
  extraCpuUs: number;
  /** The adapter's signature check alone, in this process, µs per request (none for /v1/route). */
  verifyUs?: number;
}

export function pathOf(endpoint: CarrierEndpoint): string {
  return endpoint === 'route' ? '/v1/route' : `/webhooks/${endpoint}/voice`;
}

const digits = (number: string) => number.replace(/^\+/, '');

/**
 * One connected call as the client sends it: the API's JSON, or the carrier's webhook signed as
 * that carrier signs it, now (Vonage's `iat` and Telnyx's timestamp are checked within 300 s).
 */
function signedRequest(endpoint: CarrierEndpoint, call: RoutePair): CallRequest {
  const path = pathOf(endpoint);
  const form = (params: Record<string, string>, headers: Record<string, string>): CallRequest => ({
    method: 'POST',
    path,
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(params).toString(),
  });
  switch (endpoint) {
    case 'route':
      return requestFor('json', call);
    case 'twilio':
      return requestFor('form', call);
    case 'vonage': {
      // The answer webhook of an inbound call, numbers as digits.
      const uuid = randomUUID();
      const body = JSON.stringify({
        from: digits(call.from),
        to: digits(call.to),
        uuid,
        conversation_uuid: `CON-${uuid}`,
        region_url: 'https://api-us-3.vonage.com',
        custom_data: {},
      });
      const token = vonageToken(body, { secret: VONAGE_SIGNATURE_SECRET, apiKey: VONAGE_API_KEY });
      return {
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body,
      };
    }
    case 'plivo': {
      // The answer callback of an inbound call, numbers as digits, signed over the URL, the params and a nonce.
      const params = {
        CallUUID: randomUUID(),
        Direction: 'inbound',
        From: digits(call.from),
        To: digits(call.to),
        CallStatus: 'ringing',
        Event: 'StartApp',
      };
      const nonce = plivoNonce();
      return form(params, {
        'x-plivo-signature-v3': plivoSignatureV3(PLIVO_AUTH_TOKEN, PUBLIC_URL + path, params, nonce),
        'x-plivo-signature-v3-nonce': nonce,
      });
    }
    case 'telnyx': {
      // A TeXML call, signed over `timestamp|body` with the account's Ed25519 key.
      const id = `v3:${randomBytes(16).toString('base64url')}`;
      const params = {
        AccountSid: randomUUID(),
        CallSid: id,
        CallSidLegacy: id,
        ConnectionId: '1234567890',
        From: call.from,
        To: call.to,
        CallStatus: 'ringing',
        Direction: 'inbound',
      };
      const body = new URLSearchParams(params).toString();
      const timestamp = String(Math.floor(Date.now() / 1000));
      return form(params, {
        'telnyx-timestamp': timestamp,
        'telnyx-signature-ed25519': telnyxSignature(TELNYX_KEYS.privateKey, timestamp, body),
      });
    }
  }
}

/** Whether an answer puts the call through to `callee`: the API's decision, TwiML, NCCO, Plivo XML or TeXML. */
function connects(endpoint: CarrierEndpoint, status: number, text: string, callee: string): boolean {
  if (status !== 200) return false;
  switch (endpoint) {
    case 'route': {
      const decision = JSON.parse(text);
      return decision.action === 'connect' && decision.to === callee;
    }
    case 'vonage': {
      const ncco = JSON.parse(text) as { action: string; endpoint?: { type: string; number: string }[] }[];
      const phone = ncco.find((a) => a.action === 'connect')?.endpoint?.[0];
      return phone?.type === 'phone' && phone.number === digits(callee);
    }
    case 'plivo':
      return new RegExp(`<Dial [^>]*><Number>${digits(callee)}</Number></Dial>`).test(text);
    case 'twilio':
    case 'telnyx':
      return new RegExp(`<Dial [^>]*><Number>\\${callee}</Number></Dial>`).test(text);
  }
}

/**
 * Sends calls one by one to every endpoint: each must be answered with a connect to the same callee
 * as /v1/route's. A benchmark of 403s, or of refusals, would measure nothing.
 */
async function probe(server: ServerProcess, calls: RoutePair[]): Promise<void> {
  const ask = async (request: CallRequest) => {
    const response = await fetch(server.url + request.path, request);
    return { status: response.status, text: await response.text() };
  };
  for (const call of calls.slice(0, PROBED_CALLS)) {
    const routed = await ask(signedRequest('route', call));
    const callee = routed.status === 200 ? String(JSON.parse(routed.text).to) : '';
    for (const endpoint of CARRIER_ENDPOINTS) {
      const answer = endpoint === 'route' ? routed : await ask(signedRequest(endpoint, call));
      if (!callee || !connects(endpoint, answer.status, answer.text, callee)) {
        throw new Error(
          `${pathOf(endpoint)}: a call in a session should be put through to its callee, got ${answer.status} ${answer.text}`,
        );
      }
    }
  }
}

/** Each carrier's adapter as the server builds it, with the bench's credentials. */
function adapters(): Record<Carrier, CarrierAdapter> {
  return {
    twilio: new TwilioAdapter(TWILIO_AUTH_TOKEN, PUBLIC_URL),
    vonage: new VonageAdapter(
      VONAGE_SIGNATURE_SECRET,
      new MessagesApi('https://api.nexmo.com', VONAGE_API_KEY, 'unused'),
      { publicUrl: PUBLIC_URL },
    ),
    plivo: new PlivoAdapter(PLIVO_AUTH_TOKEN, PUBLIC_URL),
    telnyx: new TelnyxAdapter(
      { apiKey: 'unused', publicKey: TELNYX_KEYS.publicKey, apiUrl: 'https://api.telnyx.com' },
      PUBLIC_URL,
    ),
  };
}

/**
 * µs per signature check of each carrier's adapter in a loop in this process, over requests signed
 * as the load's are: the part of a webhook's cost that is the carrier's signature scheme. Every
 * check must pass.
 */
async function verifyCost(carrier: Carrier, adapter: CarrierAdapter, calls: RoutePair[]): Promise<number> {
  const requests: WebhookRequest[] = calls.slice(0, TIMED_CHECKS).map((call) => {
    const r = signedRequest(carrier, call);
    return {
      url: PUBLIC_URL + r.path,
      headers: r.headers,
      rawBody: r.body,
      params: r.headers['content-type']?.startsWith('application/json')
        ? JSON.parse(r.body)
        : formParameters(r.body),
    };
  });
  const check = async (request: WebhookRequest) => {
    const verification = await adapter.verify(request);
    if (!verification.ok) throw new Error(`${carrier}: a signed request was refused: ${verification.reason}`);
  };
  for (const request of requests.slice(0, TIMED_CHECKS / 10)) await check(request);
  const timed = requests.slice(0, TIMED_CHECKS);
  const started = process.hrtime.bigint();
  for (const request of timed) await check(request);
  return Number(process.hrtime.bigint() - started) / 1000 / timed.length;
}

/**
 * §5: POST /v1/route and each carrier's voice webhook for calls that connect, interleaved round by
 * round on one Veil server with every carrier enabled, over a database the route section seeded.
 * Each run's requests are signed just before it, so that no timestamp ages past a carrier's window.
 */
export async function measureCarriers(
  database: BenchDatabase,
  data: SeededData,
  plan: BenchPlan,
  progress: (line: string) => void,
): Promise<CarrierRow[]> {
  const calls = shuffle([...data.hits], seededRandom(17)).slice(0, SIGNED_CALLS);
  const name = `Veil ${database.label} ${data.openSessions.toLocaleString('en-US')}, every carrier`;
  const server = await startVeil(name, database, undefined, withCarriers());
  let results: LoadResult[][];
  try {
    await probe(server, calls);
    const targets = CARRIER_ENDPOINTS.map((endpoint) => ({
      name: pathOf(endpoint),
      run: (seconds: number) =>
        runLoad({
          server,
          requests: signedFor(calls, seconds, (call) => signedRequest(endpoint, call)),
          connections: plan.connections,
          pipelining: plan.pipelining,
          seconds,
        }),
    }));
    results = await interleave(targets, {
      rounds: plan.carrierRounds,
      seconds: plan.carrierSeconds,
      warmupSeconds: plan.warmupSeconds,
      onRun: progress,
    });
  } finally {
    await server.stop();
  }
  const built = adapters();
  const route = results[0] as LoadResult[];
  const routeCpu = summarize(route).cpuUsPerRequest;
  const rows: CarrierRow[] = [];
  for (const [i, endpoint] of CARRIER_ENDPOINTS.entries()) {
    const runs = results[i] as LoadResult[];
    const summary = summarize(runs);
    rows.push({
      endpoint,
      path: pathOf(endpoint),
      summary,
      ratio: medianRatio(runs, route),
      cpuRatio: routeCpu / summary.cpuUsPerRequest,
      extraCpuUs: summary.cpuUsPerRequest - routeCpu,
      verifyUs: endpoint === 'route' ? undefined : await verifyCost(endpoint, built[endpoint], calls),
    });
  }
  return rows;
}
