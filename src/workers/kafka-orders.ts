import { setTimeout as sleep } from 'node:timers/promises';
import { type EachMessagePayload, Kafka, type LogEntry, logLevel } from 'kafkajs';
import type { KafkaOrdersConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import {
  carryOutInOrder,
  logOutcome,
  ORDER_RETRY_DELAY_MS,
  ORDER_WAIT_DELIVERIES,
  type OrderConsumer,
  type OrderEvents,
} from '../services/order-events.ts';

/** How long each hand-off to Kafka (connect, a request) or to the handler may take. */
export const KAFKA_TIMEOUT_MS = 5_000;
/** Between tries to connect when the brokers are out of reach. */
export const KAFKA_RECONNECT_MS = 2_000;
/** kafkajs's own tries of a request or a connect (with backoff), and of a failed batch before it restarts. */
const KAFKA_RETRIES = 2;

/** Headers of a dead letter (besides the event's own): its key and body are the event's, as they came. */
export const KAFKA_DEAD_LETTER_HEADERS = {
  reason: 'veil-reason',
  topic: 'veil-topic',
  partition: 'veil-partition',
  offset: 'veil-offset',
} as const;

export interface KafkaOrdersOptions extends KafkaOrdersConfig {
  timeoutMs?: number;
  reconnectMs?: number;
  retryDelayMs?: number;
  waitDeliveries?: number;
  /** The client id the brokers see. */
  clientId?: string;
}

/**
 * Consumes order events from a Kafka topic in a consumer group, with the same handler as NATS: each
 * partition's events are carried out in order, the offset committed once one is done. A malformed
 * event goes to the dead-letter topic with its reason (`veil-reason`); one that fails for now, or
 * waits for its order's session, is tried again in place (carryOutInOrder). `unready()` names Kafka
 * until the consumer has joined its group, and whenever it is disconnected or has crashed.
 */
export function startKafkaOrders(
  orders: Pick<OrderEvents, 'handleWithin'>,
  logger: Logger,
  options: KafkaOrdersOptions,
): OrderConsumer {
  const {
    timeoutMs = KAFKA_TIMEOUT_MS,
    reconnectMs = KAFKA_RECONNECT_MS,
    retryDelayMs = ORDER_RETRY_DELAY_MS,
    waitDeliveries = ORDER_WAIT_DELIVERIES,
  } = options;
  const kafka = new Kafka({
    clientId: options.clientId ?? 'veil',
    brokers: options.brokers,
    connectionTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    // Few tries per connect: the loop below tries again for ever, and a stop waits for no backoff.
    retry: { retries: KAFKA_RETRIES },
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => kafkaLog(logger, entry),
  });
  const consumer = kafka.consumer({ groupId: options.groupId });
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  const stopping = new AbortController();
  let problem: string | undefined = 'Kafka (order events): connecting';
  consumer.on(consumer.events.GROUP_JOIN, () => {
    problem = undefined;
    logger.info({ topic: options.topic }, 'Kafka (order events): consuming');
  });
  consumer.on(consumer.events.DISCONNECT, () => {
    problem = 'Kafka (order events) disconnected';
  });
  consumer.on(consumer.events.CRASH, (event) => {
    problem = event.payload.restart
      ? 'Kafka (order events) consumer crashed; restarting'
      : 'Kafka (order events) consumer stopped';
    logger.error({ err: event.payload.error }, problem);
  });

  const pause = (ms: number) => sleep(ms, undefined, { signal: stopping.signal }).catch(() => undefined);

  const deadLetter = async ({ topic, partition, message }: EachMessagePayload, reason: string) => {
    await producer.send({
      topic: options.deadTopic,
      acks: -1,
      timeout: timeoutMs,
      messages: [
        {
          key: message.key,
          value: message.value,
          headers: {
            ...message.headers,
            [KAFKA_DEAD_LETTER_HEADERS.reason]: reason,
            [KAFKA_DEAD_LETTER_HEADERS.topic]: topic,
            [KAFKA_DEAD_LETTER_HEADERS.partition]: String(partition),
            [KAFKA_DEAD_LETTER_HEADERS.offset]: message.offset,
          },
        },
      ],
    });
  };

  const eachMessage = async (payload: EachMessagePayload) => {
    const { topic, partition, message, heartbeat } = payload;
    const origin = { topic, partition, offset: message.offset };
    const outcome = await carryOutInOrder(orders, message.value ?? '', {
      logger,
      origin,
      timeoutMs,
      retryDelayMs,
      waitDeliveries,
      signal: stopping.signal,
      keepAlive: heartbeat,
    });
    // Stopping: the offset is not committed, and the next consumer of the partition tries it.
    if (!outcome) throw new Error('stopping before an order event was carried out');
    logOutcome(logger, outcome, origin);
    if (outcome.result === 'rejected') await deadLetter(payload, outcome.reason);
  };

  const run = async () => {
    while (!stopping.signal.aborted) {
      try {
        await producer.connect();
        await consumer.connect();
        await consumer.subscribe({ topics: [options.topic], fromBeginning: true });
        await consumer.run({ eachMessage });
        return;
      } catch (error) {
        problem = 'Kafka (order events) unreachable; trying again';
        logger.warn({ err: error }, problem);
        await consumer.disconnect().catch(() => undefined);
        await pause(reconnectMs);
      }
    }
  };
  const running = run();

  return {
    unready() {
      return stopping.signal.aborted ? undefined : problem;
    },
    async stop() {
      stopping.abort();
      // A connect in progress is not waited for past the timeout: kafkajs retries it with backoff.
      await Promise.race([running, sleep(timeoutMs, undefined, { ref: false })]);
      await consumer.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
    },
  };
}

/** kafkajs's own warnings and errors, through Veil's logger (which masks any number). */
function kafkaLog(logger: Logger, { level, label, namespace, log }: LogEntry): void {
  const { message, timestamp: _timestamp, ...extra } = log;
  const entry = { kafka: namespace, ...extra };
  if (level === logLevel.ERROR) logger.error(entry, `kafka ${label}: ${message}`);
  else if (level === logLevel.WARN) logger.warn(entry, `kafka ${label}: ${message}`);
}
