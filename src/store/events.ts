import { newId } from '../domain/ids.ts';
import type { Db } from './db.ts';

export type EventType = 'session.created' | 'session.closed' | 'session.expired' | 'session.updated';

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
  await db
    .insertInto('events')
    .values({
      id: newId('evt', now),
      tenant_id: tenantId,
      type,
      payload: JSON.stringify(payload),
      created_at: now,
    })
    .execute();
}
