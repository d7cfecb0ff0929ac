import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { parsePhone } from '../../src/domain/phone.ts';
import type { Session } from '../../src/domain/session.ts';
import { DEFAULT_TENANT } from '../../src/domain/tenants.ts';
import { eventRow } from '../../src/store/events.ts';
import { NumberRepository } from '../../src/store/numbers.ts';
import { columnList } from '../../src/store/prepared.ts';
import { RouteLookup } from '../../src/store/route-lookup.ts';
import { SessionRepository } from '../../src/store/sessions.ts';
import { openStore, type Store } from '../../src/store/store.ts';
import { vaultOf } from '../../src/store/vault.ts';
import { describeStores, storeKinds, TEST_KEYS, type TestStoreKind } from '../support/stores.ts';

/**
 * The hot statements, field by field: what a statement binds by position comes back from the
 * database under the name it was written for. A column list out of step with its values (two
 * columns swapped, one left out) fails here on both stores.
 */
describeStores('hot statements round-trip every field', (testStore) => {
  let store: Store;
  const now = Date.parse('2026-06-01T12:00:00Z');
  const proxies = ['+14155550160', '+14155550161'];
  const ids = new Map<string, string>();

  before(async () => {
    store = await openStore(testStore().config, { keys: TEST_KEYS, schema: testStore().schema });
    for (const [i, number] of proxies.entries()) {
      const id = `num_${i}`;
      ids.set(number, id);
      await new NumberRepository(store.db).insert({
        id,
        tenantId: DEFAULT_TENANT,
        number,
        provider: 'sim',
        country: 'US',
        region: '415',
        capabilities: ['voice', 'sms'],
        status: 'active',
        tags: {},
        maxSessions: null,
        load: 0,
        createdAt: now,
        updatedAt: now,
        dedicatedTo: null,
      });
    }
  });
  after(async () => {
    await store.close();
  });

  /**
   * A session whose every field differs from its neighbours' and from the defaults; its second
   * participant holds the proxy by `extension` when one is given.
   */
  const session = (id: string, people: [string, string], extension?: string): Session => ({
    id,
    tenantId: DEFAULT_TENANT,
    externalId: `order-${id}`,
    status: 'open',
    expiresAt: now + 3_600_000,
    metadata: { order: id, nested: { n: 1 } },
    mode: 'per-participant',
    ttlMode: 'sliding',
    ttlSeconds: 3_600,
    record: true,
    channels: ['sms'],
    maxCallSeconds: 120,
    geoMatch: 'country',
    sticky: 'none',
    extensionFallback: false,
    rejectMessage: { text: `closed for ${id}`, language: 'en-GB', voice: 'Polly.Amy' },
    createdAt: now - 2,
    updatedAt: now - 1,
    closedAt: null,
    participants: people.map((number, i) => ({
      id: `par_${id}_${i}`,
      sessionId: id,
      number,
      label: i === 0 ? 'customer' : null,
      proxyNumberId: ids.get(proxies[i] as string) as string,
      proxyNumber: proxies[i] as string,
      revealNumber: i === 0,
      canInitiate: i === 1,
      binding: null,
      extension: i === 1 ? (extension ?? null) : null,
      createdAt: now + i,
    })),
  });

  it('a new session, its participants and its event (one statement on PostgreSQL, three on SQLite)', async () => {
    const written = session('ses_round_trip', ['+14155550101', '+14155550102']);
    const event = eventRow(DEFAULT_TENANT, 'session.created', written, now);
    await store.transaction((trx) => new SessionRepository(trx).insertOpened(written, 'fp-1', event));
    const read = await new SessionRepository(store.db).get(DEFAULT_TENANT, written.id);
    assert.deepEqual(read, written);
    const repository = new SessionRepository(store.db);
    const found = await repository.findByExternalId(DEFAULT_TENANT, 'order-ses_round_trip', 'fp-1');
    assert.deepEqual([found?.session, found?.sameRequest], [written, true]);
    const other = await repository.findByExternalId(DEFAULT_TENANT, 'order-ses_round_trip', 'fp-2');
    assert.equal(other?.sameRequest, false);
    // Stored keyed, not as given.
    const [stored] = await store.db
      .selectFrom('sessions')
      .select('fingerprint')
      .where('id', '=', written.id)
      .execute();
    assert.ok(stored?.fingerprint.startsWith('h:') && !stored.fingerprint.includes('fp-1'));
    const events = await store.db.selectFrom('events').selectAll().where('id', '=', event.id).execute();
    // Stored sealed: the payload shows the people's numbers.
    assert.deepEqual(
      events.map((e) => ({ ...e, payload: vaultOf(store.db).open(e.payload) })),
      [event],
    );
    assert.ok(!events[0]?.payload.includes('+14155550101'));
  });

  it('participants added to an open session', async () => {
    const written = session('ses_added', ['+14155550103', '+14155550104']);
    const [first, second] = written.participants as [Session['participants'][0], Session['participants'][0]];
    await store.transaction(async (trx) => {
      await new SessionRepository(trx).insertOpened(
        { ...written, participants: [first] },
        'fp-2',
        eventRow(DEFAULT_TENANT, 'session.created', written, now),
      );
      await new SessionRepository(trx).insertParticipants(DEFAULT_TENANT, [second]);
    });
    assert.deepEqual(await new SessionRepository(store.db).get(DEFAULT_TENANT, written.id), written);
  });

  it('the routing lookup reads the caller, the session and the other participant', async () => {
    const written = session('ses_routed', ['+14155550105', '+14155550106']);
    await store.transaction((trx) =>
      new SessionRepository(trx).insertOpened(
        written,
        'fp-3',
        eventRow(DEFAULT_TENANT, 'session.created', written, now),
      ),
    );
    const lookup = new RouteLookup(store);
    const [a, b] = written.participants as [Session['participants'][0], Session['participants'][0]];
    // Asked in one turn: on PostgreSQL one batched statement, on SQLite back to back.
    const [fromA, fromB, stranger] = await Promise.all([
      lookup.find(a.number, a.proxyNumber),
      lookup.find(b.number, b.proxyNumber),
      lookup.find('+14155550199', a.proxyNumber),
    ]);
    const expected = (self: typeof a, other: typeof a) => ({
      participantId: self.id,
      sessionId: written.id,
      tenantId: DEFAULT_TENANT,
      mode: written.mode,
      number: self.number,
      canInitiate: self.canInitiate,
      revealNumber: self.revealNumber,
      expiresAt: written.expiresAt,
      record: written.record,
      channels: written.channels,
      maxCallSeconds: written.maxCallSeconds,
      ttlMode: written.ttlMode,
      ttlSeconds: written.ttlSeconds,
      callerBlocked: false,
      other: { participantId: other.id, number: other.number, proxyNumber: other.proxyNumber },
      otherBlocked: false,
    });
    assert.deepEqual(fromA, expected(a, b));
    assert.deepEqual(fromB, expected(b, a));
    assert.equal(stranger, undefined);
    // Alone in its turn, the same answer.
    assert.deepEqual(await lookup.find(a.number, a.proxyNumber), expected(a, b));

    // With B blocked by the session's tenant (and A by another tenant, which changes nothing here).
    const vault = vaultOf(store.db);
    const blocked = (number: string) => ({
      number_index: vault.index(number),
      number_sealed: vault.sealNumber(number),
    });
    await store.db.insertInto('tenants').values({ id: 'other', name: 'other', created_at: now }).execute();
    await store.db
      .insertInto('blocklist')
      .values([
        { tenant_id: DEFAULT_TENANT, ...blocked(b.number), reason: null, created_at: now },
        { tenant_id: 'other', ...blocked(a.number), reason: 'elsewhere', created_at: now },
      ])
      .execute();
    const blockedNow = await Promise.all([
      lookup.find(a.number, a.proxyNumber),
      lookup.find(b.number, b.proxyNumber),
    ]);
    const alone = [await lookup.find(a.number, a.proxyNumber), await lookup.find(b.number, b.proxyNumber)];
    for (const [fromA, fromB] of [blockedNow, alone]) {
      assert.deepEqual(fromA, { ...expected(a, b), otherBlocked: true });
      assert.deepEqual(fromB, { ...expected(b, a), callerBlocked: true });
    }
  });

  it('a proxy search takes the number it answers and counts it', async () => {
    const before = await new NumberRepository(store.db).get(DEFAULT_TENANT, 'num_0');
    const taken = await store.transaction((trx) =>
      new NumberRepository(trx).takeProxy(
        {
          use: 'direct',
          tenantId: DEFAULT_TENANT,
          carriers: ['sim'],
          country: 'US',
          region: '415',
          channels: ['voice'],
          people: [parsePhone('+14155550107', 'n').e164],
          preference: 'first-fit',
        },
        { id: 'ses_taking', held: new Set() },
        now + 5,
      ),
    );
    assert.deepEqual(taken, { id: 'num_0', number: proxies[0], provider: 'sim' });
    const after = await new NumberRepository(store.db).get(DEFAULT_TENANT, 'num_0');
    assert.deepEqual(after, { ...before, load: (before?.load ?? 0) + 1, updatedAt: now + 5 });
  });
});

describe('column lists', () => {
  it('refuse, at compile time, a list that misses a column of the table', () => {
    const columns = columnList<{ a: number; b: string }>();
    // @ts-expect-error `b` is missing: `npm run typecheck` fails if columnList stops checking this.
    const partial = columns(['a']);
    assert.deepEqual(columns(['b', 'a']), ['b', 'a']);
    assert.deepEqual(partial, ['a']);
  });
});

describe('SQLite transactions (sqlite)', () => {
  it('take the write lock when they begin (IMMEDIATE), before they write anything', async () => {
    const test = await (storeKinds()[0] as TestStoreKind).create();
    const store = await openStore(test.config, { keys: TEST_KEYS });
    const other = new Database((test.config as { file: string }).file);
    other.pragma('busy_timeout = 0');
    try {
      const trx = await store.db.startTransaction().execute();
      try {
        // Nothing written yet: with a deferred begin the other connection could still take the lock.
        assert.throws(() => other.exec('begin immediate'), { code: 'SQLITE_BUSY' });
      } finally {
        await trx.rollback().execute();
      }
      other.exec('begin immediate');
      other.exec('rollback');
    } finally {
      other.close();
      await store.close();
      await test.drop();
    }
  });
});
