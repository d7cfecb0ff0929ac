import type { Insertable } from 'kysely';
import { newId } from '../domain/ids.ts';
import type { Db } from './db.ts';
import { type Placeholders, statement } from './prepared.ts';
import type { Schema } from './schema.ts';

export type EventType = 'session.created' | 'session.closed' | 'session.expired' | 'session.updated';

/** An outbox row, under names of its own so that it can be written in one statement with other rows. */
export interface EventValues extends Record<string, unknown> {
  eventId: string;
  eventTenantId: string;
  eventType: EventType;
  eventPayload: string;
  eventCreatedAt: number;
}

export const EVENT_NAMES = [
  'eventId',
  'eventTenantId',
  'eventType',
  'eventPayload',
  'eventCreatedAt',
] as const satisfies readonly (keyof EventValues)[];

/** A new event of `type` about `payload` (stored as JSON), as the values of an insert. */
export function eventValues(tenantId: string, type: EventType, payload: unknown, now: number): EventValues {
  return {
    eventId: newId('evt', now),
    eventTenantId: tenantId,
    eventType: type,
    eventPayload: JSON.stringify(payload),
    eventCreatedAt: now,
  };
}

/** The outbox row of the values (or placeholders) named EVENT_NAMES. */
export function eventRow(v: Placeholders<EventValues>): Insertable<Schema['events']> {
  return {
    id: v.eventId,
    tenant_id: v.eventTenantId,
    type: v.eventType,
    payload: v.eventPayload,
    created_at: v.eventCreatedAt,
  };
}

const insertEvent = statement<EventValues, never>(EVENT_NAMES, (db, v) =>
  db.insertInto('events').values(eventRow(v)),
);

/**
 * Appends an event to the outbox. Call it with the transaction that makes the change, so that the
 * event exists exactly when the change does.
 */
export async function appendEvent(
  db: Db,
  tenantId: string,
  type: EventType,
  payload: unknown,
  now: number,
): Promise<void> {
  await appendEventValues(db, eventValues(tenantId, type, payload, now));
}

/** Appends an event made by eventValues. */
export async function appendEventValues(db: Db, event: EventValues): Promise<void> {
  await insertEvent.execute(db, event);
}
