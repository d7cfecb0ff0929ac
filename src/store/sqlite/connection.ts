import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { CompiledQuery, type DatabaseConnection, Kysely, SqliteDialect, SqliteDriver } from 'kysely';
import { LRUCache } from 'lru-cache';
import type { Db, Schema } from '../schema.ts';

/** How long a statement waits for a lock another connection holds. */
export const BUSY_TIMEOUT_MS = 5_000;
/** Compiled statements kept per connection (Kysely prepares on every query). */
const STATEMENT_CACHE_SIZE = 500;

/**
 * Opens a connection to a SQLite file as every connection of Veil is opened (the main one, the
 * routing reader, the background thread's and the session writer thread's): a busy timeout, no
 * automatic checkpoint (the background thread checkpoints), journals and sorts in memory.
 */
export function openConnection(file: string, options: { readonly?: boolean } = {}): Database.Database {
  const database = new Database(file, { readonly: options.readonly ?? false });
  database.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  if (file !== ':memory:') database.pragma('wal_autocheckpoint = 0');
  // Statement journals (a savepoint's undo, a batch's multi-row INSERT) and temporary sorts stay in
  // memory, never in a temporary file.
  database.pragma('temp_store = MEMORY');
  // 32 MiB of pages (SQLite's default is 2 MiB): the routing lookup and allocation stay in memory
  // for pools and session counts well past a million rows.
  database.pragma('cache_size = -32768');
  return database;
}

/** Opens the file for writing, creating it (and its folder) in WAL mode if need be. */
export function openWritable(file: string): Database.Database {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const database = openConnection(file);
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.pragma('foreign_keys = ON');
  return database;
}

/**
 * A connection whose compiled statements are kept, least recently used out first: better-sqlite3
 * compiles a statement on every prepare(), and Kysely prepares on every query.
 */
export class CachedConnection {
  private readonly statements = new LRUCache<string, Database.Statement>({ max: STATEMENT_CACHE_SIZE });
  /** Statements in raw mode (rows as arrays), with their columns' names: never one Kysely runs. */
  private readonly raw = new LRUCache<string, { statement: Database.Statement; names: string[] }>({
    max: STATEMENT_CACHE_SIZE,
  });
  /** Statements that answer one value (`pluck`): never one Kysely runs. */
  private readonly plucked = new LRUCache<string, Database.Statement>({ max: STATEMENT_CACHE_SIZE });

  constructor(readonly database: Database.Database) {}

  /** What Kysely's SQLite dialect calls for every query. */
  prepare(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.database.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  /** Runs a read and names each row's values by the columns it selects. */
  rows<Row>(text: string, parameters: readonly unknown[]): Row[] {
    let entry = this.raw.get(text);
    if (!entry) {
      const statement = this.database.prepare(text).raw(true);
      entry = { statement, names: statement.columns().map((c) => c.name) };
      this.raw.set(text, entry);
    }
    const { statement, names } = entry;
    return (statement.all(parameters as unknown[]) as unknown[][]).map((values) => {
      const row: Record<string, unknown> = {};
      for (let i = 0; i < names.length; i++) row[names[i] as string] = values[i];
      return row as Row;
    });
  }

  /**
   * Runs a read for one value: the first column of its first row, undefined when there is no row.
   * No row objects are made and the statement stops at its first row.
   */
  value<Value>(text: string, parameters: readonly unknown[]): Value | undefined {
    let statement = this.plucked.get(text);
    if (!statement) {
      statement = this.database.prepare(text).pluck(true);
      this.plucked.set(text, statement);
    }
    return statement.get(parameters as unknown[]) as Value | undefined;
  }

  busyTimeout(ms: number): void {
    this.database.pragma(`busy_timeout = ${ms}`);
  }

  close(): void {
    this.database.close();
  }
}

/** Kysely over a connection, its transactions starting IMMEDIATE (ImmediateSqliteDialect). */
export function sqliteKysely(connection: CachedConnection): Db {
  return new Kysely<Schema>({ dialect: new ImmediateSqliteDialect(connection) });
}

/**
 * Kysely's SQLite dialect with transactions that take the write lock when they begin (`begin
 * immediate`). A deferred `begin` takes it at the first write, where a transaction that has read
 * already cannot wait for another connection's lock and fails with SQLITE_BUSY midway; IMMEDIATE
 * waits for the lock (the busy timeout) before anything is read, so a second process (the CLI)
 * queues instead of failing. Kysely's dialects are made to be extended this way: a dialect hands
 * out its driver, and a driver says how a transaction begins.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly connection: CachedConnection) {
    super({ database: connection });
  }

  override createDriver(): SqliteDriver {
    return new ImmediateSqliteDriver({ database: this.connection });
  }
}

const BEGIN_IMMEDIATE = CompiledQuery.raw('begin immediate');

class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(BEGIN_IMMEDIATE);
  }
}
