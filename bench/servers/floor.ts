import formbody from '@fastify/formbody';
import SqliteDatabase from 'better-sqlite3';
import Fastify from 'fastify';
import { Kysely, SqliteDialect } from 'kysely';
import { element, response } from '../../src/providers/twilio/twiml.ts';
import { participationOf, participationQuery, type Row } from '../../src/store/route-lookup.ts';

/**
 * The floor: the bare endpoints plus the one read no route can skip, Veil's own lookup query on the
 * same SQLite file, run bare (better-sqlite3, prepared once, rows as arrays, the calls of a turn
 * together as Veil runs them). No API key, schema, number parsing, Twilio signature, interaction
 * log or events: what Fastify and SQLite alone reach on this machine. Whatever a route does beyond
 * the lookup costs more, so the floor's ratio to bare Fastify bounds what any route that reads the
 * database could reach.
 *
 * DATABASE_FILE names the file, seeded and migrated by the harness; the connection is read-only,
 * with the page cache Veil's routing reader has.
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

async function main(): Promise<void> {
  const file = process.env.DATABASE_FILE;
  if (!file) throw new Error('DATABASE_FILE is required');
  const sqlite = new SqliteDatabase(file, { readonly: true });
  sqlite.pragma('cache_size = -32768');
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
  await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' });
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
