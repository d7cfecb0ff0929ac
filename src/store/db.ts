import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  Migrator,
  PostgresAdapter,
  PostgresDialect,
  SqliteDialect,
  sql,
} from 'kysely';
import pg from 'pg';
import type { StoreConfig } from '../config.ts';
import { UniqueViolationError } from '../domain/errors.ts';
import type { Thread } from '../thread.ts';
import { GroupCommit, type WithoutBusyWait } from './group-commit.ts';
import { migrationProvider } from './migrations.ts';
import { preparedName } from './prepared.ts';
import type { Schema } from './schema.ts';
import { type SqliteBackground, type Statement, startSqliteBackground } from './sqlite-background.ts';

export type Db = Kysely<Schema>;

/** An open database: the Kysely handle plus the few things that differ between dialects. */
export interface Store {
  readonly db: Db;
  /**
   * For the reads on the routing path. SQLite gives them a connection of their own: a WAL reader
   * sees every committed write and never waits behind the writer's open transaction (a session
   * being created, a batch of interactions). On PostgreSQL it is the same pool as `db`.
   */
  readonly reader: Db;
  /**
   * Runs one read of the routing path on the reader and returns its rows as tuples: each row's
   * values in the order the query selects them, so its columns need names unique within the row.
   * On SQLite the prepared statement runs directly, synchronously (the reader connection never
   * holds a transaction, so nothing can interleave), in better-sqlite3's raw mode, which skips
   * building an object per row (7 µs of a 30 µs routing lookup). Elsewhere it goes through Kysely.
   */
  readTuples<Row extends readonly unknown[]>(query: CompiledQuery<unknown>): Promise<Row[]>;
  readonly dialect: StoreConfig['dialect'];
  /**
   * Runs `work` in a write transaction. SQLite, which writes one transaction at a time, groups the
   * work waiting for the writer into one transaction, each piece in a savepoint (group-commit.ts).
   */
  transaction<T>(work: (trx: Db) => Promise<T>): Promise<T>;
  /**
   * Runs compiled statements in one transaction, for writes no request waits on (the interaction
   * log). A SQLite file runs them on its background thread; otherwise they go through `db`.
   */
  writeBatch(statements: readonly Statement[]): Promise<void>;
  /** SQLite's background thread (sqlite-background.ts), on a file. */
  readonly background?: Thread<SqliteBackground>;
  /** Why the store cannot serve now (SQLite's background thread is down), or undefined. */
  unready(): string | undefined;
  close(): Promise<void>;
}

const STATEMENT_CACHE_SIZE = 500;
/** How long a SQLite statement waits for a lock another connection holds. */
const BUSY_TIMEOUT_MS = 5_000;
const DEFAULT_POOL_SIZE = 10;

export interface StoreOptions {
  /** A PostgreSQL schema to use instead of the default search_path (tests). */
  schema?: string;
  /** Most PostgreSQL connections this process opens. */
  poolSize?: number;
  /** Where a background worker's errors go (the SQLite worker). */
  onBackgroundError?: (error: Error) => void;
  /**
   * False for a second handle on a SQLite file another store of this process already keeps (the
   * session writer thread's): no reading connection and no background thread of its own, since
   * the first store reads and checkpoints for both.
   */
  background?: boolean;
}

/** Opens (and migrates) the database named by the config. */
export async function openStore(config: StoreConfig, options: StoreOptions = {}): Promise<Store> {
  const sqliteConnection = config.dialect === 'sqlite' ? openSqlite(config.file) : undefined;
  const db =
    config.dialect === 'postgres'
      ? openPostgres(config.url, options)
      : sqliteKysely(sqliteConnection as Connection);
  // Kysely looks for its migration tables in every schema it can see; naming ours keeps another
  // schema's copy (another install, another test) from being mistaken for it.
  const migrationTableSchema =
    config.dialect === 'postgres'
      ? (options.schema ?? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s)
      : undefined;
  const migrator = new Migrator({
    db: db as Kysely<unknown>,
    provider: migrationProvider,
    migrationTableSchema,
  });
  const { error } = await migrator.migrateToLatest();
  if (error) {
    await db.destroy();
    throw error;
  }
  if (config.dialect === 'sqlite') await dropValueStatistics(db);
  // A file (not :memory:) can have other connections: one to read on, a thread to checkpoint.
  const helpers = config.dialect === 'sqlite' && config.file !== ':memory:' && options.background !== false;
  const readConnection = helpers
    ? cachingStatements(configured(new SqliteDatabase(config.file, { readonly: true })))
    : undefined;
  const reader = readConnection ? sqliteKysely(readConnection) : db;
  const group = sqliteConnection ? new GroupCommit(db, withoutBusyWait(sqliteConnection)) : undefined;
  const worker = helpers
    ? await startSqliteBackground(config.file, options.onBackgroundError ?? ((e) => console.error(e)))
    : undefined;
  return {
    db,
    reader,
    readTuples: readConnection
      ? async <Row extends readonly unknown[]>(query: CompiledQuery<unknown>) =>
          readConnection.prepareRaw(query.sql).all(query.parameters as unknown[]) as Row[]
      : async <Row extends readonly unknown[]>(query: CompiledQuery<unknown>) =>
          (await reader.executeQuery(query)).rows.map(
            (row) => Object.values(row as object) as unknown as Row,
          ),
    dialect: config.dialect,
    transaction: group ? (work) => group.run(work) : (work) => db.transaction().execute(work),
    writeBatch: worker
      ? (statements) => worker.api.write(statements)
      : (statements) =>
          db.transaction().execute(async (trx) => {
            for (const s of statements) await trx.executeQuery(CompiledQuery.raw(s.sql, [...s.parameters]));
          }),
    background: worker,
    unready: () => worker?.failure,
    async close() {
      await worker?.stop();
      if (reader !== db) await reader.destroy();
      // Kysely closes only a connection it has used: a store closed before its first read (a
      // start that fails) would keep the file open.
      readConnection?.close();
      await db.destroy();
    },
  };
}

/**
 * Removes the per-value statistics an `ANALYZE` (or `PRAGMA optimize`) run on the file by hand
 * leaves in `sqlite_stat4`; the per-index counts of `sqlite_stat1` stay. With them SQLite plans a
 * statement again whenever a value bound to an indexed column changes, which is every routing
 * lookup: 45 µs instead of 4 for a caller with no session. Veil's statements are written for
 * their indexes and need no statistics. Connections opened after this (the routing reader, the
 * threads) never load them.
 */
async function dropValueStatistics(db: Db): Promise<void> {
  const { rows } = await sql`select 1 from sqlite_master where name = 'sqlite_stat4'`.execute(db);
  if (rows.length > 0) await sql`delete from sqlite_stat4`.execute(db);
}

function openSqlite(file: string) {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const sqlite = new SqliteDatabase(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  // Checkpoints happen on the background thread (sqlite-worker.ts), not inside commits.
  if (file !== ':memory:') sqlite.pragma('wal_autocheckpoint = 0');
  return cachingStatements(configured(sqlite));
}

/**
 * Lets a begin fail at once with SQLITE_BUSY instead of sleeping in the busy handler (group-commit.ts).
 * The timeout is off from the call until the begin has run: a statement that gets the connection
 * in between (a read, or a rare write outside a transaction such as a new API key) would also meet
 * a busy file without waiting.
 */
function withoutBusyWait(connection: Connection): WithoutBusyWait {
  return async (begin) => {
    connection.busyTimeout(0);
    try {
      return await begin();
    } finally {
      connection.busyTimeout(BUSY_TIMEOUT_MS);
    }
  };
}

function configured(sqlite: SqliteDatabase.Database): SqliteDatabase.Database {
  sqlite.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  // Statement journals (a savepoint's undo) and temporary sorts stay in memory, never in a temp file.
  sqlite.pragma('temp_store = MEMORY');
  // 32 MiB of pages (SQLite's default is 2 MiB): the routing lookup and allocation stay in memory
  // for pools and session counts well past a million rows.
  sqlite.pragma('cache_size = -32768');
  return sqlite;
}

type Connection = ReturnType<typeof cachingStatements>;

function sqliteKysely(database: Connection): Db {
  return new Kysely<Schema>({ dialect: new SqliteDialect({ database }) });
}

/**
 * better-sqlite3 compiles a statement on every prepare(); Kysely prepares on every query. Keeping
 * the compiled statements (bounded, least recently used out first) takes that off every request.
 * Transactions start IMMEDIATE so that a second process (the CLI) waits instead of failing midway.
 */
function cachingStatements(sqlite: SqliteDatabase.Database) {
  const objects = new Map<string, SqliteDatabase.Statement>();
  // A statement in raw mode answers arrays, so it is never one Kysely runs: a cache of its own.
  const tuples = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => sqlite.close(),
    busyTimeout: (ms: number) => sqlite.pragma(`busy_timeout = ${ms}`),
    prepare: (text: string) =>
      cached(objects, text, () => sqlite.prepare(text === 'begin' ? 'begin immediate' : text)),
    /** The statement in raw mode: its rows come back as arrays of values, in the columns' order. */
    prepareRaw: (text: string) => cached(tuples, text, () => sqlite.prepare(text).raw(true)),
  };
}

/** The cached statement of this text (now the most recently used), or a new one that evicts the least. */
function cached(
  cache: Map<string, SqliteDatabase.Statement>,
  text: string,
  prepare: () => SqliteDatabase.Statement,
): SqliteDatabase.Statement {
  let stmt = cache.get(text);
  if (stmt) {
    cache.delete(text);
  } else {
    stmt = prepare();
    if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  }
  cache.set(text, stmt);
  return stmt;
}

function openPostgres(url: string, { schema, poolSize = DEFAULT_POOL_SIZE }: StoreOptions): Db {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // bigint columns hold epoch milliseconds, well inside Number's range.
    types: { getTypeParser: (oid, format) => (oid === 20 ? Number : pg.types.getTypeParser(oid, format)) },
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  pool.on('connect', runPreparedByName);
  return new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Sends the queries compiled once (prepared.ts) as named statements: the connection parses and
 * plans each of them the first time, then only binds the values. Parsing and planning were most of
 * PostgreSQL's work for a create (the proxy search: 0.2 ms to parse, 0.5 ms to plan, 0.1 ms to run).
 * Other queries go as they are.
 */
function runPreparedByName(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((...args: unknown[]) => {
    const [text, values] = args;
    const name = args.length === 2 && typeof text === 'string' ? preparedName(text) : undefined;
    return name ? query({ name, text, values }) : query(...args);
  }) as typeof client.query;
}

/**
 * True when the database locks rows (PostgreSQL), so that queries may lock what they read. SQLite
 * locks the whole database for a write transaction (they start IMMEDIATE), which serialises them.
 */
export function locksRows(db: Db): boolean {
  return onPostgres(db);
}

/**
 * True when one statement can write several tables (PostgreSQL's data-modifying WITH), which saves
 * round trips to the database server. SQLite runs in the process: a statement more costs no trip.
 */
export function writesTablesInOneStatement(db: Db): boolean {
  return onPostgres(db);
}

/** True when the database has LATERAL subqueries (PostgreSQL), which run once per row of what precedes them. */
export function supportsLateral(db: Db): boolean {
  return onPostgres(db);
}

function onPostgres(db: Db): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** Translates a driver's unique-violation error into the domain's, leaving others untouched. */
export function asUniqueViolation(error: unknown): UniqueViolationError | undefined {
  const e = error as { code?: string; constraint?: string; message?: string };
  if (e?.code === '23505') return new UniqueViolationError(e.constraint ?? 'unique');
  if (e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return new UniqueViolationError(/: (.*)$/.exec(e.message ?? '')?.[1] ?? 'unique');
  }
  return undefined;
}

/**
 * True for the errors a concurrent writer can cause and a retry can cure: a unique index refusing
 * a proxy another instance took a moment ago, a deadlock, a busy SQLite file.
 */
export function isRetryable(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return (
    asUniqueViolation(error) !== undefined || code === '40P01' || code === '40001' || code === 'SQLITE_BUSY'
  );
}

/** Runs `work` in a transaction, again from the start (up to `attempts` times) when a retryable error ends it. */
export async function inTransaction<T>(
  store: Store,
  work: (trx: Db) => Promise<T>,
  attempts = 20,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await store.transaction(work);
    } catch (error) {
      if (attempt >= attempts || !isRetryable(error)) throw asUniqueViolation(error) ?? error;
      // Spread the retries of writers that collided so they do not collide again in step.
      await new Promise((r) => setTimeout(r, Math.random() * 2 * attempt));
    }
  }
}

/** True when the database answers: what /readyz asks. */
export async function ping(store: Store): Promise<boolean> {
  try {
    await sql`select 1`.execute(store.db);
    return true;
  } catch {
    return false;
  }
}
