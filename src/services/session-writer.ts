import { preferenceFor } from '../domain/allocation.ts';
import { ConflictError, InvalidRequestError, NotFoundError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import {
  effectiveStatus,
  type NewSession,
  type Participant,
  type ParticipantRequest,
  participantsOf,
  type Session,
} from '../domain/session.ts';
import { eventRow } from '../store/events.ts';
import { NumberRepository } from '../store/numbers.ts';
import type { Db } from '../store/schema.ts';
import { SessionRepository } from '../store/sessions.ts';
import type { Store } from '../store/store.ts';
import { inTransaction } from '../store/transactions.ts';
import { Allocator } from './allocator.ts';
import { endSession } from './session-end.ts';

/** A change to an open session, checked and worked out by SessionService. */
export interface SessionUpdate {
  /** A renewal: the new expiry, and the new TTL when it was given as one. */
  life?: { expiresAt: number; ttlSeconds: number | null };
  record?: boolean;
  metadata?: Record<string, unknown>;
}

/**
 * Every write to sessions, each one transaction with its outbox event. Requests arrive checked and
 * normalised, with the time they happen at (`now`), so that a writer on another thread decides on
 * the caller's clock. Two implementations: StoreSessionWriter runs them here; on a SQLite file the
 * server runs that same class on a thread of its own (session-thread.ts), behind this interface.
 */
export interface SessionWriter {
  /** Opens a session, or returns the open one with the same externalId and the same request. */
  create(tenantId: string, request: NewSession, now: number): Promise<{ session: Session; created: boolean }>;
  /** Renews and changes record or metadata of an open session. */
  update(tenantId: string, id: string, update: SessionUpdate, now: number): Promise<Session>;
  /** Closes a session and releases its proxies; closing an ended session changes nothing. */
  close(tenantId: string, id: string, now: number): Promise<Session>;
  /** Adds a participant (a replacement courier, say) to an open session that has room. */
  addParticipant(
    tenantId: string,
    id: string,
    request: ParticipantRequest,
    now: number,
  ): Promise<Participant>;
  /** Takes a participant out of an open session, releasing the proxy if nobody else in it holds it. */
  removeParticipant(tenantId: string, id: string, participantId: string, now: number): Promise<Session>;
  /** Expires up to `limit` open sessions past their expiry; returns how many it ended. */
  expireDue(now: number, limit: number): Promise<number>;
}

/**
 * The writes, run in this thread on the store. Allocation relies on the database's unique index for
 * the invariant and starts again from the top when a concurrent writer took a number first.
 */
export class StoreSessionWriter implements SessionWriter {
  constructor(
    private readonly store: Store,
    private readonly reuseCooldownSeconds: number,
  ) {}

  create(
    tenantId: string,
    request: NewSession,
    now: number,
  ): Promise<{ session: Session; created: boolean }> {
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      if (request.externalId !== null) {
        const existing = await sessions.findOpenByExternalId(tenantId, request.externalId);
        if (existing && existing.session.expiresAt > now) {
          if (existing.fingerprint !== request.fingerprint) {
            throw new ConflictError(
              `an open session with externalId ${request.externalId} has a different request`,
            );
          }
          return { session: existing.session, created: false };
        }
        if (existing) await endSession(trx, existing.session, 'expired', now);
      }
      const session: Session = {
        id: newId('ses', now),
        tenantId,
        externalId: request.externalId,
        status: 'open',
        expiresAt: request.expiresAt,
        metadata: request.metadata,
        participants: [],
        createdAt: now,
        updatedAt: now,
        closedAt: null,
        ...request.policy,
      };
      session.participants = await this.allocator(trx, session, now).allocate(request.participants);
      await sessions.insertOpened(
        session,
        request.fingerprint,
        eventRow(tenantId, 'session.created', session, now),
      );
      return { session, created: true };
    });
  }

  update(tenantId: string, id: string, update: SessionUpdate, now: number): Promise<Session> {
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const session = await openSession(sessions, tenantId, id, now);
      const { life, record, metadata } = update;
      if (life && session.ttlMode === 'sliding' && life.ttlSeconds === null) {
        throw new InvalidRequestError('a sliding session is renewed with ttlSeconds', 'ttlSeconds');
      }
      const changes = {
        ...(life ? { expiresAt: life.expiresAt } : {}),
        ...(life && life.ttlSeconds !== null ? { ttlSeconds: life.ttlSeconds } : {}),
        ...(record !== undefined ? { record } : {}),
        ...(metadata !== undefined ? { metadata } : {}),
      };
      await sessions.update(id, changes, now);
      return { ...session, ...changes, updatedAt: now };
    });
  }

  close(tenantId: string, id: string, now: number): Promise<Session> {
    return inTransaction(this.store, async (trx) => {
      const session = await new SessionRepository(trx).getForUpdate(tenantId, id);
      if (!session) throw new NotFoundError('session', id);
      if (session.status !== 'open') return session;
      const status = effectiveStatus(session, now) === 'expired' ? 'expired' : 'closed';
      await endSession(trx, session, status, now);
      return { ...session, status, closedAt: now, updatedAt: now };
    });
  }

  addParticipant(
    tenantId: string,
    id: string,
    request: ParticipantRequest,
    now: number,
  ): Promise<Participant> {
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const session = await openSession(sessions, tenantId, id, now);
      if (session.participants.length >= participantsOf(session.mode)) {
        throw new ConflictError(`the ${session.mode} session is complete; remove a participant first`);
      }
      if (session.participants.some((p) => p.number === request.phone.e164)) {
        throw new ConflictError('that number is already a participant of the session');
      }
      const [added] = await this.allocator(trx, session, now).allocate([request]);
      await sessions.insertParticipants(tenantId, [added as Participant]);
      await sessions.update(id, {}, now);
      return added as Participant;
    });
  }

  removeParticipant(tenantId: string, id: string, participantId: string, now: number): Promise<Session> {
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const session = await openSession(sessions, tenantId, id, now);
      const participant = session.participants.find((p) => p.id === participantId);
      if (!participant || !(await sessions.releaseParticipant(participantId, now))) {
        throw new NotFoundError('participant', participantId);
      }
      const rest = session.participants.filter((p) => p.id !== participantId);
      if (!rest.some((p) => p.proxyNumberId === participant.proxyNumberId)) {
        await new NumberRepository(trx).release([participant.proxyNumberId], now);
      }
      await sessions.update(id, {}, now);
      return { ...session, participants: rest, updatedAt: now };
    });
  }

  async expireDue(now: number, limit: number): Promise<number> {
    const due = await new SessionRepository(this.store.db).dueForExpiry(now, limit);
    let ended = 0;
    for (const { id, tenantId } of due) {
      ended += await inTransaction(this.store, async (trx) => {
        const session = await new SessionRepository(trx).get(tenantId, id);
        return session && (await endSession(trx, session, 'expired', now)) ? 1 : 0;
      });
    }
    return ended;
  }

  /** The allocator for one session's new participants, allocating with its mode's preference. */
  protected allocator(trx: Db, session: Session, now: number): Allocator {
    return new Allocator(
      trx,
      session.tenantId,
      session,
      now,
      this.reuseCooldownSeconds,
      preferenceFor(session.mode),
    );
  }
}

/** The session, locked for this change, if it is open; otherwise not_found or conflict. */
async function openSession(
  sessions: SessionRepository,
  tenantId: string,
  id: string,
  now: number,
): Promise<Session> {
  const session = await sessions.getForUpdate(tenantId, id);
  if (!session) throw new NotFoundError('session', id);
  const status = effectiveStatus(session, now);
  if (status !== 'open') throw new ConflictError(`session ${id} is ${status}`);
  return session;
}
