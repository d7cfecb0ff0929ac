import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { sql } from 'kysely';
import { statement } from '../../src/store/prepared.ts';
import { openStore, type Store } from '../../src/store/store.ts';
import { describeStores, TEST_KEYS } from '../support/stores.ts';

const settingValue = statement<{ key: string }, { value: string }>(['key'], (db, v) =>
  db.selectFrom('settings').select('value').where('key', '=', v.key),
);

/**
 * On PostgreSQL the statements compiled once (prepared.ts) run as named prepared statements, parsed
 * and planned once per connection; every other query goes as it is, unnamed.
 */
describeStores('named prepared statements', { only: 'postgres' }, (testStore) => {
  let store: Store;

  before(async () => {
    // One connection, so that pg_prepared_statements shows the connection the statements ran on.
    store = await openStore(testStore().config, { keys: TEST_KEYS, schema: testStore().schema, poolSize: 1 });
    await store.db
      .insertInto('settings')
      .values([
        { key: 'a', value: 'first' },
        { key: 'b', value: 'second' },
      ])
      .execute();
  });
  after(async () => {
    await store.close();
  });

  const prepared = async () =>
    (
      await sql<{ name: string; statement: string }>`
          select name, statement from pg_prepared_statements order by name`.execute(store.db)
    ).rows;

  it('a statement is prepared once under its name and binds new values on every run', async () => {
    const runs = [];
    for (const key of ['a', 'b', 'a', 'missing']) {
      runs.push((await settingValue.execute(store.db, { key })).rows.map((r) => r.value));
    }
    assert.deepEqual(runs, [['first'], ['second'], ['first'], []]);
    const named = (await prepared()).filter((p) => p.statement.includes('"settings"'));
    assert.equal(named.length, 1, 'one prepared statement for four runs');
    assert.match(named[0]?.name ?? '', /^veil_\d+$/);
  });

  it('queries built on the spot are not kept as prepared statements', async () => {
    const before = (await prepared()).length;
    await store.db.selectFrom('settings').select('value').where('key', '=', 'b').execute();
    await store.db.selectFrom('settings').select('key').where('value', '=', 'first').execute();
    assert.equal((await prepared()).length, before);
  });
});

const settingBetween = statement<{ low: string; high: string }, { key: string }>(['low', 'high'], (db, v) =>
  db.selectFrom('settings').select('key').where('key', '>=', v.low).where('key', '<=', v.high).orderBy('key'),
);

/** `run` takes the values by position, in the order of the statement's names, on either store. */
describeStores('statements run with values by position', (testStore) => {
  let store: Store;

  before(async () => {
    store = await openStore(testStore().config, {
      keys: TEST_KEYS,
      schema: testStore().schema,
      background: false,
    });
    await store.db
      .insertInto('settings')
      .values(['a', 'b', 'c', 'd'].map((key) => ({ key, value: key })))
      .execute();
  });
  after(async () => {
    await store.close();
  });

  const keys = async (run: Promise<{ rows: { key: string }[] }>) => (await run).rows.map((r) => r.key);

  it('binds the values where their names are, as execute does by name', async () => {
    assert.deepEqual(await keys(settingBetween.run(store.db, ['b', 'c'])), ['b', 'c']);
    assert.deepEqual(await keys(settingBetween.execute(store.db, { low: 'b', high: 'c' })), ['b', 'c']);
    // The other way round, nothing is between them: the order of the values is the names' order.
    assert.deepEqual(await keys(settingBetween.run(store.db, ['c', 'b'])), []);
  });

  it('refuses a wrong number of values before anything runs', async () => {
    assert.throws(() => settingBetween.run(store.db, ['a']), /2 values was given 1/);
    assert.throws(() => settingBetween.run(store.db, ['a', 'b', 'c']), /2 values was given 3/);
  });
});
