import { InvalidRequestError } from './errors.ts';
import { EVENT_TYPES, type EventType, isEventType } from './events.ts';

/**
 * The app's webhook endpoints and the delivery of events to them (DESIGN §3), free of HTTP and SQL:
 * which URLs are allowed, which events an endpoint gets, and when a failed delivery is tried again.
 */

/** The longest endpoint URL accepted. */
export const MAX_ENDPOINT_URL_LENGTH = 2048;

/** An endpoint of a tenant's app: where the events it asks for are POSTed, signed with its secret. */
export interface WebhookEndpoint {
  id: string;
  tenantId: string;
  url: string;
  /** The event types it gets; null: all of them. */
  events: EventType[] | null;
  /** `whsec_` and base64: the Standard Webhooks signing secret. */
  secret: string;
  createdAt: number;
  /** When it was deleted; deleted endpoints get nothing more and are not shown. */
  deletedAt: number | null;
}

/** pending: to be sent (again); delivered: the endpoint answered 2xx; dead: gave up after the limit. */
export type DeliveryStatus = 'pending' | 'delivered' | 'dead';
export const DELIVERY_STATUSES = ['pending', 'delivered', 'dead'] as const;

/** One event on its way to one endpoint. */
export interface Delivery {
  eventId: string;
  endpointId: string;
  status: DeliveryStatus;
  attempts: number;
  nextAt: number;
  /** Why the last attempt failed (`status`, `timeout`, `unreachable: ECONNREFUSED`), never a body. */
  lastError: string | null;
  /** The HTTP status of the last answer, if one came. */
  lastStatus: number | null;
  deliveredAt: number | null;
}

/** How deliveries are retried (VEIL_WEBHOOK_*). */
export interface RetryPolicy {
  /** Attempts before a delivery is dead. */
  maxAttempts: number;
  /** The first retry waits up to this long; each later one up to twice the one before. */
  baseMs: number;
  /** No wait is longer than this. */
  capMs: number;
}

/** How the outbox delivers: its retries, each attempt's timeout and how often it looks for work. */
export interface OutboxPolicy extends RetryPolicy {
  timeoutMs: number;
  intervalMs: number;
}

/**
 * Retries spread over about a day at most (the waits’ ceilings add up to 23 h, half that on
 * average with the jitter), so a receiver down overnight still gets its events.
 */
export const DEFAULT_WEBHOOK_RETRY: RetryPolicy = { maxAttempts: 15, baseMs: 10_000, capMs: 21_600_000 };

/**
 * How long to wait after the `attempts`-th failed attempt (1 for the first): "full jitter",
 * `random() × min(cap, base × 2^(attempts−1))`, so that the retries of many deliveries that failed
 * together (a receiver down) spread out instead of coming back at once.
 */
export function retryDelayMs(policy: RetryPolicy, attempts: number, random: () => number): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.floor(random() * ceiling);
}

/**
 * An endpoint URL as given, checked: http(s) only (https only when `httpsOnly`: events carry real
 * numbers), no user name or password (fetch refuses them), at most MAX_ENDPOINT_URL_LENGTH.
 */
export function endpointUrl(value: string, httpsOnly: boolean): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidRequestError('url must be an absolute http(s) URL', 'url');
  }
  if (url.protocol !== 'https:' && (httpsOnly || url.protocol !== 'http:')) {
    throw new InvalidRequestError(
      httpsOnly ? 'url must be https:// in production: events carry real numbers' : 'url must be http(s)://',
      'url',
    );
  }
  if (url.username || url.password)
    throw new InvalidRequestError('url must not carry a user name or password', 'url');
  return value;
}

/** The event types asked for, checked (each known, none twice), or null for all of them. */
export function endpointEvents(events: readonly string[] | undefined): EventType[] | null {
  if (events === undefined) return null;
  if (events.length === 0)
    throw new InvalidRequestError('events must name at least one type, or be left out for all', 'events');
  const known: EventType[] = [];
  for (const [i, type] of events.entries()) {
    if (!isEventType(type)) {
      throw new InvalidRequestError(
        `unknown event type "${type}": one of ${EVENT_TYPES.join(', ')}`,
        `events/${i}`,
      );
    }
    if (!known.includes(type)) known.push(type);
  }
  return known;
}

/** Whether an endpoint gets this event: a type it asked for, made after it was (never the past). */
export function wants(endpoint: WebhookEndpoint, type: string, createdAt: number): boolean {
  return (
    endpoint.deletedAt === null &&
    createdAt >= endpoint.createdAt &&
    (endpoint.events === null || (endpoint.events as string[]).includes(type))
  );
}

/**
 * The key that orders an endpoint's deliveries: the events of one session go out in the order
 * they were made (a failing one holds back the later ones of its session); an event about no
 * session (pool.low) waits for nothing.
 */
export function orderKey(type: string, eventId: string, payload: unknown): string {
  if (type.startsWith('session.') && typeof payload === 'object' && payload !== null) {
    const id = (payload as { id?: unknown }).id;
    if (typeof id === 'string') return id;
  }
  return eventId;
}
