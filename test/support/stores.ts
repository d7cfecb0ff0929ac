import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { StoreConfig } from '../../src/config.ts';

/** A database for one test suite: its own SQLite file or PostgreSQL schema, dropped afterwards. */
export interface TestStore {
  name: 'sqlite' | 'postgres';
  config: StoreConfig;
  schema?: string;
  drop(): Promise<void>;
}

export interface TestStoreKind {
  name: 'sqlite' | 'postgres';
  create(): Promise<TestStore>;
}

/** SQLite always; PostgreSQL too when TEST_DATABASE_URL is set. Every store test runs on each. */
export function storeKinds(): TestStoreKind[] {
  const kinds: TestStoreKind[] = [{ name: 'sqlite', create: async () => sqliteStore() }];
  const url = process.env.TEST_DATABASE_URL;
  if (url) kinds.push({ name: 'postgres', create: () => postgresStore(url) });
  return kinds;
}

function sqliteStore(): TestStore {
  const dir = mkdtempSync(join(tmpdir(), 'veil-test-'));
  return {
    name: 'sqlite',
    config: { dialect: 'sqlite', file: join(dir, 'veil.db') },
    drop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function postgresStore(url: string): Promise<TestStore> {
  const schema = `veil_test_${randomBytes(6).toString('hex')}`;
  await withClient(url, (c) => c.query(`create schema ${schema}`));
  return {
    name: 'postgres',
    config: { dialect: 'postgres', url },
    schema,
    drop: () =>
      withClient(url, (c) => c.query(`drop schema if exists ${schema} cascade`)).then(() => undefined),
  };
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
