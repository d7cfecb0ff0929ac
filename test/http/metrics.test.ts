import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import type { OutboxPolicy } from '../../src/domain/webhooks.ts';
import { createLogger } from '../../src/logger.ts';
import { BindingService } from '../../src/services/bindings.ts';
import { STUCK_RETRY_MS } from '../../src/services/failover.ts';
import { Outbox } from '../../src/services/outbox.ts';
import { providerFlags } from '../../src/store/providers.ts';
import {
  ALIYUN_KEY_ID,
  ALIYUN_KEY_SECRET,
  ALIYUN_POOL_KEY,
  aliyunEnv,
  FakeAliyunPns,
} from '../support/aliyun-api.ts';
import { ADMIN_KEY, type TestApp, testApp } from '../support/app.ts';
import { scrape } from '../support/metrics.ts';
import { describeStores } from '../support/stores.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const POOL = ['+14155550190', '+14155550191', '+14155550192', '+14155550193'];
const POOL_LABELS = { provider: 'sim', country: 'US', region: '415' };

describeStores('GET /metrics', { perTest: true }, (store) => {
  let t: TestApp;
  let person = 0;
  beforeEach(async () => {
    t = await testApp(store(), { VEIL_METRICS_TOKEN: METRICS_TOKEN, VEIL_REPLENISH: 'US/415=3' });
  });
  afterEach(async () => {
    await t.close();
  });

  const get = (authorization?: string) =>
    t.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: authorization === undefined ? {} : { authorization },
    });
  const openSession = async () => {
    const r = await t.api('POST', '/v1/sessions', {
      participants: [{ number: `+1415200${1000 + person++}` }, { number: `+1415200${1000 + person++}` }],
    });
    return r;
  };

  it('answers Prometheus text to the metrics token and to admin keys of the installation, and no one else', async () => {
    const sessionsKey = (
      await t.api('POST', '/v1/keys', { name: 'app', scopes: ['sessions', 'read'] })
    ).json();
    await t.veil.store.db
      .insertInto('tenants')
      .values({ id: 'other', name: 'other', created_at: 0 })
      .execute();
    const otherAdmin = await t.veil.keys.create('other', 'their admin', ['admin']);

    for (const [authorization, status] of [
      [undefined, 401],
      ['Basic Zm9vOmJhcg==', 401],
      ['Bearer not-a-key-nor-the-token', 401],
      [`Bearer ${METRICS_TOKEN}x`, 401],
      [`Bearer ${sessionsKey.key}`, 403],
      [`Bearer ${otherAdmin.secret}`, 403],
    ] as const) {
      const r = await get(authorization);
      assert.equal(r.statusCode, status, `${authorization}: ${r.body}`);
      assert.equal(r.json().error.code, status === 401 ? 'unauthorized' : 'forbidden');
    }

    const byToken = await scrape(t, METRICS_TOKEN);
    const byAdmin = await scrape(t, ADMIN_KEY);
    for (const s of [byToken, byAdmin]) {
      assert.equal(s.types.get('veil_provider_up'), 'gauge');
      assert.equal(s.types.get('veil_outbox_pending_deliveries'), 'gauge');
      // The process's own, under prom-client's usual names.
      assert.equal(s.types.get('process_cpu_user_seconds_total'), 'counter');
      assert.equal(s.types.get('nodejs_eventloop_lag_seconds'), 'gauge');
    }
    // The token opens /metrics only.
    const r = await t.api('GET', '/v1/providers', undefined, METRICS_TOKEN);
    assert.equal(r.statusCode, 401, r.body);
  });

  it('keeps each app’s registry apart: two apps in one process both answer, each its own figures', async () => {
    const other = await testApp(store(), { VEIL_REPLENISH: 'US/415=7' });
    try {
      assert.equal((await scrape(t)).value('veil_pool_scope_min_free_numbers', { scope: 'US/415' }), 3);
      assert.equal((await scrape(other)).value('veil_pool_scope_min_free_numbers', { scope: 'US/415' }), 7);
    } finally {
      await other.close();
    }
  });

  it('shows a carrier switched off, found down, and its circuit open', async () => {
    let s = await scrape(t);
    for (const provider of ['sim', 'twilio']) {
      assert.equal(s.value('veil_provider_enabled', { provider }), 1);
      assert.equal(s.value('veil_provider_up', { provider }), 1);
      assert.equal(s.value('veil_provider_circuit_state', { provider, state: 'closed' }), 1);
      assert.equal(s.value('veil_provider_circuit_state', { provider, state: 'open' }), 0);
    }

    assert.equal((await t.api('PATCH', '/v1/providers/twilio', { enabled: false })).statusCode, 200);
    s = await scrape(t);
    assert.equal(s.value('veil_provider_enabled', { provider: 'twilio' }), 0);
    assert.equal(s.value('veil_provider_up', { provider: 'twilio' }), 1, 'switched off is not down');

    // Another instance found sim down: the shared finding is enough.
    await t.veil.providers.markDown('sim', true);
    s = await scrape(t);
    assert.equal(s.value('veil_provider_up', { provider: 'sim' }), 0);
    assert.equal(s.value('veil_provider_circuit_state', { provider: 'sim', state: 'closed' }), 1);

    // Twilio's calls fail here until its circuit opens (VEIL_PROVIDER_FAILURES, 5 by default).
    for (let i = 0; i < 5; i++) {
      await assert.rejects(t.veil.health.run('twilio', () => Promise.reject(new Error('connection reset'))));
    }
    s = await scrape(t);
    assert.equal(s.value('veil_provider_up', { provider: 'twilio' }), 0);
    assert.equal(s.value('veil_provider_circuit_state', { provider: 'twilio', state: 'open' }), 1);
    assert.equal(s.value('veil_provider_circuit_state', { provider: 'twilio', state: 'closed' }), 0);
    // The circuit's finding is written in the background: let it land before the store closes.
    for (let i = 0; i < 100 && !(await providerFlags(t.veil.store.db, ['twilio'])).get('twilio')?.down; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }

    assert.equal((await t.api('PATCH', '/v1/providers/twilio', { enabled: true })).statusCode, 200);
    assert.equal((await scrape(t)).value('veil_provider_enabled', { provider: 'twilio' }), 1);
  });

  it('shows the sessions failover could not move off a carrier switched off, until it moves them', async () => {
    assert.equal((await t.api('POST', '/v1/numbers', { number: POOL[0], provider: 'sim' })).statusCode, 201);
    assert.equal((await openSession()).statusCode, 201);
    assert.equal((await scrape(t)).value('veil_failover_stranded_sessions'), 0);
    // Twilio, the other carrier, has no number: the session has nowhere to go.
    assert.equal((await t.api('PATCH', '/v1/providers/sim', { enabled: false })).statusCode, 200);
    assert.equal((await t.veil.failover.pass()).stranded, 1);
    assert.equal((await scrape(t)).value('veil_failover_stranded_sessions'), 1);
    assert.equal(
      (await t.api('POST', '/v1/numbers', { number: POOL[1], provider: 'twilio' })).statusCode,
      201,
    );
    t.clock.advance(STUCK_RETRY_MS / 1000);
    assert.equal((await t.veil.failover.pass()).rebound, 1);
    assert.equal((await scrape(t)).value('veil_failover_stranded_sessions'), 0);
  });

  it('counts the pool’s free numbers as sessions take them, drain them and let them go', async () => {
    const ids = new Map<string, string>();
    for (const number of POOL) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'sim', maxSessions: 1 });
      assert.equal(r.statusCode, 201, r.body);
      ids.set(number, r.json().id);
    }
    const pool = async () => {
      const s = await scrape(t);
      return {
        free: s.value('veil_pool_free_numbers', POOL_LABELS),
        active: s.value('veil_pool_numbers', { ...POOL_LABELS, status: 'active' }),
        draining: s.value('veil_pool_numbers', { ...POOL_LABELS, status: 'draining' }),
        scopeFree: s.value('veil_pool_scope_free_numbers', { scope: 'US/415' }),
        scopeMin: s.value('veil_pool_scope_min_free_numbers', { scope: 'US/415' }),
      };
    };
    assert.deepEqual(await pool(), { free: 4, active: 4, draining: 0, scopeFree: 4, scopeMin: 3 });

    const first = await openSession();
    assert.equal(first.statusCode, 201, first.body);
    assert.deepEqual(await pool(), { free: 2, active: 4, draining: 0, scopeFree: 2, scopeMin: 3 });
    const second = await openSession();
    assert.equal(second.statusCode, 201, second.body);
    assert.deepEqual(await pool(), { free: 0, active: 4, draining: 0, scopeFree: 0, scopeMin: 3 });
    const third = await openSession();
    assert.equal(third.statusCode, 503, third.body);
    assert.equal((await pool()).free, 0);

    // A number the first session holds is drained: it stays until that session lets it go.
    const held = first.json().participants[0].proxyNumber as string;
    assert.equal((await t.api('DELETE', `/v1/numbers/${ids.get(held)}`)).statusCode, 200);
    assert.deepEqual(await pool(), { free: 0, active: 3, draining: 1, scopeFree: 0, scopeMin: 3 });

    assert.equal((await t.api('DELETE', `/v1/sessions/${second.json().id}`)).statusCode, 200);
    assert.deepEqual(await pool(), { free: 2, active: 3, draining: 1, scopeFree: 2, scopeMin: 3 });
    // Let go, the drained number retires and leaves the counts.
    assert.equal((await t.api('DELETE', `/v1/sessions/${first.json().id}`)).statusCode, 200);
    assert.deepEqual(await pool(), { free: 3, active: 3, draining: 0, scopeFree: 3, scopeMin: 3 });
  });

  it('shows how far behind the outbox is: the oldest event owed, pending deliveries, dead letters', async () => {
    const receiver = new WebhookReceiver();
    await receiver.start();
    try {
      // Receivers check a signature's timestamp against the wall clock: the test's starts there.
      t.clock.now = Date.now();
      const policy: OutboxPolicy = {
        maxAttempts: 2,
        // Long: the receiver down refuses at once, and up it answers however busy the machine is.
        timeoutMs: 5000,
        baseMs: 1000,
        capMs: 5000,
        intervalMs: 1000,
      };
      const outbox = new Outbox(t.veil.store, policy, createLogger('silent'), t.clock.read, () => 0.5);
      await t.api(
        'POST',
        '/v1/numbers/import',
        POOL.map((number) => ({ number, provider: 'sim' })),
      );
      const endpoint = (await t.api('POST', '/v1/webhook-endpoints', { url: receiver.url })).json();
      receiver.secrets.push(endpoint.secret);

      const outboxState = async () => {
        const s = await scrape(t);
        return {
          pending: s.value('veil_outbox_pending_deliveries'),
          oldest: s.value('veil_outbox_oldest_undelivered_timestamp_seconds'),
          dead: s.value('veil_outbox_dead_deliveries'),
        };
      };
      const before = Date.now() / 1000;
      let o = await outboxState();
      assert.deepEqual([o.pending, o.dead], [0, 0]);
      assert.ok(o.oldest >= before && o.oldest <= Date.now() / 1000, 'nothing owed: the time of the scrape');

      await receiver.stop();
      const firstAt = t.clock.now;
      assert.equal((await openSession()).statusCode, 201);
      // Written, not yet fanned out: owed already.
      assert.deepEqual(await outboxState(), { pending: 0, oldest: firstAt / 1000, dead: 0 });
      await outbox.pass();
      assert.deepEqual(await outboxState(), { pending: 1, oldest: firstAt / 1000, dead: 0 });

      t.clock.advance(60);
      const secondAt = t.clock.now;
      assert.equal((await openSession()).statusCode, 201);
      assert.deepEqual(await outboxState(), { pending: 1, oldest: firstAt / 1000, dead: 0 });
      // The first event's last attempt fails (dead); the second's first waits for a retry.
      await outbox.pass();
      assert.deepEqual(await outboxState(), { pending: 1, oldest: secondAt / 1000, dead: 1 });

      await receiver.start(receiver.port);
      t.clock.advance(60);
      await outbox.pass();
      const delivered = Date.now() / 1000;
      o = await outboxState();
      assert.deepEqual([o.pending, o.dead], [0, 1]);
      assert.ok(o.oldest >= delivered && o.oldest <= Date.now() / 1000, 'nothing owed once delivered');

      // A deleted endpoint's dead letters are nobody's to redeliver.
      assert.equal((await t.api('DELETE', `/v1/webhook-endpoints/${endpoint.id}`)).statusCode, 204);
      assert.equal((await outboxState()).dead, 0);
      assert.deepEqual(receiver.forged, []);
    } finally {
      await receiver.stop();
    }
  });
});

const X = '+8613800000001';
const Y = '+8613800000002';

describeStores('GET /metrics: remote bindings', { perTest: true }, (store) => {
  let t: TestApp;
  let fake: FakeAliyunPns;
  let person = 0;
  beforeEach(async () => {
    fake = new FakeAliyunPns(ALIYUN_KEY_ID, ALIYUN_KEY_SECRET, ALIYUN_POOL_KEY);
    await fake.start();
    // No call here hangs: a long timeout keeps a busy machine's slow answer from failing a try.
    t = await testApp(store(), { ...aliyunEnv(fake), ALIYUN_PNS_TIMEOUT_MS: '5000' });
    for (const number of [X, Y]) {
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'aliyun' })).statusCode, 201);
    }
  });
  afterEach(async () => {
    await t?.close();
    await fake?.stop();
  });

  /** The binding worker on the test's clock: two tries, a second apart at most. */
  const worker = () =>
    new BindingService(t.veil.store, t.veil.binders, createLogger('silent'), {
      maxAttempts: 2,
      clock: t.clock.read,
      random: () => 0.5,
      backoff: { baseMs: 1_000, capMs: 1_000 },
    });
  const createShared = async () => {
    const r = await t.api('POST', '/v1/sessions', {
      mode: 'shared',
      participants: [{ number: `+86139000${10000 + person++}` }, { number: `+86139000${10000 + person++}` }],
    });
    assert.equal(r.statusCode, 201, r.body);
    return r.json() as { id: string };
  };
  const bindings = async () => {
    const s = await scrape(t);
    const of = (name: string) => ({
      bind: s.value(name, { operation: 'bind' }),
      unbind: s.value(name, { operation: 'unbind' }),
    });
    return {
      pending: of('veil_bindings_pending'),
      retrying: of('veil_bindings_retrying'),
      failed: of('veil_bindings_failed'),
    };
  };
  const none = { bind: 0, unbind: 0 };

  it('counts bindings waiting, retrying and given up, bind and unbind', async () => {
    assert.deepEqual(await bindings(), { pending: none, retrying: none, failed: none });
    fake.plan({ kind: 'code', code: 'isp.SYSTEM_ERROR' }, { kind: 'status', status: 503 });
    const failing = await createShared();
    assert.deepEqual(await bindings(), { pending: { bind: 1, unbind: 0 }, retrying: none, failed: none });
    const w = worker();
    assert.deepEqual(await w.pass(), ['retry']);
    assert.deepEqual(await bindings(), {
      pending: { bind: 1, unbind: 0 },
      retrying: { bind: 1, unbind: 0 },
      failed: none,
    });
    t.clock.advance(1);
    assert.deepEqual(await w.pass(), ['failed']);
    assert.deepEqual(await bindings(), { pending: none, retrying: none, failed: { bind: 1, unbind: 0 } });

    // Its session ended, a failed bind leaves nothing behind.
    assert.equal((await t.api('DELETE', `/v1/sessions/${failing.id}`)).statusCode, 200);
    assert.deepEqual(await bindings(), { pending: none, retrying: none, failed: none });

    // A bound session ends and the carrier will not undo it.
    const bound = await createShared();
    assert.deepEqual(await w.pass(), ['bound']);
    assert.equal((await t.api('DELETE', `/v1/sessions/${bound.id}`)).statusCode, 200);
    assert.deepEqual(await bindings(), { pending: { bind: 0, unbind: 1 }, retrying: none, failed: none });
    fake.plan({ kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    assert.deepEqual(await w.pass(), ['retry']);
    t.clock.advance(1);
    assert.deepEqual(await w.pass(), ['failed']);
    assert.deepEqual(await bindings(), { pending: none, retrying: none, failed: { bind: 0, unbind: 1 } });
  });
});
