import { CompiledQuery, type Kysely, Kysely as KyselyClass, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { migrate } from '../migrations.ts';
import { preparedName } from '../prepared.ts';
import type { Db, Schema } from '../schema.ts';
import type { Store, StoreOptions } from '../store.ts';
import { POSTGRES } from './dialect.ts';
import { RevocationListener } from './revocation-listener.ts';

const DEFAULT_POOL_SIZE = 10;
/** PostgreSQL's type id of bigint: its columns hold epoch milliseconds, well inside Number's range. */
const INT8_OID = 20;

/** Opens (and migrates) a PostgreSQL database; every connection of the pool runs Veil's statements by name. */
export async function openPostgresStore(url: string, options: StoreOptions): Promise<Store> {
  const { schema, poolSize = DEFAULT_POOL_SIZE } = options;
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    Client: NamedStatementClient,
    types: {
      getTypeParser: (oid, format) => (oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)),
    },
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  const db: Db = new KyselyClass<Schema>({ dialect: new PostgresDialect({ pool }) });
  try {
    const tableSchema =
      schema ?? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s;
    await migrateRetryingRaces(db as Kysely<unknown>, tableSchema);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  const revocations = new RevocationListener({
    connectionString: url,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  return {
    db,
    reader: db,
    revocations,
    dialect: POSTGRES,
    readRows: async <Row>(query: CompiledQuery<Row>) => (await db.executeQuery(query)).rows,
    transaction: (work) => db.transaction().execute(work),
    writeBatch: (statements) =>
      db.transaction().execute(async (trx) => {
        for (const s of statements) await trx.executeQuery(CompiledQuery.raw(s.sql, [...s.parameters]));
      }),
    unready: () => undefined,
    async close() {
      await revocations.close();
      await db.destroy();
    },
  };
}

/** PostgreSQL's "schema does not exist". */
const INVALID_SCHEMA_NAME = '3F000';

/**
 * Migrates; again when the migrator's look at the catalogue met another schema being dropped at
 * that moment. Kysely lists the tables of every schema to find its own, and a schema dropped
 * between the listing's steps (another install's, another test file's) fails the listing.
 */
async function migrateRetryingRaces(db: Kysely<unknown>, tableSchema: string | undefined): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrate(db, tableSchema);
    } catch (error) {
      if ((error as { code?: string }).code !== INVALID_SCHEMA_NAME || attempt >= 5) throw error;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

/**
 * A pg client that sends the queries compiled once (prepared.ts) as named statements: the
 * connection parses and plans each of them the first time, then only binds the values. Parsing and
 * planning were most of PostgreSQL's work for a create (bench/HISTORY.md). Other queries go as they
 * are. pg lets a pool make its connections with a client class of one's own (the `Client` option);
 * Kysely calls `query(text, values)`, and a query given as `{ name, text, values }` is pg's own
 * way to name a statement. test/store/prepared-statements.test.ts fails if either changes.
 */
class NamedStatementClient extends pg.Client {
  // biome-ignore lint/suspicious/noExplicitAny: pg's query has a dozen overloads; this passes every call through.
  override query(...args: any[]): any {
    const [text, values] = args;
    const name = args.length === 2 && typeof text === 'string' ? preparedName(text) : undefined;
    return name
      ? super.query({ name, text, values })
      : (super.query as (...a: unknown[]) => unknown)(...args);
  }
}
