import assert from 'node:assert/strict';
import { mkdirSync, renameSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { ConflictError } from '../../src/domain/errors.ts';
import type { SessionWriter } from '../../src/services/session-writer.ts';
import type { Thread } from '../../src/thread.ts';
import { payloadOf, type TestApp, testApp } from '../support/app.ts';
import { storeKinds, type TestStore, type TestStoreKind } from '../support/stores.ts';

const CUSTOMER = '+14155550123';
const COURIER = '+14155550187';
const POOL = ['+14155550150', '+14155550151', '+14155550152', '+14155550153'];

const pair = (customer = CUSTOMER, courier = COURIER) => [
  { number: customer, label: 'customer' },
  { number: courier, label: 'courier' },
];

/** The session writer thread of the app (it runs one on a SQLite file). */
function threadOf(t: TestApp): Thread<SessionWriter> {
  assert.ok(t.veil.sessionThread, 'the app runs no session writer thread');
  return t.veil.sessionThread;
}

/** How many calls the thread holds: what it was asked and has not answered. */
const callsHeld = (thread: Thread<SessionWriter>) =>
  (thread as unknown as { calls: Map<number, unknown> }).calls.size;

for (const kind of storeKinds()) {
  describe(`session writer thread (${kind.name})`, () => {
    let store: TestStore;
    let t: TestApp;
    before(async () => {
      store = await kind.create();
      t = await testApp(store);
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
      it('is not used: PostgreSQL writes from any thread without blocking it', async () => {
        assert.equal(t.veil.sessionThread, undefined);
        const r = await t.api('POST', '/v1/sessions', { participants: pair() });
        assert.equal(r.statusCode, 201, r.body);
      });
      return;
    }

    it('runs the sessions writes on the thread, and the server reads what it wrote', async () => {
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
      assert.ok(events.some((e) => payloadOf(t.veil.store.db, e.payload).id === session.id));
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
      t.clock.advance(2);
      assert.ok((await t.veil.sessions.expireDue()) >= 1);
      assert.equal((await t.api('GET', `/v1/sessions/${s.id}`)).json().status, 'expired');
    });

    it('fails the writes a dying thread held, keeps none of them, and starts a new thread', {
      timeout: 30_000,
    }, async () => {
      const lines = t.logs.length;
      const before = await t.veil.store.db.selectFrom('sessions').select('id').execute();
      // Another connection holds the write lock, so the thread takes every create and commits none.
      const blocker = new Database((store.config as { file: string }).file);
      blocker.exec('begin immediate');
      const thread = threadOf(t);
      let pending: Promise<{ statusCode: number }>[] = [];
      try {
        pending = Array.from({ length: 20 }, (_, i) => {
          const n = String(i).padStart(2, '0');
          return t.api('POST', '/v1/sessions', { participants: pair(`+141555503${n}`, `+141555504${n}`) });
        });
        while (callsHeld(thread) < pending.length) await sleep(5);
        await thread.terminate();
      } finally {
        blocker.exec('rollback');
        blocker.close();
      }
      const answers = await Promise.all(pending);
      assert.deepEqual(new Set(answers.map((a) => a.statusCode)), new Set([503]));
      assert.match(
        (answers[0] as unknown as { json(): { error: { message: string } } }).json().error.message,
        /session writer thread stopped/,
      );
      assert.equal(
        (await t.veil.store.db.selectFrom('sessions').select('id').execute()).length,
        before.length,
      );
      assert.deepEqual(await inconsistencies(), { loads: 0, empty: 0 });
      assert.ok(t.logs.slice(lines).some((l) => l.includes('session writer thread failed')));
      const later = await t.api('POST', '/v1/sessions', { participants: pair('+14155550126') });
      assert.equal(later.statusCode, 201, later.body);
    });
  });
}

describe('session writer thread that cannot be replaced (sqlite)', () => {
  it('fails writes at once and makes /readyz answer 503 with the reason', { timeout: 30_000 }, async () => {
    const store = await (storeKinds()[0] as TestStoreKind).create();
    const t = await testApp(store);
    const file = (store.config as { file: string }).file;
    try {
      assert.equal((await t.api('GET', '/readyz')).statusCode, 200);
      // The name no longer leads to a database file (the server's own connections keep theirs open).
      renameSync(file, `${file}.moved`);
      mkdirSync(file);
      await threadOf(t).terminate();
      let ready = await t.api('GET', '/readyz');
      for (let i = 0; i < 100 && !/is down/.test(ready.json().status); i++) {
        await sleep(50);
        ready = await t.api('GET', '/readyz');
      }
      assert.equal(ready.statusCode, 503, t.logs.slice(-5).join('\n'));
      assert.match(ready.json().status, /session writer thread is down/);
      const r = await t.api('POST', '/v1/sessions', { participants: pair() });
      assert.equal(r.statusCode, 503);
      assert.equal(r.json().error.code, 'unavailable');
      assert.match(r.json().error.message, /session writer thread is down/);
      assert.ok(t.logs.some((l) => l.includes('session writer thread is down')));
    } finally {
      await t.close();
      await store.drop();
    }
  });
});
