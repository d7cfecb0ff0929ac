import type { Session } from '../domain/session.ts';
import { appendEvent } from '../store/events.ts';
import { NumberRepository } from '../store/numbers.ts';
import type { Db } from '../store/schema.ts';
import { SessionRepository } from '../store/sessions.ts';

/**
 * Ends an open session as closed or expired, inside the caller's transaction: participants
 * released, the numbers' load given back, the event written. False when another writer ended it
 * first (then nothing is done twice).
 */
export async function endSession(
  trx: Db,
  session: Session,
  status: 'closed' | 'expired',
  now: number,
): Promise<boolean> {
  const held = await new SessionRepository(trx).end(session.id, status, now);
  if (!held) return false;
  await new NumberRepository(trx).release(held, now);
  await appendEvent(
    trx,
    session.tenantId,
    status === 'closed' ? 'session.closed' : 'session.expired',
    { ...session, status, closedAt: now, updatedAt: now },
    now,
  );
  return true;
}
