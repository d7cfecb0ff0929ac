import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createLogger } from '../../../src/logger.ts';
import { AliyunBinder, pnsTime } from '../../../src/providers/aliyun/aliyun-binder.ts';
import type { Binder } from '../../../src/providers/binder.ts';
import { type BindingOptions, BindingService } from '../../../src/services/bindings.ts';
import {
  aliyunEnv,
  FakeAliyunPns,
  ALIYUN_KEY_ID as KEY_ID,
  ALIYUN_KEY_SECRET as KEY_SECRET,
  ALIYUN_POOL_KEY as POOL_KEY,
} from '../../support/aliyun-api.ts';
import { numberOf, payloadOf, type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

/** Two people in China and the aliyun proxy X between them (AXB). */
const A = '+8613900001111';
const B = '+8613900002222';
const C = '+8613900003333';
const X = '+8613800000001';

describeStores('remote binding (aliyun, BindAxb)', { perTest: true }, (store) => {
  let t: TestApp;
  let fake: FakeAliyunPns;
  let logs: string[];
  beforeEach(async () => {
    fake = new FakeAliyunPns(KEY_ID, KEY_SECRET, POOL_KEY);
    await fake.start();
    t = await testApp(store(), aliyunEnv(fake));
    logs = [];
    const r = await t.api('POST', '/v1/numbers', { number: X, provider: 'aliyun' });
    assert.equal(r.statusCode, 201, r.body);
  });
  afterEach(async () => {
    await t?.close();
    await fake?.stop();
  });

  /** A binding worker on the test's clock, with a jitter of one half and a backoff of 1 s doubling to 8 s. */
  const worker = (
    options: Partial<BindingOptions> = {},
    binders: ReadonlyMap<string, Binder> = t.veil.binders,
  ) =>
    new BindingService(
      t.veil.store,
      binders,
      createLogger('info', { write: (line: string) => logs.push(line) }),
      {
        maxAttempts: 3,
        clock: t.clock.read,
        random: () => 0.5,
        backoff: { baseMs: 1_000, capMs: 8_000 },
        ...options,
      },
    );
  const createShared = async (people = [A, B]) => {
    const r = await t.api('POST', '/v1/sessions', {
      mode: 'shared',
      participants: people.map((number) => ({ number })),
    });
    assert.equal(r.statusCode, 201, r.body);
    return r.json() as { id: string; participants: { id: string; proxyNumber: string; binding: string }[] };
  };
  const bindingOf = async (sessionId: string) => {
    const s = (await t.api('GET', `/v1/sessions/${sessionId}`)).json();
    const states = new Set(s.participants.map((p: { binding: string }) => p.binding));
    assert.equal(states.size, 1, 'both participants carry the one binding');
    return [...states][0];
  };
  const rows = (sessionId: string) =>
    t.veil.store.db
      .selectFrom('participants')
      .selectAll()
      .where('session_id', '=', sessionId)
      .orderBy('id')
      .execute();
  const route = async (from = A) =>
    (await t.api('POST', '/v1/route', { from, to: X, channel: 'voice' })).json();
  const failedEvents = async () =>
    (
      await t.veil.store.db.selectFrom('events').selectAll().where('type', '=', 'binding.failed').execute()
    ).map((e) => payloadOf(t.veil.store.db, e.payload));

  it('creates the shared session as `binding`, routes nothing until the carrier bound it, then connects', async () => {
    const s = await createShared();
    assert.deepEqual(
      s.participants.map((p) => [p.proxyNumber, p.binding]),
      [
        [X, 'binding'],
        [X, 'binding'],
      ],
    );
    assert.equal((await route()).action, 'reject', 'a call before the carrier confirmed must not connect');
    assert.equal(fake.calls.length, 0);

    assert.deepEqual(await worker().pass(), ['bound']);
    const [bind] = fake.of('BindAxb');
    assert.ok(bind);
    const session = (await t.api('GET', `/v1/sessions/${s.id}`)).json();
    assert.deepEqual(
      {
        PoolKey: bind.params.PoolKey,
        PhoneNoA: bind.params.PhoneNoA,
        PhoneNoB: bind.params.PhoneNoB,
        PhoneNoX: bind.params.PhoneNoX,
        Expiration: bind.params.Expiration,
      },
      {
        PoolKey: POOL_KEY,
        PhoneNoA: '13900001111',
        PhoneNoB: '13900002222',
        PhoneNoX: '13800000001',
        Expiration: pnsTime(Date.parse(session.expiresAt)),
      },
    );
    assert.deepEqual(
      session.participants.map((p: { binding: string }) => p.binding),
      ['bound', 'bound'],
    );
    const [subsId] = fake.bindings.keys();
    assert.ok((await rows(s.id)).every((r) => r.binding_ref === subsId && r.binding_next_at === null));

    const decision = await route();
    assert.equal(decision.action, 'connect');
    assert.equal(decision.to, B);
    assert.equal(decision.callerId, X);
    assert.equal((await route(B)).to, A);
    // Nothing left to do: the next pass asks the carrier nothing.
    assert.deepEqual(await worker().pass(), []);
    assert.equal(fake.calls.length, 1);
  });

  it('retries with backoff and gives up after the last try: `failed`, one binding.failed event, nothing routes', async () => {
    fake.plan(
      { kind: 'code', code: 'isv.NO_AVAILABLE_NUMBER' },
      { kind: 'status', status: 503 },
      { kind: 'code', code: 'isp.SYSTEM_ERROR' },
    );
    const s = await createShared();
    const w = worker();
    assert.deepEqual(await w.pass(), ['retry']);
    const [first] = await rows(s.id);
    // Full jitter: half of the first ceiling (1 s).
    assert.equal(first?.binding_next_at, t.clock.now + 500);
    assert.equal(first?.binding_error, 'isv.NO_AVAILABLE_NUMBER');
    assert.deepEqual(await w.pass(), [], 'not due again before its backoff');
    t.clock.advance(0.5);
    assert.deepEqual(await w.pass(), ['retry']);
    const [second] = await rows(s.id);
    // Half of the second ceiling (2 s).
    assert.equal(second?.binding_next_at, t.clock.now + 1_000);
    assert.equal(second?.binding_error, 'status 503');
    assert.equal(await bindingOf(s.id), 'binding');
    t.clock.advance(1);
    assert.deepEqual(await w.pass(), ['failed']);

    assert.equal(await bindingOf(s.id), 'failed');
    assert.deepEqual(await failedEvents(), [
      { sessionId: s.id, operation: 'bind', provider: 'aliyun', attempts: 3, error: 'isp.SYSTEM_ERROR' },
    ]);
    assert.equal((await route()).action, 'reject');
    t.clock.advance(3600);
    assert.deepEqual(await w.pass(), [], 'a failed binding is not tried again');
    assert.equal(fake.of('BindAxb').length, 3);
    const log = logs.join('');
    assert.match(log, /gave up trying to bind at the carrier/);
    for (const n of [A, B, X, '13900001111', '13800000001'])
      assert.ok(!log.includes(n), `${n} logged in clear`);
  });

  it('binds on a later try after a call that timed out', async () => {
    fake.plan({ kind: 'hang' });
    const s = await createShared();
    const w = worker();
    assert.deepEqual(await w.pass(), ['retry']);
    const [row] = await rows(s.id);
    assert.equal(row?.binding_error, 'timeout');
    assert.equal(row?.binding_attempts, 1);
    t.clock.advance(1);
    assert.deepEqual(await w.pass(), ['bound']);
    assert.equal(await bindingOf(s.id), 'bound');
    assert.equal((await route()).action, 'connect');
    const [after] = await rows(s.id);
    assert.deepEqual([after?.binding_attempts, after?.binding_error], [0, null]);
  });

  it('keeps the newer binding when an earlier try answers late, and undoes what that late try made', async () => {
    let answer = () => {};
    fake.plan({ kind: 'late', until: new Promise<void>((resolve) => (answer = resolve)) });
    const s = await createShared();
    // A client that waits long enough to see the late answer; a lease shorter than that wait.
    const patient = new Map([
      [
        'aliyun',
        new AliyunBinder({
          accessKeyId: KEY_ID,
          accessKeySecret: KEY_SECRET,
          poolKey: POOL_KEY,
          url: fake.url,
          timeoutMs: 5_000,
        }),
      ],
    ]);
    const slow = worker({ leaseMs: 1_000 }, patient).pass();
    while (fake.calls.length < 1) await new Promise((r) => setTimeout(r, 5));
    t.clock.advance(2); // the lease ran out: the binding is due again
    assert.deepEqual(await worker({ leaseMs: 1_000 }, patient).pass(), ['bound']);
    const [kept] = (await rows(s.id)).map((r) => r.binding_ref);
    answer();
    assert.deepEqual(await slow, ['skipped']);

    assert.equal(await bindingOf(s.id), 'bound');
    assert.ok((await rows(s.id)).every((r) => r.binding_ref === kept));
    assert.equal(fake.of('BindAxb').length, 2);
    const [unbind] = fake.of('UnbindSubscription');
    assert.ok(unbind);
    assert.notEqual(unbind.params.SubsId, kept, 'the binding kept was undone');
    assert.deepEqual([...fake.bindings.keys()], [kept]);
  });

  it('lets only the try that holds the claim move the binding: a late yes from a lapsed try is undone', async () => {
    let answer = () => {};
    fake.plan(
      { kind: 'late', until: new Promise<void>((resolve) => (answer = resolve)) },
      { kind: 'code', code: 'isp.SYSTEM_ERROR' },
    );
    const s = await createShared();
    const patient = new Map([
      [
        'aliyun',
        new AliyunBinder({
          accessKeyId: KEY_ID,
          accessKeySecret: KEY_SECRET,
          poolKey: POOL_KEY,
          url: fake.url,
          timeoutMs: 5_000,
        }),
      ],
    ]);
    const slow = worker({ leaseMs: 1_000 }, patient).pass();
    while (fake.calls.length < 1) await new Promise((r) => setTimeout(r, 5));
    t.clock.advance(2);
    // The try that took over fails: the binding waits for its next try, still `binding`.
    assert.deepEqual(await worker({ leaseMs: 1_000 }, patient).pass(), ['retry']);
    answer();
    assert.deepEqual(await slow, ['skipped']);
    const [row] = await rows(s.id);
    assert.deepEqual([row?.binding, row?.binding_ref, row?.binding_attempts], ['binding', null, 1]);
    assert.equal(fake.bindings.size, 0, 'the lapsed try’s binding was undone at the carrier');
    t.clock.advance(10);
    assert.deepEqual(await worker().pass(), ['bound']);
  });

  it('unbinds at the carrier when the session closes, and only then gives the proxy to its people again', async () => {
    const s = await createShared();
    await worker().pass();
    const [subsId] = fake.bindings.keys();
    assert.equal((await t.api('DELETE', `/v1/sessions/${s.id}`)).statusCode, 200);
    assert.equal(await bindingOf(s.id), 'unbinding');
    assert.equal((await route()).action, 'reject');

    // A still holds X through the binding being undone: a new session of A gets no X yet.
    const blocked = await t.api('POST', '/v1/sessions', {
      mode: 'shared',
      participants: [{ number: A }, { number: C }],
    });
    assert.equal(blocked.statusCode, 503, blocked.body);
    assert.equal(blocked.json().error.code, 'pool_exhausted');

    assert.deepEqual(await worker().pass(), ['unbound']);
    const [unbind] = fake.of('UnbindSubscription');
    assert.deepEqual(
      [unbind?.params.SubsId, unbind?.params.SecretNo, unbind?.params.PoolKey],
      [subsId, '13800000001', POOL_KEY],
    );
    assert.equal(await bindingOf(s.id), 'unbound');
    assert.equal(fake.bindings.size, 0);
    assert.ok((await rows(s.id)).every((r) => r.active === 0));

    const again = await createShared([A, C]);
    assert.equal(again.participants[0]?.proxyNumber, X);
  });

  it('ends a binding the carrier never confirmed without asking it anything', async () => {
    fake.plan({ kind: 'code', code: 'isv.NO_AVAILABLE_NUMBER' });
    const s = await createShared();
    await worker().pass();
    assert.equal((await t.api('DELETE', `/v1/sessions/${s.id}`)).statusCode, 200);
    assert.equal(await bindingOf(s.id), 'unbound');
    t.clock.advance(60);
    assert.deepEqual(await worker().pass(), []);
    assert.deepEqual(
      fake.calls.map((c) => c.action),
      ['BindAxb'],
    );
  });

  it('unbinds an expired session too', async () => {
    const s = await createShared();
    await worker().pass();
    t.clock.advance(86_401);
    assert.equal(await t.veil.sessions.expireDue(), 1);
    assert.equal(await bindingOf(s.id), 'unbinding');
    assert.deepEqual(await worker().pass(), ['unbound']);
    assert.equal(fake.of('UnbindSubscription').length, 1);
  });

  it('binds once when two workers tick at the same time', async () => {
    const s = await createShared();
    const outcomes = (await Promise.all([worker().pass(), worker().pass()])).flat();
    assert.deepEqual(
      outcomes.filter((o) => o !== 'skipped'),
      ['bound'],
    );
    assert.equal(fake.of('BindAxb').length, 1);
    assert.equal(await bindingOf(s.id), 'bound');
  });

  describe('failover', () => {
    const SIM = '+8613800000002';
    const switchAliyun = async (enabled: boolean) => {
      const r = await t.api('PATCH', '/v1/providers/aliyun', { enabled });
      assert.equal(r.statusCode, 200, r.body);
    };

    it('moves a bound session off aliyun switched off; the old binding is undone once aliyun answers, and only then is X theirs again', async () => {
      const s = await createShared();
      assert.deepEqual(await worker().pass(), ['bound']);
      const [subsId] = fake.bindings.keys();
      assert.equal((await t.api('POST', '/v1/numbers', { number: SIM, provider: 'sim' })).statusCode, 201);

      await switchAliyun(false);
      assert.deepEqual(await t.veil.failover.pass(), { carriers: ['aliyun'], rebound: 1, stranded: 0 });
      const moved = (await t.api('GET', `/v1/sessions/${s.id}`)).json();
      assert.deepEqual(
        moved.participants.map((p: { id: string; proxyNumber: string; binding: string }) => [
          p.id,
          p.proxyNumber,
          p.binding,
        ]),
        s.participants.map((p) => [p.id, SIM, 'bound']),
      );
      // The sim proxy routes at once, to the other person, never to a retired participation.
      for (const [from, to] of [
        [A, B],
        [B, A],
      ]) {
        const d = (await t.api('POST', '/v1/route', { from, to: SIM, channel: 'voice' })).json();
        assert.deepEqual([d.action, d.to, d.callerId], ['connect', to, SIM]);
      }
      assert.equal((await route()).action, 'reject', 'X connects nobody now');
      const [event] = (
        await t.veil.store.db.selectFrom('events').selectAll().where('type', '=', 'session.rebound').execute()
      ).map((e) => payloadOf(t.veil.store.db, e.payload));
      assert.deepEqual([event.rebound.from, event.rebound.to], ['aliyun', 'sim']);

      // The old binding waits to be undone, and keeps X from A and B meanwhile.
      const retired = (await rows(s.id)).filter((r) => r.removed_at !== null);
      assert.deepEqual(
        retired.map((r) => [r.proxy_number, r.binding, r.active]),
        [
          [X, 'unbinding', 1],
          [X, 'unbinding', 1],
        ],
      );
      await switchAliyun(true);
      const blocked = await t.api('POST', '/v1/sessions', {
        mode: 'shared',
        participants: [{ number: A }, { number: C }],
      });
      assert.equal(blocked.statusCode, 503, blocked.body);

      assert.deepEqual(await worker().pass(), ['unbound']);
      const [unbind] = fake.of('UnbindSubscription');
      assert.equal(unbind?.params.SubsId, subsId);
      assert.equal(fake.bindings.size, 0);
      assert.ok((await rows(s.id)).filter((r) => r.removed_at !== null).every((r) => r.active === 0));
      // The moved session is untouched by the unbind, and still routes.
      const d = (await t.api('POST', '/v1/route', { from: A, to: SIM, channel: 'voice' })).json();
      assert.deepEqual([d.action, d.to], ['connect', B]);
      assert.equal((await createShared([A, C])).participants[0]?.proxyNumber, X);

      // Closing the moved session ends it alone: nothing more for the carrier to do.
      assert.equal((await t.api('DELETE', `/v1/sessions/${s.id}`)).statusCode, 200);
      assert.equal((await worker().pass()).filter((o) => o === 'unbound').length, 0);
    });

    it('moves a session still waiting for its binding, and a late bind is undone', async () => {
      fake.plan({ kind: 'code', code: 'isv.SYSTEM_ERROR' });
      const s = await createShared();
      assert.deepEqual(await worker().pass(), ['retry']);
      assert.equal((await t.api('POST', '/v1/numbers', { number: SIM, provider: 'sim' })).statusCode, 201);
      await switchAliyun(false);
      assert.deepEqual(await t.veil.failover.pass(), { carriers: ['aliyun'], rebound: 1, stranded: 0 });
      // Never confirmed, so nothing at the carrier to undo: over at once, X free again.
      assert.deepEqual(
        (await rows(s.id)).filter((r) => r.removed_at !== null).map((r) => [r.binding, r.active]),
        [
          ['unbound', 0],
          ['unbound', 0],
        ],
      );
      t.clock.advance(60);
      assert.deepEqual(await worker().pass(), []);
      const d = (await t.api('POST', '/v1/route', { from: B, to: SIM, channel: 'voice' })).json();
      assert.deepEqual([d.action, d.to], ['connect', A]);
    });

    it('leaves a bound session where it is while no other carrier has room (stranded)', async () => {
      await createShared();
      await worker().pass();
      await switchAliyun(false);
      assert.deepEqual(await t.veil.failover.pass(), { carriers: ['aliyun'], rebound: 0, stranded: 1 });
      assert.equal(fake.bindings.size, 1);
    });
  });

  describe('sessions an aliyun number cannot serve', () => {
    it('never gives an aliyun number to a session of another mode (503 when nothing else fits)', async () => {
      const r = await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] });
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.json().error.code, 'pool_exhausted');
      const asked = await t.api('POST', '/v1/sessions', {
        participants: [{ number: A, proxyNumber: X }, { number: B }],
      });
      assert.equal(asked.statusCode, 409, asked.body);
      assert.match(asked.json().error.message, /shared/);
      const dedicated = await t.api('POST', '/v1/sessions', {
        mode: 'dedicated',
        participants: [{ number: A }],
      });
      assert.equal(dedicated.statusCode, 503, dedicated.body);
    });

    it('gives such sessions, and shared ones asking what the carrier cannot honour, another carrier’s numbers', async () => {
      for (const number of ['+8613800000002', '+8613800000003']) {
        assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
      }
      const perParticipant = (
        await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] })
      ).json();
      assert.ok(perParticipant.participants.every((p: { proxyNumber: string }) => p.proxyNumber !== X));
      const restricted = (
        await t.api('POST', '/v1/sessions', {
          mode: 'shared',
          participants: [{ number: A, canInitiate: false }, { number: C }],
        })
      ).json();
      assert.notEqual(restricted.participants[0].proxyNumber, X);
      assert.deepEqual(
        restricted.participants.map((p: { binding: string }) => p.binding),
        ['bound', 'bound'],
      );
    });

    it('refuses to change a bound session in place (409): participants, expiry', async () => {
      const s = await createShared();
      const [pa] = s.participants;
      const cases = [
        await t.api('PUT', `/v1/sessions/${s.id}/participants/${pa?.id}`, { number: C }),
        await t.api('DELETE', `/v1/sessions/${s.id}/participants/${pa?.id}`),
        await t.api('POST', `/v1/sessions/${s.id}/participants`, { number: C }),
        await t.api('PATCH', `/v1/sessions/${s.id}/participants/${pa?.id}`, { canInitiate: false }),
        await t.api('PATCH', `/v1/sessions/${s.id}`, { ttlSeconds: 7200 }),
      ];
      for (const r of cases) {
        assert.equal(r.statusCode, 409, r.body);
        assert.match(r.json().error.message, /close it and open a new session/);
      }
      const labelled = await t.api('PATCH', `/v1/sessions/${s.id}/participants/${pa?.id}`, {
        label: 'courier',
      });
      assert.equal(labelled.statusCode, 200, labelled.body);
      assert.deepEqual((await rows(s.id)).map((r) => numberOf(t.veil.store.db, r)).sort(), [A, B].sort());
    });

    it('buys no aliyun numbers and serves no aliyun webhooks', async () => {
      const buy = await t.api('POST', '/v1/numbers/import', { provider: 'aliyun', country: 'CN', count: 1 });
      assert.equal(buy.statusCode, 400, buy.body);
      assert.match(buy.json().error.message, /binds numbers at the carrier/);
      const hook = await t.app.inject({ method: 'POST', url: '/webhooks/aliyun/voice', payload: {} });
      assert.equal(hook.statusCode, 404);
    });
  });
});
