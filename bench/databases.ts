import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import type { StoreConfig } from '../src/config.ts';
import { openStore, type Store } from '../src/store/store.ts';
import { BENCH_KEYS } from './keys.ts';

/** A database made for one benchmark step: the server's DATABASE_URL, and how to throw it away. */
export interface BenchDatabase {
  label: string;
  store: StoreConfig;
  /** What the server process gets as DATABASE_URL. */
  url: string;
  drop(): Promise<void>;
}

/** Databases made and not yet dropped, so that an interrupted run can still drop them. */
const live = new Set<BenchDatabase>();

function tracked(database: BenchDatabase): BenchDatabase {
  live.add(database);
  const drop = database.drop;
  database.drop = async () => {
    live.delete(database);
    await drop();
  };
  return database;
}

/** Drops every database still there (PostgreSQL databases would otherwise outlive an interrupted run). */
export async function dropAllDatabases(): Promise<void> {
  await Promise.allSettled([...live].map((database) => database.drop()));
}

/** A new SQLite file in `dir`. */
export function sqliteDatabase(dir: string, name: string): BenchDatabase {
  const file = join(dir, `${name}.db`);
  return tracked({
    label: 'SQLite',
    store: { dialect: 'sqlite', file },
    url: file,
    drop: async () => {
      for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
    },
  });
}

/**
 * A new PostgreSQL database next to the one `adminUrl` names (`bench_<random>`), dropped afterwards.
 * A database rather than a schema, because the server takes its whole configuration from the
 * environment and DATABASE_URL has no place for a search_path.
 */
export async function postgresDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `bench_${randomBytes(6).toString('hex')}`;
  await withClient(adminUrl, (c) => c.query(`create database ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return tracked({
    label: 'PostgreSQL',
    store: { dialect: 'postgres', url: url.href },
    url: url.href,
    drop: async () => {
      await withClient(adminUrl, (c) => c.query(`drop database if exists ${name} with (force)`));
    },
  });
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Opens the database as the service does (running its migrations), for set-up and checks. */
export async function withStore<T>(database: BenchDatabase, work: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(database.store, { keys: BENCH_KEYS });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

/**
 * Analyzes a PostgreSQL database, as autovacuum does within a minute of a table's growth: the
 * statistics invalidate the plans its connections cached for tables that were nearly empty. SQLite
 * files are left alone (the service never analyzes them, and drops per-value statistics).
 */
export async function analyzeDatabase(database: BenchDatabase): Promise<void> {
  if (database.store.dialect === 'postgres') await withClient(database.url, (c) => c.query('analyze'));
}

/** What the checks after a run found in the database. */
export interface InvariantCheck {
  /** (real number, proxy number) pairs held by more than one open participation: must be 0. */
  doubleAssigned: number;
  /** Numbers whose load differs from the open sessions holding them: must be 0. */
  loadMismatches: number;
  openSessions: number;
}

/** Checks the invariant of DESIGN §1 and the pool's load counters with plain SQL. */
export function checkInvariant(database: BenchDatabase): Promise<InvariantCheck> {
  return withStore(database, async ({ db }) => {
    const count = async (query: ReturnType<typeof sql<{ n: number | string }>>) =>
      Number((await query.execute(db)).rows[0]?.n ?? 0);
    return {
      doubleAssigned: await count(sql`
        select count(*) as n from (
          select number_index, proxy_number from participants where active = 1
          group by number_index, proxy_number having count(*) > 1
        ) as duplicates`),
      loadMismatches: await count(sql`
        select count(*) as n from numbers as nu
        left join (
          select proxy_number_id, count(distinct session_id) as held from participants
          where active = 1 group by proxy_number_id
        ) as h on h.proxy_number_id = nu.id
        where nu."load" <> coalesce(h.held, 0)`),
      openSessions: await count(sql`select count(*) as n from sessions where status = 'open'`),
    };
  });
}
