import { loadavg } from 'node:os';
import { STUCK_RETRY_MS } from '../../src/services/failover.ts';
import {
  type FakeBehaviour,
  FakeMessagingApi,
  messageReceived,
  signTelnyx,
} from '../../test/support/telnyx.ts';
import { type BenchDatabase, checkInvariant } from '../databases.ts';
import { API_KEY, startVeil, TELNYX_KEYS, withCarriers } from '../launch.ts';
import { percentile, runLoad } from '../load.ts';
import { POOL_NUMBERS_PER_AREA, POOL_SIZE, poolNumber } from '../numbering.ts';
import type { BenchPlan } from '../plan.ts';
import type { ServerProcess } from '../processes.ts';
import { randomIndex, seededRandom, shuffle } from '../random.ts';
import { createRequests } from './creates.ts';

/**
 * Carrier faults: a fake Telnyx Messaging API goes bad under a steady stream of texts (Telnyx
 * webhooks, each relayed through that API) and calls (POST /v1/route), and the section reads how
 * long Veil takes to find the carrier down and to move every open session off its numbers, and
 * what was routed to its numbers meanwhile.
 */

/** How the fake carrier fails: never answers, drops the connection, or answers 503. */
export const FAULT_MODES = ['timeout', 'reset', '5xx'] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

const BEHAVIOUR: Record<FaultMode, FakeBehaviour> = {
  timeout: { answer: 'hang' },
  reset: { answer: 'reset' },
  '5xx': { answer: 'status', status: 503 },
};

/** The carrier that fails, and the one whose spare numbers its sessions move to. */
const FAILING = 'telnyx';
const SPARE = 'twilio';
/** Of each area's 100 pool numbers, the first half are Telnyx's, the second half spare Twilio ones. */
const FAILING_PER_AREA = POOL_NUMBERS_PER_AREA / 2;
/** Steady traffic while the carrier fails: texts (each relayed through its API) and calls. */
const TEXTS_PER_SECOND = 50;
const CALLS_PER_SECOND = 100;
/** Traffic with the carrier well, before it fails, for at least this long and this many texts: each must be relayed. */
const HEALTHY_MS = 1_000;
const HEALTHY_TEXTS = 20;
/** Texts and calls sent one by one before the streams start, to warm the server up. */
const WARM_UP = 50;
/** Traffic kept up once every session is re-bound: calls to the old proxies must all be refused. */
const AFTER_MS = 1_000;
/** How often GET /v1/providers and the event log are read while the carrier fails. */
const POLL_MS = 50;
/** Longest wait for the first answers while the carrier is well. */
const MAX_WAIT_MS = 180_000;
/**
 * Longest time with no session re-bound before the section fails: past the failover's own wait
 * for sessions it could not move (STUCK_RETRY_MS, 30 s), they are stuck, not slow.
 */
const STALL_MS = 2 * STUCK_RETRY_MS;
/** Sessions checked one by one afterwards: new proxies connect, old ones refuse. */
const SAMPLED = 100;
const CREATE_CONNECTIONS = 16;

/** The health settings the servers run with, from the environment as Veil reads them. */
export interface FailoverSettings {
  /** Open sessions on the failing carrier when it fails. */
  sessions: number;
  /** VEIL_PROVIDER_FAILURES: failures in a row that open a carrier's circuit. */
  failures: number;
  /** VEIL_FAILOVER_MS: how often open sessions on carriers down are looked for and moved. */
  failoverMs: number;
  /** VEIL_PROVIDER_HALF_OPEN_MS: how long an open circuit waits before it tries again. */
  halfOpenMs: number;
  textsPerSecond: number;
  callsPerSecond: number;
}

export function failoverSettings(plan: BenchPlan, env = process.env): FailoverSettings {
  return {
    sessions: plan.quick ? 1_000 : 5_000,
    failures: Number(env.VEIL_PROVIDER_FAILURES || 5),
    failoverMs: Number(env.VEIL_FAILOVER_MS || 1_000),
    halfOpenMs: Number(env.VEIL_PROVIDER_HALF_OPEN_MS || 30_000),
    textsPerSecond: TEXTS_PER_SECOND,
    callsPerSecond: CALLS_PER_SECOND,
  };
}

/** What one fault did, times in ms from t0: the first request the fake carrier failed. */
export interface FailoverRow {
  store: string;
  mode: FaultMode;
  /** Open sessions on the failing carrier, and how many `session.rebound` events moved them. */
  sessions: number;
  rebound: number;
  /** provider.down written; and GET /v1/providers first showing the carrier down (polled). */
  downMs: number;
  seenDownMs: number;
  /** The first and the last `session.rebound`. */
  firstReboundMs: number;
  allReboundMs: number;
  /** Texts relayed to the failing carrier after t0 (each failed), and texts answered 5xx meanwhile (the carrier delivers them again). */
  failedSends: number;
  textsRefused: number;
  /** Calls sent after t0 until all were re-bound, and those of them connected through a failing carrier's number. */
  callsMeanwhile: number;
  deadCalls: number;
  /** Calls to the old proxies after all were re-bound (all refused), and sessions checked one by one. */
  callsAfter: number;
  sampled: number;
  /** p99 of a call's answer time before the carrier failed, and from t0 until all were re-bound (the passes at work). */
  callP99Ms: { before: number; meanwhile: number };
  /** The machine's 1-minute load average when the fault began: a busy machine stretches every time here. */
  load: number;
}

interface Participant {
  id: string;
  number: string;
  proxyNumber: string;
}
interface Session {
  id: string;
  participants: Participant[];
}
interface EventView {
  id: string;
  type: string;
  createdAt: string;
  data: Record<string, unknown>;
}
/** A call or text from a participant to their proxy, in a session on the failing carrier. */
interface Call {
  from: string;
  to: string;
  callee: string;
}
/** One request of a stream: when it was sent and answered, and how. */
interface Outcome {
  sentAt: number;
  answeredAt: number;
  status: number;
  /** For a call: the number it was connected to, if it was. */
  connectedTo?: string;
}

/**
 * For each fault mode, on a fresh database from `newDatabase`: sessions opened through the API on
 * Telnyx numbers (the only ones in the pool), spare Twilio numbers added, then steady texts and
 * calls while the fake Telnyx Messaging API fails. Fails loudly when a session is not re-bound, a
 * call to an old proxy connects after its session moved, or a new proxy does not connect.
 */
export async function measureFailover(
  newDatabase: () => Promise<BenchDatabase>,
  settings: FailoverSettings,
  progress: (line: string) => void,
): Promise<FailoverRow[]> {
  const rows: FailoverRow[] = [];
  for (const mode of FAULT_MODES) {
    const database = await newDatabase();
    try {
      const row = await measureFault(database, mode, settings);
      rows.push(row);
      progress(
        `${row.store} ${mode}: down after ${row.downMs} ms, ${row.rebound} sessions re-bound after ` +
          `${row.allReboundMs} ms, ${row.deadCalls} calls through dead numbers`,
      );
    } finally {
      await database.drop();
    }
  }
  return rows;
}

async function measureFault(
  database: BenchDatabase,
  mode: FaultMode,
  settings: FailoverSettings,
): Promise<FailoverRow> {
  const carrier = new FakeMessagingApi();
  await carrier.start();
  let server: ServerProcess | undefined;
  try {
    server = await startVeil(`Veil ${database.label} failover (${mode})`, database, undefined, {
      ...withCarriers(),
      TELNYX_API_URL: carrier.url,
      VEIL_PROVIDER_FAILURES: String(settings.failures),
      VEIL_FAILOVER_MS: String(settings.failoverMs),
      VEIL_PROVIDER_HALF_OPEN_MS: String(settings.halfOpenMs),
      // Each text refused while the carrier is down logs a warning: the errors are what to keep.
      LOG_LEVEL: 'error',
    });
    const api = client(server);
    const failing = poolOf(FAILING, (line) => line < FAILING_PER_AREA);
    const spare = poolOf(SPARE, (line) => line >= FAILING_PER_AREA);
    await api.ok('POST', '/v1/numbers/import', failing.rows);
    const created = await runLoad({
      server,
      requests: createRequests(18),
      connections: CREATE_CONNECTIONS,
      amount: settings.sessions,
    });
    if (created.failed > 0) throw new Error(`failover: ${created.failed} session creates failed`);
    await api.ok('POST', '/v1/numbers/import', spare.rows);
    const sessions = await api.sessions();
    if (sessions.length !== settings.sessions) {
      throw new Error(`failover: ${sessions.length} open sessions, ${settings.sessions} created`);
    }
    const offCarrier = sessions.filter((s) =>
      s.participants.some((p) => !failing.numbers.has(p.proxyNumber)),
    );
    if (offCarrier.length > 0) throw new Error(`failover: session ${offCarrier[0]?.id} is not on ${FAILING}`);

    const calls = shuffle(sessions.flatMap(callsOf), seededRandom(18));
    // One by one first: a cold server's first texts, piled up by a steady stream, could outlast
    // the 3 s a relay may take and have the carrier found down before it fails.
    for (const [i, c] of calls.slice(0, WARM_UP).entries()) {
      const relayed = await text(api, c, -1 - i);
      if (relayed.status !== 200)
        throw new Error(`failover: a text answered ${relayed.status} while ${FAILING} is well`);
      await call(api, c);
    }
    const texts = stream(settings.textsPerSecond, (i) => text(api, calls[i % calls.length] as Call, i));
    const voice = stream(settings.callsPerSecond, (i) => call(api, calls[(i * 7) % calls.length] as Call));
    await sleep(HEALTHY_MS);
    // On a busy machine the first answers may take a while: the carrier fails once some are in.
    for (const deadline = Date.now() + MAX_WAIT_MS; ; await sleep(POLL_MS)) {
      if (texts.outcomes.filter((o) => o.status !== 0).length >= HEALTHY_TEXTS) break;
      if (Date.now() > deadline) throw new Error(`failover: fewer than ${HEALTHY_TEXTS} texts answered`);
    }
    const healthy = texts.outcomes.filter((o) => o.status !== 0);
    if (healthy.length === 0 || healthy.some((o) => o.status !== 200) || carrier.sendsSince(0).length === 0) {
      const statuses = [...new Set(healthy.map((o) => o.status))];
      throw new Error(
        `failover: texts answered ${statuses} while ${FAILING} is well (a machine too busy to relay a text within 3 s finds the carrier down)`,
      );
    }

    const load = loadavg()[0] ?? Number.NaN;
    const failedFrom = carrier.received.length;
    carrier.behaviour = BEHAVIOUR[mode];
    const watch = await watchFailover(api, settings.sessions);
    await sleep(AFTER_MS);
    const afterAll = Date.now();
    await Promise.all([texts.stop(), voice.stop()]);

    const sends = carrier.sendsSince(failedFrom);
    const t0 = sends[0]?.at;
    if (t0 === undefined) throw new Error(`failover: no text reached ${FAILING} once it failed`);
    const down = (await api.events('provider.down')).find((e) => e.data.provider === FAILING);
    if (!down) throw new Error(`failover: no provider.down for ${FAILING}`);
    checkRebound(watch.rebound, sessions, spare.numbers);
    const meanwhile = voice.outcomes.filter((o) => o.sentAt >= t0 && o.sentAt < watch.doneAt);
    const after = voice.outcomes.filter((o) => o.sentAt >= watch.doneAt && o.sentAt < afterAll);
    const connectedAfter = after.filter((o) => o.connectedTo !== undefined);
    if (connectedAfter.length > 0) {
      throw new Error(
        `failover: ${connectedAfter.length} of ${after.length} calls to old proxies connected after every session was re-bound`,
      );
    }
    if (after.length === 0) throw new Error('failover: no call was made after the sessions were re-bound');
    await checkSample(api, sessions, spare.numbers);
    const telnyxLoad = (await api.numbers(FAILING)).reduce((sum, n) => sum + n.load, 0);
    if (telnyxLoad !== 0) throw new Error(`failover: ${FAILING}'s numbers still hold ${telnyxLoad} sessions`);

    const times = watch.rebound.map((e) => Date.parse(e.createdAt)).sort((a, b) => a - b);
    const row: FailoverRow = {
      store: database.label,
      mode,
      sessions: sessions.length,
      rebound: watch.rebound.length,
      downMs: Date.parse(down.createdAt) - t0,
      seenDownMs: watch.seenDownAt - t0,
      firstReboundMs: (times[0] ?? Number.NaN) - t0,
      allReboundMs: percentile(times, 1) - t0,
      failedSends: sends.length,
      textsRefused: texts.outcomes.filter((o) => o.sentAt >= t0 && o.status >= 500).length,
      callsMeanwhile: meanwhile.length,
      deadCalls: meanwhile.filter((o) => o.connectedTo !== undefined).length,
      callsAfter: after.length,
      sampled: Math.min(SAMPLED, sessions.length),
      callP99Ms: {
        before: p99(voice.outcomes.filter((o) => o.sentAt < t0)),
        meanwhile: p99(meanwhile),
      },
      load,
    };
    await server.stop();
    const check = await checkInvariant(database);
    if (check.doubleAssigned > 0 || check.loadMismatches > 0 || check.openSessions !== sessions.length) {
      throw new Error(`failover: the database after ${mode} is not consistent: ${JSON.stringify(check)}`);
    }
    return row;
  } catch (error) {
    if (server) console.error(server.output());
    throw error;
  } finally {
    await server?.stop();
    await carrier.stop();
  }
}

/** One carrier's share of the benchmark's pool: the import body and the numbers. */
function poolOf(provider: string, takes: (line: number) => boolean) {
  const rows = Array.from({ length: POOL_SIZE }, (_, i) => i)
    .filter((i) => takes(i % POOL_NUMBERS_PER_AREA))
    .map((i) => ({ ...poolNumber(i), provider }));
  return { rows, numbers: new Set(rows.map((r) => r.number)) };
}

/** Each participant calling their proxy, to reach the other. */
function callsOf(session: Session): Call[] {
  const [a, b] = session.participants;
  if (!a || !b) throw new Error(`failover: session ${session.id} has not two participants`);
  return [
    { from: a.number, to: a.proxyNumber, callee: b.number },
    { from: b.number, to: b.proxyNumber, callee: a.number },
  ];
}

/** The server's API with the bench's key. */
function client(server: ServerProcess) {
  const send = (method: string, path: string, body?: unknown) =>
    fetch(server.url + path, {
      method,
      headers: {
        authorization: `Bearer ${API_KEY}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const ok = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await send(method, path, body);
    const text = await response.text();
    if (!response.ok) throw new Error(`failover: ${method} ${path} answered ${response.status} ${text}`);
    return JSON.parse(text) as T;
  };
  /** Every item of a list, page by page. */
  const all = async <T>(path: string): Promise<T[]> => {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: T[]; nextCursor: string | null } = await ok(
        'GET',
        `${path}&limit=500${cursor ? `&cursor=${cursor}` : ''}`,
      );
      items.push(...page.data);
      cursor = page.nextCursor;
    } while (cursor);
    return items;
  };
  return {
    url: server.url,
    send,
    ok,
    events: (type: string) => all<EventView>(`/v1/events?type=${type}`),
    /** The events of `type` after event `after`, one page. */
    eventsAfter: (type: string, after: string | undefined) =>
      ok<{ data: EventView[] }>('GET', `/v1/events?type=${type}&limit=500${after ? `&after=${after}` : ''}`),
    numbers: (provider: string) => all<{ number: string; load: number }>(`/v1/numbers?provider=${provider}`),
    sessions: () => all<Session>('/v1/sessions?status=open'),
    route: (from: string, to: string) =>
      ok<{ action: string; to?: string; callerId?: string }>('POST', '/v1/route', {
        from,
        to,
        channel: 'voice',
      }),
  };
}
type Api = ReturnType<typeof client>;

/** A text from a participant to their proxy, as Telnyx delivers it to the messaging webhook. */
async function text(api: Api, call: Call, i: number): Promise<Outcome> {
  const sentAt = Date.now();
  const raw = JSON.stringify(
    messageReceived({ id: `msg-${i}`, from: call.from, to: call.to, body: 'on my way' }),
  );
  const response = await fetch(`${api.url}/webhooks/telnyx/sms`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...signTelnyx(raw, { key: TELNYX_KEYS.privateKey }) },
    body: raw,
  });
  await response.arrayBuffer();
  return { sentAt, answeredAt: Date.now(), status: response.status };
}

/** A call from a participant to their proxy: connected (to whom), or refused. */
async function call(api: Api, c: Call): Promise<Outcome> {
  const sentAt = Date.now();
  const response = await api.send('POST', '/v1/route', { from: c.from, to: c.to, channel: 'voice' });
  const decision = (await response.json()) as { action?: string; to?: string };
  if (decision.action === 'connect' && decision.to !== c.callee) {
    throw new Error(`failover: a call was connected to someone other than the other participant`);
  }
  return {
    sentAt,
    answeredAt: Date.now(),
    status: response.status,
    connectedTo: decision.action === 'connect' ? decision.to : undefined,
  };
}

/**
 * Requests at a steady rate, each sent without waiting for the last (a carrier does not wait), each
 * outcome kept; `stop` ends the stream and waits for the requests in flight. A request that throws
 * (a bench bug, a dropped connection) fails the section when stopped.
 */
function stream(perSecond: number, send: (i: number) => Promise<Outcome>) {
  const outcomes: Outcome[] = [];
  const inFlight = new Set<Promise<void>>();
  const errors: unknown[] = [];
  const started = Date.now();
  let sent = 0;
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - started) * perSecond) / 1000);
    for (; sent < due; sent++) {
      const slot: Outcome = { sentAt: Date.now(), answeredAt: Number.NaN, status: 0 };
      outcomes.push(slot);
      const request: Promise<void> = send(sent)
        .then((o) => {
          Object.assign(slot, o);
        })
        .catch((error) => {
          errors.push(error);
        })
        .finally(() => inFlight.delete(request));
      inFlight.add(request);
    }
  }, 5);
  return {
    outcomes,
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      if (errors.length > 0) throw errors[0];
    },
  };
}

/**
 * Polls GET /v1/providers and the `session.rebound` events every POLL_MS until `sessions` were
 * re-bound: when the carrier was first seen down, the events, and when the last one was seen.
 */
async function watchFailover(api: Api, sessions: number) {
  const rebound: EventView[] = [];
  let seenDownAt = Number.NaN;
  let after: string | undefined;
  let movedAt = Date.now();
  while (rebound.length < sessions) {
    if (Date.now() - movedAt > STALL_MS) {
      throw new Error(
        `failover: ${rebound.length} of ${sessions} sessions re-bound, none for ${STALL_MS / 1000} s` +
          (Number.isNaN(seenDownAt) ? `; ${FAILING} never shown down` : ''),
      );
    }
    const before = rebound.length;
    if (Number.isNaN(seenDownAt)) {
      const { data } = await api.ok<{ data: { name: string; health: string }[] }>('GET', '/v1/providers');
      if (data.find((p) => p.name === FAILING)?.health === 'down') seenDownAt = Date.now();
    }
    for (let more = true; more; ) {
      const page = await api.eventsAfter('session.rebound', after);
      rebound.push(...page.data);
      after = page.data.at(-1)?.id ?? after;
      more = page.data.length === 500;
    }
    if (rebound.length > before) movedAt = Date.now();
    if (rebound.length < sessions) await sleep(POLL_MS);
  }
  return { rebound, seenDownAt, doneAt: Date.now() };
}

/** Every session moved once, each to spare numbers only. */
function checkRebound(rebound: EventView[], sessions: Session[], spare: Set<string>): void {
  const moved = new Set(rebound.map((e) => String(e.data.id)));
  const missing = sessions.filter((s) => !moved.has(s.id));
  if (rebound.length !== sessions.length || missing.length > 0) {
    throw new Error(
      `failover: ${rebound.length} session.rebound for ${sessions.length} sessions; ${missing.length} never moved`,
    );
  }
  const before = new Map(sessions.map((s) => [s.id, s]));
  for (const event of rebound) {
    const participants = (event.data.participants ?? []) as Participant[];
    if (participants.length !== 2 || participants.some((p) => !spare.has(p.proxyNumber))) {
      throw new Error(`failover: session ${String(event.data.id)} was not re-bound to ${SPARE} numbers`);
    }
    // What the app needs to tell each participant: which carrier it left, and each one's old proxy.
    const moved = event.data.rebound as
      | { from?: string; to?: string; previous?: { participantId: string; proxyNumber: string }[] }
      | undefined;
    const previous = before.get(String(event.data.id))?.participants.map((p) => [p.id, p.proxyNumber]);
    if (
      moved?.from !== FAILING ||
      moved.to !== SPARE ||
      JSON.stringify(moved.previous?.map((p) => [p.participantId, p.proxyNumber])) !==
        JSON.stringify(previous)
    ) {
      throw new Error(
        `failover: session.rebound of ${String(event.data.id)} does not say what moved: rebound ${JSON.stringify(moved)}`,
      );
    }
  }
}

/** Sessions drawn at random: a call to the new proxy connects to the other, one to the old is refused. */
async function checkSample(api: Api, sessions: Session[], spare: Set<string>): Promise<void> {
  const random = seededRandom(SAMPLED);
  for (let i = 0; i < Math.min(SAMPLED, sessions.length); i++) {
    const before = sessions[randomIndex(random, sessions.length)] as Session;
    const after = await api.ok<Session>('GET', `/v1/sessions/${before.id}`);
    const [a, b] = after.participants as [Participant, Participant];
    const oldA = before.participants.find((p) => p.id === a.id);
    if (!oldA) throw new Error(`failover: session ${before.id} lost participant ${a.id}`);
    const there = await api.route(a.number, a.proxyNumber);
    if (!spare.has(a.proxyNumber) || there.action !== 'connect' || there.to !== b.number) {
      throw new Error(
        `failover: a call to session ${before.id}'s new proxy was not connected: ${there.action}`,
      );
    }
    if (there.callerId !== b.proxyNumber) {
      throw new Error(`failover: session ${before.id}'s call showed a caller ID other than the new proxy`);
    }
    const old = await api.route(a.number, oldA.proxyNumber);
    if (old.action !== 'reject') {
      throw new Error(`failover: a call to session ${before.id}'s old proxy was not refused: ${old.action}`);
    }
  }
}

function p99(outcomes: Outcome[]): number {
  return percentile(
    outcomes.map((o) => o.answeredAt - o.sentAt).sort((a, b) => a - b),
    0.99,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const ms = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');

/** The section's markdown. */
export function failoverSection(rows: FailoverRow[], settings: FailoverSettings): string {
  const lines = [
    '## Carrier faults: time to failover',
    '',
    `A fake Telnyx Messaging API (\`test/support/telnyx.ts\`) behind a Veil server whose ${settings.sessions.toLocaleString('en-US')} open sessions all hold Telnyx numbers, with as many spare Twilio numbers; a steady ${settings.textsPerSecond} texts/s (signed Telnyx \`message.received\` webhooks, each relayed through the Messaging API) and ${settings.callsPerSecond} calls/s (\`POST /v1/route\`, each participant dialling the proxy they were given) from the sessions' participants. After ${HEALTHY_MS / 1000} s (and ${HEALTHY_TEXTS} texts) of the carrier answering, it fails: **timeout** (takes the request, never answers; Veil gives up after 3 s), **reset** (drops the connection) or **5xx** (503). Settings: VEIL_PROVIDER_FAILURES=${settings.failures}, VEIL_FAILOVER_MS=${settings.failoverMs}, VEIL_PROVIDER_HALF_OPEN_MS=${settings.halfOpenMs}. Times are from t0, the first text the carrier failed: to \`provider.down\` (and GET /v1/providers polled every ${POLL_MS} ms showing it down), to the first and the last \`session.rebound\`. Dead calls: calls sent after t0 and before the last session moved that were connected through a Telnyx number. Texts 5xx: texts answered 502 after t0, which Telnyx delivers again. Afterwards every session must have been re-bound once to Twilio numbers, the calls to old proxies of the last ${AFTER_MS / 1000} s all refused, ${SAMPLED} sessions' new proxies connect and old ones refuse, and the invariant hold (SQL).`,
    '',
    '| store | fault | sessions | re-bound | down ms | seen down ms | first re-bound ms | all re-bound ms | sends failed | texts 5xx | calls meanwhile | dead calls | old-proxy calls after (refused) | call p99 ms before / meanwhile | load avg |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.store} | ${r.mode} | ${r.sessions.toLocaleString('en-US')} | ${r.rebound.toLocaleString('en-US')} | ${ms(r.downMs)} | ${ms(r.seenDownMs)} | ${ms(r.firstReboundMs)} | ${ms(r.allReboundMs)} | ${r.failedSends} | ${r.textsRefused} | ${r.callsMeanwhile} | ${r.deadCalls} | ${r.callsAfter} | ${ms(r.callP99Ms.before)} / ${ms(r.callP99Ms.meanwhile)} | ${r.load.toFixed(1)} |`,
    );
  }
  return lines.join('\n');
}
