/**
 * How many answered routes a kill -9 loses from the interaction log (README "Crashes").
 *
 * Routing answers before its interaction row is written: rows wait in memory for the next batch
 * (InteractionLog's window), so a process killed outright loses the rows of its last moments. This
 * starts Veil as an operator does over a seeded database, drives `POST /v1/route` with the
 * benchmark's client, kills the server with SIGKILL in the middle of the load, and compares the
 * 200s the client received with the rows that reached the database. Repeated KILL_LOSS_ROUNDS
 * times (default 10), on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
 *
 *   node --import tsx bench/kill-loss.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type BenchDatabase,
  dropAllDatabases,
  postgresDatabase,
  sqliteDatabase,
  withStore,
} from './databases.ts';
import { startVeil } from './launch.ts';
import { runLoad } from './load.ts';
import { requestsFor } from './sections/route.ts';
import { seed } from './seed.ts';

const ROUNDS = Number(process.env.KILL_LOSS_ROUNDS) || 10;
const OPEN_SESSIONS = 10_000;
const CONNECTIONS = 16;
/** The load runs this long; the kill falls somewhere in its middle second. */
const LOAD_SECONDS = 4;

async function interactionRows(database: BenchDatabase): Promise<number> {
  return withStore(database, async (store) =>
    Number(
      (
        await store.db
          .selectFrom('interactions')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
  );
}

async function measure(database: BenchDatabase): Promise<void> {
  const data = await seed(database, { openSessions: OPEN_SESSIONS, sampleSize: 2_000 });
  const requests = requestsFor('json', data);
  let answered = 0;
  let lost = 0;
  let worst = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const before = await interactionRows(database);
    const server = await startVeil(`Veil ${database.label}`, database);
    // Its CPU cannot be read once it is gone; the client's figures are all this needs.
    const load = runLoad({
      server: { ...server, cpuMs: () => 0 },
      requests,
      connections: CONNECTIONS,
      seconds: LOAD_SECONDS,
    });
    await sleep(1_500 + Math.random() * 1_000);
    process.kill(server.pid, 'SIGKILL');
    const { ok } = await load;
    await server.stop();
    const written = (await interactionRows(database)) - before;
    // A decision can be written and its answer never reach the client (the socket died with the
    // process): at most one per connection, so `lost` is a lower bound within CONNECTIONS.
    const missing = Math.max(0, ok - written);
    answered += ok;
    lost += missing;
    worst = Math.max(worst, missing);
    console.log(`${database.label} round ${round}: ${ok} answered, ${written} logged, ${missing} missing`);
  }
  console.log(
    `${database.label}: ${lost} of ${answered} answered routes missing from the log over ${ROUNDS} kills ` +
      `(${((100 * lost) / answered).toFixed(2)}%, ${(lost / ROUNDS).toFixed(1)} per kill, at most ${worst})`,
  );
}

const workdir = mkdtempSync(join(tmpdir(), 'veil-kill-loss-'));
try {
  await measure(sqliteDatabase(workdir, 'kill-loss'));
  if (process.env.TEST_DATABASE_URL) await measure(await postgresDatabase(process.env.TEST_DATABASE_URL));
} finally {
  await dropAllDatabases();
  rmSync(workdir, { recursive: true, force: true });
}
