import { newId } from '../domain/ids.ts';
import type { Db } from './db.ts';
import { statement } from './prepared.ts';

export type EventType = 'session.created' | 'session.closed' | 'session.expired' | 'session.updated';

const insertEvent = statement<
  { id: string; tenantId: string; type: EventType; payload: string; createdAt: number },
  never
>(['id', 'tenantId', 'type', 'payload', 'createdAt'], (db, v) =>
  db
    .insertInto('events')
    .values({ id: v.id, tenant_id: v.tenantId, type: v.type, payload: v.payload, created_at: v.createdAt }),
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
  await insertEvent.execute(db, {
    id: newId('evt', now),
    tenantId,
    type,
    payload: JSON.stringify(payload),
    createdAt: now,
  });
}
