import { randomBytes } from 'node:crypto';
import { stringify } from 'node:querystring';
import twilio from 'twilio';
import { API_KEY, PUBLIC_URL, TWILIO_AUTH_TOKEN } from '../launch.ts';
import { interleave, type LoadResult, medianRatio, runLoad, type Summary, summarize } from '../load.ts';
import type { BenchPlan } from '../plan.ts';
import type { ServerProcess } from '../processes.ts';
import { seededRandom, shuffle } from '../random.ts';
import type { RoutePair, SeededData } from '../seed.ts';

export const ROUTE_PATH = '/v1/route';
export const VOICE_WEBHOOK_PATH = '/webhooks/twilio/voice';
/**
 * Webhook requests signed beforehand for each run, per second it lasts: signing is the carrier's
 * work, not the client's, and a signed request is taken once (a repeat is refused as a replay), so
 * a run needs one for every request it can send. Past this rate a run would send repeats.
 */
export const SIGNED_PER_SECOND = 10_000;

/** A Veil server over a seeded database, and on SQLite the floor (bench/servers/floor.ts) over the same file. */
export interface RouteFixture {
  store: string;
  openSessions: number;
  server: ServerProcess;
  floor?: ServerProcess;
  data: SeededData;
}

export type Endpoint = 'json' | 'form';

/**
 * One line of the routing tables: bare Fastify (the baseline), the floor (bare Fastify plus Veil's
 * lookup query over a fixture's file), or a Veil server over a fixture.
 */
export interface RouteRow {
  endpoint: Endpoint;
  kind: 'bare' | 'floor' | 'veil';
  /** The database routed through: the floor's or Veil's; undefined for bare Fastify. */
  fixture?: RouteFixture;
  summary: Summary;
  /** Median over rounds of req/s divided by the bare endpoint's in the same round. */
  ratio: number;
  /** The bare endpoint's CPU per request divided by this server's: the ratio in CPU rather than time. */
  cpuRatio: number;
}

/** A server measured, and the database it routes through (none for bare Fastify). */
type Measured = Pick<RouteRow, 'kind' | 'fixture'> & { server: ServerProcess };

/**
 * Routes over HTTP through bare Fastify, the fixtures' floors and every fixture, interleaved,
 * for one endpoint: POST /v1/route (JSON, Bearer key) or the Twilio voice webhook (form-encoded, signed).
 */
export async function measureRouting(
  endpoint: Endpoint,
  bare: ServerProcess,
  fixtures: RouteFixture[],
  plan: BenchPlan,
  progress: (line: string) => void,
): Promise<RouteRow[]> {
  const first = fixtures[0];
  if (!first) throw new Error('no fixture to route through');
  const measured: Measured[] = [
    { kind: 'bare', server: bare },
    ...fixtures.flatMap((fixture) =>
      fixture.floor ? [{ kind: 'floor' as const, fixture, server: fixture.floor }] : [],
    ),
    ...fixtures.map((fixture) => ({ kind: 'veil' as const, fixture, server: fixture.server })),
  ];
  for (const m of measured) if (m.fixture) await probe(endpoint, m);
  const targets = measured.map((m) => {
    // Bare Fastify reads nothing: the first fixture's calls are as good as any.
    const data = (m.fixture ?? first).data;
    const requests = endpoint === 'form' ? [] : requestsFor(endpoint, data);
    return {
      name: `${rowName(m)} ${endpoint}`,
      run: (seconds: number) =>
        runLoad({
          server: m.server,
          requests: endpoint === 'form' ? requestsFor(endpoint, data, seconds) : requests,
          connections: plan.connections,
          pipelining: plan.pipelining,
          seconds,
        }),
    };
  });
  const results = await interleave(targets, {
    rounds: plan.routeRounds,
    seconds: plan.routeSeconds,
    warmupSeconds: plan.warmupSeconds,
    onRun: progress,
  });
  const baseline = results[0] as LoadResult[];
  const bareSummary = summarize(baseline);
  return measured.map(({ kind, fixture }, i) => {
    const runs = results[i] as LoadResult[];
    const summary = summarize(runs);
    return {
      endpoint,
      kind,
      fixture,
      summary,
      ratio: medianRatio(runs, baseline),
      cpuRatio: bareSummary.cpuUsPerRequest / summary.cpuUsPerRequest,
    };
  });
}

export function nameOf(fixture: RouteFixture): string {
  return `Veil ${fixture.store} ${fixture.openSessions.toLocaleString('en-US')}`;
}

/** The server column of a routing row. */
export function rowName(row: Pick<RouteRow, 'kind' | 'fixture'>): string {
  if (row.kind === 'bare' || !row.fixture) return 'bare Fastify';
  if (row.kind === 'veil') return nameOf(row.fixture);
  return `floor: bare Fastify + the lookup, ${row.fixture.store} ${row.fixture.openSessions.toLocaleString('en-US')}`;
}

/** Mostly calls within a session (each to be connected), a tenth from strangers (each refused), shuffled. */
function calls(data: SeededData): RoutePair[] {
  return shuffle([...data.hits, ...data.strangers], seededRandom(7));
}

/** A request as both autocannon and fetch take it. */
export interface CallRequest {
  method: 'POST';
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** One call as the client sends it: JSON with the API key, or a Twilio webhook signed as Twilio signs it. */
export function requestFor(endpoint: Endpoint, call: RoutePair): CallRequest {
  if (endpoint === 'json') {
    return {
      method: 'POST',
      path: ROUTE_PATH,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ ...call, channel: 'voice' }),
    };
  }
  const params = {
    AccountSid: `AC${'0'.repeat(32)}`,
    ApiVersion: '2010-04-01',
    CallSid: `CA${randomBytes(16).toString('hex')}`,
    CallStatus: 'ringing',
    Called: call.to,
    Caller: call.from,
    Direction: 'inbound',
    From: call.from,
    To: call.to,
  };
  const signature = twilio.getExpectedTwilioSignature(
    TWILIO_AUTH_TOKEN,
    PUBLIC_URL + VOICE_WEBHOOK_PATH,
    params,
  );
  return {
    method: 'POST',
    path: VOICE_WEBHOOK_PATH,
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
    body: stringify(params),
  };
}

/** The requests of a run; for the webhook, new ones signed for a run of `seconds`. */
export function requestsFor(endpoint: Endpoint, data: SeededData, seconds = 1): CallRequest[] {
  const all = calls(data);
  if (endpoint !== 'form') return all.map((call) => requestFor(endpoint, call));
  return signedFor(all, seconds, (call) => requestFor(endpoint, call));
}

/** SIGNED_PER_SECOND requests per second of a run, each signed anew, over `calls` in turn. */
export function signedFor<T>(calls: RoutePair[], seconds: number, sign: (call: RoutePair) => T): T[] {
  return Array.from({ length: Math.ceil(seconds * SIGNED_PER_SECOND) }, (_, i) =>
    sign(calls[i % calls.length] as RoutePair),
  );
}

/**
 * Checks, before measuring, that the server answers what it should: a call in a session is
 * connected and a stranger's is refused. A benchmark of 401s or of empty lookups would measure nothing.
 */
async function probe(endpoint: Endpoint, { server, fixture, kind }: Measured): Promise<void> {
  const name = rowName({ kind, fixture });
  const [hit] = fixture?.data.hits ?? [];
  const [stranger] = fixture?.data.strangers ?? [];
  if (!hit || !stranger) throw new Error(`${name}: no calls to route`);
  const ask = async (call: RoutePair) => {
    const request = requestFor(endpoint, call);
    const response = await fetch(server.url + request.path, request);
    return { status: response.status, text: await response.text() };
  };
  const connected = await ask(hit);
  const refused = await ask(stranger);
  const ok =
    connected.status === 200 &&
    refused.status === 200 &&
    (endpoint === 'json'
      ? JSON.parse(connected.text).action === 'connect' && JSON.parse(refused.text).action === 'reject'
      : connected.text.includes('<Dial') && !refused.text.includes('<Dial'));
  if (!ok) {
    throw new Error(
      `${name} ${endpoint}: a call in a session should connect and a stranger's be refused, got\n` +
        `${connected.status} ${connected.text}\n${refused.status} ${refused.text}`,
    );
  }
}
