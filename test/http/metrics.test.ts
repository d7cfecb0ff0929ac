import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, it } from 'node:test';
import { DEFAULT_TENANT } from '../../src/domain/tenants.ts';
import type { OutboxPolicy } from '../../src/domain/webhooks.ts';
import { createLogger } from '../../src/logger.ts';
import { signSimRequest } from '../../src/providers/sim/sim-adapter.ts';
import { BindingService } from '../../src/services/bindings.ts';
import { STUCK_RETRY_MS } from '../../src/services/failover.ts';
import { ROUTE_SECONDS_BUCKETS } from '../../src/services/metrics.ts';
import { Outbox } from '../../src/services/outbox.ts';
import { providerFlags } from '../../src/store/providers.ts';
import {
  ALIYUN_KEY_ID,
  ALIYUN_KEY_SECRET,
  ALIYUN_POOL_KEY,
  aliyunEnv,
  FakeAliyunPns,
} from '../support/aliyun-api.ts';
import { ADMIN_KEY, SIM_SECRET, type TestApp, testApp } from '../support/app.ts';
import { type Scrape, scrape } from '../support/metrics.ts';
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

/** The value of the one sample of `name` with exactly these labels, 0 when there is none yet. */
function counted(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  const found = s.samples.filter(
    (x) =>
      x.name === name &&
      Object.keys(x.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  assert.ok(found.length <= 1, `${name}${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]?.value ?? 0;
}

/** Each labelled sample of `name` as `{labels} value`, sorted: the whole of a counter at once. */
function series(s: Scrape, name: string): string[] {
  return s.samples
    .filter((x) => x.name === name && x.value !== 0)
    .map((x) => `${JSON.stringify(x.labels)} ${x.value}`)
    .sort();
}

const A = '+14155551101';
const B = '+14155551102';
const STRANGER = '+14155551999';

describeStores('GET /metrics: what this instance did', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store(), { VEIL_METRICS_TOKEN: METRICS_TOKEN });
    // The simulator's signatures are judged on the wall clock.
    t.clock.now = Date.now();
  });
  afterEach(async () => {
    await t.close();
  });

  const addPool = async (numbers: readonly string[], maxSessions?: number) => {
    for (const number of numbers) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'sim', maxSessions });
      assert.equal(r.statusCode, 201, r.body);
    }
  };
  const open = async (a = A, b = B, externalId?: string) => {
    const r = await t.api('POST', '/v1/sessions', {
      externalId,
      participants: [{ number: a }, { number: b }],
    });
    return r;
  };
  const route = async (from: string, to: string, channel: 'voice' | 'sms' = 'voice') => {
    const r = await t.api('POST', '/v1/route', {
      from,
      to,
      channel,
      ...(channel === 'sms' ? { body: 'hi' } : {}),
    });
    assert.equal(r.statusCode, 200, r.body);
    return r.json() as { action: string; reason?: string };
  };
  /** A simulator webhook, signed over its exact bytes unless `secret` says another secret. */
  const simHeaders = (raw: string, secret = SIM_SECRET) => ({
    'content-type': 'application/json',
    ...signSimRequest(secret, raw, Date.now()),
  });
  const simPost = (path: string, raw: string, headers: Record<string, string>) =>
    t.app.inject({ method: 'POST', url: `/webhooks/sim/${path}`, headers, payload: raw });

  it('counts each routing decision by provider, channel, action and reason, and times each', async () => {
    await addPool(POOL.slice(0, 2));
    const s0 = await scrape(t, METRICS_TOKEN);
    assert.equal(s0.types.get('veil_route_decisions_total'), 'counter');
    assert.equal(s0.types.get('veil_route_duration_seconds'), 'histogram');
    assert.deepEqual(series(s0, 'veil_route_decisions_total'), []);

    const session = await open();
    assert.equal(session.statusCode, 201, session.body);
    const proxyOf = new Map<string, string>(
      session
        .json()
        .participants.map((p: { number: string; proxyNumber: string }) => [p.number, p.proxyNumber]),
    );
    const xA = proxyOf.get(A) as string;
    assert.equal((await route(A, xA)).action, 'connect');
    assert.equal((await route(A, xA)).action, 'connect');
    assert.equal((await route(A, xA, 'sms')).action, 'forward');
    const refused = await route(STRANGER, xA);
    assert.deepEqual([refused.action, refused.reason], ['reject', 'no_session']);
    // A request refused before any decision (a bad number) is no decision.
    const bad = await t.api('POST', '/v1/route', { from: 'not a number', to: xA, channel: 'voice' });
    assert.equal(bad.statusCode, 400, bad.body);
    // One through the carrier's webhook.
    const raw = JSON.stringify({ from: B, to: proxyOf.get(B), callId: 'sim-metrics-1' });
    const hook = await simPost('voice', raw, simHeaders(raw));
    assert.equal(hook.statusCode, 200, hook.body);
    assert.equal(hook.json().action, 'connect');

    const s = await scrape(t, METRICS_TOKEN);
    assert.deepEqual(series(s, 'veil_route_decisions_total'), [
      '{"provider":"api","channel":"sms","action":"forward","reason":"none"} 1',
      '{"provider":"api","channel":"voice","action":"connect","reason":"none"} 2',
      '{"provider":"api","channel":"voice","action":"reject","reason":"no_session"} 1',
      '{"provider":"sim","channel":"voice","action":"connect","reason":"none"} 1',
    ]);
    for (const [provider, n] of [
      ['api', 4],
      ['sim', 1],
    ] as const) {
      assert.equal(counted(s, 'veil_route_duration_seconds_count', { provider }), n, provider);
      assert.equal(counted(s, 'veil_route_duration_seconds_bucket', { provider, le: '+Inf' }), n, provider);
      const sum = counted(s, 'veil_route_duration_seconds_sum', { provider });
      assert.ok(sum > 0 && sum < 60, `${provider}: ${sum} s`);
      // Cumulative buckets, every one of them there.
      let previous = 0;
      for (const le of ROUTE_SECONDS_BUCKETS) {
        const inBucket = counted(s, 'veil_route_duration_seconds_bucket', { provider, le: String(le) });
        assert.ok(inBucket >= previous && inBucket <= n, `${provider} le=${le}`);
        previous = inBucket;
      }
    }
    // The labels carry no number.
    for (const sample of s.samples) {
      for (const value of Object.values(sample.labels)) assert.doesNotMatch(value, /\+?\d{7,}/, sample.name);
    }
  });

  it('counts carrier webhooks by result: accepted, a forged signature, a replay, a wrong body', async () => {
    await addPool(POOL.slice(0, 2));
    const session = await open();
    assert.equal(session.statusCode, 201, session.body);
    const xA = session.json().participants[0].proxyNumber as string;
    const raw = JSON.stringify({ from: A, to: xA, callId: 'sim-metrics-2' });
    const signed = simHeaders(raw);
    assert.equal((await simPost('voice', raw, signed)).statusCode, 200);
    // The same signed request again is a replay.
    const again = await simPost('voice', raw, signed);
    assert.equal(again.statusCode, 403, again.body);
    assert.match(again.json().error.message, /already used/);
    // Forged twice: another secret, and no signature at all.
    const forged = JSON.stringify({ from: STRANGER, to: xA, callId: 'sim-metrics-3' });
    assert.equal((await simPost('voice', forged, simHeaders(forged, 'not-the-secret'))).statusCode, 403);
    assert.equal((await simPost('sms', forged, { 'content-type': 'application/json' })).statusCode, 403);
    // Not the carrier's body format.
    const form = await t.app.inject({
      method: 'POST',
      url: '/webhooks/sim/voice',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'from=1',
    });
    assert.equal(form.statusCode, 415, form.body);

    const s = await scrape(t, METRICS_TOKEN);
    assert.deepEqual(series(s, 'veil_webhooks_total'), [
      '{"provider":"sim","path":"sms","result":"refused_signature"} 1',
      '{"provider":"sim","path":"voice","result":"accepted"} 1',
      '{"provider":"sim","path":"voice","result":"invalid"} 1',
      '{"provider":"sim","path":"voice","result":"refused_signature"} 1',
      '{"provider":"sim","path":"voice","result":"replay"} 1',
    ]);
    // Only the accepted one was routed.
    assert.deepEqual(series(s, 'veil_route_decisions_total'), [
      '{"provider":"sim","channel":"voice","action":"connect","reason":"none"} 1',
    ]);
  });

  it('counts sessions created and proxies allocated, and shows the sessions open', async () => {
    await addPool(POOL);
    const sessions = async () => {
      const s = await scrape(t, METRICS_TOKEN);
      return {
        created: counted(s, 'veil_sessions_created_total', { mode: 'per-participant' }),
        open: counted(s, 'veil_sessions_open'),
        allocated: {
          create: counted(s, 'veil_allocations_total', { operation: 'create' }),
          add: counted(s, 'veil_allocations_total', { operation: 'add_participant' }),
          replace: counted(s, 'veil_allocations_total', { operation: 'replace_participant' }),
        },
      };
    };
    assert.deepEqual(await sessions(), { created: 0, open: 0, allocated: { create: 0, add: 0, replace: 0 } });

    const first = await open(A, B, 'order-1');
    assert.equal(first.statusCode, 201, first.body);
    assert.deepEqual(await sessions(), { created: 1, open: 1, allocated: { create: 2, add: 0, replace: 0 } });
    // The same request again finds the session: nothing opened, nothing allocated.
    assert.equal((await open(A, B, 'order-1')).statusCode, 200);
    assert.deepEqual(await sessions(), { created: 1, open: 1, allocated: { create: 2, add: 0, replace: 0 } });

    const second = await open('+14155551103', '+14155551104');
    assert.equal(second.statusCode, 201, second.body);
    assert.deepEqual(await sessions(), { created: 2, open: 2, allocated: { create: 4, add: 0, replace: 0 } });

    // The courier changes: a newcomer given a proxy; the same person again is given none.
    const id = first.json().id as string;
    const courier = first.json().participants[1].id as string;
    const replaced = await t.api('PUT', `/v1/sessions/${id}/participants/${courier}`, {
      number: '+14155551105',
    });
    assert.equal(replaced.statusCode, 200, replaced.body);
    const newcomer = replaced
      .json()
      .participants.find((p: { number: string }) => p.number === '+14155551105');
    assert.ok(newcomer);
    const same = await t.api('PUT', `/v1/sessions/${id}/participants/${newcomer.id}`, {
      number: '+14155551105',
      label: 'courier',
    });
    assert.equal(same.statusCode, 200, same.body);
    assert.deepEqual(await sessions(), { created: 2, open: 2, allocated: { create: 4, add: 0, replace: 1 } });
    // Out, then in again.
    assert.equal((await t.api('DELETE', `/v1/sessions/${id}/participants/${newcomer.id}`)).statusCode, 200);
    const added = await t.api('POST', `/v1/sessions/${id}/participants`, { number: '+14155551106' });
    assert.equal(added.statusCode, 201, added.body);
    assert.deepEqual(await sessions(), { created: 2, open: 2, allocated: { create: 4, add: 1, replace: 1 } });

    // Closed, and past its expiry before the sweeper comes: neither is open.
    assert.equal((await t.api('DELETE', `/v1/sessions/${id}`)).statusCode, 200);
    assert.equal((await sessions()).open, 1);
    // The gauge reads the wall clock (the test's is on it): a session that expires in 1.5 s.
    const brief = await t.api('POST', '/v1/sessions', {
      expiresAt: new Date(Date.now() + 1500).toISOString(),
      participants: [{ number: '+14155551107' }, { number: '+14155551108' }],
    });
    assert.equal(brief.statusCode, 201, brief.body);
    assert.equal((await sessions()).open, 2);
    await new Promise((resolve) => setTimeout(resolve, 1600));
    assert.deepEqual(await sessions(), { created: 3, open: 1, allocated: { create: 6, add: 1, replace: 1 } });
  });

  it('counts the creates refused with pool_exhausted', async () => {
    await addPool(POOL.slice(0, 2), 1);
    const exhausted = async () => {
      const s = await scrape(t, METRICS_TOKEN);
      return counted(s, 'veil_pool_exhausted_total', { operation: 'create' });
    };
    assert.equal(await exhausted(), 0);
    assert.equal((await open()).statusCode, 201);
    const refused = await open('+14155551103', '+14155551104');
    assert.equal(refused.statusCode, 503, refused.body);
    assert.equal(refused.json().error.code, 'pool_exhausted');
    assert.equal(await exhausted(), 1);
    assert.equal((await open('+14155551105', '+14155551106')).statusCode, 503);
    const s = await scrape(t, METRICS_TOKEN);
    assert.equal(counted(s, 'veil_pool_exhausted_total', { operation: 'create' }), 2);
    assert.equal(counted(s, 'veil_allocations_total', { operation: 'create' }), 2);
  });
});

describeStores('GET /metrics: the SQLite writer’s queue', { only: 'sqlite' }, (store) => {
  let t: TestApp;
  before(async () => {
    t = await testApp(store(), { VEIL_METRICS_TOKEN: METRICS_TOKEN });
    for (const number of POOL.slice(0, 2)) {
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
    }
  });
  after(async () => {
    await t?.close();
  });

  const queue = async () => {
    const s = await scrape(t, METRICS_TOKEN);
    return {
      groupCommit: s.value('veil_sqlite_writer_queue', { writer: 'group_commit' }),
      sessionThread: s.value('veil_sqlite_writer_queue', { writer: 'session_thread' }),
      background: s.value('veil_sqlite_writer_queue', { writer: 'background' }),
    };
  };

  it('shows the writes waiting for the writer: group-committed units and the session thread’s calls', async () => {
    assert.deepEqual(await queue(), { groupCommit: 0, sessionThread: 0, background: 0 });
    // A unit of work that holds the write lock until let go.
    let letGo = () => {};
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    let locked = () => {};
    const holding = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const unit = t.veil.store.transaction(async (trx) => {
      await trx.insertInto('tenants').values({ id: 'gate', name: 'gate', created_at: 0 }).execute();
      locked();
      await gate;
    });
    await holding;
    // A second unit waits behind it, and a create waits on the session thread for the lock.
    const second = t.veil.store.transaction(async () => {});
    const created = t.veil.sessions.create(DEFAULT_TENANT, { participants: [{ number: A }, { number: B }] });
    assert.deepEqual(await queue(), { groupCommit: 2, sessionThread: 1, background: 0 });
    letGo();
    await Promise.all([unit, second]);
    assert.equal((await created).created, true);
    assert.deepEqual(await queue(), { groupCommit: 0, sessionThread: 0, background: 0 });
  });
});
