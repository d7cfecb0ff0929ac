import { setTimeout as sleep } from 'node:timers/promises';
import { UnavailableError, VeilError } from '../domain/errors.ts';
import {
  COURIER_LABEL,
  type OrderEvent,
  type OrderEventType,
  orderSession,
  readOrderEvent,
} from '../domain/order-events.ts';
import type { Session } from '../domain/session.ts';
import type { Logger } from '../logger.ts';
import type { ReadinessPart } from '../veil.ts';
import type { SessionService } from './sessions.ts';

/**
 * What became of one order event:
 * - `applied`: the session was opened, its courier replaced, or it was closed;
 * - `unchanged`: it was already so (a redelivery, or an order whose session has ended);
 * - `rejected`: it can never be carried out (malformed, or at odds with the order's session):
 *   dead-lettered with `reason`;
 * - `waiting`: the order has no session yet (its `order.assigned` may still be on its way): tried
 *   again later, and dead-lettered after a few tries.
 * An error thrown instead (the database, the pool empty for now, a cap) is passing: tried again.
 */
export type OrderOutcome =
  | { result: 'applied' | 'unchanged'; type: OrderEventType; orderId: string; sessionId: string }
  | { result: 'rejected'; reason: string; type?: OrderEventType; orderId?: string }
  | { result: 'waiting'; reason: string; type: OrderEventType; orderId: string };

/** Error codes that say the event itself is at fault: sending it again would fail the same way. */
const REJECTED_CODES = new Set(['invalid_request', 'conflict']);

/**
 * Carries out order events on the installation's sessions, whichever broker brought them: an
 * `order.assigned` opens the order's session (externalId = orderId) between customer and courier,
 * `order.reassigned` puts the new courier in the courier's place, `order.delivered` and
 * `order.cancelled` close it. Each is idempotent, so a broker's redelivery changes nothing.
 */
export class OrderEvents {
  constructor(
    private readonly sessions: Pick<SessionService, 'create' | 'list' | 'replaceParticipant' | 'close'>,
    private readonly options: { tenantId: string; defaultCountry?: string },
  ) {}

  /** Reads and carries out one message's body. Throws only for passing failures. */
  async handle(body: Uint8Array | string): Promise<OrderOutcome> {
    const read = readOrderEvent(body, this.options.defaultCountry);
    if (!read.ok) return { result: 'rejected', reason: read.reason, orderId: read.orderId };
    const { event } = read;
    try {
      return await this.apply(event);
    } catch (error) {
      if (error instanceof VeilError && REJECTED_CODES.has(error.code)) {
        return { result: 'rejected', reason: error.message, type: event.type, orderId: event.orderId };
      }
      throw error;
    }
  }

  /**
   * handle(), given up after `ms` (UnavailableError, a passing failure): a broker's consumer never
   * waits for ever. The work may still complete; the event's redelivery then changes nothing.
   */
  async handleWithin(body: Uint8Array | string, ms: number): Promise<OrderOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new UnavailableError(`an order event was not carried out within ${ms} ms`)),
        ms,
      );
    });
    try {
      return await Promise.race([this.handle(body), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async apply(event: OrderEvent): Promise<OrderOutcome> {
    const { tenantId } = this.options;
    const done = (result: 'applied' | 'unchanged', session: Session): OrderOutcome => ({
      result,
      type: event.type,
      orderId: event.orderId,
      sessionId: session.id,
    });
    if (event.type === 'order.assigned') {
      // The same request again answers the session it opened, as it is now.
      const { session, created } = await this.sessions.create(tenantId, orderSession(event));
      return done(created ? 'applied' : 'unchanged', session);
    }
    const session = await this.sessionOf(event.orderId);
    if (!session) {
      return {
        result: 'waiting',
        reason: 'no session for this order',
        type: event.type,
        orderId: event.orderId,
      };
    }
    if (session.status !== 'open') return done('unchanged', session);
    if (event.type === 'order.reassigned') {
      const courier = session.participants.find((p) => p.label === COURIER_LABEL);
      if (!courier) {
        return {
          result: 'rejected',
          reason: `session ${session.id} has no participant labelled ${COURIER_LABEL}`,
          type: event.type,
          orderId: event.orderId,
        };
      }
      if (courier.number === event.courier) return done('unchanged', session);
      try {
        return done(
          'applied',
          await this.sessions.replaceParticipant(tenantId, session.id, courier.id, { number: event.courier }),
        );
      } catch (error) {
        // Ended between the look above and the change: there is nobody to replace any more.
        const now = await this.sessionOf(event.orderId);
        if (now && now.status !== 'open') return done('unchanged', now);
        throw error;
      }
    }
    const closed = await this.sessions.close(tenantId, session.id);
    return done('applied', closed);
  }

  private async sessionOf(orderId: string): Promise<Session | undefined> {
    const page = await this.sessions.list(this.options.tenantId, { externalId: orderId, limit: 1 });
    return page.data[0];
  }
}

/** A broker's consumer of order events: reports to /readyz (Veil.watch) and stops with the server. */
export interface OrderConsumer extends ReadinessPart {
  stop(): Promise<void>;
}

/** Where a message came from, as the log shows it (a subject and sequence, a topic and offset). */
export type MessageOrigin = Record<string, string | number>;

/** How long an event that could not be carried out now waits before it is tried again. */
export const ORDER_RETRY_DELAY_MS = 5_000;
/** Tries of an event whose order has no session before it goes to the dead letters. */
export const ORDER_WAIT_DELIVERIES = 5;

export interface InOrderOptions {
  logger: Logger;
  origin: MessageOrigin;
  /** For each try of handleWithin. */
  timeoutMs: number;
  retryDelayMs: number;
  waitDeliveries: number;
  /** The consumer's stop: no further try once aborted. */
  signal: AbortSignal;
  /** Before each further try: tells the broker the event is still being worked on. */
  keepAlive(): void | Promise<void>;
}

/**
 * Carries out one event before any that follows it, as a broker's consumer must for an order's
 * events to keep their order: a passing failure is tried again in place, every retryDelayMs, for
 * as long as it takes; an event whose order has no session yet up to waitDeliveries times, then
 * rejected. Undefined when the consumer stopped first: the event is left to the next consumer.
 */
export async function carryOutInOrder(
  orders: Pick<OrderEvents, 'handleWithin'>,
  body: Uint8Array | string,
  options: InOrderOptions,
): Promise<OrderOutcome | undefined> {
  const { logger, origin, signal } = options;
  for (let waited = 1; ; ) {
    let outcome: OrderOutcome | undefined;
    try {
      outcome = await orders.handleWithin(body, options.timeoutMs);
    } catch (error) {
      logger.error({ ...origin, err: error }, 'order event failed; it will be tried again');
    }
    if (outcome && outcome.result !== 'waiting') return outcome;
    if (outcome?.result === 'waiting') {
      if (waited >= options.waitDeliveries) {
        return { ...outcome, result: 'rejected', reason: `${outcome.reason} after ${waited} tries` };
      }
      waited++;
      logOutcome(logger, outcome, origin);
    }
    await sleep(options.retryDelayMs, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) return undefined;
    await options.keepAlive();
  }
}

/**
 * Logs an outcome: applied and unchanged at info, rejected and waiting at warn. No number is
 * written (the logger masks any in a reason or an orderId all the same).
 */
export function logOutcome(logger: Logger, outcome: OrderOutcome, origin: MessageOrigin): void {
  switch (outcome.result) {
    case 'applied':
    case 'unchanged':
      logger.info({ ...origin, ...outcome }, `order event ${outcome.result}`);
      return;
    case 'rejected':
      logger.warn({ ...origin, ...outcome }, 'order event rejected; sent to the dead letters');
      return;
    case 'waiting':
      logger.warn({ ...origin, ...outcome }, 'order event waits for its order’s session');
  }
}
