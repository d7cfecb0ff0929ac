import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'node:worker_threads';
import { ConflictError } from '../../src/domain/errors.ts';
import { type SessionThread, ThreadedSessionService } from '../../src/services/session-thread.ts';
import { SessionService } from '../../src/services/sessions.ts';
import { type TestApp, testApp } from '../support/app.ts';
import { storeKinds, type TestStore } from '../support/stores.ts';

const CUSTOMER = '+14155550123';
const COURIER = '+14155550187';
const POOL = ['+14155550150', '+14155550151', '+14155550152', '+14155550153'];

const pair = (customer = CUSTOMER, courier = COURIER) => [
  { number: customer, label: 'customer' },
  { number: courier, label: 'courier' },
];

/** The thread behind a ThreadedSessionService: its worker (to make it die as a crash would) and its calls in flight. */
function threadOf(t: TestApp): { worker: Worker; waiting: Map<number, unknown> } {
  const thread = (t.veil.sessions as unknown as { thread: SessionThread }).thread;
  return thread as unknown as { worker: Worker; waiting: Map<number, unknown> };
}

for (const kind of storeKinds()) {
  describe(`session writer thread (${kind.name})`, () => {
    let store: TestStore;
    let t: TestApp;
    before(async () => {
      store = await kind.create();
      t = await testApp(store, {}, { sessionThread: true });
      for (const number of POOL) {
        assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
      }
    });
    after(async () => {
      await t.close();
      await store.drop();
    });

    /** Open sessions whose participants do not match their numbers' load, or sessions without participants. */
    const inconsistencies = async () => {
      const db = t.veil.store.db;
      const numbers = await db.selectFrom('numbers').select(['id', 'load']).execute();
      const held = await db
        .selectFrom('participants')
        .innerJoin('sessions', 'sessions.id', 'participants.session_id')
        .where('sessions.status', '=', 'open')
        .where('participants.active', '=', 1)
        .select(['participants.proxy_number_id as id'])
        .execute();
      const counts = new Map<string, number>();
      for (const { id } of held) counts.set(id, (counts.get(id) ?? 0) + 1);
      const loads = numbers.filter((n) => Number(n.load) !== (counts.get(n.id) ?? 0)).length;
      const empty = await db
        .selectFrom('sessions')
        .where('status', '=', 'open')
        .where((eb) =>
          eb.not(
            eb.exists(eb.selectFrom('participants').whereRef('session_id', '=', 'sessions.id').select('id')),
          ),
        )
        .select('id')
        .execute();
      return { loads, empty: empty.length };
    };

    if (kind.name === 'postgres') {
      it('is not used: PostgreSQL writes from any thread without blocking it', () => {
        assert.ok(!(t.veil.sessions instanceof ThreadedSessionService));
        assert.ok(t.veil.sessions instanceof SessionService);
      });
      return;
    }

    it('runs the sessions writes on the thread, and the server reads what it wrote', async () => {
      assert.ok(t.veil.sessions instanceof ThreadedSessionService);
      const r = await t.api('POST', '/v1/sessions', { participants: pair(), externalId: 'order-1' });
      assert.equal(r.statusCode, 201, r.body);
      const session = r.json();
      assert.equal(session.participants.length, 2);
      for (const p of session.participants) assert.ok(POOL.includes(p.proxyNumber), p.proxyNumber);
      const read = await t.api('GET', `/v1/sessions/${session.id}`);
      assert.equal(read.statusCode, 200);
      assert.deepEqual(read.json().participants, session.participants);
      const events = await t.veil.store.db
        .selectFrom('events')
        .where('type', '=', 'session.created')
        .select('payload')
        .execute();
      assert.ok(events.some((e) => JSON.parse(e.payload).id === session.id));
    });

    it('answers an idempotent repeat with the same session, and a different request with 409', async () => {
      const first = await t.api('POST', '/v1/sessions', { participants: pair(), externalId: 'order-2' });
      assert.equal(first.statusCode, 201, first.body);
      const again = await t.api('POST', '/v1/sessions', { participants: pair(), externalId: 'order-2' });
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(again.json().id, first.json().id);
      const other = await t.api('POST', '/v1/sessions', {
        participants: pair(CUSTOMER, '+14155550188'),
        externalId: 'order-2',
      });
      assert.equal(other.statusCode, 409, other.body);
      assert.equal(other.json().error.code, 'conflict');
    });

    it('gives back the domain error as its own class, with its code and field', async () => {
      await assert.rejects(
        t.veil.sessions.create('default', { participants: pair(), externalId: 'order-2', ttlSeconds: 60 }),
        (error) => error instanceof ConflictError && error.code === 'conflict',
      );
      const bad = await t.api('POST', '/v1/sessions', { participants: pair('+1415555', COURIER) });
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.json().error.code, 'invalid_request');
      assert.doesNotMatch(bad.body, /1415555/);
    });

    it('renews, changes participants and closes through the thread', async () => {
      const s = (await t.api('POST', '/v1/sessions', { participants: pair('+14155550124') })).json();
      const renewed = await t.api('PATCH', `/v1/sessions/${s.id}`, { ttlSeconds: 600 });
      assert.equal(renewed.statusCode, 200, renewed.body);
      const courier = s.participants.find((p: { label: string }) => p.label === 'courier');
      const removed = await t.api('DELETE', `/v1/sessions/${s.id}/participants/${courier.id}`);
      assert.equal(removed.statusCode, 200, removed.body);
      assert.equal(removed.json().participants.length, 1);
      const added = await t.api('POST', `/v1/sessions/${s.id}/participants`, {
        number: '+14155550189',
        label: 'courier',
      });
      assert.equal(added.statusCode, 201, added.body);
      const closed = await t.api('DELETE', `/v1/sessions/${s.id}`);
      assert.equal(closed.statusCode, 200, closed.body);
      assert.equal(closed.json().status, 'closed');
      assert.equal((await t.api('DELETE', `/v1/sessions/${s.id}/participants/nope`)).statusCode, 409);
    });

    it('answers pool_exhausted when no number is left for a person', async () => {
      // The courier already holds a proxy in three open sessions; each new one needs another.
      const busy = '+14155550190';
      const codes: number[] = [];
      for (let i = 0; i < POOL.length + 1; i++) {
        codes.push(
          (await t.api('POST', '/v1/sessions', { participants: pair(`+1415555020${i}`, busy) })).statusCode,
        );
      }
      assert.deepEqual(codes, [201, 201, 201, 201, 503]);
    });

    it('expires due sessions when the sweeper asks', async () => {
      const s = (
        await t.api('POST', '/v1/sessions', { participants: pair('+14155550125'), ttlSeconds: 1 })
      ).json();
      await sleep(1_100);
      assert.ok((await t.veil.sessions.expireDue()) >= 1);
      assert.equal((await t.api('GET', `/v1/sessions/${s.id}`)).json().status, 'expired');
    });

    it('fails the writes a dying thread held, keeps nothing half-done, and starts a new thread', {
      timeout: 30_000,
    }, async () => {
      const lines = t.logs.length;
      const pending = Array.from({ length: 40 }, (_, i) => {
        const n = String(i).padStart(2, '0');
        return t.api('POST', '/v1/sessions', { participants: pair(`+141555503${n}`, `+141555504${n}`) });
      });
      const thread = threadOf(t);
      while (thread.waiting.size < 10) await new Promise((resolve) => setImmediate(resolve));
      await thread.worker.terminate();
      const answers = await Promise.all(pending);
      const statuses = new Set(answers.map((a) => a.statusCode));
      assert.ok(
        [...statuses].every((s) => s === 201 || s === 500 || s === 503),
        [...statuses].join(),
      );
      assert.ok(
        answers.some((a) => a.statusCode === 500),
        'some writes were in the thread when it died',
      );
      assert.deepEqual(await inconsistencies(), { loads: 0, empty: 0 });
      for (const a of answers.filter((x) => x.statusCode === 201)) {
        assert.equal((await t.api('GET', `/v1/sessions/${a.json().id}`)).json().participants.length, 2);
      }
      assert.ok(t.logs.slice(lines).some((l) => l.includes('session writer thread failed')));
      const later = await t.api('POST', '/v1/sessions', { participants: pair('+14155550126') });
      assert.equal(later.statusCode, 201, later.body);
    });
  });
}
