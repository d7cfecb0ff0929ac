/**
 * The crash and fault scenarios of issue 18, each a function that runs Veil as an operator does
 * (`node --import tsx src/main.ts` in its own process, bench/launch.ts), does its harm, waits for
 * the outbox to drain, checks everything from outside (the API, the database, a webhook receiver)
 * and returns the figures. test/crash/*.test.ts run them with CI's sizes and assert on the
 * figures; `npm run bench` (bench/sections/faults.ts) runs them longer and prints them.
 *
 * The servers run in development: the receiver listens on plain http on 127.0.0.1, which
 * production refuses as a webhook URL (events carry real numbers). Nothing else here depends on
 * NODE_ENV. The pool is the benchmark's (bench/seed.ts: 2,000 numbers in 20 area codes) and the
 * creates are its workload (bench/workload.ts: an order id as externalId, a courier who may hold
 * many sessions at once and a customer).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { type BenchDatabase, checkInvariant, withStore } from '../../bench/databases.ts';
import { API_KEY, startVeil, veilEnv } from '../../bench/launch.ts';
import { type ServerProcess, type SpawnedServer, spawnServer } from '../../bench/processes.ts';
import { seed } from '../../bench/seed.ts';
import { sessionBodies } from '../../bench/workload.ts';
import type { EventType } from '../../src/domain/events.ts';
import { vaultOf } from '../../src/store/vault.ts';
import { databaseUrl, type TestStore } from '../support/stores.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

/** How long a client waits for one answer: a request to a killed server fails long before. */
const REQUEST_TIMEOUT_MS = 15_000;
const POLL_MS = 200;
/** Every session of the workload has two participants, a courier and a customer. */
const PARTICIPANTS_PER_SESSION = 2;

/**
 * The outbox's settings: it looks for work every second and retries within seconds, so that a
 * fault's end shows at once. The attempt's timeout is kept above a loaded CI machine's worst answer
 * from a local receiver; a delivery an instance was attempting when it died waits for its lease
 * (this timeout and 30 s) before another attempt.
 */
export function outboxEnv(retryMaxSeconds = 2, timeoutSeconds = 2): Record<string, string> {
  return {
    VEIL_WEBHOOK_INTERVAL_SECONDS: '1',
    VEIL_WEBHOOK_TIMEOUT_SECONDS: String(timeoutSeconds),
    VEIL_WEBHOOK_RETRY_BASE_SECONDS: '1',
    VEIL_WEBHOOK_RETRY_MAX_SECONDS: String(retryMaxSeconds),
    VEIL_WEBHOOK_MAX_ATTEMPTS: '100',
  };
}

/** A test's store as the benchmark's launcher and checks take a database: its DATABASE_URL says all. */
export function faultDatabase(store: TestStore): BenchDatabase {
  const url = databaseUrl(store);
  return {
    label: store.name === 'sqlite' ? 'SQLite' : 'PostgreSQL',
    store: store.config.dialect === 'sqlite' ? store.config : { dialect: 'postgres', url },
    url,
    drop: () => store.drop(),
  };
}

/** A Veil process over `database` (see the module's note on NODE_ENV). */
function startFaultVeil(name: string, database: BenchDatabase, env: Record<string, string>) {
  return startVeil(`${name} on ${database.label}`, database, undefined, { NODE_ENV: 'development', ...env });
}

/** What bench/servers/spare.ts prints once it has loaded Veil's code. */
const SPARE_LOADED = 'spare: code loaded';

/**
 * The next Veil process of a run of restarts, its code loading while the last one runs
 * (bench/servers/spare.ts): spawned now, started by `release` when its turn comes.
 */
function spareVeil(database: BenchDatabase, env: Record<string, string>): Promise<SpawnedServer> {
  return spawnServer({
    name: `Veil on ${database.label}`,
    script: 'bench/servers/spare.ts',
    env: veilEnv(database, { NODE_ENV: 'development', ...env }),
  });
}

/** Starts the spare as `npm start` starts Veil, and waits until it answers. */
async function release(spare: SpawnedServer): Promise<ServerProcess> {
  await waitFor(`${spare.name} loaded`, async () => spare.output().includes(SPARE_LOADED), 60_000, 10);
  process.kill(spare.pid, 'SIGUSR2');
  return spare.healthy();
}

interface ParticipantView {
  id: string;
  number: string;
  proxyNumber: string;
  label: string | null;
}

interface SessionView {
  id: string;
  status: string;
  participants: ParticipantView[];
}

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON of the API, read by the checks
  body: any;
}

/** One API request with the bootstrap key; throws when no answer comes (refused, reset, timeout). */
async function api(url: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${API_KEY}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** Why a request got no answer, in a word (ECONNRESET, ECONNREFUSED, TimeoutError, ...). */
function failure(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  return cause?.code ?? (error as Error).name ?? String(error);
}

/** Registers the receiver as a webhook endpoint for `events`; it verifies with the secret. */
async function registerEndpoint(server: ServerProcess, receiver: WebhookReceiver, events: EventType[]) {
  const r = await api(server.url, 'POST', '/v1/webhook-endpoints', { url: receiver.url, events });
  if (r.status !== 201) throw new Error(`POST /v1/webhook-endpoints: ${r.status} ${JSON.stringify(r.body)}`);
  receiver.secrets.push(r.body.secret);
}

/** A POST /v1/sessions as a client saw it: answered with a status, or not answered at all. */
interface CreateAttempt {
  body: string;
  /** The client that sent it. */
  client: number;
  status?: number;
  session?: SessionView;
  /** Why no answer came. */
  error?: string;
}

/**
 * `connections` clients, each creating sessions one after another on the server `target(i)` names
 * for client i, until `stop()` or until a request of theirs gets no answer (the server is gone).
 */
function createStream(
  target: (client: number) => string,
  nextBody: () => string,
  connections: number,
  attempts: CreateAttempt[],
  limit = Number.POSITIVE_INFINITY,
  /** What the client does with a session once it is created, before its next create. */
  andThen?: (client: number, session: SessionView) => Promise<void>,
) {
  let stopped = false;
  const client = async (i: number) => {
    while (!stopped && attempts.length < limit) {
      const attempt: CreateAttempt = { body: nextBody(), client: i };
      attempts.push(attempt);
      try {
        const r = await api(target(i), 'POST', '/v1/sessions', attempt.body);
        attempt.status = r.status;
        if (r.status === 200 || r.status === 201) attempt.session = r.body;
        if (r.status === 201) await andThen?.(i, r.body);
      } catch (error) {
        attempt.error = failure(error);
        return;
      }
    }
  };
  const clients = Array.from({ length: connections }, (_, i) => client(i));
  return {
    done: Promise.all(clients),
    async stop(): Promise<void> {
      stopped = true;
      await Promise.all(clients);
    },
  };
}

const answered = (attempts: CreateAttempt[]) => attempts.filter((a) => a.status !== undefined).length;

/** Answered with a status other than 201: each is a failure of the run. */
function unexpected(attempts: CreateAttempt[]): string[] {
  return attempts
    .filter((a) => a.status !== undefined && a.status !== 201)
    .map((a) => `${a.status} ${JSON.stringify(a.session ?? '')}`);
}

/** Rows counted with plain SQL. */
async function count(database: BenchDatabase, query: ReturnType<typeof sql<{ n: number | string }>>) {
  return withStore(database, async ({ db }) => Number((await query.execute(db)).rows[0]?.n ?? 0));
}

const pendingDeliveries = (database: BenchDatabase) =>
  count(database, sql`select count(*) as n from deliveries where status = 'pending'`);

/**
 * Waits until `done()` holds, checking every POLL_MS for up to `timeoutMs`; the milliseconds it
 * took, or throws saying `what` did not happen.
 */
async function waitFor(
  what: string,
  done: () => Promise<boolean>,
  timeoutMs: number,
  pollMs = POLL_MS,
): Promise<number> {
  const started = Date.now();
  while (!(await done())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(pollMs);
  }
  return Date.now() - started;
}

/**
 * Milliseconds from `since` until no delivery is pending and `missing()` is empty, checked for up to
 * `timeoutMs`; NaN if that never came (the caller reports what is missing).
 */
async function drained(
  database: BenchDatabase,
  missing: () => unknown[],
  since: number,
  timeoutMs: number,
): Promise<number> {
  try {
    await waitFor(
      'the outbox drained',
      async () => missing().length === 0 && (await pendingDeliveries(database)) === 0,
      timeoutMs,
    );
    return Date.now() - since;
  } catch {
    return Number.NaN;
  }
}

/** The events the receiver has not answered 2xx. */
function undeliveredEvents(events: { id: string; type: string }[], receiver: WebhookReceiver): string[] {
  const delivered = new Set(receiver.delivered());
  return events.filter((e) => !delivered.has(e.id)).map((e) => `${e.id} (${e.type})`);
}

/** The ids of the sessions whose `type` event the receiver answered 2xx. */
function deliveredSessions(receiver: WebhookReceiver, type: EventType): Set<string> {
  return new Set(
    receiver.received
      .filter((r) => r.answered === 'ok' && r.json.type === type)
      .map((r) => String(r.json.data.id)),
  );
}

/** Deliveries answered 2xx more than once for one webhook-id (a receiver drops them by id). */
function duplicates(receiver: WebhookReceiver): number {
  const ok = receiver.delivered();
  return ok.length - new Set(ok).size;
}

/**
 * The receiver's requests, in the order they came, that carried an event while an earlier event of
 * its session (`events`: session.* events, oldest first) had not been delivered yet: the events of
 * a session must reach the app in the order they were made, event ids sorting by creation time.
 */
function overtaken(events: { id: string; payload: string }[], receiver: WebhookReceiver): string[] {
  const sessionOf = new Map(events.map((e) => [e.id, JSON.parse(e.payload).id as string]));
  const ofSession = new Map<string, string[]>();
  for (const e of events) {
    const session = sessionOf.get(e.id) ?? '';
    ofSession.set(session, [...(ofSession.get(session) ?? []), e.id]);
  }
  const found: string[] = [];
  const delivered = new Set<string>();
  for (const r of receiver.received) {
    const session = sessionOf.get(r.id) ?? '';
    const waiting = (ofSession.get(session) ?? []).filter((id) => id < r.id && !delivered.has(id));
    if (waiting.length > 0) found.push(`${r.id} (${r.json.type} of ${session}) before ${waiting.join(', ')}`);
    if (r.answered === 'ok') delivered.add(r.id);
  }
  return found;
}

/** The session.* events of these types in the store, oldest first. */
function sessionEvents(database: BenchDatabase, types: EventType[]) {
  return withStore(database, async ({ db }) =>
    (
      await db
        .selectFrom('events')
        .select(['id', 'type', 'payload'])
        .where('type', 'in', types)
        .orderBy('id')
        .execute()
    ).map((e) => ({ ...e, payload: vaultOf(db).open(e.payload) })),
  );
}

/** What the checks after a run found; every list must be empty and every count 0. */
export interface SessionChecks {
  /** Acknowledged sessions that GET does not show open with the proxies of their 201. */
  lost: string[];
  /** Sessions, found through the API or in the store, missing a participant, a proxy or their event. */
  halfWritten: string[];
  /** DESIGN §1's invariant: (real number, proxy) pairs of more than one open participation. */
  doubleAssigned: number;
  /** Numbers whose load is not the count of open sessions holding them. */
  loadMismatches: number;
  /** Sessions in the store. */
  sessions: number;
}

/** Reads every acknowledged session back, and looks at every session through the API and the store. */
async function checkSessions(
  server: ServerProcess,
  database: BenchDatabase,
  acknowledged: SessionView[],
): Promise<SessionChecks> {
  const lost: string[] = [];
  const queue = [...acknowledged];
  const reader = async () => {
    for (let s = queue.pop(); s; s = queue.pop()) {
      const r = await api(server.url, 'GET', `/v1/sessions/${s.id}`);
      const proxies = (v: SessionView) =>
        JSON.stringify(v.participants.map((p) => [p.id, p.number, p.proxyNumber]).sort());
      if (r.status !== 200 || r.body.status !== 'open' || proxies(r.body) !== proxies(s)) {
        lost.push(`${s.id}: GET ${r.status} ${JSON.stringify(r.body)}; 201 said ${JSON.stringify(s)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, reader));

  const halfWritten: string[] = [];
  let cursor: string | null = null;
  let listed = 0;
  do {
    const page: Answer = await api(
      server.url,
      'GET',
      `/v1/sessions?status=open&limit=500${cursor ? `&cursor=${cursor}` : ''}`,
    );
    if (page.status !== 200) throw new Error(`GET /v1/sessions: ${page.status} ${JSON.stringify(page.body)}`);
    for (const s of page.body.data as SessionView[]) {
      listed++;
      if (s.participants.length !== PARTICIPANTS_PER_SESSION || s.participants.some((p) => !p.proxyNumber))
        halfWritten.push(`${s.id} (API): ${JSON.stringify(s.participants)}`);
    }
    cursor = page.body.nextCursor;
  } while (cursor);

  const store = await withStore(database, async ({ db }) => {
    const sessions = await db.selectFrom('sessions').select(['id', 'status']).execute();
    const participants = await db
      .selectFrom('participants as p')
      .leftJoin('numbers as n', 'n.id', 'p.proxy_number_id')
      .select(['p.session_id', 'p.proxy_number', 'n.number as pool_number'])
      .where('p.removed_at', 'is', null)
      .execute();
    const created = await db
      .selectFrom('events')
      .select('payload')
      .where('type', '=', 'session.created')
      .execute();
    const opened = created.map((e) => JSON.parse(vaultOf(db).open(e.payload)).id as string);
    return { sessions, participants, created: opened };
  });
  const held = new Map<string, number>();
  for (const p of store.participants) {
    if (p.pool_number !== p.proxy_number) halfWritten.push(`${p.session_id}: a proxy not in the pool`);
    held.set(p.session_id, (held.get(p.session_id) ?? 0) + 1);
  }
  const events = new Map<string, number>();
  for (const id of store.created) events.set(id, (events.get(id) ?? 0) + 1);
  for (const s of store.sessions) {
    if (held.get(s.id) !== PARTICIPANTS_PER_SESSION)
      halfWritten.push(`${s.id}: ${held.get(s.id) ?? 0} participants in the store`);
    if (events.get(s.id) !== 1) halfWritten.push(`${s.id}: ${events.get(s.id) ?? 0} session.created events`);
    events.delete(s.id);
  }
  for (const id of events.keys()) halfWritten.push(`${id}: a session.created event and no session`);
  const open = store.sessions.filter((s) => s.status === 'open').length;
  if (listed !== open)
    halfWritten.push(`GET /v1/sessions lists ${listed} open sessions, the store has ${open}`);

  const { doubleAssigned, loadMismatches } = await checkInvariant(database);
  return { lost, halfWritten, doubleAssigned, loadMismatches, sessions: store.sessions.length };
}

export interface KillOptions {
  /** SIGKILLs, each followed by a restart on the same database. */
  kills: number;
  /** Clients creating sessions at once. */
  connections: number;
  /** The kill falls this long after the first create of the round was answered, drawn uniformly (ms). */
  runMs: [number, number];
  drainTimeoutMs: number;
  progress?: (line: string) => void;
}

export interface KillFigures extends SessionChecks {
  store: string;
  kills: number;
  /** Creates sent, and answered 201. */
  attempts: number;
  acknowledged: number;
  /** Creates whose answer never came (the server died with them in flight). */
  unanswered: number;
  /** Of those, retried with the same externalId and body after the last restart: found (200), made (201). */
  retriedFound: number;
  retriedMade: number;
  /** Answers other than 201 (a retry's other than 200/201). */
  unexpected: string[];
  /** Acknowledged sessions whose session.created never reached the receiver. */
  undelivered: string[];
  /** Deliveries the receiver got twice under one webhook-id; requests that did not verify. */
  duplicates: number;
  forged: number;
  /** From the last restart until every delivery is done and the receiver has every acknowledged event. */
  drainMs: number;
  seconds: number;
}

/**
 * A stream of creates on `connections` clients, the server SIGKILLed at a random moment of it
 * `kills` times and restarted on the same database each time; then, on a last restart, the creates
 * left unanswered are retried (the same externalId and body: found or made, never a 409), the
 * outbox drains, and every session is checked (`checkSessions`), every acknowledged one's
 * session.created looked for at the receiver.
 */
export async function killUnderCreates(database: BenchDatabase, options: KillOptions): Promise<KillFigures> {
  const started = Date.now();
  await seed(database, { openSessions: 0 });
  const receiver = new WebhookReceiver();
  await receiver.start();
  const env = outboxEnv();
  let server = await release(await spareVeil(database, env));
  let spare: SpawnedServer | undefined;
  try {
    await registerEndpoint(server, receiver, ['session.created']);
    const attempts: CreateAttempt[] = [];
    const nextBody = sessionBodies(Date.now());
    for (let kill = 1; kill <= options.kills; kill++) {
      // The restart after this kill loads its code meanwhile.
      spare = await spareVeil(database, env);
      const url = server.url;
      const answeredBefore = answered(attempts);
      const stream = createStream(() => url, nextBody, options.connections, attempts);
      // A random moment once creates flow: on a busy machine a server that has just started may
      // answer nothing for a while, and a kill then would hit only its first requests.
      await waitFor('a create answered', async () => answered(attempts) > answeredBefore, 60_000, 10);
      const [low, high] = options.runMs;
      await sleep(low + Math.random() * (high - low));
      process.kill(server.pid, 'SIGKILL');
      await stream.stop();
      await server.stop();
      server = await release(spare);
      spare = undefined;
      if (kill % 10 === 0) options.progress?.(`${kill} kills, ${attempts.length} creates sent`);
    }

    const restartedAt = Date.now();
    const unanswered = attempts.filter((a) => a.error !== undefined);
    const retries: CreateAttempt[] = [];
    for (const a of unanswered) {
      const r = await api(server.url, 'POST', '/v1/sessions', a.body);
      retries.push({ ...a, error: undefined, status: r.status, session: r.body });
    }
    const acknowledged = [...attempts, ...retries]
      .filter((a) => (a.status === 200 || a.status === 201) && a.session)
      .map((a) => a.session as SessionView);
    const expected = new Set(acknowledged.map((s) => s.id));
    const undelivered = () => {
      const delivered = deliveredSessions(receiver, 'session.created');
      return [...expected].filter((id) => !delivered.has(id));
    };
    const drainMs = await drained(database, undelivered, restartedAt, options.drainTimeoutMs);
    const checks = await checkSessions(server, database, acknowledged);
    return {
      store: database.label,
      kills: options.kills,
      attempts: attempts.length,
      acknowledged: acknowledged.length,
      unanswered: unanswered.length,
      retriedFound: retries.filter((r) => r.status === 200).length,
      retriedMade: retries.filter((r) => r.status === 201).length,
      unexpected: [
        ...unexpected(attempts),
        ...retries.filter((r) => r.status !== 200 && r.status !== 201).map((r) => `retry: ${r.status}`),
      ],
      undelivered: undelivered(),
      duplicates: duplicates(receiver),
      forged: receiver.forged.length,
      drainMs,
      ...checks,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await spare?.stop();
    await server.stop();
    await receiver.stop();
  }
}

export interface TwoInstancesOptions {
  /** Creates sent in all, by `connections` clients, half of them to each instance. */
  creates: number;
  connections: number;
  drainTimeoutMs: number;
}

export interface TwoInstancesFigures extends SessionChecks {
  store: string;
  /** Creates acknowledged by each instance. */
  acknowledged: [number, number];
  unexpected: string[];
  /** session.created and session.updated events in the store, and of them the ones the receiver got (2xx). */
  events: number;
  delivered: number;
  /** Acknowledged sessions whose session.created never reached the receiver. */
  undelivered: string[];
  /** webhook-ids that reached the receiver more than once. */
  receivedTwice: string[];
  /** Events that reached the receiver before an earlier event of their session (see `overtaken`). */
  outOfOrder: string[];
  forged: number;
  drainMs: number;
}

/**
 * Two Veil processes on one database, each running its outbox worker, and creates split across
 * both, each session then changed through the other process (a participant's label: a
 * session.updated made by the other instance); then the invariant, every event delivered in its
 * session's order, and every webhook-id received exactly once by a receiver that always answers
 * 200 at once (no attempt fails, so none is repeated).
 */
export async function twoInstances(
  database: BenchDatabase,
  options: TwoInstancesOptions,
): Promise<TwoInstancesFigures> {
  await seed(database, { openSessions: 0 });
  const receiver = new WebhookReceiver();
  await receiver.start();
  // The default attempt timeout: an answer slowed by a busy machine must not make a second attempt.
  const env = outboxEnv(2, 10);
  const servers: ServerProcess[] = [];
  try {
    // One after the other: the first runs the migrations.
    servers.push(await startFaultVeil('Veil A', database, env));
    servers.push(await startFaultVeil('Veil B', database, env));
    const [a, b] = servers as [ServerProcess, ServerProcess];
    await registerEndpoint(a, receiver, ['session.created', 'session.updated']);
    const attempts: CreateAttempt[] = [];
    const wrong: string[] = [];
    const instance = (client: number) => (client % 2 === 0 ? a.url : b.url);
    const update = async (client: number, session: SessionView) => {
      const [first] = session.participants;
      const path = `/v1/sessions/${session.id}/participants/${first?.id}`;
      const r = await api(instance(client + 1), 'PATCH', path, { label: `${first?.label}-changed` });
      if (r.status !== 200) wrong.push(`update: ${r.status} ${JSON.stringify(r.body?.error ?? '')}`);
    };
    const stream = createStream(
      instance,
      sessionBodies(Date.now()),
      options.connections,
      attempts,
      options.creates,
      update,
    );
    await stream.done;
    const answered = attempts.filter((x) => x.status === 201 && x.session);
    const acknowledged = answered.map((x) => x.session as SessionView);
    const events = await sessionEvents(database, ['session.created', 'session.updated']);
    const expected = new Set(acknowledged.map((s) => s.id));
    const undelivered = () => {
      const delivered = deliveredSessions(receiver, 'session.created');
      return [...expected].filter((id) => !delivered.has(id));
    };
    const drainMs = await drained(
      database,
      () => [...undelivered(), ...undeliveredEvents(events, receiver)],
      Date.now(),
      options.drainTimeoutMs,
    );
    const seen = new Map<string, number>();
    for (const r of receiver.received) seen.set(r.id, (seen.get(r.id) ?? 0) + 1);
    const checks = await checkSessions(a, database, acknowledged);
    return {
      store: database.label,
      acknowledged: [0, 1].map((i) => answered.filter((x) => x.client % 2 === i).length) as [number, number],
      unexpected: [
        ...unexpected(attempts),
        ...attempts.filter((x) => x.error).map((x) => `no answer: ${x.error}`),
        ...wrong,
      ],
      events: events.length,
      delivered: new Set(receiver.delivered()).size,
      undelivered: undelivered(),
      receivedTwice: [...seen].filter(([, n]) => n > 1).map(([id, n]) => `${id} ×${n}`),
      outOfOrder: overtaken(events, receiver),
      forged: receiver.forged.length,
      drainMs,
      ...checks,
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await receiver.stop();
  }
}

export interface ReceiverDownOptions {
  /**
   * How long the receiver fails: the first half answering 503, the second refusing connections,
   * each half prolonged until an attempt has met it.
   */
  downMs: number;
  /** Clients each taking sessions through create, update and close, one after another. */
  clients: number;
  /** Each client's pause between two sessions, so that an outage of minutes makes a backlog of thousands, not millions. */
  pauseMs: number;
  /** VEIL_WEBHOOK_RETRY_MAX_SECONDS: the longest wait between two attempts. */
  retryMaxSeconds: number;
  drainTimeoutMs: number;
  progress?: (line: string) => void;
}

export interface ReceiverDownFigures {
  store: string;
  downMs: number;
  sessions: number;
  /** Events of those sessions (created, updated, closed) in the store. */
  events: number;
  /** Attempts answered 503, and attempts that found no one listening. */
  failed503: number;
  refused: number;
  /** Events the receiver never got answered 2xx, and deliveries given up. */
  lost: string[];
  dead: number;
  /**
   * Per session, an event that reached the receiver before an earlier event of the session had
   * been delivered: the events of a session must arrive in the order they were made.
   */
  outOfOrder: string[];
  /** Requests of the clients answered otherwise than as expected. */
  unexpected: string[];
  duplicates: number;
  forged: number;
  /** From the receiver's return until every event was delivered. */
  drainMs: number;
}

/**
 * A receiver that answers 503 for the first half of `downMs`, then is not there at all, while
 * clients create, update (a participant's label) and close sessions; then back. Once the outbox has
 * drained: every event delivered, none dead, and per session the events arrived in the order they
 * were made: the receiver never saw an event while an earlier one of its session was undelivered.
 */
export async function receiverDown(
  database: BenchDatabase,
  options: ReceiverDownOptions,
): Promise<ReceiverDownFigures> {
  await seed(database, { openSessions: 0 });
  const receiver = new WebhookReceiver();
  receiver.failStatus = 503;
  await receiver.start();
  const server = await startFaultVeil('Veil', database, outboxEnv(options.retryMaxSeconds));
  try {
    await registerEndpoint(server, receiver, ['session.created', 'session.updated', 'session.closed']);
    const sessions: string[] = [];
    const wrong: string[] = [];
    const expect = (what: string, r: Answer, status: number) => {
      if (r.status !== status) wrong.push(`${what}: ${r.status} ${JSON.stringify(r.body?.error ?? '')}`);
      return r.status === status;
    };
    const nextBody = sessionBodies(Date.now());
    let down = true;
    const client = async () => {
      while (down) {
        const created = await api(server.url, 'POST', '/v1/sessions', nextBody());
        if (!expect('create', created, 201)) return;
        const session = created.body as SessionView;
        sessions.push(session.id);
        const [first] = session.participants;
        const path = `/v1/sessions/${session.id}`;
        const relabel = { label: `${first?.label}-${randomUUID().slice(0, 8)}` };
        if (
          !expect('update', await api(server.url, 'PATCH', `${path}/participants/${first?.id}`, relabel), 200)
        )
          return;
        if (!expect('close', await api(server.url, 'DELETE', path), 200)) return;
        await sleep(options.pauseMs);
      }
    };

    const attemptsMade = () => count(database, sql`select coalesce(sum(attempts), 0) as n from deliveries`);
    const failed503 = () => receiver.received.filter((r) => r.answered === 'fail').length;
    // Each half lasts its time and until an attempt met it: a busy machine may be slow to try.
    receiver.mode = 'fail';
    const downAt = Date.now();
    const clients = Array.from({ length: options.clients }, client);
    await sleep(options.downMs / 2);
    await waitFor('an attempt answered 503', async () => failed503() > 0, 60_000);
    options.progress?.(
      `receiver answering 503 for ${(Date.now() - downAt) / 1000} s; now refusing connections`,
    );
    await receiver.stop();
    const received = receiver.received.length;
    const refused = () =>
      count(
        database,
        sql`select count(*) as n from deliveries where last_error = 'unreachable: ECONNREFUSED'`,
      );
    await sleep(options.downMs / 2);
    await waitFor('an attempt refused', async () => (await refused()) > 0, 60_000);
    down = false;
    await Promise.all(clients);
    receiver.mode = 'ok';
    await receiver.start(receiver.port);
    const backAt = Date.now();
    if (receiver.received.length !== received) throw new Error('the receiver got a request while stopped');
    options.progress?.(`receiver back after ${(backAt - downAt) / 1000} s, ${sessions.length} sessions made`);

    const events = await sessionEvents(database, ['session.created', 'session.updated', 'session.closed']);
    const drainMs = await drained(
      database,
      () => undeliveredEvents(events, receiver),
      backAt,
      options.drainTimeoutMs,
    );

    const outOfOrder = overtaken(events, receiver);
    const attempts = await attemptsMade();
    const dead = await count(database, sql`select count(*) as n from deliveries where status = 'dead'`);
    return {
      store: database.label,
      downMs: backAt - downAt,
      sessions: sessions.length,
      events: events.length,
      failed503: failed503(),
      refused: attempts - receiver.received.length,
      lost: undeliveredEvents(events, receiver),
      dead,
      outOfOrder,
      unexpected: wrong,
      duplicates: duplicates(receiver),
      forged: receiver.forged.length,
      drainMs,
    };
  } finally {
    await server.stop();
    await receiver.stop();
  }
}
