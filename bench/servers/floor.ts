import formbody from '@fastify/formbody';
import SqliteDatabase from 'better-sqlite3';
import Fastify from 'fastify';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { newId } from '../../src/domain/ids.ts';
import { element, response } from '../../src/providers/twilio/twiml.ts';
import { valuesOf } from '../../src/store/prepared.ts';
import { type ParticipationRow, participationQuery } from '../../src/store/route-lookup.ts';
import type { Schema } from '../../src/store/schema.ts';
import { PARTICIPANT_COLUMNS, SESSION_COLUMNS } from '../../src/store/sessions.ts';
import { CachedConnection } from '../../src/store/sqlite/connection.ts';
import { benchVault } from '../keys.ts';
import { insertText, type ParticipantRow, participantRow, type SessionRow, sessionRow } from '../seed.ts';

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

/**
 * The calls of one turn of the event loop, handled together once its I/O is read (`setImmediate`),
 * as Veil's RouteLookup and group commit handle theirs: `handle` answers a turn's inputs in order.
 */
function perTurn<In, Out>(handle: (inputs: In[]) => Out[]): (input: In) => Promise<Out> {
  let waiting: { input: In; resolve: (output: Out) => void; reject: (error: unknown) => void }[] = [];
  const run = () => {
    const turn = waiting;
    waiting = [];
    try {
      const outputs = handle(turn.map((w) => w.input));
      for (const [i, w] of turn.entries()) w.resolve(outputs[i] as Out);
    } catch (error) {
      for (const w of turn) w.reject(error);
    }
  };
  return (input) =>
    new Promise((resolve, reject) => {
      waiting.push({ input, resolve, reject });
      if (waiting.length === 1) setImmediate(run);
    });
}

/** The other participant of each call's session, by Veil's own lookup query, or undefined. */
function lookups(sqlite: SqliteDatabase.Database) {
  const kysely = new Kysely<Schema>({ dialect: new SqliteDialect({ database: sqlite }) });
  // The lookup read as Veil reads it: raw rows, named by the statement's columns.
  const connection = new CachedConnection(sqlite);
  const text = participationQuery(kysely, sql.val(''), sql.val('')).compile().sql;
  // The seeder's numbers are looked up by their blind index, as Veil looks them up (and remembers);
  // the other's number is answered as stored, sealed: opening it is Veil's work, not the database's.
  const vault = benchVault();
  return perTurn((calls: { from?: string; to?: string }[]) =>
    calls.map(({ from, to }) => {
      const [row] = from && to ? connection.rows<ParticipationRow>(text, [vault.index(from), to]) : [];
      return row?.otherId && row.otherProxy
        ? { number: row.otherNumberSealed ?? '', proxyNumber: row.otherProxy }
        : undefined;
    }),
  );
}

interface Proxy {
  id: string;
  number: string;
}

/** Sessions written as the floor writes them (see the comment at the top); answers their proxies. */
function creates(sqlite: SqliteDatabase.Database) {
  const pool = sqlite.prepare('select id, number from numbers order by id').all() as Proxy[];
  const insert = (table: string, columns: readonly string[]) =>
    sqlite.prepare(insertText(table, columns, 1, () => '?'));
  const insertSession = insert('sessions', SESSION_COLUMNS);
  const insertParticipant = insert('participants', PARTICIPANT_COLUMNS);
  const take = sqlite.prepare('update numbers set load = load + 1 where id = ?');
  /** How many proxies each person has been given: the next is the pool's following number. */
  const given = new Map<string, number>();
  const proxyOf = (person: string) => {
    const n = given.get(person) ?? 0;
    given.set(person, n + 1);
    return pool[(hash(person) + n) % pool.length] as Proxy;
  };
  const writeAll = sqlite.transaction(
    (sessions: SessionRow[], participants: ParticipantRow[], taken: Proxy[]) => {
      for (const row of sessions) insertSession.run(valuesOf(SESSION_COLUMNS, row));
      for (const row of participants) insertParticipant.run(valuesOf(PARTICIPANT_COLUMNS, row));
      for (const proxy of taken) take.run(proxy.id);
    },
  );
  return perTurn((bodies: CreateShape[]) => {
    const now = Date.now();
    const sessions: SessionRow[] = [];
    const participants: ParticipantRow[] = [];
    const taken: Proxy[] = [];
    const answers = bodies.map((body) => {
      const id = newId('ses', now);
      sessions.push(sessionRow(id, now, now + 3_600_000, body.externalId ?? null));
      const proxies = body.participants.map(({ number, label }) => {
        const proxy = proxyOf(number);
        taken.push(proxy);
        participants.push(
          participantRow({
            id: newId('par', now),
            sessionId: id,
            number,
            vault: 'none',
            label: label ?? null,
            proxy,
            createdAt: now,
          }),
        );
        return { number, proxyNumber: proxy.number };
      });
      return { id, participants: proxies };
    });
    writeAll(sessions, participants, taken);
    return answers;
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
  const find = lookups(sqlite);
  const create = creates(sqlite);

  const app = Fastify({ logger: false });
  await app.register(formbody);
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.post('/v1/route', async (request) => {
    const { from, to } = request.body as RouteShape;
    const other = await find({ from, to });
    return other
      ? { action: 'connect', to: other.number, callerId: other.proxyNumber, record: false }
      : { action: 'reject', reason: 'no_session' };
  });
  app.post('/webhooks/twilio/voice', async (request, reply) => {
    const { From, To } = request.body as TwilioShape;
    const other = await find({ from: From, to: To });
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
