import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import type { Db } from '../../src/store/schema.ts';
import { getSetting } from '../../src/store/settings.ts';
import { openStore, type Store } from '../../src/store/store.ts';
import { describeStores, storeKinds, TEST_KEYS } from '../support/stores.ts';

/**
 * store.transaction: on SQLite the work queued for the writer shares one transaction, each piece
 * in a savepoint (group commit); on PostgreSQL each piece has a transaction of its own. Either way
 * a piece that fails leaves nothing, and one that succeeds is answered only once it is committed.
 */
describeStores('store transactions', (testStore) => {
  let store: Store;

  before(async () => {
    store = await openStore(testStore().config, { keys: TEST_KEYS, schema: testStore().schema });
  });
  after(async () => {
    await store.close();
  });

  const put = (trx: Db, key: string) => trx.insertInto('settings').values({ key, value: key }).execute();
  const committed = (key: string) => getSetting(store.reader, key);

  it('a failing piece is undone alone; the others are kept', async () => {
    const failure = new Error('the allocation failed midway');
    const results = await Promise.allSettled([
      store.transaction(async (trx) => {
        await put(trx, 'kept-1');
        return 'one';
      }),
      store.transaction(async (trx) => {
        await put(trx, 'undone');
        await put(trx, 'undone-too');
        throw failure;
      }),
      store.transaction(async (trx) => {
        await put(trx, 'kept-2');
        return 'two';
      }),
    ]);
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? r.value : r.reason)),
      ['one', failure, 'two'],
    );
    assert.equal(await committed('kept-1'), 'kept-1');
    assert.equal(await committed('kept-2'), 'kept-2');
    assert.equal(await committed('undone'), undefined);
    assert.equal(await committed('undone-too'), undefined);
  });

  it('answers a piece only once what it wrote is committed (another connection sees it)', async () => {
    const seen = await Promise.all(
      ['a', 'b', 'c', 'd'].map((key) =>
        store.transaction((trx) => put(trx, `seen-${key}`)).then(() => committed(`seen-${key}`)),
      ),
    );
    assert.deepEqual(seen, ['seen-a', 'seen-b', 'seen-c', 'seen-d']);
  });

  it('a unique violation in one piece fails that piece only', async () => {
    await store.transaction((trx) => put(trx, 'taken'));
    const results = await Promise.allSettled([
      store.transaction((trx) => put(trx, 'taken')),
      store.transaction((trx) => put(trx, 'free')),
    ]);
    assert.equal(results[0]?.status, 'rejected');
    assert.equal(results[1]?.status, 'fulfilled');
    assert.equal(await committed('free'), 'free');
  });

  it('many pieces at once all commit, each exactly once', async () => {
    const keys = Array.from({ length: 200 }, (_, i) => `many-${i}`);
    await Promise.all(keys.map((key) => store.transaction((trx) => put(trx, key))));
    const { rows } = await sql<{ n: number | string }>`
        select count(*) as n from settings where key like 'many-%'`.execute(store.db);
    assert.equal(Number(rows[0]?.n), 200);
  });
});

describe('store transactions while another connection holds the SQLite write lock', () => {
  it('wait for it without blocking the event loop, then commit', { timeout: 10_000 }, async () => {
    const sqlite = storeKinds().find((kind) => kind.name === 'sqlite');
    assert.ok(sqlite);
    const testStore = await sqlite.create();
    const store = await openStore(testStore.config, { keys: TEST_KEYS });
    const other = new SqliteDatabase((testStore.config as { file: string }).file);
    try {
      other.exec('begin immediate'); // the CLI in another process, or a checkpoint syncing the file
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 10);
      const release = setTimeout(() => other.exec('commit'), 300);
      const started = Date.now();
      await store.transaction((trx) => trx.insertInto('settings').values({ key: 'k', value: 'v' }).execute());
      const waited = Date.now() - started;
      clearInterval(ticker);
      clearTimeout(release);
      assert.ok(waited >= 250, `the write waited for the lock (${waited} ms)`);
      assert.ok(ticks >= 15, `timers kept running while it waited (${ticks} ticks of 10 ms)`);
      assert.equal(await getSetting(store.reader, 'k'), 'v');
    } finally {
      other.close();
      await store.close();
      await testStore.drop();
    }
  });
});
