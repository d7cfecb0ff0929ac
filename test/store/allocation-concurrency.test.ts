import assert from 'node:assert/strict';
import { after, before, beforeEach, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { numberOf, type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

/**
 * Allocation under real concurrency: eight Veil instances, each with its own PostgreSQL pool, over
 * one schema, fire hundreds of creates at once for overlapping people. The unique index and the
 * retry on conflict must keep the invariant, keep numbers.load exact, and refuse a create with
 * pool_exhausted exactly when the pool is full for its people — never with a conflict or a 500.
 */

const INSTANCES = 8;
const PER_INSTANCE = 40;
const ATTEMPTS = INSTANCES * PER_INSTANCE;
/** Connections per instance: 8 × 4 stays well inside PostgreSQL's default limit of 100. */
const POOL_SIZE = 4;
/** The pool of every scenario: small, so that it fills up. */
const POOL = ['+14155550201', '+14155550202', '+14155550203', '+12125550201', '+12125550202'];
const N = POOL.length;
const CROWD = [
  '+14155550101',
  '+14155550102',
  '+14155550103',
  '+12125550104',
  '+12125550105',
  '+16465550106',
];
const HUB = '+14155550100';
/** Distinct counterparts of the hub, one per attempt: each is in one session only. */
const COUNTERPARTS = Array.from({ length: ATTEMPTS }, (_, i) => `+1415555${1000 + i}`);

type Mode = 'per-participant' | 'shared';
interface Attempt {
  mode: Mode;
  people: [string, string];
}
interface Outcome extends Attempt {
  r: LightMyRequestResponse;
}

describeStores('allocation across concurrent instances', { only: 'postgres' }, (store) => {
  const apps: TestApp[] = [];
  const db = () => (apps[0] as TestApp).veil.store.db;

  before(async () => {
    // One after the other: each runs the (idempotent) migrations on the shared schema.
    for (let i = 0; i < INSTANCES; i++) apps.push(await testApp(store(), {}, { poolSize: POOL_SIZE }));
  });
  after(async () => {
    for (const t of apps) await t.close();
  });

  beforeEach(async () => {
    for (const t of apps) await t.veil.interactions.flush();
    for (const table of ['interactions', 'events', 'participants', 'sessions', 'numbers'] as const) {
      await db().deleteFrom(table).execute();
    }
    const r = await (apps[0] as TestApp).api(
      'POST',
      '/v1/numbers/import',
      POOL.map((number) => ({ number, provider: 'sim' })),
    );
    assert.equal(r.statusCode, 201, r.body);
  });

  /** Fires every create at once, spread over the instances. */
  async function fire(attempts: Attempt[], extra: Record<string, unknown> = {}): Promise<Outcome[]> {
    const responses = await Promise.all(
      attempts.map((a, i) =>
        (apps[i % INSTANCES] as TestApp).api('POST', '/v1/sessions', {
          mode: a.mode,
          ...extra,
          participants: a.people.map((number) => ({ number })),
        }),
      ),
    );
    return attempts.map((a, i) => ({ ...a, r: responses[i] as LightMyRequestResponse }));
  }

  /** Every create either opened its session or found the pool full; nothing else. */
  function assertOnlyCreatedOrExhausted(outcomes: Outcome[]): { created: Outcome[]; exhausted: Outcome[] } {
    const created = outcomes.filter((o) => o.r.statusCode === 201);
    const exhausted = outcomes.filter(
      (o) => o.r.statusCode === 503 && o.r.json().error.code === 'pool_exhausted',
    );
    const other = outcomes.filter((o) => !created.includes(o) && !exhausted.includes(o));
    assert.deepEqual(
      other.map((o) => `${o.r.statusCode} ${o.r.body}`),
      [],
      'every create answers 201 or 503 pool_exhausted',
    );
    return { created, exhausted };
  }

  /** The invariant and the load, straight from the tables. */
  async function assertDatabaseConsistent(): Promise<void> {
    const doubles = await db()
      .selectFrom('participants')
      .select(['number_index', 'proxy_number', (eb) => eb.fn.countAll().as('n')])
      .where('active', '=', 1)
      .groupBy(['number_index', 'proxy_number'])
      .having((eb) => eb.fn.countAll(), '>', 1)
      .execute();
    assert.deepEqual(doubles, [], 'a (real number, proxy) pair is held twice among active participants');
    const twiceOpen = await db()
      .selectFrom('participants as p')
      .innerJoin('sessions as s', 's.id', 'p.session_id')
      .select(['p.number_index', 'p.proxy_number'])
      .where('s.status', '=', 'open')
      .where('p.active', '=', 1)
      .groupBy(['p.number_index', 'p.proxy_number'])
      .having((eb) => eb.fn.count('s.id').distinct(), '>', 1)
      .execute();
    assert.deepEqual(twiceOpen, [], 'a person has two open sessions on the same proxy');
    const loads = await db()
      .selectFrom('numbers as n')
      .select((eb) => [
        'n.number',
        'n.load',
        eb
          .selectFrom('participants as p')
          .select((e) => e.fn.count<number>('p.session_id').distinct().as('c'))
          .where('p.active', '=', 1)
          .whereRef('p.proxy_number_id', '=', 'n.id')
          .as('holders'),
      ])
      .orderBy('n.number')
      .execute();
    assert.deepEqual(
      loads.map((l) => [l.number, Number(l.load)]),
      loads.map((l) => [l.number, Number(l.holders ?? 0)]),
      'numbers.load counts the open sessions holding each number',
    );
  }

  /** The proxies each person holds now, from the database. */
  async function heldByPerson(): Promise<Map<string, Set<string>>> {
    const rows = await db()
      .selectFrom('participants')
      .select(['number_sealed', 'proxy_number'])
      .where('active', '=', 1)
      .execute();
    const held = new Map<string, Set<string>>();
    for (const r of rows) {
      const number = numberOf(db(), r);
      held.set(number, (held.get(number) ?? new Set()).add(r.proxy_number));
    }
    return held;
  }

  async function sessionCount(): Promise<number> {
    const row = await db()
      .selectFrom('sessions')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('status', '=', 'open')
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  it(`opens ${ATTEMPTS} overlapping sessions at once without double-assigning, and refuses only when full`, async () => {
    // Every pair of the crowd, over and over, in both modes: far more demand than N numbers.
    const attempts: Attempt[] = Array.from({ length: ATTEMPTS }, (_, i) => {
      const a = i % CROWD.length;
      const b = (a + 1 + (Math.floor(i / CROWD.length) % (CROWD.length - 1))) % CROWD.length;
      return {
        mode: i % 3 === 0 ? 'shared' : 'per-participant',
        people: [CROWD[a] as string, CROWD[b] as string],
      };
    });
    const outcomes = await fire(attempts);
    const { created, exhausted } = assertOnlyCreatedOrExhausted(outcomes);
    await assertDatabaseConsistent();
    assert.equal(await sessionCount(), created.length);
    assert.ok(created.length > 0 && exhausted.length > 0, 'the run both fills the pool and overflows it');

    // Holdings only grow during the run, so a refusal is justified iff the pool is full for the
    // people now: one of them holds all N numbers (per-participant), or together they do (shared).
    const held = await heldByPerson();
    const of = (n: string) => held.get(n) ?? new Set<string>();
    for (const o of exhausted) {
      const [a, b] = o.people.map(of) as [Set<string>, Set<string>];
      const full = o.mode === 'shared' ? new Set([...a, ...b]).size === N : a.size === N || b.size === N;
      assert.ok(full, `${o.mode} [${o.people.join(', ')}] refused while the pool had room for them`);
    }
    for (const [person, proxies] of held) assert.ok(proxies.size <= N, `${person} holds ${proxies.size}`);
  });

  for (const mode of ['per-participant', 'shared'] as const) {
    it(`${mode}: one hub in ${ATTEMPTS} concurrent sessions gets exactly ${N}, the rest pool_exhausted`, async () => {
      // Each counterpart is in one session only, so only the hub can run out: exactly N succeed.
      const outcomes = await fire(COUNTERPARTS.map((c) => ({ mode, people: [HUB, c] })));
      const { created, exhausted } = assertOnlyCreatedOrExhausted(outcomes);
      assert.equal(created.length, N, `exactly ${N} sessions open for the hub`);
      assert.equal(exhausted.length, ATTEMPTS - N);
      await assertDatabaseConsistent();
      assert.equal(await sessionCount(), N);
      const hubProxies = created.map(
        (o) => o.r.json().participants.find((p: { number: string }) => p.number === HUB).proxyNumber,
      );
      assert.deepEqual([...hubProxies].sort(), [...POOL].sort(), 'the hub holds every number once');
      if (mode === 'shared') {
        for (const o of created) {
          const [p, q] = o.r.json().participants;
          assert.equal(p.proxyNumber, q.proxyNumber);
        }
      }
    });

    it(`${mode}: many hubs at once, each gets min(demand, ${N}) sessions — no refusal while a number is free`, async () => {
      // Hubs ask for fewer, exactly, or more sessions than the pool has numbers, all at once and
      // interleaved. A lost race must be retried, never reported as pool_exhausted: a hub asking
      // for N or fewer gets every session, a hub asking for more gets exactly N.
      const demands = [N, 3 * N, N - 1, N, 2 * N, 1];
      const hubs: { number: string; demand: number }[] = [];
      for (let k = 0, total = 0; total < ATTEMPTS; k++) {
        const demand = Math.min(demands[k % demands.length] as number, ATTEMPTS - total);
        hubs.push({ number: `+1212555${1000 + k}`, demand });
        total += demand;
      }
      // Round-robin over the hubs, so each hub's attempts are spread over instances and time.
      const attempts: Attempt[] = [];
      for (let round = 0; attempts.length < ATTEMPTS; round++) {
        for (const hub of hubs) {
          if (round < hub.demand) {
            attempts.push({ mode, people: [hub.number, COUNTERPARTS[attempts.length] as string] });
          }
        }
      }
      const outcomes = await fire(attempts);
      assertOnlyCreatedOrExhausted(outcomes);
      await assertDatabaseConsistent();
      const got = (hub: string) =>
        outcomes.filter((o) => o.people[0] === hub && o.r.statusCode === 201).length;
      assert.deepEqual(
        hubs.map((h) => `${h.number}: ${got(h.number)} of ${h.demand}`),
        hubs.map((h) => `${h.number}: ${Math.min(h.demand, N)} of ${h.demand}`),
      );
    });
  }

  /** Opens a per-participant session for two people and takes the second out: one place is free. */
  async function sessionWithRoom(t: TestApp, a: string, b: string): Promise<string> {
    const r = await t.api('POST', '/v1/sessions', { participants: [{ number: a }, { number: b }] });
    assert.equal(r.statusCode, 201, r.body);
    const { id, participants } = r.json();
    const out = await t.api('DELETE', `/v1/sessions/${id}/participants/${participants[1].id}`);
    assert.equal(out.statusCode, 200, out.body);
    return id;
  }

  /** Active participants per session, from the database. */
  async function activeBySession(): Promise<Map<string, string[]>> {
    const rows = await db()
      .selectFrom('participants')
      .select(['session_id', 'number_sealed'])
      .where('active', '=', 1)
      .execute();
    const map = new Map<string, string[]>();
    for (const r of rows) map.set(r.session_id, [...(map.get(r.session_id) ?? []), numberOf(db(), r)]);
    return map;
  }

  it(`${ATTEMPTS} concurrent adds to a session with one free place: exactly one gets in`, async () => {
    const id = await sessionWithRoom(apps[0] as TestApp, HUB, CROWD[0] as string);
    const responses = await Promise.all(
      COUNTERPARTS.map((number, i) =>
        (apps[i % INSTANCES] as TestApp).api('POST', `/v1/sessions/${id}/participants`, { number }),
      ),
    );
    const added = responses.filter((r) => r.statusCode === 201);
    const refused = responses.filter((r) => r.statusCode === 409 && r.json().error.code === 'conflict');
    assert.deepEqual(
      responses.filter((r) => !added.includes(r) && !refused.includes(r)).map((r) => r.body),
      [],
      'every add answers 201 or 409 conflict',
    );
    const inSession = (await activeBySession()).get(id) ?? [];
    assert.equal(inSession.length, 2, `the session has two participants, not ${inSession.length}`);
    assert.equal(added.length, 1, 'exactly one add gets the free place');
    await assertDatabaseConsistent();
  });

  it('a close racing an add leaves no participant in the closed session', async () => {
    const t = apps[0] as TestApp;
    const ids: string[] = [];
    for (let i = 0; i < PER_INSTANCE; i++) {
      ids.push(await sessionWithRoom(t, COUNTERPARTS[2 * i] as string, COUNTERPARTS[2 * i + 1] as string));
    }
    const responses = await Promise.all(
      ids.flatMap((id, i) => [
        (apps[(2 * i) % INSTANCES] as TestApp).api('DELETE', `/v1/sessions/${id}`),
        (apps[(2 * i + 1) % INSTANCES] as TestApp).api('POST', `/v1/sessions/${id}/participants`, {
          number: COUNTERPARTS[ATTEMPTS - 1 - i],
        }),
      ]),
    );
    for (const [i, r] of responses.entries()) {
      const ok = i % 2 === 0 ? r.statusCode === 200 : r.statusCode === 201 || r.statusCode === 409;
      assert.ok(ok, `${i % 2 === 0 ? 'close' : 'add'} answered ${r.statusCode} ${r.body}`);
    }
    const active = await activeBySession();
    const leftOver = ids.filter((id) => active.has(id)).map((id) => `${id}: ${active.get(id)?.join(', ')}`);
    assert.deepEqual(leftOver, [], 'closed sessions still hold participants (and their proxies)');
    await assertDatabaseConsistent();
    const loads = await db()
      .selectFrom('numbers')
      .select(['number', 'load'])
      .where('load', '<>', 0)
      .execute();
    assert.deepEqual(loads, [], 'every session is closed, so no number is held');
  });

  it(`the same externalId and body ${ATTEMPTS} times at once opens one session; the rest get it with 200`, async () => {
    const outcomes = await fire(
      Array.from({ length: ATTEMPTS }, () => ({
        mode: 'per-participant',
        people: [CROWD[0] as string, CROWD[3] as string],
      })),
      { externalId: 'order-42', ttlSeconds: 3600 },
    );
    const statuses = outcomes.map((o) => o.r.statusCode);
    assert.deepEqual(
      outcomes.filter((o) => o.r.statusCode !== 200 && o.r.statusCode !== 201).map((o) => o.r.body),
      [],
      'only 201 and 200',
    );
    assert.equal(statuses.filter((s) => s === 201).length, 1, 'exactly one create opens the session');
    const ids = new Set(outcomes.map((o) => o.r.json().id));
    assert.equal(ids.size, 1, 'every answer is the same session');
    const sessions = await db().selectFrom('sessions').select(['id', 'external_id', 'status']).execute();
    assert.deepEqual(sessions, [{ id: [...ids][0], external_id: 'order-42', status: 'open' }]);
    await assertDatabaseConsistent();
    const participants = await db().selectFrom('participants').select('id').execute();
    assert.equal(participants.length, 2, 'no participants left behind by the creates that lost');
  });
});
