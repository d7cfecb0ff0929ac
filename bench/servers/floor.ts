import formbody from '@fastify/formbody';
import SqliteDatabase from 'better-sqlite3';
import Fastify from 'fastify';
import { Kysely, SqliteDialect } from 'kysely';
import { newId } from '../../src/domain/ids.ts';
import { element, response } from '../../src/providers/twilio/twiml.ts';
import { DEFAULT_TENANT } from '../../src/services/keys.ts';
import { participationOf, participationQuery, type Row } from '../../src/store/route-lookup.ts';
import { PARTICIPANT_COLUMNS, SESSION_COLUMNS, type Row as SeedRow, sessionRow } from '../seed.ts';

/**
 * The floor: the bare endpoints plus the least the service's work needs of the database, on the
 * same SQLite file as a Veil server, with nothing else (no API key, schema, number parsing, Twilio
 * signature, interaction log, invariant or events). Whatever a real route or create does beyond it
 * costs more, so the floor's rate bounds what any implementation could reach on this machine.
 *
 * - A route: Veil's own lookup query, prepared once, rows as arrays, the calls of one turn of the
 *   event loop looked up back to back as Veil's RouteLookup does (which finds the CPU's caches
 *   warm: a lookup per request, between parsing it and answering it, costs half as much again).
 * - A create (POST /v1/sessions): the rows a session leaves, its own and its two participants',
 *   and the two numbers' load, the creates of one turn in one transaction as Veil's group commit
 *   does. Each person's proxies are taken in turn from the pool, so no search, and the invariant's
 *   unique index never refuses one within a run on a database holding only the pool.
 *
 * DATABASE_FILE names the file, seeded and migrated by the harness; the connection has the pragmas
 * and page cache of Veil's.
 */

const TWIML_REJECT = response(element('Reject'));

interface RouteShape {
  from?: string;
  to?: string;
}

interface TwilioShape {
  From?: string;
  To?: string;
}

interface CreateShape {
  externalId?: string;
  participants: { number: string; label?: string }[];
}

/** Sessions written as the floor writes them: see the comment at the top. */
function creates(sqlite: SqliteDatabase.Database) {
  const pool = sqlite.prepare('select id, number from numbers order by id').all() as {
    id: string;
    number: string;
  }[];
  const insert = (table: string, columns: readonly string[]) =>
    sqlite.prepare(
      `insert into ${table} (${columns.join(', ')}) values (${columns.map(() => '?').join(', ')})`,
    );
  const insertSession = insert('sessions', SESSION_COLUMNS);
  const insertParticipant = insert('participants', PARTICIPANT_COLUMNS);
  const take = sqlite.prepare('update numbers set load = load + 1 where id = ?');
  /** How many proxies each person has been given: the next is the pool's following number. */
  const given = new Map<string, number>();
  const proxyOf = (person: string) => {
    const n = given.get(person) ?? 0;
    given.set(person, n + 1);
    return pool[(hash(person) + n) % pool.length] as { id: string; number: string };
  };
  const writeAll = sqlite.transaction((sessions: SeedRow[], participants: SeedRow[], taken: string[]) => {
    for (const row of sessions) insertSession.run(row);
    for (const row of participants) insertParticipant.run(row);
    for (const id of taken) take.run(id);
  });

  type Created = { id: string; participants: { number: string; proxyNumber: string }[] };
  let waiting: { body: CreateShape; resolve: (created: Created) => void; reject: (e: unknown) => void }[] =
    [];
  const writeTurn = () => {
    const turn = waiting;
    waiting = [];
    const now = Date.now();
    const sessions: SeedRow[] = [];
    const participants: SeedRow[] = [];
    const taken: string[] = [];
    const answers = turn.map(({ body }) => {
      const id = newId('ses', now);
      sessions.push(sessionRow(id, now, now + 3_600_000, body.externalId ?? null));
      return {
        id,
        participants: body.participants.map((p) => {
          const proxy = proxyOf(p.number);
          participants.push([
            newId('par', now),
            DEFAULT_TENANT,
            id,
            p.number,
            p.label ?? null,
            proxy.id,
            proxy.number,
            0,
            1,
            1,
            now,
            null,
          ]);
          taken.push(proxy.id);
          return { number: p.number, proxyNumber: proxy.number };
        }),
      };
    });
    try {
      writeAll(sessions, participants, taken);
      for (const [i, w] of turn.entries()) w.resolve(answers[i] as Created);
    } catch (error) {
      for (const w of turn) w.reject(error);
    }
  };
  return (body: CreateShape) =>
    new Promise<Created>((resolve, reject) => {
      waiting.push({ body, resolve, reject });
      if (waiting.length === 1) setImmediate(writeTurn);
    });
}

function hash(text: string): number {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) >>> 0;
  return h;
}

async function main(): Promise<void> {
  const file = process.env.DATABASE_FILE;
  if (!file) throw new Error('DATABASE_FILE is required');
  const sqlite = new SqliteDatabase(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('cache_size = -32768');
  // Never checkpoints: a checkpoint's fsync would stall its one thread (Veil checkpoints on a thread
  // of its own), and the floor is to cost nothing it can avoid. A run's WAL grows to a few hundred MB.
  sqlite.pragma('wal_autocheckpoint = 0');
  const kysely = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) });
  const lookup = sqlite.prepare(participationQuery('', '').compile(kysely).sql).raw(true);
  const one = (from: string | undefined, to: string | undefined) => {
    const row = from && to ? (lookup.get(from, to) as Row | undefined) : undefined;
    return row && participationOf(row).other;
  };
  // As Veil's RouteLookup does: the calls of one turn of the event loop are looked up back to back
  // once its I/O is handled, which finds the CPU's caches warm (a lookup per request between
  // parsing it and answering it costs about half as much again).
  type Other = ReturnType<typeof one>;
  let waiting: { from?: string; to?: string; resolve: (other: Other) => void }[] = [];
  const answer = () => {
    const turn = waiting;
    waiting = [];
    for (const w of turn) w.resolve(one(w.from, w.to));
  };
  const find = (from: string | undefined, to: string | undefined) =>
    new Promise<Other>((resolve) => {
      waiting.push({ from, to, resolve });
      if (waiting.length === 1) setImmediate(answer);
    });

  const create = creates(sqlite);

  const app = Fastify({ logger: false });
  await app.register(formbody);
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.post('/v1/route', async (request) => {
    const { from, to } = request.body as RouteShape;
    const other = await find(from, to);
    return other
      ? { action: 'connect', to: other.number, callerId: other.proxyNumber, record: false }
      : { action: 'reject', reason: 'no_session' };
  });
  app.post('/webhooks/twilio/voice', async (request, reply) => {
    const { From, To } = request.body as TwilioShape;
    const other = await find(From, To);
    const twiml = other
      ? response(element('Dial', { callerId: other.proxyNumber }, element('Number', {}, other.number)))
      : TWIML_REJECT;
    return reply.type('text/xml').send(twiml);
  });
  app.post('/v1/sessions', async (request, reply) =>
    reply.status(201).send(await create(request.body as CreateShape)),
  );
  await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' });
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
