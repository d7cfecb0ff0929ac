import { type CompiledQuery, sql } from 'kysely';
import type { StoreConfig } from '../config.ts';
import type { Thread } from '../thread.ts';
import type { Dialect } from './dialect.ts';
import type { RevocationWatch } from './key-revocations.ts';
import { openPostgresStore } from './postgres/store.ts';
import type { Db } from './schema.ts';
import { checkKeys, sealLegacy } from './sealing.ts';
import type { SqliteBackground, Statement } from './sqlite/background.ts';
import { openSqliteStore } from './sqlite/store.ts';
import { attachVault, type DataKeys, NumberVault } from './vault.ts';

/** An open database: the Kysely handle plus what each dialect does its own way (sqlite/, postgres/). */
export interface Store {
  readonly db: Db;
  /**
   * For the reads on the routing path. SQLite gives them a connection of their own: a WAL reader
   * sees every committed write and never waits behind the writer's open transaction (a session
   * being created, a batch of interactions). On PostgreSQL it is the same pool as `db`.
   */
  readonly reader: Db;
  readonly dialect: Dialect;
  /**
   * Runs one read of the routing path on the reader. Its rows carry the names the query selects.
   * On SQLite the statement, prepared once, runs at once and synchronously (the reader never holds
   * a transaction, so nothing can interleave), in better-sqlite3's raw mode: each row comes back as
   * an array and is named here, which costs a fraction of what the driver's own objects cost.
   */
  readRows<Row>(query: CompiledQuery<Row>): Promise<Row[]>;
  /**
   * Runs `work` in a write transaction. SQLite, which writes one transaction at a time, groups the
   * work waiting for the writer into one transaction, each piece in a savepoint (sqlite/group-commit.ts).
   */
  transaction<T>(work: (trx: Db) => Promise<T>): Promise<T>;
  /**
   * Runs compiled statements in one transaction, for writes no request waits on (the interaction
   * log). A SQLite file runs them on its background thread; otherwise they go through `db`.
   */
  writeBatch(statements: readonly Statement[]): Promise<void>;
  /**
   * SQLite's group commit: the units of work waiting for the writer (queued, or in the transaction
   * now running). PostgreSQL has no such queue.
   */
  writesWaiting?(): number;
  /** SQLite's background thread (sqlite/background.ts), on a file. */
  readonly background?: Thread<SqliteBackground>;
  /** How this instance hears of API keys revoked or rotated elsewhere (key-revocations.ts). */
  readonly revocations: RevocationWatch;
  /** Why the store cannot serve now (SQLite's background thread is down), or undefined. */
  unready(): string | undefined;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** A PostgreSQL schema to use instead of the default search_path (tests). */
  schema?: string;
  /** Most PostgreSQL connections this process opens. */
  poolSize?: number;
  /**
   * The keys that seal real numbers (store/vault.ts). Without them the store opens, but any read or
   * write of a number throws: only a process that touches no number (a setting's reader) omits them.
   */
  keys?: DataKeys;
  /** Where a background thread's errors go (SQLite's). */
  onBackgroundError?: (error: Error) => void;
  /**
   * False for a second handle on a SQLite file another store of this process already keeps (the
   * session writer thread's): no reading connection and no background thread of its own, since
   * the first store reads and checkpoints for both.
   */
  background?: boolean;
}

/**
 * Opens (and migrates) the database named by the config. With keys, it seals what an older Veil
 * left in clear before it answers (store/sealing.ts).
 */
export async function openStore(config: StoreConfig, options: StoreOptions = {}): Promise<Store> {
  const store =
    config.dialect === 'postgres'
      ? await openPostgresStore(config.url, options)
      : await openSqliteStore(config.file, options);
  if (!options.keys) return store;
  const vault = new NumberVault(options.keys);
  attachVault(store.db, vault);
  attachVault(store.reader, vault);
  try {
    await checkKeys(store);
    await sealLegacy(store);
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
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
