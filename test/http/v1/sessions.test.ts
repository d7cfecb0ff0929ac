import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DEFAULT_REJECT_MESSAGE } from '../../../src/domain/routing.ts';
import { type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

/** What a refused caller hears when nothing else is configured. */
const REFUSED = { text: DEFAULT_REJECT_MESSAGE };

const CUSTOMER = '+14155550123';
const COURIER = '+14155550187';
const COURIER_2 = '+14155550188';

interface ParticipantView {
  id: string;
  number: string;
  proxyNumber: string;
  label: string | null;
}

// A store for each test: the tests count rows, use up the pool and move the clock.
describeStores('/v1/sessions', { perTest: true }, (store) => {
  let t: TestApp;
  const pool = ['+14155550150', '+14155550151', '+14155550152', '+12125550150'];
  beforeEach(async () => {
    t = await testApp(store());
    for (const number of pool)
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
  });
  afterEach(async () => {
    await t.close();
  });

  const rows = async (table: 'sessions' | 'participants' | 'events') =>
    Number(
      (
        await t.veil.store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const create = (body: Record<string, unknown>) => t.api('POST', '/v1/sessions', body);
  /** The open sessions counted on the pool's numbers, as GET /v1/numbers shows them. */
  const totalLoad = async () =>
    (await t.api('GET', '/v1/numbers?limit=100'))
      .json()
      .data.reduce((sum: number, n: { load: number }) => sum + n.load, 0);
  const pair = (a = CUSTOMER, b = COURIER) => [
    { number: a, label: 'customer' },
    { number: b, label: 'courier' },
  ];

  describe('POST /v1/sessions', () => {
    it('opens a session with a local proxy per participant, and writes session.created', async () => {
      const events = await rows('events');
      const r = await create({ participants: pair(), metadata: { order: 'o-1' } });
      assert.equal(r.statusCode, 201, r.body);
      const s = r.json();
      assert.equal(s.status, 'open');
      assert.equal(s.mode, 'per-participant');
      assert.deepEqual(s.metadata, { order: 'o-1' });
      assert.equal(s.participants.length, 2);
      for (const p of s.participants as ParticipantView[]) {
        // Same region (415) preferred over the 212 number.
        assert.ok(pool.slice(0, 3).includes(p.proxyNumber), p.proxyNumber);
      }
      assert.equal(Date.parse(s.expiresAt) - t.clock.now, 86_400_000);
      assert.equal(await rows('events'), events + 1);
      await t.api('DELETE', `/v1/sessions/${s.id}`);
    });

    it('is idempotent on externalId: same body → 200 same session, different body → 409', async () => {
      const body = { externalId: 'order-42', ttlSeconds: 600, participants: pair() };
      const first = await create(body);
      assert.equal(first.statusCode, 201);
      const sessions = await rows('sessions');
      t.clock.advance(5);
      const again = await create({ ...body, participants: [...body.participants] });
      assert.equal(again.statusCode, 200);
      assert.equal(again.json().id, first.json().id);
      assert.deepEqual(again.json().participants, first.json().participants);
      const other = await create({ ...body, participants: pair(CUSTOMER, COURIER_2) });
      assert.equal(other.statusCode, 409);
      assert.equal(other.json().error.code, 'conflict');
      assert.equal(await rows('sessions'), sessions);
      await t.api('DELETE', `/v1/sessions/${first.json().id}`);
    });

    // An externalId names one session for ever (DESIGN §2). This replaces the earlier rule, under
    // which a closed or expired order's externalId opened a new session: a retry that arrived late
    // then reopened a finished order.
    describe('externalId of a finished session', () => {
      const body = { externalId: 'order-7', ttlSeconds: 600, participants: pair() };
      const state = async () => ({
        sessions: await rows('sessions'),
        participants: await rows('participants'),
        events: await rows('events'),
        load: await totalLoad(),
      });

      it('answers a retry after the close with 200 and the closed session, taking no proxy', async () => {
        const first = (await create(body)).json();
        const closed = (await t.api('DELETE', `/v1/sessions/${first.id}`)).json();
        const before = await state();
        assert.equal(before.load, 0);
        t.clock.advance(3600);
        const retry = await create(body);
        assert.equal(retry.statusCode, 200, retry.body);
        assert.deepEqual(retry.json(), closed);
        assert.equal(retry.json().status, 'closed');
        assert.deepEqual(await state(), before, 'no session, participant, event or load was added');
        const call = await t.api('POST', '/v1/route', {
          from: CUSTOMER,
          to: first.participants[0].proxyNumber,
          channel: 'voice',
        });
        assert.equal(call.json().action, 'reject', 'the finished order routes nothing');
      });

      it('answers a retry after the expiry with 200 and status expired, swept or not, never reopening', async () => {
        const first = (await create(body)).json();
        t.clock.advance(601);
        const before = await state();
        // Not swept yet: the row is still open, the session is expired all the same.
        const lingering = await create(body);
        assert.equal(lingering.statusCode, 200, lingering.body);
        assert.equal(lingering.json().id, first.id);
        assert.equal(lingering.json().status, 'expired');
        assert.deepEqual(await state(), before);
        assert.equal(await t.veil.sessions.expireDue(), 1);
        const swept = await create(body);
        assert.equal(swept.statusCode, 200, swept.body);
        assert.equal(swept.json().id, first.id);
        assert.equal(swept.json().status, 'expired');
        assert.ok(swept.json().closedAt);
        assert.equal(await rows('sessions'), before.sessions);
        assert.equal(await totalLoad(), 0);
      });

      it('refuses a different body for a finished session’s externalId with 409, writing nothing', async () => {
        const first = (await create(body)).json();
        await t.api('DELETE', `/v1/sessions/${first.id}`);
        const before = await state();
        const other = await create({ ...body, participants: pair(CUSTOMER, COURIER_2) });
        assert.equal(other.statusCode, 409, other.body);
        assert.equal(other.json().error.code, 'conflict');
        assert.match(other.json().error.message, new RegExp(first.id));
        assert.deepEqual(await state(), before);
        const listed = (await t.api('GET', '/v1/sessions?externalId=order-7')).json();
        assert.deepEqual(
          listed.data.map((s: { id: string }) => s.id),
          [first.id],
        );
      });

      it('opens one session for concurrent creates of one externalId; the rest get it (200) or 409', async () => {
        const other = { ...body, participants: pair(CUSTOMER, COURIER_2) };
        const bodies = Array.from({ length: 12 }, (_, i) => (i % 4 === 3 ? other : body));
        const answers = await Promise.all(bodies.map(create));
        const all = answers.map((r) => `${r.statusCode} ${r.body}`).join('\n');
        const opened = answers.findIndex((r) => r.statusCode === 201);
        assert.ok(opened >= 0, all);
        const winner = answers[opened]?.json();
        answers.forEach((r, i) => {
          if (i === opened) return;
          if (bodies[i] === bodies[opened]) {
            assert.equal(r.statusCode, 200, all);
            assert.equal(r.json().id, winner.id);
          } else {
            assert.equal(r.statusCode, 409, all);
            assert.equal(r.json().error.code, 'conflict');
          }
        });
        assert.equal(await rows('sessions'), 1);
        assert.equal(await rows('participants'), 2);
        // Each distinct proxy counts once. Under PostgreSQL the losers lock numbers while they
        // allocate (SKIP LOCKED), so the winner may find only its own first proxy free for the
        // second participant: the session then holds one number, which still keeps the invariant.
        const proxies = new Set(winner.participants.map((p: ParticipantView) => p.proxyNumber));
        assert.equal(await totalLoad(), proxies.size);
      });
    });

    it('uses one proxy for both participants in shared mode', async () => {
      const r = await create({ mode: 'shared', participants: pair() });
      assert.equal(r.statusCode, 201, r.body);
      const [a, b] = r.json().participants as ParticipantView[];
      assert.equal(a?.proxyNumber, b?.proxyNumber);
      await t.api('DELETE', `/v1/sessions/${r.json().id}`);
    });

    it('refuses bad input with the documented code, writing nothing', async () => {
      const before = [await rows('sessions'), await rows('participants'), await rows('events')];
      const cases: [Record<string, unknown>, string][] = [
        [{ participants: [{ number: '4155550123' }, { number: COURIER }] }, 'participants/0/number'],
        [{ participants: [{ number: '+1415' }, { number: COURIER }] }, 'participants/0/number'],
        [{ mode: 'triangle', participants: pair() }, 'mode'],
        [{ participants: [{ number: CUSTOMER }] }, 'participants'],
        [{ participants: [{ number: CUSTOMER }, { number: CUSTOMER }] }, 'participants'],
        [{ participants: [] }, 'participants'],
        [{ participants: pair(), ttlSeconds: 0 }, 'ttlSeconds'],
        [{ participants: pair(), ttlSeconds: 60, expiresAt: '2030-01-01T00:00:00Z' }, 'expiresAt'],
        [{ participants: pair(), expiresAt: '2020-01-01T00:00:00Z' }, 'expiresAt'],
        [{ participants: pair(), unknown: true }, 'unknown'],
        [{ mode: 'shared', participants: pair(CUSTOMER, '+442079460123') }, 'participants'],
      ];
      for (const [body, field] of cases) {
        const r = await create(body);
        assert.equal(r.statusCode, 400, `${JSON.stringify(body)} → ${r.statusCode} ${r.body}`);
        assert.equal(r.json().error.code, 'invalid_request');
        assert.equal(r.json().error.field, field, JSON.stringify(body));
      }
      assert.deepEqual([await rows('sessions'), await rows('participants'), await rows('events')], before);
    });

    it('answers 503 pool_exhausted when no number of the country is free, writing nothing', async () => {
      const sessions = await rows('sessions');
      const r = await create({ participants: pair('+442079460123', '+442079460187') });
      assert.equal(r.statusCode, 503);
      assert.equal(r.json().error.code, 'pool_exhausted');
      assert.doesNotMatch(r.body, /2079460123|2079460187/);
      assert.equal(await rows('sessions'), sessions);
    });

    it('never gives a person the same proxy twice, and needs no more numbers than Δ', async () => {
      // The customer in 4 sessions with 4 couriers: Δ = 4 = the US pool; a fifth must fail.
      const ids: string[] = [];
      const proxies = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const r = await create({ participants: pair(CUSTOMER, `+1415555020${i}`) });
        assert.equal(r.statusCode, 201, r.body);
        ids.push(r.json().id);
        proxies.add(
          (r.json().participants as ParticipantView[]).find((p) => p.number === CUSTOMER)?.proxyNumber ?? '',
        );
      }
      assert.equal(proxies.size, 4);
      const fifth = await create({ participants: pair(CUSTOMER, '+14155550209') });
      assert.equal(fifth.statusCode, 503);
      for (const id of ids) await t.api('DELETE', `/v1/sessions/${id}`);
    });
  });

  describe('GET /v1/sessions', () => {
    it('reads one session and lists by externalId, status and cursor', async () => {
      const made: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await create({
          externalId: `list-${i}`,
          participants: pair(CUSTOMER, `+1415555030${i}`),
        });
        made.push(r.json().id);
      }
      const one = await t.api('GET', `/v1/sessions/${made[0]}`);
      assert.equal(one.statusCode, 200);
      assert.equal(one.json().externalId, 'list-0');
      const byExternal = await t.api('GET', '/v1/sessions?externalId=list-1');
      assert.deepEqual(
        byExternal.json().data.map((s: { id: string }) => s.id),
        [made[1]],
      );
      const page1 = await t.api('GET', '/v1/sessions?status=open&limit=2');
      assert.equal(page1.json().data.length, 2);
      assert.deepEqual(
        page1.json().data.map((s: { id: string }) => s.id),
        [made[2], made[1]],
      );
      const page2 = await t.api('GET', `/v1/sessions?status=open&limit=2&cursor=${page1.json().nextCursor}`);
      assert.deepEqual(
        page2.json().data.map((s: { id: string }) => s.id),
        [made[0]],
      );
      assert.equal(page2.json().nextCursor, null);
      await t.api('DELETE', `/v1/sessions/${made[0]}`);
      const closed = await t.api('GET', '/v1/sessions?status=closed&externalId=list-0');
      assert.equal(closed.json().data[0].status, 'closed');
      for (const id of made) await t.api('DELETE', `/v1/sessions/${id}`);
    });

    it('answers 404 for an unknown id', async () => {
      const r = await t.api('GET', '/v1/sessions/ses_unknown');
      assert.equal(r.statusCode, 404);
      assert.equal(r.json().error.code, 'not_found');
    });
  });

  describe('PATCH /v1/sessions/:id', () => {
    it('renews and changes record and metadata; a closed session cannot be renewed', async () => {
      const s = (await create({ participants: pair(), ttlSeconds: 60 })).json();
      const r = await t.api('PATCH', `/v1/sessions/${s.id}`, {
        ttlSeconds: 3600,
        record: true,
        metadata: { a: 1 },
      });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(Date.parse(r.json().expiresAt), t.clock.now + 3_600_000);
      assert.equal(r.json().record, true);
      assert.deepEqual(r.json().metadata, { a: 1 });
      assert.equal((await t.api('GET', `/v1/sessions/${s.id}`)).json().record, true);
      await t.api('DELETE', `/v1/sessions/${s.id}`);
      const late = await t.api('PATCH', `/v1/sessions/${s.id}`, { ttlSeconds: 60 });
      assert.equal(late.statusCode, 409);
    });
  });

  describe('DELETE /v1/sessions/:id', () => {
    it('closes, releases the proxies at once, and is idempotent', async () => {
      const s = (await create({ participants: pair() })).json();
      const load = async () =>
        (await t.api('GET', '/v1/numbers?limit=100'))
          .json()
          .data.reduce((sum: number, n: { load: number }) => sum + n.load, 0);
      assert.equal(await load(), 2);
      const events = await rows('events');
      const closed = await t.api('DELETE', `/v1/sessions/${s.id}`);
      assert.equal(closed.statusCode, 200);
      assert.equal(closed.json().status, 'closed');
      assert.equal(closed.json().participants.length, 2);
      assert.equal(await load(), 0);
      assert.equal(await rows('events'), events + 1);
      const again = await t.api('DELETE', `/v1/sessions/${s.id}`);
      assert.equal(again.statusCode, 200);
      assert.equal(await rows('events'), events + 1);
      const route = await t.api('POST', '/v1/route', {
        from: CUSTOMER,
        to: s.participants[0].proxyNumber,
        channel: 'voice',
      });
      assert.equal(route.json().action, 'reject');
    });
  });

  describe('expiry', () => {
    it('an expired session routes nothing before any sweeper runs, frees its proxies, then the sweeper ends it', async () => {
      const s = (await create({ participants: pair(), ttlSeconds: 60 })).json();
      const [customer] = s.participants as ParticipantView[];
      const call = () =>
        t.api('POST', '/v1/route', { from: CUSTOMER, to: customer?.proxyNumber, channel: 'voice' });
      assert.equal((await call()).json().action, 'connect');
      t.clock.advance(61);
      assert.deepEqual((await call()).json(), {
        action: 'reject',
        reason: 'no_session',
        message: REFUSED,
        sessionId: null,
      });
      assert.equal((await t.api('GET', `/v1/sessions/${s.id}`)).json().status, 'expired');
      assert.equal((await t.api('PATCH', `/v1/sessions/${s.id}`, { ttlSeconds: 60 })).statusCode, 409);
      assert.equal(await t.veil.sessions.expireDue(), 1);
      const swept = (await t.api('GET', `/v1/sessions/${s.id}`)).json();
      assert.equal(swept.status, 'expired');
      assert.ok(swept.closedAt);
      assert.equal(await t.veil.sessions.expireDue(), 0);
    });

    it('a create ends the expired sessions of its people, and only those', async () => {
      const stale = (await create({ participants: pair(CUSTOMER, COURIER), ttlSeconds: 60 })).json();
      const open = (await create({ participants: pair('+14155550124', COURIER), ttlSeconds: 3600 })).json();
      const other = (await create({ participants: pair('+14155550125', COURIER_2), ttlSeconds: 60 })).json();
      t.clock.advance(61);
      const fresh = await create({ participants: pair('+14155550126', COURIER) });
      assert.equal(fresh.statusCode, 201, fresh.body);
      const ended = (await t.api('GET', `/v1/sessions/${stale.id}`)).json();
      assert.equal(ended.status, 'expired');
      assert.equal(Date.parse(ended.closedAt), t.clock.now);
      assert.equal((await t.api('GET', `/v1/sessions/${open.id}`)).json().status, 'open');
      // Nobody of the new session was in this one: it waits for the sweeper.
      assert.equal((await t.api('GET', `/v1/sessions/${other.id}`)).json().closedAt, null);
      assert.equal(await t.veil.sessions.expireDue(), 1);
      for (const s of [open, fresh.json()]) await t.api('DELETE', `/v1/sessions/${s.id}`);
    });

    it('a sliding session lives on while it is used', async () => {
      const s = (await create({ participants: pair(), ttlSeconds: 100, ttlMode: 'sliding' })).json();
      const [customer] = s.participants as ParticipantView[];
      const call = () =>
        t.api('POST', '/v1/route', { from: CUSTOMER, to: customer?.proxyNumber, channel: 'voice' });
      for (let i = 0; i < 3; i++) {
        t.clock.advance(80);
        assert.equal((await call()).json().action, 'connect', `call ${i}`);
        await t.veil.interactions.flush();
      }
      t.clock.advance(101);
      assert.equal((await call()).json().action, 'reject');
      await t.api('DELETE', `/v1/sessions/${s.id}`);
    });
  });

  describe('participants', () => {
    it('replaces the courier: remove then add; the old courier is cut off, the new one connected', async () => {
      const s = (await create({ participants: pair() })).json();
      const [customer, courier] = s.participants as ParticipantView[];
      const full = await t.api('POST', `/v1/sessions/${s.id}/participants`, { number: COURIER_2 });
      assert.equal(full.statusCode, 409);
      const removed = await t.api('DELETE', `/v1/sessions/${s.id}/participants/${courier?.id}`);
      assert.equal(removed.statusCode, 200, removed.body);
      assert.equal(removed.json().participants.length, 1);
      const lonely = await t.api('POST', '/v1/route', {
        from: CUSTOMER,
        to: customer?.proxyNumber,
        channel: 'voice',
      });
      assert.equal(lonely.json().action, 'reject');
      assert.equal(lonely.json().reason, 'no_counterpart');
      const added = await t.api('POST', `/v1/sessions/${s.id}/participants`, {
        number: COURIER_2,
        label: 'courier',
      });
      assert.equal(added.statusCode, 201, added.body);
      const courier2: ParticipantView = added.json();
      const call = await t.api('POST', '/v1/route', {
        from: CUSTOMER,
        to: customer?.proxyNumber,
        channel: 'voice',
      });
      assert.deepEqual([call.json().to, call.json().callerId], [COURIER_2, courier2.proxyNumber]);
      const old = await t.api('POST', '/v1/route', {
        from: COURIER,
        to: courier?.proxyNumber,
        channel: 'voice',
      });
      assert.equal(old.json().action, 'reject');
      assert.equal((await t.api('DELETE', `/v1/sessions/${s.id}/participants/par_nope`)).statusCode, 404);
      assert.equal(
        (await t.api('POST', `/v1/sessions/${s.id}/participants`, { number: '0' })).statusCode,
        400,
      );
      await t.api('DELETE', `/v1/sessions/${s.id}`);
    });
  });

  describe('GET /v1/sessions/:id/interactions', () => {
    it('lists every routed and refused call and text of the session', async () => {
      const s = (await create({ participants: pair(), channels: ['voice'] })).json();
      const [customer, courier] = s.participants as ParticipantView[];
      await t.api('POST', '/v1/route', { from: CUSTOMER, to: customer?.proxyNumber, channel: 'voice' });
      await t.api('POST', '/v1/route', {
        from: COURIER,
        to: courier?.proxyNumber,
        channel: 'sms',
        body: 'hi',
      });
      const r = await t.api('GET', `/v1/sessions/${s.id}/interactions`);
      assert.equal(r.statusCode, 200);
      const [voice, sms] = r.json().data;
      assert.deepEqual(
        [voice.action, voice.from, voice.to, voice.target, voice.callerId, voice.status],
        ['connect', CUSTOMER, customer?.proxyNumber, COURIER, courier?.proxyNumber, 'routed'],
      );
      assert.deepEqual([sms.action, sms.reason, sms.status], ['reject', 'channel_not_allowed', 'refused']);
      assert.equal((await t.api('GET', '/v1/sessions/ses_nope/interactions')).statusCode, 404);
      await t.api('DELETE', `/v1/sessions/${s.id}`);
    });
  });
});
