/**
 * The events of the outbox (DESIGN §3, events out): what Veil tells the app, each written in the
 * transaction of the change it describes. Only types something writes are listed: an endpoint may
 * ask for these and no others.
 */
export const EVENT_TYPES = [
  'session.created',
  'session.updated',
  'session.closed',
  'session.expired',
  'session.rebound',
  'pool.low',
  'binding.failed',
  'provider.down',
  'provider.up',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}

/** An event of the outbox, as stored: its payload is the JSON of the change's object. */
export interface OutboxEvent {
  /** `evt_...`, ordered by creation: the `webhook-id` of every delivery of it. */
  id: string;
  tenantId: string;
  type: EventType;
  payload: unknown;
  createdAt: number;
}
