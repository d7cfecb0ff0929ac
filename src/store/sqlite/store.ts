import { CompiledQuery, type Kysely, sql } from 'kysely';
import { counterWatch } from '../key-revocations.ts';
import { migrate } from '../migrations.ts';
import type { Db } from '../schema.ts';
import type { Store, StoreOptions } from '../store.ts';
import { startSqliteBackground } from './background.ts';
import {
  BUSY_TIMEOUT_MS,
  CachedConnection,
  openConnection,
  openWritable,
  sqliteKysely,
} from './connection.ts';
import { SQLITE } from './dialect.ts';
import { GroupCommit, type WithoutBusyWait } from './group-commit.ts';

/**
 * Opens (and migrates) a SQLite file, or `:memory:`. A file gets two helpers: a read-only
 * connection for the routing path, and a background thread for the interaction log's batches and
 * the checkpoints (background.ts). Writes on the main connection are group-committed.
 */
export async function openSqliteStore(file: string, options: StoreOptions): Promise<Store> {
  const main = new CachedConnection(openWritable(file));
  const db = sqliteKysely(main);
  let reading: CachedConnection | undefined;
  try {
    await migrate(db as Kysely<unknown>);
    await dropValueStatistics(db);
    // A file (not :memory:) can have other connections: one to read on, a thread to checkpoint.
    const helpers = file !== ':memory:' && options.background !== false;
    reading = helpers ? new CachedConnection(openConnection(file, { readonly: true })) : undefined;
    const background = helpers
      ? await startSqliteBackground(file, options.onBackgroundError ?? ((e) => console.error(e)))
      : undefined;
    const reader = reading ? sqliteKysely(reading) : db;
    const readFrom = reading ?? main;
    const group = new GroupCommit(db, withoutBusyWait(main));
    const readRows = async <Row>(query: CompiledQuery<Row>) =>
      readFrom.rows<Row>(query.sql, query.parameters);
    return {
      db,
      reader,
      dialect: SQLITE,
      readRows,
      revocations: counterWatch(db, (query) => readFrom.value(query.sql, query.parameters)),
      transaction: (work) => group.run(work),
      writesWaiting: () => group.waiting,
      writeBatch: background
        ? (statements) => background.api.write(statements)
        : (statements) =>
            db.transaction().execute(async (trx) => {
              for (const s of statements) await trx.executeQuery(CompiledQuery.raw(s.sql, [...s.parameters]));
            }),
      background,
      unready: () => background?.failure,
      async close() {
        await background?.stop();
        // Closed directly: Kysely closes a connection only once it has run a query on it.
        reading?.close();
        await db.destroy();
      },
    };
  } catch (error) {
    reading?.close();
    await db.destroy();
    throw error;
  }
}

/**
 * Removes the per-value statistics an `ANALYZE` (or `PRAGMA optimize`) run on the file by hand
 * leaves in `sqlite_stat4`; the per-index counts of `sqlite_stat1` stay. With them SQLite plans a
 * statement again whenever a value bound to an indexed column changes, which is every routing
 * lookup (bench/HISTORY.md). Veil's statements are written for their indexes and need no
 * statistics. Connections opened after this (the routing reader, the threads) never load them.
 */
async function dropValueStatistics(db: Db): Promise<void> {
  const { rows } = await sql`select 1 from sqlite_master where name = 'sqlite_stat4'`.execute(db);
  if (rows.length > 0) await sql`delete from sqlite_stat4`.execute(db);
}

/**
 * Lets a begin fail at once with SQLITE_BUSY instead of sleeping in the busy handler (group-commit.ts).
 * The timeout is off from the call until the begin has run: a statement that gets the connection
 * in between (a read, or a rare write outside a transaction such as a new API key) would also meet
 * a busy file without waiting.
 */
function withoutBusyWait(connection: CachedConnection): WithoutBusyWait {
  return async (begin) => {
    connection.busyTimeout(0);
    try {
      return await begin();
    } finally {
      connection.busyTimeout(BUSY_TIMEOUT_MS);
    }
  };
}
