import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ADMIN_KEY, payloadOf, type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

const CUSTOMER = '+14155550123';
const COURIER = '+14155550187';
const COURIER_2 = '+14155550188';
const COURIER_3 = '+14155550189';
const LONDON = '+442079460123';

interface ParticipantView {
  id: string;
  number: string;
  proxyNumber: string;
  label: string | null;
  revealNumber: boolean;
  canInitiate: boolean;
}
interface SessionView {
  id: string;
  status: string;
  participants: ParticipantView[];
}

// A store for each test: the tests count rows and fill the pool up.
describeStores('/v1/sessions/:id/participants/:pid', { perTest: true }, (store) => {
  let t: TestApp;
  // Three numbers in the people's area code, one elsewhere in the country: Δ = 4 for US people.
  const pool = ['+14155550150', '+14155550151', '+14155550152', '+12125550150'];
  beforeEach(async () => {
    // No hourly cap on a session's calls: one test calls for as long as couriers change, which a
    // fast machine fills with more calls than the default cap (60) lets through.
    t = await testApp(store(), { VEIL_MAX_CALLS_PER_SESSION_HOUR: '0' });
    for (const number of pool)
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
  });
  afterEach(async () => {
    await t.close();
  });

  const create = async (body: Record<string, unknown>): Promise<SessionView> => {
    const r = await t.api('POST', '/v1/sessions', body);
    assert.equal(r.statusCode, 201, r.body);
    return r.json();
  };
  const pair = (a = CUSTOMER, b = COURIER) => [
    { number: a, label: 'customer' },
    { number: b, label: 'courier' },
  ];
  const url = (s: { id: string }, p: { id: string }) => `/v1/sessions/${s.id}/participants/${p.id}`;
  const route = async (from: string, to: string, channel = 'voice') =>
    (
      await t.api('POST', '/v1/route', { from, to, channel, ...(channel === 'sms' ? { body: 'hi' } : {}) })
    ).json();
  /** Where a call from `from` to `to` goes: [action, to or reason, callerId]. */
  const call = async (from: string, to: string) => {
    const r = await route(from, to);
    return r.action === 'connect' ? [r.action, r.to, r.callerId] : [r.action, r.reason];
  };
  const count = async (table: 'sessions' | 'participants' | 'events') =>
    Number(
      (
        await t.veil.store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const updatedEvents = async () =>
    (
      await t.veil.store.db
        .selectFrom('events')
        .select('payload')
        .where('type', '=', 'session.updated')
        .orderBy('id')
        .execute()
    ).map((e) => payloadOf(t.veil.store.db, e.payload));
  /** Each pool number's load, as GET /v1/numbers shows it. */
  const loads = async (): Promise<Record<string, number>> =>
    Object.fromEntries(
      (await t.api('GET', '/v1/numbers?limit=100'))
        .json()
        .data.map((n: { number: string; load: number }) => [n.number, n.load]),
    );
  /** Each number's load is the number of open sessions whose participants hold it. */
  const assertLoadsMatchSessions = async () => {
    const actual = await loads();
    const expected: Record<string, number> = Object.fromEntries(Object.keys(actual).map((n) => [n, 0]));
    const open = (await t.api('GET', '/v1/sessions?status=open&limit=500')).json().data as SessionView[];
    for (const s of open) {
      for (const proxy of new Set(s.participants.map((p) => p.proxyNumber))) {
        expected[proxy] = (expected[proxy] ?? 0) + 1;
      }
    }
    assert.deepEqual(actual, expected);
  };
  /**
   * Opens sessions of `person` with new counterparts until they hold `proxy` (each of their sessions
   * gets a proxy they do not hold yet, so a few do); returns how many it opened.
   */
  const makeHold = async (person: string, proxy: string): Promise<number> => {
    for (let i = 0; i < pool.length; i++) {
      const s = await create({ participants: [{ number: person }, { number: `+1415555030${i}` }] });
      if (s.participants[0]?.proxyNumber === proxy) return i + 1;
    }
    assert.fail(`${person} never got ${proxy}`);
  };

  describe('PATCH /v1/sessions/:id/participants/:pid', () => {
    it('changes canInitiate, revealNumber and label, and the next call follows them', async () => {
      const s = await create({ participants: pair() });
      const [customer, courier] = s.participants as [ParticipantView, ParticipantView];
      assert.deepEqual(await call(COURIER, courier.proxyNumber), ['connect', CUSTOMER, customer.proxyNumber]);

      const quiet = await t.api('PATCH', url(s, courier), { canInitiate: false });
      assert.equal(quiet.statusCode, 200, quiet.body);
      assert.equal(quiet.json().id, s.id);
      assert.deepEqual(
        quiet.json().participants.map((p: ParticipantView) => [p.id, p.canInitiate, p.label]),
        [
          [customer.id, true, 'customer'],
          [courier.id, false, 'courier'],
        ],
      );
      assert.deepEqual(await call(COURIER, courier.proxyNumber), ['reject', 'not_allowed']);
      assert.deepEqual([(await route(COURIER, courier.proxyNumber, 'sms')).reason], ['not_allowed']);
      // Receiving is still allowed.
      assert.deepEqual(await call(CUSTOMER, customer.proxyNumber), ['connect', COURIER, courier.proxyNumber]);

      const shown = await t.api('PATCH', url(s, customer), { revealNumber: true, label: 'buyer' });
      assert.equal(shown.statusCode, 200, shown.body);
      assert.deepEqual(await call(CUSTOMER, customer.proxyNumber), ['connect', COURIER, CUSTOMER]);

      const back = await t.api('PATCH', url(s, courier), { canInitiate: true, label: null });
      assert.equal(back.statusCode, 200, back.body);
      assert.deepEqual(await call(COURIER, courier.proxyNumber), ['connect', CUSTOMER, customer.proxyNumber]);

      const read = (await t.api('GET', `/v1/sessions/${s.id}`)).json();
      assert.deepEqual(read, back.json());
      assert.deepEqual(
        read.participants.map((p: ParticipantView) => [
          p.label,
          p.revealNumber,
          p.canInitiate,
          p.proxyNumber,
        ]),
        [
          ['buyer', true, true, customer.proxyNumber],
          [null, false, true, courier.proxyNumber],
        ],
      );
      const events = await updatedEvents();
      assert.equal(events.length, 3, 'a session.updated event per change');
      assert.equal(events[2].participants[1].label, null);
    });

    it('refuses an empty body, unknown fields and wrong types with 400, changing nothing', async () => {
      const s = await create({ participants: pair() });
      const courier = s.participants[1] as ParticipantView;
      const events = await count('events');
      for (const [body, field] of [
        [{}, undefined],
        [{ number: COURIER_2 }, 'number'],
        [{ canInitiate: 'no' }, 'canInitiate'],
        [{ label: 'x'.repeat(65) }, 'label'],
      ] as const) {
        const r = await t.api('PATCH', url(s, courier), body);
        assert.equal(r.statusCode, 400, `${JSON.stringify(body)} → ${r.body}`);
        assert.equal(r.json().error.code, 'invalid_request');
        assert.equal(r.json().error.field, field, JSON.stringify(body));
      }
      const empty = await t.api('PATCH', url(s, courier), {});
      assert.equal(empty.json().error.message, 'body must give at least one field');
      const none = await t.app.inject({
        method: 'PATCH',
        url: url(s, courier),
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
      });
      assert.equal(none.statusCode, 400, none.body);
      assert.equal(await count('events'), events);
      assert.deepEqual((await t.api('GET', `/v1/sessions/${s.id}`)).json().participants, s.participants);
    });

    it('answers 404 for an unknown session or participant, 409 once the session is closed or expired', async () => {
      const s = await create({ participants: pair(), ttlSeconds: 60 });
      const courier = s.participants[1] as ParticipantView;
      const change = { canInitiate: false };
      const unknownSession = await t.api('PATCH', url({ id: 'ses_nope' }, courier), change);
      assert.equal(unknownSession.statusCode, 404);
      assert.equal(unknownSession.json().error.code, 'not_found');
      assert.equal((await t.api('PATCH', url(s, { id: 'par_nope' }), change)).statusCode, 404);
      // A participant taken out of the session is no longer one of it.
      await t.api('DELETE', url(s, courier));
      assert.equal((await t.api('PATCH', url(s, courier), change)).statusCode, 404);
      t.clock.advance(61);
      const expired = await t.api('PATCH', url(s, s.participants[0] as ParticipantView), change);
      assert.equal(expired.statusCode, 409);
      assert.equal(expired.json().error.code, 'conflict');
      const other = await create({ participants: pair() });
      await t.api('DELETE', `/v1/sessions/${other.id}`);
      const closed = await t.api('PATCH', url(other, other.participants[0] as ParticipantView), change);
      assert.equal(closed.statusCode, 409);
    });
  });

  describe('PUT /v1/sessions/:id/participants/:pid', () => {
    it('replaces the courier in one step with the same proxy: the customer reaches the newcomer, the old courier nobody', async () => {
      const s = await create({ participants: pair() });
      const [customer, courier] = s.participants as [ParticipantView, ParticipantView];
      const before = await loads();
      const [participants, events] = [await count('participants'), await count('events')];

      const r = await t.api('PUT', url(s, courier), { number: COURIER_2 });
      assert.equal(r.statusCode, 200, r.body);
      const replaced: SessionView = r.json();
      assert.equal(replaced.id, s.id);
      assert.equal(replaced.status, 'open');
      const [stays, newcomer] = replaced.participants as [ParticipantView, ParticipantView];
      assert.deepEqual(stays, customer);
      assert.notEqual(newcomer.id, courier.id);
      // Fields not given are kept from the one replaced; the proxy is kept as COURIER_2 holds it nowhere.
      assert.deepEqual(
        { ...newcomer, id: courier.id },
        { ...courier, number: COURIER_2 },
        'the newcomer is the courier with another number',
      );
      assert.deepEqual(await loads(), before, 'the session still counts once on the proxy');

      assert.deepEqual(await call(CUSTOMER, customer.proxyNumber), [
        'connect',
        COURIER_2,
        courier.proxyNumber,
      ]);
      assert.deepEqual(await call(COURIER_2, courier.proxyNumber), [
        'connect',
        CUSTOMER,
        customer.proxyNumber,
      ]);
      assert.deepEqual(await call(COURIER, courier.proxyNumber), ['reject', 'no_session']);

      assert.deepEqual((await t.api('GET', `/v1/sessions/${s.id}`)).json(), replaced);
      assert.equal(await count('participants'), participants + 1, 'the one replaced stays as history');
      const old = await t.veil.store.db
        .selectFrom('participants')
        .select(['active', 'removed_at', 'released_at'])
        .where('id', '=', courier.id)
        .executeTakeFirstOrThrow();
      assert.deepEqual(old, { active: 0, removed_at: t.clock.now, released_at: t.clock.now });
      assert.equal(await count('events'), events + 1);
      const [event] = await updatedEvents();
      assert.deepEqual(
        event.participants.map((p: ParticipantView) => p.id),
        [customer.id, newcomer.id],
      );
    });

    it('takes the fields given and keeps the others from the one replaced', async () => {
      const s = await create({
        participants: [
          { number: CUSTOMER, label: 'customer' },
          { number: COURIER, label: 'courier', revealNumber: true },
        ],
      });
      const [customer, courier] = s.participants as [ParticipantView, ParticipantView];
      const r = await t.api('PUT', url(s, courier), {
        number: COURIER_2,
        label: 'driver',
        canInitiate: false,
      });
      assert.equal(r.statusCode, 200, r.body);
      const newcomer = r.json().participants[1] as ParticipantView;
      assert.deepEqual(
        [newcomer.number, newcomer.label, newcomer.revealNumber, newcomer.canInitiate],
        [COURIER_2, 'driver', true, false],
      );
      assert.deepEqual(await call(COURIER_2, newcomer.proxyNumber), ['reject', 'not_allowed']);
      assert.deepEqual(await call(CUSTOMER, customer.proxyNumber), [
        'connect',
        COURIER_2,
        courier.proxyNumber,
      ]);
      const cleared = await t.api('PUT', url(s, newcomer), { number: COURIER_3, label: null });
      assert.equal(cleared.statusCode, 200, cleared.body);
      assert.equal(cleared.json().participants[1].label, null);
    });

    it('gives the newcomer a fresh proxy when they hold the old one in another open session', async () => {
      const s = await create({ participants: pair() });
      const [customer, courier] = s.participants as [ParticipantView, ParticipantView];
      const opened = await makeHold(COURIER_2, courier.proxyNumber);
      await assertLoadsMatchSessions();

      const r = await t.api('PUT', url(s, courier), { number: COURIER_2 });
      assert.equal(r.statusCode, 200, r.body);
      const newcomer = r.json().participants[1] as ParticipantView;
      assert.equal(newcomer.number, COURIER_2);
      assert.notEqual(newcomer.proxyNumber, courier.proxyNumber);
      const held = (await t.api('GET', '/v1/sessions?status=open&limit=100'))
        .json()
        .data.flatMap((o: SessionView) => o.participants)
        .filter((p: ParticipantView) => p.number === COURIER_2)
        .map((p: ParticipantView) => p.proxyNumber);
      assert.equal(held.length, opened + 1);
      assert.equal(new Set(held).size, held.length, 'the newcomer holds each proxy once (the invariant)');
      await assertLoadsMatchSessions();

      assert.deepEqual(await call(CUSTOMER, customer.proxyNumber), [
        'connect',
        COURIER_2,
        newcomer.proxyNumber,
      ]);
      assert.deepEqual(await call(COURIER_2, newcomer.proxyNumber), [
        'connect',
        CUSTOMER,
        customer.proxyNumber,
      ]);
      // Their old proxy still reaches their other session's counterpart, not this customer.
      const elsewhere = await route(COURIER_2, courier.proxyNumber);
      assert.equal(elsewhere.action, 'connect');
      assert.notEqual(elsewhere.sessionId, s.id);
      assert.deepEqual(await call(COURIER, courier.proxyNumber), ['reject', 'no_session']);
    });

    it('lets the newcomer take over the proxy they held in a session now past its expiry, swept or not', async () => {
      const s = await create({ participants: pair() });
      const courier = s.participants[1] as ParticipantView;
      // The newcomer holds the courier's proxy in another session, which lapses unswept.
      const other = await create({
        ttlSeconds: 60,
        participants: [{ number: COURIER_2, proxyNumber: courier.proxyNumber }, { number: '+14155550300' }],
      });
      assert.equal(other.participants[0]?.proxyNumber, courier.proxyNumber);
      t.clock.advance(61);

      const r = await t.api('PUT', url(s, courier), { number: COURIER_2 });
      assert.equal(r.statusCode, 200, r.body);
      const newcomer = r.json().participants[1] as ParticipantView;
      assert.equal(newcomer.proxyNumber, courier.proxyNumber, 'the session keeps its proxy');
      assert.equal((await t.api('GET', `/v1/sessions/${other.id}`)).json().status, 'expired');
      await assertLoadsMatchSessions();
    });
    it('answers 503 pool_exhausted when no proxy is free for the newcomer, and nothing changes', async () => {
      // COURIER_2 holds every US number: none is left for them, the courier's proxy included.
      for (let i = 0; i < pool.length; i++) {
        await create({ participants: [{ number: COURIER_2 }, { number: `+1415555030${i}` }] });
      }
      const s = await create({ participants: pair() });
      const [customer, courier] = s.participants as [ParticipantView, ParticipantView];
      const before = {
        loads: await loads(),
        participants: await count('participants'),
        events: await count('events'),
        session: (await t.api('GET', `/v1/sessions/${s.id}`)).json(),
      };

      const r = await t.api('PUT', url(s, courier), { number: COURIER_2 });
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().error.code, 'pool_exhausted');
      assert.doesNotMatch(r.body, /5550188|5550187|5550123/);

      assert.deepEqual(
        {
          loads: await loads(),
          participants: await count('participants'),
          events: await count('events'),
          session: (await t.api('GET', `/v1/sessions/${s.id}`)).json(),
        },
        before,
      );
      assert.deepEqual(await call(COURIER, courier.proxyNumber), ['connect', CUSTOMER, customer.proxyNumber]);
      assert.deepEqual(await call(CUSTOMER, customer.proxyNumber), ['connect', COURIER, courier.proxyNumber]);
      // The same courier can still be replaced by someone who has room.
      const other = await t.api('PUT', url(s, courier), { number: COURIER_3 });
      assert.equal(other.statusCode, 200, other.body);
    });

    it('in a shared session, gives the newcomer the session’s one proxy, or refuses one who holds it or is not local', async () => {
      const s = await create({ mode: 'shared', participants: pair() });
      const [customer, courier] = s.participants as [ParticipantView, ParticipantView];
      const shared = customer.proxyNumber;
      assert.equal(courier.proxyNumber, shared);
      const before = await loads();

      const r = await t.api('PUT', url(s, courier), { number: COURIER_2 });
      assert.equal(r.statusCode, 200, r.body);
      const newcomer = r.json().participants[1] as ParticipantView;
      assert.equal(newcomer.proxyNumber, shared);
      assert.deepEqual(await loads(), before);
      assert.deepEqual(await call(CUSTOMER, shared), ['connect', COURIER_2, shared]);
      assert.deepEqual(await call(COURIER_2, shared), ['connect', CUSTOMER, shared]);
      assert.deepEqual(await call(COURIER, shared), ['reject', 'no_session']);

      await makeHold(COURIER_3, shared);
      const state = async () => ({
        loads: await loads(),
        session: (await t.api('GET', `/v1/sessions/${s.id}`)).json(),
        events: await count('events'),
      });
      const unchanged = await state();
      const holder = await t.api('PUT', url(s, newcomer), { number: COURIER_3 });
      assert.equal(holder.statusCode, 409, holder.body);
      assert.equal(holder.json().error.code, 'conflict');
      const foreign = await t.api('PUT', url(s, newcomer), { number: LONDON });
      assert.equal(foreign.statusCode, 400, foreign.body);
      assert.equal(foreign.json().error.field, 'number');
      assert.deepEqual(await state(), unchanged);
      assert.deepEqual(await call(COURIER_2, shared), ['connect', CUSTOMER, shared]);
    });

    it('gives a newcomer of another country a local proxy of their own', async () => {
      // Only US numbers: a London courier can get no local proxy, and the old one is not local to them.
      const s = await create({ participants: pair() });
      const courier = s.participants[1] as ParticipantView;
      const r = await t.api('PUT', url(s, courier), { number: LONDON });
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().error.code, 'pool_exhausted');
      assert.equal(
        (await t.api('POST', '/v1/numbers', { number: '+442079460150', provider: 'sim' })).statusCode,
        201,
      );
      const local = await t.api('PUT', url(s, courier), { number: LONDON });
      assert.equal(local.statusCode, 200, local.body);
      assert.equal(local.json().participants[1].proxyNumber, '+442079460150');
      await assertLoadsMatchSessions();
    });

    it('refuses the other participant’s number (409), bad bodies (400), unknown ids (404) and ended sessions (409)', async () => {
      const s = await create({ participants: pair(), ttlSeconds: 60 });
      const [customer, courier] = s.participants as [ParticipantView, ParticipantView];
      const events = await count('events');
      const taken = await t.api('PUT', url(s, courier), { number: CUSTOMER });
      assert.equal(taken.statusCode, 409, taken.body);
      assert.equal(taken.json().error.code, 'conflict');
      assert.doesNotMatch(taken.body, /5550123/);
      for (const [body, field] of [
        [{}, 'number'],
        [{ number: '0' }, 'number'],
        [{ number: '4155550188' }, 'number'],
        [{ number: COURIER_2, externalId: 'o-1' }, 'externalId'],
        [{ number: COURIER_2, canInitiate: 'yes' }, 'canInitiate'],
      ] as const) {
        const r = await t.api('PUT', url(s, courier), body);
        assert.equal(r.statusCode, 400, `${JSON.stringify(body)} → ${r.body}`);
        assert.equal(r.json().error.code, 'invalid_request');
        assert.equal(r.json().error.field, field, JSON.stringify(body));
      }
      assert.equal(
        (await t.api('PUT', url({ id: 'ses_nope' }, courier), { number: COURIER_2 })).statusCode,
        404,
      );
      const unknown = await t.api('PUT', url(s, { id: 'par_nope' }), { number: COURIER_2 });
      assert.equal(unknown.statusCode, 404);
      assert.equal(unknown.json().error.code, 'not_found');
      assert.equal(await count('events'), events);
      assert.deepEqual(await call(CUSTOMER, customer.proxyNumber), ['connect', COURIER, courier.proxyNumber]);
      t.clock.advance(61);
      const expired = await t.api('PUT', url(s, courier), { number: COURIER_2 });
      assert.equal(expired.statusCode, 409, expired.body);
      assert.match(expired.json().error.message, /expired/);
    });

    it('answers a retry of a replacement already made with 200 and the session as it is', async () => {
      const s = await create({ participants: pair() });
      const courier = s.participants[1] as ParticipantView;
      const first = await t.api('PUT', url(s, courier), { number: COURIER_2 });
      assert.equal(first.statusCode, 200, first.body);
      const state = async () => ({
        loads: await loads(),
        participants: await count('participants'),
        events: await count('events'),
      });
      const before = await state();
      t.clock.advance(5);
      const retry = await t.api('PUT', url(s, courier), { number: COURIER_2 });
      assert.equal(retry.statusCode, 200, retry.body);
      assert.deepEqual(retry.json(), first.json());
      assert.deepEqual(await state(), before);
      // The one replaced cannot be replaced by someone else: it is no longer in the session.
      const late = await t.api('PUT', url(s, courier), { number: COURIER_3 });
      assert.equal(late.statusCode, 404, late.body);
      // Replacing a participant by their own number changes only the fields given.
      const newcomer = first.json().participants[1] as ParticipantView;
      const same = await t.api('PUT', url(s, newcomer), { number: COURIER_2, label: 'driver' });
      assert.equal(same.statusCode, 200, same.body);
      assert.deepEqual(same.json().participants[1], { ...newcomer, label: 'driver' });
      assert.deepEqual((await state()).loads, before.loads);
    });

    it('never leaves the customer without a counterpart while couriers change', async () => {
      const s = await create({ participants: pair() });
      const [customer, courier] = s.participants as [ParticipantView, ParticipantView];
      const couriers = [COURIER_2, COURIER_3, COURIER];
      let current = courier;
      let done = false;
      const answers: unknown[][] = [];
      const calling = (async () => {
        while (!done) answers.push(await call(CUSTOMER, customer.proxyNumber));
      })();
      for (let i = 0; i < 9; i++) {
        const r = await t.api('PUT', url(s, current), { number: couriers[i % couriers.length] });
        assert.equal(r.statusCode, 200, r.body);
        current = r.json().participants[1];
        // Each newcomer takes over the proxy: none of them holds it anywhere else.
        assert.equal(current.proxyNumber, courier.proxyNumber);
      }
      done = true;
      await calling;
      assert.ok(answers.length > 0);
      for (const answer of answers) {
        assert.equal(answer[0], 'connect', `a call met ${JSON.stringify(answer)}`);
        assert.ok([COURIER, COURIER_2, COURIER_3].includes(answer[1] as string));
        assert.equal(answer[2], courier.proxyNumber);
      }
      await assertLoadsMatchSessions();
    });
  });
});
