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
import { logOutcome, type OrderEvents, type OrderOutcome } from '../services/order-events.ts';
import type { ReadinessPart } from '../veil.ts';

/** How long each hand-off to NATS (connect, a JetStream request, an ack) or to the handler may take. */
export const NATS_TIMEOUT_MS = 5_000;
/** Between tries to connect, and the client's wait between reconnects. */
export const NATS_RECONNECT_MS = 2_000;
/** How long an event that could not be carried out now waits before it is delivered again. */
export const ORDER_RETRY_DELAY_MS = 5_000;
/** Deliveries of an event whose order has no session before it goes to the dead letters. */
export const ORDER_WAIT_DELIVERIES = 5;
/** How long JetStream waits for an ack before it delivers again: longer than a handler may take. */
const ACK_WAIT_MS = 30_000;
/** Pings, so that a connection gone silent is noticed (and reported) within about a minute. */
const PING_INTERVAL_MS = 20_000;
const MAX_PINGS_OUT = 3;
/** Messages pulled ahead of the one being carried out. */
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

/** A broker's consumer of order events: reports to /readyz (Veil.watch) and stops with the server. */
export interface OrderConsumer extends ReadinessPart {
  stop(): Promise<void>;
}

/**
 * Consumes order events from NATS JetStream: a durable pull consumer with explicit acks on the
 * subject, in the stream that captures it (one is created, file-backed, when none does), and one
 * for the dead-letter subject likewise. Events are carried out one at a time, in order; a
 * malformed one is published to the dead-letter subject with its reason (`Veil-Reason`) and then
 * acknowledged; one that fails for now is delivered again after a delay. Connecting is tried until
 * it works, and a lost connection is reconnected for ever; meanwhile `unready()` names NATS.
 */
export function startNatsOrders(
  orders: OrderEvents,
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
    const stream = await ensureStream(jsm, options.subject);
    await ensureStream(jsm, options.deadSubject);
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
    let outcome: OrderOutcome;
    try {
      outcome = await orders.handleWithin(message.data, timeoutMs);
    } catch (error) {
      logger.error({ ...origin, err: error }, 'order event failed; it will be delivered again');
      message.nak(retryDelayMs);
      return;
    }
    if (outcome.result === 'waiting' && message.info.deliveryCount < waitDeliveries) {
      logOutcome(logger, outcome, origin);
      message.nak(retryDelayMs);
      return;
    }
    if (outcome.result === 'waiting') {
      outcome = {
        ...outcome,
        result: 'rejected',
        reason: `${outcome.reason} after ${waitDeliveries} deliveries`,
      };
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

/** The stream that captures `subject`, created (file-backed, limits retention) when there is none. */
async function ensureStream(jsm: JetStreamManager, subject: string): Promise<string> {
  try {
    return await jsm.streams.find(subject);
  } catch {
    try {
      const info = await jsm.streams.add({ name: streamNameOf(subject), subjects: [subject] });
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
  try {
    await jsm.consumers.info(stream, options.durable);
    return;
  } catch {
    // Not there yet.
  }
  await jsm.consumers.add(stream, {
    durable_name: options.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: options.subject,
    ack_wait: nanos(ACK_WAIT_MS),
  });
}
