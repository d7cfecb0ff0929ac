import { PostgresAdapter } from 'kysely';
import { POSTGRES } from './postgres/dialect.ts';
import type { Db } from './schema.ts';
import { SQLITE } from './sqlite/dialect.ts';

/**
 * What a database does differently, in one object per store (sqlite/dialect.ts, postgres/dialect.ts),
 * so that a repository asks what it can do instead of which database it is on.
 */
export interface Dialect {
  readonly name: 'sqlite' | 'postgres';
  /**
   * Queries may lock the rows they read (`for update`, `skip locked`). SQLite locks the whole file
   * for a write transaction instead (they start IMMEDIATE), which serialises writers.
   */
  readonly locksRows: boolean;
  /**
   * One statement can write several tables (PostgreSQL's data-modifying WITH), which saves round
   * trips to a database server. SQLite runs in the process: a statement more costs no trip.
   */
  readonly writesTablesInOneStatement: boolean;
  /** LATERAL subqueries, run once per row of what precedes them. */
  readonly lateral: boolean;
  /**
   * The routing lookups of one turn of the event loop go as one statement (one round trip). On
   * SQLite they run back to back instead, each a probe of a statement prepared once.
   */
  readonly batchesLookups: boolean;
  /**
   * A transaction can tell other connections of its commit (LISTEN/NOTIFY). Instances sharing a
   * SQLite file read a counter instead (key-revocations.ts).
   */
  readonly notifies: boolean;
}

/** The dialect of a database handle (or of a transaction on it). */
export function dialectOf(db: Db): Dialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? POSTGRES : SQLITE;
}
