import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, connect as dial, type Server, type Socket } from 'node:net';
import { after, afterEach, before, beforeEach, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AckPolicy, connect, type JetStreamManager, type Msg, type NatsConnection } from 'nats';
import { loadConfig } from '../../src/config.ts';
import { UnavailableError } from '../../src/domain/errors.ts';
import type { Session } from '../../src/domain/session.ts';
import { DEFAULT_TENANT } from '../../src/domain/tenants.ts';
import { startServer } from '../../src/server.ts';
import type { OrderConsumer, OrderEvents } from '../../src/services/order-events.ts';
import { DEAD_LETTER_HEADERS, startNatsOrders } from '../../src/workers/nats-orders.ts';
import { type TestApp, testApp } from '../support/app.ts';
import { databaseUrl, describeStores } from '../support/stores.ts';

/** The real NATS server (JetStream enabled) the tests run against. */
const NATS = '127.0.0.1:4222';
const TIMEOUT = { timeout: 20_000 };
/** Short waits, so that a test of retries and reconnects takes a second, not a minute. */
const FAST = { timeoutMs: 2_000, reconnectMs: 100, retryDelayMs: 100, waitDeliveries: 2 };

const CUSTOMER = '+14155550101';
const COURIER = '+14155550102';
const NEW_COURIER = '+14155550103';
/** Each number as any log line might carry it, with or without its +1. */
const REAL_NUMBERS = [CUSTOMER, COURIER, NEW_COURIER, '+14155550123'].map((n) => n.slice(2));

/** Waits until `done()` holds; fails naming `what` after `ms`. */
async function until(done: () => Promise<boolean> | boolean, what: string, ms = 8_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await sleep(25);
  }
}

/** One test's subjects and durable consumer on the shared server, removed afterwards. */
interface Wiring {
  prefix: string;
  subject: string;
  deadSubject: string;
  durable: string;
}

function newWiring(): Wiring {
  const prefix = `veiltest.${randomBytes(6).toString('hex')}`;
  return {
    prefix,
    subject: `${prefix}.orders.>`,
    deadSubject: `${prefix}.dead`,
    durable: `veil-test-${randomBytes(6).toString('hex')}`,
  };
}

describeStores('order events from NATS JetStream', (store) => {
  let t: TestApp;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let wiring: Wiring;
  let consumer: OrderConsumer | undefined;
  let unwatch: (() => void) | undefined;
  let deadLetters: Msg[];

  before(async () => {
    t = await testApp(store());
    for (let n = 150; n < 158; n++) {
      const r = await t.api('POST', '/v1/numbers', {
        number: `+1415555${String(n).padStart(4, '0')}`,
        provider: 'sim',
      });
      assert.equal(r.statusCode, 201, r.body);
    }
    nc = await connect({ servers: NATS });
    jsm = await nc.jetstreamManager();
  });
  after(async () => {
    await nc?.close();
    await t?.close();
  });

  beforeEach(() => {
    wiring = newWiring();
    deadLetters = [];
    // Every dead letter published on the test's subject, as it reaches any subscriber.
    nc.subscribe(wiring.deadSubject, { callback: (_err, m) => deadLetters.push(m) });
  });
  afterEach(async () => {
    await consumer?.stop();
    unwatch?.();
    consumer = undefined;
    unwatch = undefined;
    for (const subject of [wiring.subject, wiring.deadSubject]) {
      const stream = await jsm.streams.find(subject).catch(() => undefined);
      if (stream) await jsm.streams.delete(stream);
    }
  });

  /** Starts the consumer on this test's wiring (or the servers given), reported by /readyz. */
  const start = (servers: string[] = [NATS], orders: Pick<OrderEvents, 'handleWithin'> = t.veil.orders) => {
    // The app's own logger: its lines reach t.logs, masked as they would reach stdout.
    consumer = startNatsOrders(orders, t.app.log, { servers, ...wiring, ...FAST });
    unwatch = t.veil.watch(consumer);
    return consumer;
  };

  const publish = async (event: unknown, subject = `${wiring.prefix}.orders.events`) => {
    const body = typeof event === 'string' ? event : JSON.stringify(event);
    await nc.jetstream().publish(subject, new TextEncoder().encode(body));
  };
  const ready = async () => {
    const r = await t.app.inject({ method: 'GET', url: '/readyz' });
    const body = r.json() as { status: string; degraded?: string[] };
    return { statusCode: r.statusCode, status: body.status, degraded: body.degraded ?? [] };
  };
  const untilConsuming = () =>
    until(async () => (await ready()).degraded.length === 0, '/readyz with nothing degraded');
  /** /readyz keeps answering 200 (the broker is not the instance's), naming NATS under degraded. */
  const untilDegraded = (what: RegExp) =>
    until(async () => {
      const now = await ready();
      assert.equal(now.statusCode, 200);
      return now.degraded.some((reason) => what.test(reason));
    }, `/readyz naming ${what} under degraded`);

  const sessionOf = async (orderId: string): Promise<Session | undefined> =>
    (await t.veil.sessions.list(DEFAULT_TENANT, { externalId: orderId, limit: 1 })).data[0];
  const numbersOf = (session: Session | undefined) =>
    Object.fromEntries((session?.participants ?? []).map((p) => [p.label, p.number]));
  const countSessions = async () =>
    Number(
      (
        await t.veil.store.db
          .selectFrom('sessions')
          .select((e) => e.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const assertNoRealNumberLogged = () => {
    const logs = t.logs.join('');
    for (const digits of REAL_NUMBERS)
      assert.ok(!logs.includes(digits), `a real number is in the log: ${digits}`);
  };

  const assigned = (orderId: string) => ({
    type: 'order.assigned',
    orderId,
    customer: { number: CUSTOMER },
    courier: { number: COURIER },
  });

  it(
    'creates its stream and durable consumer, then an order.assigned opens the session',
    TIMEOUT,
    async () => {
      start();
      await untilConsuming();
      const orderId = `o-${randomBytes(4).toString('hex')}`;
      await publish(assigned(orderId));
      await until(async () => (await sessionOf(orderId)) !== undefined, 'the session opened');
      const session = await sessionOf(orderId);
      assert.equal(session?.status, 'open');
      assert.equal(session?.externalId, orderId);
      assert.deepEqual(numbersOf(session), { customer: CUSTOMER, courier: COURIER });
      // Through the API, as the app sees it: both numbers, each with a proxy.
      const r = await t.api('GET', `/v1/sessions?externalId=${orderId}`);
      const [view] = (r.json() as { data: { participants: { number: string; proxyNumber: string }[] }[] })
        .data;
      assert.deepEqual(view?.participants.map((p) => p.number).sort(), [CUSTOMER, COURIER]);
      assert.ok(view?.participants.every((p) => p.proxyNumber.startsWith('+1415555')));
      // The stream captures the subject; the durable consumer acknowledged the event.
      const stream = await jsm.streams.find(wiring.subject);
      await until(
        async () => (await jsm.consumers.info(stream, wiring.durable)).num_ack_pending === 0,
        'the ack',
      );
      const info = await jsm.consumers.info(stream, wiring.durable);
      assert.equal(info.config.ack_policy, 'explicit');
      assert.equal(info.config.max_ack_pending, 1, 'one event out at a time, across instances');
      assert.equal(info.delivered.stream_seq, 1);
      assert.equal(deadLetters.length, 0);
      assertNoRealNumberLogged();
    },
  );

  it('carries out assigned, reassigned, delivered each delivered twice, as if once', TIMEOUT, async () => {
    start();
    await untilConsuming();
    const orderId = `o-${randomBytes(4).toString('hex')}`;
    await publish(assigned(orderId));
    await publish(assigned(orderId));
    await until(async () => (await sessionOf(orderId)) !== undefined, 'the session opened');
    const opened = await sessionOf(orderId);
    const reassigned = { type: 'order.reassigned', orderId, courier: { number: NEW_COURIER } };
    await publish(reassigned);
    await publish(reassigned);
    await until(
      async () => numbersOf(await sessionOf(orderId)).courier === NEW_COURIER,
      'the courier replaced',
    );
    // The redelivered order.assigned after the reassignment changes nothing either.
    await publish(assigned(orderId));
    await publish({ type: 'order.delivered', orderId });
    await publish({ type: 'order.delivered', orderId });
    await until(async () => (await sessionOf(orderId))?.status === 'closed', 'the session closed');
    await until(() => t.logs.filter((l) => l.includes(orderId)).length >= 7, 'seven events logged');
    const session = await sessionOf(orderId);
    assert.equal(session?.id, opened?.id, 'one session for the order');
    assert.deepEqual(numbersOf(session), { customer: CUSTOMER, courier: NEW_COURIER });
    const customer = (s: Session | undefined) => s?.participants.find((p) => p.label === 'customer');
    assert.equal(
      customer(session)?.proxyNumber,
      customer(opened)?.proxyNumber,
      'the customer keeps the proxy',
    );
    const outcomes = t.logs
      .map((l) => JSON.parse(l))
      .filter((l) => l.orderId === orderId)
      .map((l) => `${l.type} ${l.result}`);
    assert.deepEqual(outcomes, [
      'order.assigned applied',
      'order.assigned unchanged',
      'order.reassigned applied',
      'order.reassigned unchanged',
      'order.assigned unchanged',
      'order.delivered applied',
      'order.delivered unchanged',
    ]);
    assert.equal(deadLetters.length, 0);
    assertNoRealNumberLogged();
  });

  it('closes on order.cancelled, once', TIMEOUT, async () => {
    start();
    await untilConsuming();
    const orderId = `o-${randomBytes(4).toString('hex')}`;
    await publish(assigned(orderId));
    await publish({ type: 'order.cancelled', orderId });
    await publish({ type: 'order.cancelled', orderId });
    await until(() => t.logs.filter((l) => l.includes(orderId)).length >= 3, 'three events logged');
    const session = await sessionOf(orderId);
    assert.equal(session?.status, 'closed');
    assert.ok(session?.closedAt);
    assert.deepEqual(
      t.logs
        .map((l) => JSON.parse(l))
        .filter((l) => l.orderId === orderId)
        .map((l) => l.result),
      ['applied', 'applied', 'unchanged'],
    );
  });

  it(
    'acknowledges malformed events to the dead-letter subject with the reason, writing nothing and logging no number',
    TIMEOUT,
    async () => {
      start();
      await untilConsuming();
      const before = await countSessions();
      const malformed: [string | object, RegExp][] = [
        [`{"type":"order.assigned","orderId":"m-1","customer":{"number":"+14155550123"`, /not JSON/],
        [{ type: 'order.picked', orderId: 'm-2', customer: { number: CUSTOMER } }, /type must be one of/],
        [
          { ...assigned('m-3'), courier: { number: '+1415555' } },
          /courier\.number is not a valid phone number/,
        ],
        [
          { type: 'order.assigned', customer: { number: CUSTOMER }, courier: { number: COURIER } },
          /orderId is missing/,
        ],
        [{ type: 'order.reassigned', orderId: 'm-5' }, /courier\.number is missing/],
      ];
      for (const [event] of malformed) await publish(event);
      await until(() => deadLetters.length === malformed.length, `${malformed.length} dead letters`);
      for (const [i, [event, reason]] of malformed.entries()) {
        const letter = deadLetters[i];
        assert.ok(letter?.headers, 'a dead letter has headers');
        assert.match(letter.headers.get(DEAD_LETTER_HEADERS.reason), reason);
        assert.equal(letter.headers.get(DEAD_LETTER_HEADERS.subject), `${wiring.prefix}.orders.events`);
        assert.equal(letter.headers.get(DEAD_LETTER_HEADERS.sequence), String(i + 1));
        // The body is the event as it came, so that it can be mended and sent again.
        assert.equal(letter.string(), typeof event === 'string' ? event : JSON.stringify(event));
        assert.doesNotMatch(letter.headers.get(DEAD_LETTER_HEADERS.reason), /4155550/);
      }
      // Acknowledged (not delivered again), and kept: the dead-letter subject has a stream of its own.
      const stream = await jsm.streams.find(wiring.subject);
      await until(
        async () => (await jsm.consumers.info(stream, wiring.durable)).num_ack_pending === 0,
        'the acks',
      );
      assert.equal((await jsm.consumers.info(stream, wiring.durable)).num_redelivered, 0);
      const dead = await jsm.streams.info(await jsm.streams.find(wiring.deadSubject));
      assert.equal(dead.state.messages, malformed.length);
      assert.equal(await countSessions(), before, 'a malformed event wrote a session');
      const warnings = t.logs
        .map((l) => JSON.parse(l))
        .filter((l) => l.result === 'rejected' && l.subject?.startsWith(wiring.prefix));
      assert.equal(warnings.length, malformed.length);
      assert.equal(warnings[0].level, 40);
      assertNoRealNumberLogged();
    },
  );

  it('tries an event for an order with no session again, then dead-letters it', TIMEOUT, async () => {
    start();
    await untilConsuming();
    await publish({ type: 'order.delivered', orderId: 'never-assigned' });
    await until(() => deadLetters.length === 1, 'the dead letter');
    assert.match(
      deadLetters[0]?.headers?.get(DEAD_LETTER_HEADERS.reason) ?? '',
      /no session for this order after 2 tries/,
    );
    assert.equal(await sessionOf('never-assigned'), undefined);
  });

  it(
    'a conflicting order.assigned (same orderId, other people) is dead-lettered, the session kept',
    TIMEOUT,
    async () => {
      start();
      await untilConsuming();
      const orderId = `o-${randomBytes(4).toString('hex')}`;
      await publish(assigned(orderId));
      await publish({ ...assigned(orderId), courier: { number: NEW_COURIER } });
      await until(() => deadLetters.length === 1, 'the dead letter');
      assert.match(deadLetters[0]?.headers?.get(DEAD_LETTER_HEADERS.reason) ?? '', /different request/);
      assert.deepEqual(numbersOf(await sessionOf(orderId)), { customer: CUSTOMER, courier: COURIER });
      assertNoRealNumberLogged();
    },
  );

  it(
    'NATS out of reach: /readyz stays 200, naming NATS under degraded and in the metrics, and stop does not wait for it',
    TIMEOUT,
    async () => {
      const closed = await freePort();
      start([`127.0.0.1:${closed}`]);
      await untilDegraded(/NATS/);
      const metrics = await t.api('GET', '/metrics');
      assert.match(metrics.body, /^veil_degraded_parts 1$/m);
      const started = Date.now();
      await consumer?.stop();
      assert.ok(Date.now() - started < 1_000, 'stop waited for NATS');
      unwatch?.();
      consumer = undefined;
      assert.deepEqual(await ready(), { statusCode: 200, status: 'ready', degraded: [] });
    },
  );

  it('carries out an event that failed for a moment before the one sent after it', TIMEOUT, async () => {
    const orderId = `o-${randomBytes(4).toString('hex')}`;
    let failed = 0;
    // The database fails the first reassignment twice, as a passing outage would.
    start([NATS], {
      handleWithin: async (body, ms) => {
        const text = new TextDecoder().decode(body as Uint8Array);
        if (text.includes(NEW_COURIER) && failed < 2) {
          failed++;
          throw new UnavailableError('the database is out for a moment');
        }
        return t.veil.orders.handleWithin(body, ms);
      },
    });
    await untilConsuming();
    await publish(assigned(orderId));
    await publish({ type: 'order.reassigned', orderId, courier: { number: NEW_COURIER } });
    await publish({ type: 'order.reassigned', orderId, courier: { number: '+14155550123' } });
    await until(
      async () => numbersOf(await sessionOf(orderId)).courier === '+14155550123',
      'the last courier in place',
    );
    // Nothing comes after: the first reassignment was carried out before the second, not after.
    await sleep(FAST.retryDelayMs * 3);
    assert.equal(failed, 2);
    assert.equal(numbersOf(await sessionOf(orderId)).courier, '+14155550123');
    const stream = await jsm.streams.find(wiring.subject);
    await until(
      async () => (await jsm.consumers.info(stream, wiring.durable)).num_ack_pending === 0,
      'the acks',
    );
    assert.equal(deadLetters.length, 0);
    assertNoRealNumberLogged();
  });

  it('sets one event out at a time on a consumer an older Veil created', TIMEOUT, async () => {
    const stream = `VEIL_TEST_${randomBytes(4).toString('hex').toUpperCase()}`;
    await jsm.streams.add({ name: stream, subjects: [wiring.subject] });
    await jsm.consumers.add(stream, {
      durable_name: wiring.durable,
      ack_policy: AckPolicy.Explicit,
      filter_subject: wiring.subject,
    });
    assert.notEqual((await jsm.consumers.info(stream, wiring.durable)).config.max_ack_pending, 1);
    start();
    await untilConsuming();
    assert.equal((await jsm.consumers.info(stream, wiring.durable)).config.max_ack_pending, 1);
  });

  it(
    'a lost connection is reported, reconnected, and the events sent meanwhile carried out',
    TIMEOUT,
    async () => {
      const proxy = await tcpProxy(4222);
      try {
        start([`127.0.0.1:${proxy.port}`]);
        await untilConsuming();
        await proxy.cut();
        await untilDegraded(/NATS.*disconnected/);
        const orderId = `o-${randomBytes(4).toString('hex')}`;
        await publish(assigned(orderId));
        await sleep(300);
        assert.equal(await sessionOf(orderId), undefined, 'consumed while cut off');
        await proxy.resume();
        await untilConsuming();
        await until(
          async () => (await sessionOf(orderId)) !== undefined,
          'the session opened after reconnecting',
        );
        assertNoRealNumberLogged();
      } finally {
        await consumer?.stop();
        await proxy.close();
      }
    },
  );
});

describeStores('npm start with VEIL_NATS_URL', { only: 'sqlite' }, (store) => {
  it(
    'consumes order events, is ready once consuming, and stops the consumer with the server',
    TIMEOUT,
    async () => {
      const wiring = newWiring();
      const server = await startServer({
        ...loadConfig({
          DATABASE_URL: databaseUrl(store()),
          PORT: '0',
          LOG_LEVEL: 'silent',
          VEIL_API_KEY: 'server-test-admin-key-0123456789',
          VEIL_NATS_URL: `nats://${NATS}`,
          VEIL_NATS_SUBJECT: wiring.subject,
          VEIL_NATS_DEAD_SUBJECT: wiring.deadSubject,
          VEIL_NATS_DURABLE: wiring.durable,
        }),
      });
      const nc = await connect({ servers: NATS });
      const jsm = await nc.jetstreamManager();
      try {
        await until(async () => (await fetch(`${server.url}/readyz`)).status === 200, '/readyz 200');
        const orderId = `o-${randomBytes(4).toString('hex')}`;
        const event = {
          type: 'order.assigned',
          orderId,
          customer: { number: CUSTOMER },
          courier: { number: COURIER },
        };
        await nc
          .jetstream()
          .publish(`${wiring.prefix}.orders.x`, new TextEncoder().encode(JSON.stringify(event)));
        const sessions = () => server.veil.sessions.list(DEFAULT_TENANT, { externalId: orderId, limit: 1 });
        // The demo pool's simulator numbers carry it.
        await until(async () => (await sessions()).data.length === 1, 'the session opened');
        await server.stop();
        // Stopped: the consumer is gone from the server's connections.
        const stream = await jsm.streams.find(wiring.subject);
        await until(
          async () => (await jsm.consumers.info(stream, wiring.durable)).num_waiting === 0,
          'no pull waiting',
        );
      } finally {
        await server.stop();
        for (const subject of [wiring.subject, wiring.deadSubject]) {
          const stream = await jsm.streams.find(subject).catch(() => undefined);
          if (stream) await jsm.streams.delete(stream);
        }
        await nc.close();
      }
    },
  );
});

/** A port nothing listens on (taken, then given back). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A TCP relay to 127.0.0.1:`target` that a test can cut (connections dropped, nothing listening)
 * and resume on the same port, as a network outage and its end.
 */
async function tcpProxy(target: number) {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    const s = createServer((client) => {
      const upstream = dial(target, '127.0.0.1');
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve));
    port = (s.address() as { port: number }).port;
    server = s;
  };
  const cut = async () => {
    const s = server;
    server = undefined;
    const closed = s ? new Promise((resolve) => s.close(resolve)) : undefined;
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  await listen();
  return { port, cut, resume: listen, close: cut };
}
