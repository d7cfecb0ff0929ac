import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Admin, Kafka, logLevel, type Producer } from 'kafkajs';
import type { Session } from '../../src/domain/session.ts';
import { DEFAULT_TENANT } from '../../src/domain/tenants.ts';
import type { OrderConsumer } from '../../src/services/order-events.ts';
import { KAFKA_DEAD_LETTER_HEADERS, startKafkaOrders } from '../../src/workers/kafka-orders.ts';
import { type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

const BROKERS = process.env.KAFKA_BROKERS?.split(',');
const FAST = { timeoutMs: 5_000, reconnectMs: 100, retryDelayMs: 100, waitDeliveries: 2 };
const CUSTOMER = '+14155550101';
const COURIER = '+14155550102';
const NEW_COURIER = '+14155550103';

async function until(done: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await sleep(50);
  }
}

describeStores('order events from Kafka: brokers out of reach', { only: 'sqlite' }, (store) => {
  let t: TestApp;
  before(async () => {
    t = await testApp(store());
  });
  after(async () => {
    await t?.close();
  });

  it('/readyz stays 200 naming Kafka under degraded, and stop does not wait for the brokers', {
    timeout: 20_000,
  }, async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    const consumer = startKafkaOrders(t.veil.orders, t.app.log, {
      brokers: [`127.0.0.1:${port}`],
      topic: 'orders',
      deadTopic: 'veil.orders.dead',
      groupId: 'veil-test',
      ...FAST,
    });
    const unwatch = t.veil.watch(consumer);
    try {
      const r = await t.app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(r.statusCode, 200);
      assert.match((r.json() as { degraded: string[] }).degraded.join(), /Kafka/);
    } finally {
      const started = Date.now();
      await consumer.stop();
      unwatch();
      assert.ok(Date.now() - started < FAST.timeoutMs + 1_000, `stop took ${Date.now() - started} ms`);
    }
    assert.deepEqual((await t.app.inject({ method: 'GET', url: '/readyz' })).json(), { status: 'ready' });
  });
});

describe('order events from Kafka', {
  skip: !BROKERS && 'needs KAFKA_BROKERS (a Kafka broker to test against)',
}, () => {
  describeStores('on a broker', (store) => {
    let t: TestApp;
    let admin: Admin;
    let producer: Producer;
    let kafka: Kafka;
    let consumer: OrderConsumer | undefined;
    let unwatch: (() => void) | undefined;
    const topic = `veiltest-${randomBytes(6).toString('hex')}`;
    const deadTopic = `${topic}.dead`;
    const deadLetters: { value: string; headers: Record<string, string> }[] = [];

    before(async () => {
      t = await testApp(store());
      for (let n = 150; n < 156; n++) {
        const r = await t.api('POST', '/v1/numbers', {
          number: `+1415555${String(n).padStart(4, '0')}`,
          provider: 'sim',
        });
        assert.equal(r.statusCode, 201, r.body);
      }
      kafka = new Kafka({ clientId: 'veil-test', brokers: BROKERS ?? [], logLevel: logLevel.NOTHING });
      admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic }, { topic: deadTopic }], waitForLeaders: true });
      producer = kafka.producer();
      await producer.connect();
      const reader = kafka.consumer({ groupId: `${topic}-reader` });
      await reader.connect();
      await reader.subscribe({ topics: [deadTopic], fromBeginning: true });
      await reader.run({
        eachMessage: async ({ message }) => {
          deadLetters.push({
            value: message.value?.toString() ?? '',
            headers: Object.fromEntries(
              Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]),
            ),
          });
        },
      });
      after(() => reader.disconnect());
    });
    afterEach(async () => {
      await consumer?.stop();
      unwatch?.();
    });
    after(async () => {
      await producer?.disconnect();
      await admin?.deleteTopics({ topics: [topic, deadTopic] }).catch(() => undefined);
      await admin?.disconnect();
      await t?.close();
    });

    const send = (...events: unknown[]) =>
      producer.send({
        topic,
        messages: events.map((e) => ({ key: 'o', value: typeof e === 'string' ? e : JSON.stringify(e) })),
      });
    const sessionOf = async (orderId: string): Promise<Session | undefined> =>
      (await t.veil.sessions.list(DEFAULT_TENANT, { externalId: orderId, limit: 1 })).data[0];

    it('carries out the events, each twice as once, and dead-letters a malformed one', {
      timeout: 60_000,
    }, async () => {
      consumer = startKafkaOrders(t.veil.orders, t.app.log, {
        brokers: BROKERS ?? [],
        topic,
        deadTopic,
        groupId: `${topic}-veil`,
        ...FAST,
      });
      unwatch = t.veil.watch(consumer);
      const orderId = `o-${randomBytes(4).toString('hex')}`;
      const assigned = {
        type: 'order.assigned',
        orderId,
        customer: { number: CUSTOMER },
        courier: { number: COURIER },
      };
      const reassigned = { type: 'order.reassigned', orderId, courier: { number: NEW_COURIER } };
      await send(assigned, assigned, reassigned, reassigned, '{"type":"order.assigned"', {
        type: 'order.delivered',
        orderId,
      });
      await until(async () => (await sessionOf(orderId))?.status === 'closed', 'the session closed');
      await until(() => deadLetters.length === 1, 'the dead letter');
      const session = await sessionOf(orderId);
      assert.deepEqual(Object.fromEntries(session?.participants.map((p) => [p.label, p.number]) ?? []), {
        customer: CUSTOMER,
        courier: NEW_COURIER,
      });
      assert.equal(deadLetters[0]?.value, '{"type":"order.assigned"');
      assert.match(deadLetters[0]?.headers[KAFKA_DEAD_LETTER_HEADERS.reason] ?? '', /not JSON/);
      assert.equal(deadLetters[0]?.headers[KAFKA_DEAD_LETTER_HEADERS.topic], topic);
      assert.deepEqual((await t.app.inject({ method: 'GET', url: '/readyz' })).json(), { status: 'ready' });
      const outcomes = t.logs
        .map((l) => JSON.parse(l))
        .filter((l) => l.orderId === orderId)
        .map((l) => `${l.type} ${l.result}`);
      assert.deepEqual(outcomes, [
        'order.assigned applied',
        'order.assigned unchanged',
        'order.reassigned applied',
        'order.reassigned unchanged',
        'order.delivered applied',
      ]);
      const logs = t.logs.join('');
      for (const n of [CUSTOMER, COURIER, NEW_COURIER])
        assert.ok(!logs.includes(n.slice(2)), 'a number in the log');
    });
  });
});
