import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { OutboxPolicy } from '../../src/domain/webhooks.ts';
import { createLogger } from '../../src/logger.ts';
import { Outbox } from '../../src/services/outbox.ts';
import { type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

const POOL = Array.from({ length: 8 }, (_, i) => `+141555501${50 + i}`);
/** Small, so that tests move the clock by seconds; the timeout real, but short. */
const POLICY: OutboxPolicy = { maxAttempts: 4, timeoutMs: 150, baseMs: 1000, capMs: 5000, intervalMs: 1000 };

type Row = { event_id: string; endpoint_id: string; status: string; attempts: number; next_at: number };

describeStores('the webhook outbox', { perTest: true }, (store) => {
  let t: TestApp;
  let receiver: WebhookReceiver;
  let outbox: Outbox;
  /** The jitter's next values, in turn (0.5 once they run out). */
  let randoms: number[];
  let person = 0;

  beforeEach(async () => {
    t = await testApp(store());
    // Receivers check a signature's timestamp against the wall clock: the test's starts there.
    t.clock.now = Date.now();
    randoms = [];
    outbox = new Outbox(
      t.veil.store,
      POLICY,
      createLogger('silent'),
      t.clock.read,
      () => randoms.shift() ?? 0.5,
    );
    receiver = new WebhookReceiver();
    await receiver.start();
    const r = await t.api(
      'POST',
      '/v1/numbers/import',
      POOL.map((number) => ({ number, provider: 'sim' })),
    );
    assert.equal(r.statusCode, 201, r.body);
  });
  afterEach(async () => {
    await receiver.stop();
    await t.close();
    assert.deepEqual(receiver.forged, [], 'a delivery did not verify');
  });

  const endpoint = async (body: Record<string, unknown> = {}) => {
    const r = await t.api('POST', '/v1/webhook-endpoints', { url: receiver.url, ...body });
    assert.equal(r.statusCode, 201, r.body);
    receiver.secrets.push(r.json().secret);
    return r.json() as { id: string; secret: string };
  };
  const openSession = async () => {
    const r = await t.api('POST', '/v1/sessions', {
      participants: [{ number: `+1415200${1000 + person++}` }, { number: `+1415200${1000 + person++}` }],
    });
    assert.equal(r.statusCode, 201, r.body);
    return r.json() as { id: string; participants: { id: string }[] };
  };
  const events = async (query = '') => {
    const r = await t.api('GET', `/v1/events${query}`);
    assert.equal(r.statusCode, 200, r.body);
    return r.json().data as {
      id: string;
      type: string;
      data: { id: string };
      deliveries: {
        endpointId: string;
        status: string;
        attempts: number;
        lastError: string | null;
        lastStatus: number | null;
      }[];
    }[];
  };
  const deliveries = () =>
    t.veil.store.db.selectFrom('deliveries').selectAll().orderBy('event_id').execute() as Promise<Row[]>;

  it('delivers session.created, signed, with the event as its body', async () => {
    await endpoint();
    const session = await openSession();
    const pass = await outbox.pass();
    assert.deepEqual(pass, { fannedOut: 1, attempted: 1, delivered: 1 });
    assert.equal(receiver.received.length, 1);
    const [got] = receiver.received;
    const [event] = await events();
    assert.ok(got && event);
    assert.equal(got.id, event.id);
    assert.match(got.id, /^evt_/);
    assert.equal(got.headers['webhook-timestamp'], String(Math.floor(t.clock.now / 1000)));
    assert.match(String(got.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+=*$/);
    assert.deepEqual(got.json, {
      id: event.id,
      type: 'session.created',
      createdAt: new Date(t.clock.now).toISOString(),
      data: session,
    });
    assert.deepEqual(
      event.deliveries.map((d) => [d.status, d.attempts]),
      [['delivered', 1]],
    );
    // Nothing more to do: a second pass sends nothing again.
    assert.deepEqual(await outbox.pass(), { fannedOut: 0, attempted: 0, delivered: 0 });
    assert.equal(receiver.received.length, 1);
  });

  it('retries a failing receiver with full-jitter backoff, the same webhook-id every time', async () => {
    await endpoint();
    await openSession();
    receiver.script = ['fail', 'fail', 'fail'];
    const jitter = [0.25, 0.999, 0.5];
    randoms = [...jitter];
    const ceilings = [1000, 2000, 4000];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const before = t.clock.now;
      assert.equal((await outbox.pass()).delivered, 0);
      const [row] = await deliveries();
      assert.equal(row?.status, 'pending');
      assert.equal(row?.attempts, attempt);
      const wait = Number(row?.next_at) - before;
      const ceiling = ceilings[attempt - 1] ?? 0;
      assert.ok(wait >= 0 && wait < ceiling, `wait ${wait} after attempt ${attempt}`);
      assert.equal(wait, Math.floor((jitter[attempt - 1] ?? 0) * ceiling));
      // Not due yet: a pass now leaves it alone.
      if (wait > 0) {
        t.clock.now += wait - 1;
        assert.equal((await outbox.pass()).attempted, 0);
        t.clock.now += 1;
      }
    }
    assert.equal((await outbox.pass()).delivered, 1);
    const ids = receiver.received.map((r) => r.id);
    assert.equal(ids.length, 4);
    assert.equal(new Set(ids).size, 1, 'one webhook-id across the retries');
    const [event] = await events();
    assert.deepEqual(
      event?.deliveries.map((d) => [d.status, d.attempts]),
      [['delivered', 4]],
    );
  });

  it('retries a receiver that is down or hangs, and delivers once it is back', async () => {
    await endpoint();
    await openSession();
    const port = receiver.port;
    await receiver.stop();
    await outbox.pass();
    let [row] = await deliveries();
    assert.equal(row?.attempts, 1);
    assert.equal((await events())[0]?.deliveries[0]?.lastError, 'unreachable: ECONNREFUSED');

    await receiver.start(port);
    receiver.script = ['hang'];
    t.clock.now = Number(row?.next_at);
    await outbox.pass();
    [row] = await deliveries();
    assert.equal(row?.attempts, 2);
    const [failed] = (await events())[0]?.deliveries ?? [];
    assert.deepEqual([failed?.lastError, failed?.lastStatus], ['timeout', null]);

    t.clock.now = Number(row?.next_at);
    assert.equal((await outbox.pass()).delivered, 1);
    assert.equal(receiver.delivered().length, 1);
  });

  it('gives up after the last attempt (dead, shown in /v1/events) until redelivered', async () => {
    const hook = await endpoint();
    await openSession();
    receiver.mode = 'fail';
    for (let attempt = 1; attempt <= POLICY.maxAttempts; attempt++) {
      await outbox.pass();
      t.clock.advance(10);
    }
    assert.equal(receiver.received.length, POLICY.maxAttempts);
    await outbox.pass();
    assert.equal(receiver.received.length, POLICY.maxAttempts, 'a dead delivery was tried again');
    const [event] = await events();
    assert.ok(event);
    assert.deepEqual(event.deliveries, [
      {
        endpointId: hook.id,
        status: 'dead',
        attempts: POLICY.maxAttempts,
        nextAttemptAt: null,
        lastError: 'status',
        lastStatus: 500,
        deliveredAt: null,
      },
    ]);

    receiver.mode = 'ok';
    const r = await t.api('POST', `/v1/events/${event.id}/redeliver`);
    assert.equal(r.statusCode, 202, r.body);
    assert.deepEqual(
      r.json().deliveries.map((d: { status: string; attempts: number }) => [d.status, d.attempts]),
      [['pending', 0]],
    );
    assert.equal((await outbox.pass()).delivered, 1);
    assert.deepEqual(receiver.delivered(), [event.id]);
    assert.equal((await events())[0]?.deliveries[0]?.status, 'delivered');
    assert.equal((await t.api('POST', '/v1/events/evt_nope/redeliver')).statusCode, 404);
  });

  it('sends an endpoint only the types it asked for, made since it was', async () => {
    const early = await openSession();
    t.clock.advance(1);
    const closedOnly = await endpoint({ events: ['session.closed'] });
    const all = await endpoint();
    await outbox.pass();
    assert.equal(receiver.received.length, 0, 'an event made before the endpoints was sent');
    t.clock.advance(1);
    assert.equal((await t.api('DELETE', `/v1/sessions/${early.id}`)).statusCode, 200);
    await outbox.pass();
    const rows = await deliveries();
    assert.deepEqual(rows.map((r) => r.endpoint_id).sort(), [closedOnly.id, all.id].sort());
    assert.deepEqual(
      receiver.received.map((r) => r.json.type),
      ['session.closed', 'session.closed'],
    );
    await openSession();
    await outbox.pass();
    assert.deepEqual(
      (await deliveries()).filter((r) => r.endpoint_id === closedOnly.id).length,
      1,
      'session.created went to the endpoint that asked for session.closed only',
    );
    // Filtered by type, the log shows what was asked for.
    assert.deepEqual(
      (await events('?type=session.closed')).map((e) => e.type),
      ['session.closed'],
    );
  });

  it('sends a deleted endpoint nothing more, pending deliveries included', async () => {
    const hook = await endpoint();
    await openSession();
    receiver.mode = 'fail';
    await outbox.pass();
    assert.equal(receiver.received.length, 1);
    assert.equal((await t.api('DELETE', `/v1/webhook-endpoints/${hook.id}`)).statusCode, 204);
    receiver.mode = 'ok';
    t.clock.advance(60);
    await openSession();
    await outbox.pass();
    assert.equal(receiver.received.length, 1);
    assert.deepEqual(
      (await events()).map((e) => e.deliveries.map((d) => d.status)),
      [['dead'], []],
    );
  });

  it('keeps each session’s events in order while the receiver fails, and others go on', async () => {
    await endpoint();
    const first = await openSession();
    t.clock.advance(1);
    const pid = first.participants[0]?.id;
    const patched = await t.api('PATCH', `/v1/sessions/${first.id}/participants/${pid}`, {
      label: 'courier',
    });
    assert.equal(patched.statusCode, 200, patched.body);
    t.clock.advance(1);
    assert.equal((await t.api('DELETE', `/v1/sessions/${first.id}`)).statusCode, 200);
    t.clock.advance(1);
    const second = await openSession();

    receiver.script = ['fail'];
    await outbox.pass();
    // The first session's first event failed and holds back its others; the second's went.
    assert.deepEqual(
      receiver.received.map((r) => [r.json.data.id, r.json.type, r.answered]),
      [
        [first.id, 'session.created', 'fail'],
        [second.id, 'session.created', 'ok'],
      ],
    );
    t.clock.advance(10);
    await outbox.pass();
    assert.deepEqual(
      receiver.received.filter((r) => r.json.data.id === first.id).map((r) => [r.json.type, r.answered]),
      [
        ['session.created', 'fail'],
        ['session.created', 'ok'],
        ['session.updated', 'ok'],
        ['session.closed', 'ok'],
      ],
    );
  });

  it('keeps tenants’ event logs apart', async () => {
    await endpoint();
    await openSession();
    await t.veil.store.db
      .insertInto('tenants')
      .values({ id: 'other', name: 'other', created_at: t.clock.now })
      .execute();
    const theirs = (await t.veil.keys.create('other', 'other app', ['admin'])).secret;
    const r = await t.api('GET', '/v1/events', undefined, theirs);
    assert.deepEqual(r.json(), { data: [], nextCursor: null });
    const [event] = await events();
    const redeliver = await t.api('POST', `/v1/events/${event?.id}/redeliver`, undefined, theirs);
    assert.equal(redeliver.statusCode, 404, redeliver.body);
  });

  describe('on two instances', () => {
    let other: TestApp;
    afterEach(async () => {
      await other?.close();
    });

    it('delivers each event exactly once when both run passes at the same time', async () => {
      other = await testApp(store(), {}, { sessionThread: false });
      other.clock.now = t.clock.now;
      const second = new Outbox(other.veil.store, POLICY, createLogger('silent'), other.clock.read);
      await endpoint();
      const made = [];
      for (let i = 0; i < 4; i++) made.push(await openSession());
      const ids = (await events()).map((e) => e.id);
      // Both fan out and deliver the same events side by side, again and again.
      for (let round = 0; round < 4; round++) {
        await Promise.all([outbox.pass(), second.pass(), outbox.pass(), second.pass()]);
      }
      assert.equal(ids.length, made.length);
      assert.deepEqual([...receiver.delivered()].sort(), [...ids].sort());
      assert.equal(receiver.received.length, ids.length, 'an event was delivered twice');
    });
  });
});
