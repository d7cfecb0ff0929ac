import { setTimeout as sleep } from 'node:timers/promises';
import {
  AckPolicy,
  type ConsumerMessages,
  connect,
  DeliverPolicy,
  Events,
  headers,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  nanos,
} from 'nats';
import type { NatsOrdersConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import {
  carryOutInOrder,
  logOutcome,
  ORDER_RETRY_DELAY_MS,
  ORDER_WAIT_DELIVERIES,
  type OrderConsumer,
  type OrderEvents,
} from '../services/order-events.ts';

/** How long each hand-off to NATS (connect, a JetStream request, an ack) or to the handler may take. */
export const NATS_TIMEOUT_MS = 5_000;
/** Between tries to connect, and the client's wait between reconnects. */
export const NATS_RECONNECT_MS = 2_000;
/** How long JetStream waits for an ack before it delivers again: longer than a handler may take. */
const ACK_WAIT_MS = 30_000;
/** Pings, so that a connection gone silent is noticed (and reported) within about a minute. */
const PING_INTERVAL_MS = 20_000;
const MAX_PINGS_OUT = 3;
/** Messages asked for per pull (JetStream hands out one at a time: max_ack_pending 1). */
const PULL_BATCH = 64;

/** Headers of a dead letter: its body is the event's, as it came. */
export const DEAD_LETTER_HEADERS = {
  reason: 'Veil-Reason',
  subject: 'Veil-Subject',
  stream: 'Veil-Stream',
  sequence: 'Veil-Sequence',
} as const;

export interface NatsOrdersOptions extends NatsOrdersConfig {
  timeoutMs?: number;
  reconnectMs?: number;
  retryDelayMs?: number;
  waitDeliveries?: number;
}

/**
 * Consumes order events from NATS JetStream: a durable pull consumer with explicit acks on the
 * subject, in the stream that captures it (one is created, file-backed, when none does), and one
 * for the dead-letter subject likewise. Events are carried out one at a time and in order, across
 * every instance (the consumer hands out one unacknowledged event at a time): one that fails for
 * now is tried again in place (carryOutInOrder); a malformed one is published to the dead-letter
 * subject with its reason (`Veil-Reason`) and then acknowledged. Connecting is tried until it
 * works, and a lost connection is reconnected for ever; meanwhile `unready()` names NATS.
 */
export function startNatsOrders(
  orders: Pick<OrderEvents, 'handleWithin'>,
  logger: Logger,
  options: NatsOrdersOptions,
): OrderConsumer {
  const {
    timeoutMs = NATS_TIMEOUT_MS,
    reconnectMs = NATS_RECONNECT_MS,
    retryDelayMs = ORDER_RETRY_DELAY_MS,
    waitDeliveries = ORDER_WAIT_DELIVERIES,
  } = options;
  const stopping = new AbortController();
  let connection: NatsConnection | undefined;
  let messages: ConsumerMessages | undefined;
  let connected = false;
  /** Why events are not being consumed though connected (JetStream refused the set-up), if so. */
  let problem: string | undefined = 'NATS (order events): connecting';
  let reported: string | undefined;

  const report = (now: string | undefined, error?: unknown) => {
    problem = now;
    if (now === reported) return;
    reported = now;
    // The servers are not named: their URL may carry credentials.
    if (now) logger.warn({ err: error }, now);
    else logger.info({ subject: options.subject }, 'NATS (order events): consuming');
  };

  const pause = (ms: number) => sleep(ms, undefined, { signal: stopping.signal }).catch(() => undefined);

  /** Connects, trying again every reconnectMs until it works or the consumer stops. */
  const connectOnce = async (): Promise<NatsConnection | undefined> => {
    while (!stopping.signal.aborted) {
      try {
        return await connect({
          servers: options.servers,
          name: 'veil-orders',
          timeout: timeoutMs,
          reconnectTimeWait: reconnectMs,
          maxReconnectAttempts: -1,
          pingInterval: PING_INTERVAL_MS,
          maxPingOut: MAX_PINGS_OUT,
        });
      } catch (error) {
        report('NATS (order events) unreachable; trying again', error);
        await pause(reconnectMs);
      }
    }
    return undefined;
  };

  const watchStatus = async (nc: NatsConnection) => {
    for await (const status of nc.status()) {
      if (status.type === Events.Disconnect) {
        connected = false;
        logger.warn('NATS (order events) disconnected; reconnecting');
      } else if (status.type === Events.Reconnect) {
        connected = true;
        logger.info('NATS (order events) reconnected');
      }
    }
  };

  /** Consumes until the consumer stops, or until its stream or consumer is gone (then set up again). */
  const consume = async (nc: NatsConnection) => {
    const jsm = await nc.jetstreamManager({ timeout: timeoutMs });
    const stream = await ensureStream(jsm, options.subject, streamNameOf(options.subject));
    await ensureStream(jsm, options.deadSubject, `${streamNameOf(options.deadSubject)}_DLQ`);
    await ensureConsumer(jsm, stream, options);
    const js = nc.jetstream({ timeout: timeoutMs });
    const consumer = await js.consumers.get(stream, options.durable);
    messages = await consumer.consume({ max_messages: PULL_BATCH, abort_on_missing_resource: true });
    if (stopping.signal.aborted) messages.stop();
    report(undefined);
    for await (const message of messages) {
      await carryOut(js, stream, message);
    }
  };

  const carryOut = async (js: JetStreamClient, stream: string, message: JsMsg) => {
    const origin = { subject: message.subject, stream, sequence: message.seq };
    const outcome = await carryOutInOrder(orders, message.data, {
      logger,
      origin,
      timeoutMs,
      retryDelayMs,
      waitDeliveries,
      signal: stopping.signal,
      keepAlive: () => message.working(),
    });
    if (!outcome) {
      // Stopping: delivered again at once, to the next consumer.
      message.nak();
      return;
    }
    logOutcome(logger, outcome, origin);
    if (outcome.result === 'rejected') {
      try {
        await deadLetter(js, stream, message, outcome.reason);
      } catch (error) {
        logger.error(
          { ...origin, err: error },
          'order event could not be dead-lettered; it will be delivered again',
        );
        message.nak(retryDelayMs);
        return;
      }
    }
    // Should the ack be lost, the event comes again, and changes nothing.
    await message.ackAck({ timeout: timeoutMs }).catch((error: unknown) => {
      logger.warn({ ...origin, err: error }, 'order event ack not confirmed');
    });
  };

  const deadLetter = async (js: JetStreamClient, stream: string, message: JsMsg, reason: string) => {
    const h = headers();
    h.set(DEAD_LETTER_HEADERS.reason, reason.replace(/[\r\n]+/g, ' '));
    h.set(DEAD_LETTER_HEADERS.subject, message.subject);
    h.set(DEAD_LETTER_HEADERS.stream, stream);
    h.set(DEAD_LETTER_HEADERS.sequence, String(message.seq));
    // The message id makes a second dead letter of one event (its ack was lost) a duplicate.
    await js.publish(options.deadSubject, message.data, {
      headers: h,
      msgID: `${stream}:${message.seq}`,
      timeout: timeoutMs,
    });
  };

  const run = async () => {
    while (!stopping.signal.aborted) {
      const nc = await connectOnce();
      if (!nc) return;
      connection = nc;
      connected = true;
      void watchStatus(nc);
      while (!stopping.signal.aborted && !nc.isClosed()) {
        try {
          await consume(nc);
        } catch (error) {
          if (!stopping.signal.aborted)
            report('NATS (order events): JetStream refused the set-up; trying again', error);
        }
        messages = undefined;
        if (!stopping.signal.aborted) await pause(reconnectMs);
      }
      connected = false;
    }
  };
  const running = run().catch((error: unknown) =>
    logger.error({ err: error }, 'NATS (order events) consumer failed'),
  );

  return {
    unready() {
      if (stopping.signal.aborted) return undefined;
      if (connection && !connected) return 'NATS (order events) disconnected; reconnecting';
      return problem;
    },
    async stop() {
      stopping.abort();
      messages?.stop();
      await running;
      const nc = connection;
      if (!nc || nc.isClosed()) return;
      // Drained, what is in flight gets its answer; a server out of reach is not waited for.
      const drained = nc.drain().catch(() => undefined);
      const timedOut = await Promise.race([
        drained.then(() => false),
        sleep(timeoutMs, true, { ref: false }),
      ]);
      if (timedOut) await nc.close();
    },
  };
}

/** The name of the stream Veil creates for a subject no stream captures: `orders.>` → VEIL_ORDERS. */
export function streamNameOf(subject: string): string {
  const name = subject
    .replace(/[^A-Za-z0-9_-]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase();
  return name.startsWith('VEIL_') ? name : `VEIL_${name}`;
}

/**
 * The stream that captures `subject`, created as `name` (file-backed, limits retention) when there
 * is none. The dead letters' stream is named apart (`_DLQ`), so that no subject pair shares a name.
 */
async function ensureStream(jsm: JetStreamManager, subject: string, name: string): Promise<string> {
  try {
    return await jsm.streams.find(subject);
  } catch {
    try {
      const info = await jsm.streams.add({ name, subjects: [subject] });
      return info.config.name;
    } catch (error) {
      // Another instance may have created it meanwhile; if not, the add's error says why.
      return await jsm.streams.find(subject).catch(() => Promise.reject(error));
    }
  }
}

/** The durable pull consumer of the subject in `stream`, created when absent; shared by every instance. */
async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  options: NatsOrdersConfig,
): Promise<void> {
  const existing = await jsm.consumers.info(stream, options.durable).catch(() => undefined);
  if (existing) {
    // A consumer an older Veil created handed out events in parallel: one at a time now.
    if (existing.config.max_ack_pending !== 1) {
      await jsm.consumers.update(stream, options.durable, { max_ack_pending: 1 });
    }
    return;
  }
  await jsm.consumers.add(stream, {
    durable_name: options.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: options.subject,
    ack_wait: nanos(ACK_WAIT_MS),
    // One event out at a time across every instance: an order's events are carried out in order.
    max_ack_pending: 1,
  });
}
