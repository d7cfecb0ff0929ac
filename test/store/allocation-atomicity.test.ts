import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { sql } from 'kysely';
import { vaultOf } from '../../src/store/vault.ts';
import { type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

const DOOMED = '+14155550666';

/**
 * A failure in the middle of an allocation (here: the database refusing the second participant,
 * after the first was inserted and its number's load counted) must leave no trace at all.
 */
describeStores('allocation is all or nothing', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store());
    for (const number of ['+14155550150', '+14155550151'])
      await t.api('POST', '/v1/numbers', { number, provider: 'sim' });
    const db = t.veil.store.db;
    // The doomed person as the table knows them: by their blind index.
    const doomed = vaultOf(db).index(DOOMED);
    if (store().name === 'sqlite') {
      await sql`create trigger doomed before insert on participants when new.number_index = ${sql.lit(doomed)}
          begin select raise(abort, 'simulated crash'); end`.execute(db);
    } else {
      await sql`create function doomed() returns trigger language plpgsql as $$
          begin if new.number_index = ${sql.lit(doomed)} then raise exception 'simulated crash'; end if; return new; end $$`.execute(
        db,
      );
      await sql`create trigger doomed before insert on participants for each row execute function doomed()`.execute(
        db,
      );
    }
  });
  afterEach(async () => {
    await t.close();
  });

  const snapshot = async () => {
    const db = t.veil.store.db;
    const count = async (table: 'sessions' | 'participants' | 'events') =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const loads = await db.selectFrom('numbers').select(['number', 'load']).orderBy('number').execute();
    return {
      sessions: await count('sessions'),
      participants: await count('participants'),
      events: await count('events'),
      loads,
    };
  };

  it('leaves sessions, participants, loads and events untouched, and answers 500 without details', async () => {
    const before = await snapshot();
    const r = await t.api('POST', '/v1/sessions', {
      externalId: 'crash-1',
      participants: [{ number: '+14155550123' }, { number: DOOMED }],
    });
    assert.equal(r.statusCode, 500);
    assert.deepEqual(r.json(), { error: { code: 'internal', message: 'internal error' } });
    assert.deepEqual(await snapshot(), before);
  });

  it('lets the same externalId and numbers be used afterwards', async () => {
    const crash = await t.api('POST', '/v1/sessions', {
      externalId: 'crash-1',
      participants: [{ number: '+14155550123' }, { number: DOOMED }],
    });
    assert.equal(crash.statusCode, 500);
    const r = await t.api('POST', '/v1/sessions', {
      externalId: 'crash-1',
      participants: [{ number: '+14155550123' }, { number: '+14155550187' }],
    });
    assert.equal(r.statusCode, 201, r.body);
    const loads = (await snapshot()).loads.map((n) => n.load);
    assert.equal(
      loads.reduce((a, b) => a + b, 0),
      new Set(r.json().participants.map((p: { proxyNumber: string }) => p.proxyNumber)).size,
    );
  });
});
