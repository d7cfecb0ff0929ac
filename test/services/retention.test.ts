import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { interactionRows, numberOf, payloadOf, type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

const PROXIES = ['+14155550180', '+14155550181', '+14155550182', '+14155550183'];
const [A, B, C, D, STRANGER] = [
  '+14155550110',
  '+14155550111',
  '+14155550112',
  '+14155550113',
  '+14155550119',
];
const DAY = 86_400;

describeStores('retention (VEIL_RETENTION_DAYS)', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store(), { VEIL_RETENTION_DAYS: '7' });
    for (const number of PROXIES) {
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
    }
  });
  afterEach(() => t.close());

  const open = async (a: string, b: string, ttlSeconds = DAY) => {
    const r = await t.api('POST', '/v1/sessions', {
      ttlSeconds,
      participants: [{ number: a }, { number: b }],
    });
    assert.equal(r.statusCode, 201, r.body);
    return r.json() as { id: string; participants: { proxyNumber: string }[] };
  };
  const call = async (from: string, to: string) =>
    (await t.api('POST', '/v1/route', { from, to, channel: 'voice' })).json();
  const status = async (id: string) => (await t.api('GET', `/v1/sessions/${id}`)).statusCode;
  const count = async (table: 'sessions' | 'participants' | 'events' | 'deliveries') =>
    Number(
      (
        await t.veil.store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  /** Every real number the database still holds, in any table that holds people's numbers. */
  const numbersHeld = async () => {
    const db = t.veil.store.db;
    const participants = (await db.selectFrom('participants').select('number_sealed').execute()).map((r) =>
      numberOf(db, r),
    );
    const interactions = await interactionRows(t);
    const events = (await db.selectFrom('events').select('payload').execute()).map((e) =>
      payloadOf(db, e.payload),
    );
    const text = JSON.stringify([participants, interactions, events]);
    return [A, B, C, D, STRANGER].filter((n) => text.includes(n));
  };

  it('purges sessions ended, interactions logged and events written before the period, and nothing newer', async () => {
    const old = await open(A, B);
    assert.equal((await call(A, old.participants[0]?.proxyNumber as string)).action, 'connect');
    assert.equal((await call(STRANGER, old.participants[0]?.proxyNumber as string)).action, 'reject');
    assert.equal((await t.api('DELETE', `/v1/sessions/${old.id}`)).statusCode, 200);
    const longLived = await open(C, D, 30 * DAY);
    await t.veil.interactions.flush();
    await t.veil.outbox.pass();

    t.clock.advance(8 * DAY);
    const recent = await open(A, C);
    assert.equal((await call(A, recent.participants[0]?.proxyNumber as string)).action, 'connect');
    await t.veil.interactions.flush();
    await t.veil.outbox.pass();

    const pass = await t.veil.retention.pass();
    // The closed session with its call, the stranger's refused call (no session), and the events
    // written then (the sessions' created and closed).
    assert.equal(pass.sessions, 1);
    assert.equal(pass.interactions, 1);
    assert.ok(pass.events >= 3, JSON.stringify(pass));
    assert.equal(await status(old.id), 404);
    // Still open, though created before the period: kept, and still routes.
    assert.equal(await status(longLived.id), 200);
    assert.equal((await call(C, longLived.participants[0]?.proxyNumber as string)).action, 'connect');
    assert.equal(await status(recent.id), 200);
    assert.deepEqual(
      (await interactionRows(t)).map((r) => r.session_id).sort(),
      [recent.id, longLived.id].sort(),
    );
    assert.equal(await count('participants'), 4);
    // B was only in the purged session, and the stranger only in its log: neither is held now.
    assert.deepEqual(await numbersHeld(), [A, C, D]);
    const logged = t.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'purged data past its retention');
    assert.deepEqual([logged?.sessions, logged?.interactions], [1, 1]);

    // Nothing more to do: a second pass (another instance's, say) deletes nothing.
    assert.deepEqual(await t.veil.retention.pass(), { sessions: 0, interactions: 0, events: 0 });
  });

  it('keeps an event while a delivery of it is still being tried', async () => {
    const hook = await t.api('POST', '/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook' });
    assert.equal(hook.statusCode, 201, hook.body);
    const s = await open(A, B);
    assert.equal((await t.api('DELETE', `/v1/sessions/${s.id}`)).statusCode, 200);
    await t.veil.outbox.fanOut();
    t.clock.advance(8 * DAY);
    const pass = await t.veil.retention.pass();
    assert.deepEqual([pass.sessions, pass.events], [1, 0]);
    assert.equal(await count('events'), 2);
    assert.equal(await count('deliveries'), 2);
  });

  it('purges in batches of any size, the oldest first, in one pass', async () => {
    for (let i = 0; i < 3; i++) {
      const s = await open(A, B);
      assert.equal((await t.api('DELETE', `/v1/sessions/${s.id}`)).statusCode, 200);
    }
    t.clock.advance(8 * DAY);
    assert.equal((await t.veil.retention.pass()).sessions, 3);
    assert.equal(await count('sessions'), 0);
  });
});

it('VEIL_RETENTION_DAYS: 30 by default, 0 keeps everything, and it must cover the cooldown and the callback window', () => {
  const base = { NODE_ENV: 'development' };
  assert.equal(loadConfig(base).retentionDays, 30);
  assert.equal(loadConfig({ ...base, VEIL_RETENTION_DAYS: '0' }).retentionDays, 0);
  assert.throws(
    () => loadConfig({ ...base, VEIL_RETENTION_DAYS: '1', VEIL_CALLBACK_WINDOW_SECONDS: String(2 * DAY) }),
    /VEIL_RETENTION_DAYS: must cover/,
  );
  assert.throws(() => loadConfig({ ...base, VEIL_RETENTION_DAYS: '-1' }), /VEIL_RETENTION_DAYS/);
});
