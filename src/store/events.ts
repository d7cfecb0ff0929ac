import type { Selectable } from 'kysely';
import type { EventType } from '../domain/events.ts';
import { newId } from '../domain/ids.ts';
import { columnList, insertRows, valuesOf } from './prepared.ts';
import type { Db, Schema } from './schema.ts';
import { vaultOf } from './vault.ts';

export type { EventType } from '../domain/events.ts';

/** An outbox row. Its payload is JSON until it is written, and is written sealed (store/vault.ts). */
export type EventRow = Selectable<Schema['events']>;

export const EVENT_COLUMNS = columnList<EventRow>()([
  'id',
  'tenant_id',
  'type',
  'payload',
  'created_at',
  'fanned_out',
]);

/** A new event of `type` about `payload` (stored as JSON), as the row to insert. */
export function eventRow(tenantId: string, type: EventType, payload: unknown, now: number): EventRow {
  return {
    id: newId('evt', now),
    tenant_id: tenantId,
    type,
    payload: JSON.stringify(payload),
    created_at: now,
    // Turned into deliveries to the tenant's webhook endpoints later, by the outbox (services/outbox.ts).
    fanned_out: 0,
  };
}

const insertEvent = insertRows('events', EVENT_COLUMNS);

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
  await appendEventRow(db, eventRow(tenantId, type, payload, now));
}

/** Appends an event made by eventRow. */
export async function appendEventRow(db: Db, event: EventRow): Promise<void> {
  await insertEvent(1).run(db, sealedEventValues(db, event));
}

/** An event's values for its INSERT, its payload sealed: it shows sessions with their people's numbers. */
export function sealedEventValues(db: Db, event: EventRow): unknown[] {
  return valuesOf(EVENT_COLUMNS, { ...event, payload: vaultOf(db).seal(event.payload) });
}
