import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe } from 'node:test';
import pg from 'pg';
import type { StoreConfig } from '../../src/config.ts';
import { generateDataKeys } from '../../src/store/vault.ts';

/** The keys a test process seals numbers with where it opens a store itself. */
export const TEST_KEYS = generateDataKeys();

/** TEST_KEYS as the environment gives them: production refuses to start without keys. */
export const TEST_KEY_ENV = {
  VEIL_DATA_KEYS: `${TEST_KEYS.dataKeys[0]?.id}:${Buffer.from(TEST_KEYS.dataKeys[0]?.key ?? []).toString('base64')}`,
  VEIL_INDEX_KEY: Buffer.from(TEST_KEYS.indexKey).toString('base64'),
};

export type StoreName = 'sqlite' | 'postgres';

/** A database for one test suite: its own SQLite file or PostgreSQL schema, dropped afterwards. */
export interface TestStore {
  name: StoreName;
  config: StoreConfig;
  schema?: string;
  drop(): Promise<void>;
}

export interface TestStoreKind {
  name: StoreName;
  create(): Promise<TestStore>;
}

/** The tests of a suite, declared with the store they run on (see describeStores). */
export type StoreSuite = (store: () => TestStore) => void;

export interface StoreSuiteOptions {
  /** Only on this kind of store, for a suite about one dialect's behaviour. */
  only?: StoreName;
  /**
   * A new store for every test instead of one for the whole suite, for tests that count rows or
   * use up the pool: the body then sets up in `beforeEach` and closes in `afterEach`.
   */
  perTest?: boolean;
}

/**
 * Declares the suite `body` once per kind of store, as `title (sqlite)` and `title (postgres)`,
 * each over a TestStore of its own: created before the suite's tests (before each test, with
 * `perTest`) and dropped when the suite is done, after the body's own `after` hooks have closed
 * what ran on it. `store()` is the current TestStore: it exists in hooks and tests, not while
 * `body` declares them. Without TEST_DATABASE_URL the PostgreSQL suite is reported as skipped.
 */
export function describeStores(title: string, body: StoreSuite): void;
export function describeStores(title: string, options: StoreSuiteOptions, body: StoreSuite): void;
export function describeStores(
  title: string,
  optionsOrBody: StoreSuiteOptions | StoreSuite,
  suite?: StoreSuite,
): void {
  const options = typeof optionsOrBody === 'function' ? {} : optionsOrBody;
  const body = typeof optionsOrBody === 'function' ? optionsOrBody : (suite as StoreSuite);
  const kinds = storeKinds();
  const names: StoreName[] = options.only ? [options.only] : ['sqlite', 'postgres'];
  for (const name of names) {
    const kind = kinds.find((k) => k.name === name);
    describe(`${title} (${name})`, { skip: !kind && 'needs TEST_DATABASE_URL' }, () => {
      if (!kind) return;
      const created: TestStore[] = [];
      let current: TestStore | undefined;
      const create = async () => {
        current = await kind.create();
        created.push(current);
      };
      if (options.perTest) beforeEach(create);
      else before(create);
      body(() => {
        if (!current) throw new Error('store() is there once the suite runs, not while it is declared');
        return current;
      });
      // Declared after the body's hooks, so it runs after them. Stores made for each test are
      // dropped here too: a suite's afterEach declared now would not reach its nested suites.
      after(async () => {
        for (const store of created) await store.drop();
      });
    });
  }
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

/** DATABASE_URL for a test store, as an operator would write it (the schema goes in the URL). */
export function databaseUrl(store: TestStore): string {
  if (store.config.dialect === 'sqlite') return `sqlite:${store.config.file}`;
  const url = new URL(store.config.url);
  url.searchParams.set('options', `-c search_path=${store.schema}`);
  return url.toString();
}
