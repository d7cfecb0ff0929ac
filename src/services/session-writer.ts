import { preferenceFor } from '../domain/allocation.ts';
import { ConflictError, InvalidRequestError, NotFoundError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import { type PhoneNumber, parsePhone } from '../domain/phone.ts';
import { usableCarriers } from '../domain/providers.ts';
import type { Announcement } from '../domain/routing.ts';
import {
  changedParticipant,
  effectiveStatus,
  type NewSession,
  type Participant,
  type ParticipantChanges,
  type ParticipantReplacement,
  type ParticipantRequest,
  participantsOf,
  type Session,
} from '../domain/session.ts';
import { BindingRepository } from '../store/bindings.ts';
import { dialectOf } from '../store/dialect.ts';
import { WriteRaceError } from '../store/errors.ts';
import { appendEvent, eventRow } from '../store/events.ts';
import { NumberRepository } from '../store/numbers.ts';
import { providerFlags } from '../store/providers.ts';
import type { Db } from '../store/schema.ts';
import { SessionRepository } from '../store/sessions.ts';
import type { Store } from '../store/store.ts';
import { inTransaction } from '../store/transactions.ts';
import { type AllocationSettings, Allocator } from './allocator.ts';
import { endSession } from './session-end.ts';

/** A change to an open session, checked and worked out by SessionService. */
export interface SessionUpdate {
  /** A renewal: the new expiry, and the new TTL when it was given as one. */
  life?: { expiresAt: number; ttlSeconds: number | null };
  record?: boolean;
  metadata?: Record<string, unknown>;
  /** The session's own reject message, or null to go back to the installation's. */
  rejectMessage?: Announcement | null;
}

/**
 * Every write to sessions, each one transaction with its outbox event. Requests arrive checked and
 * normalised, with the time they happen at (`now`), so that a writer on another thread decides on
 * the caller's clock. Two implementations: StoreSessionWriter runs them here; on a SQLite file the
 * server runs that same class on a thread of its own (session-thread.ts), behind this interface.
 */
export interface SessionWriter {
  /**
   * Opens a session, or returns the one its externalId names (open, closed or expired, as it is)
   * when the request is the same; a different request with that externalId is a conflict.
   */
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
  /** Changes the label, revealNumber or canInitiate of a participant of an open session. */
  updateParticipant(
    tenantId: string,
    id: string,
    participantId: string,
    changes: ParticipantChanges,
    now: number,
  ): Promise<Session>;
  /**
   * Puts someone in a participant's place in one step (the courier changes): the one replaced is
   * released and the newcomer added, with the same proxy when the invariant allows, or nothing
   * changes. A retry of a replacement already made returns the session as it is.
   */
  replaceParticipant(
    tenantId: string,
    id: string,
    participantId: string,
    replacement: ParticipantReplacement,
    now: number,
  ): Promise<Session>;
  /** Expires up to `limit` open sessions past their expiry; returns how many it ended. */
  expireDue(now: number, limit: number): Promise<number>;
  /**
   * Moves an open session off a carrier that is down or switched off: every participant gets a
   * proxy of a carrier in use, keeping their id, and `session.rebound` tells the app. Undefined when
   * there is nothing to move (ended, its carrier usable again, bound at its carrier); all or nothing
   * (pool_exhausted leaves it as it was).
   */
  rebind(tenantId: string, id: string, now: number): Promise<Session | undefined>;
}

/**
 * The writes, run in this thread on the store. Allocation relies on the database's unique index for
 * the invariant and starts again from the top when a concurrent writer took a number first.
 */
export class StoreSessionWriter implements SessionWriter {
  constructor(
    private readonly store: Store,
    private readonly settings: AllocationSettings,
  ) {}

  create(
    tenantId: string,
    request: NewSession,
    now: number,
  ): Promise<{ session: Session; created: boolean }> {
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const { externalId } = request;
      if (externalId !== null) {
        // An externalId names one session for ever: the same request again gets it as it is, even
        // closed or expired, so that a late retry never opens a finished order again.
        const existing = await sessions.findByExternalId(tenantId, externalId, request.fingerprint);
        if (existing) {
          if (!existing.sameRequest) {
            throw new ConflictError(
              `session ${existing.session.id} has externalId ${externalId} and was opened by a different request`,
            );
          }
          const { session } = existing;
          return { session: { ...session, status: effectiveStatus(session, now) }, created: false };
        }
      }
      const session: Session = {
        id: newId('ses', now),
        tenantId,
        externalId,
        status: 'open',
        expiresAt: request.expiresAt,
        metadata: request.metadata,
        rejectMessage: request.rejectMessage,
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
      // Where writers run side by side (PostgreSQL), a create of the same externalId may have
      // committed after the look above and been closed since: the unique index covers open
      // sessions only, so this insert passed. Looked for again it is seen, and the retry answers
      // with it. (SQLite runs one write transaction at a time: the look above saw it.)
      if (
        externalId !== null &&
        dialectOf(trx).locksRows &&
        (await sessions.externalIdTaken(tenantId, externalId, session.id))
      ) {
        throw new WriteRaceError('a concurrent create took the externalId');
      }
      return { session, created: true };
    });
  }

  update(tenantId: string, id: string, update: SessionUpdate, now: number): Promise<Session> {
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const session = await openSession(sessions, tenantId, id, now);
      const { life, record, metadata, rejectMessage } = update;
      if (life || record !== undefined) refuseRemote(session, 'its expiry and recording are fixed there');
      if (life && session.ttlMode === 'sliding' && life.ttlSeconds === null) {
        throw new InvalidRequestError('a sliding session is renewed with ttlSeconds', 'ttlSeconds');
      }
      const changes = {
        ...(life ? { expiresAt: life.expiresAt } : {}),
        ...(life && life.ttlSeconds !== null ? { ttlSeconds: life.ttlSeconds } : {}),
        ...(record !== undefined ? { record } : {}),
        ...(metadata !== undefined ? { metadata } : {}),
        ...(rejectMessage !== undefined ? { rejectMessage } : {}),
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
      refuseRemote(session, 'its participants are fixed there');
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
      refuseRemote(session, 'its participants are fixed there');
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

  updateParticipant(
    tenantId: string,
    id: string,
    participantId: string,
    changes: ParticipantChanges,
    now: number,
  ): Promise<Session> {
    return inTransaction(this.store, async (trx) => {
      const session = await openSession(new SessionRepository(trx), tenantId, id, now);
      const participant = session.participants.find((p) => p.id === participantId);
      if (!participant) throw new NotFoundError('participant', participantId);
      if (changes.canInitiate !== undefined || changes.revealNumber !== undefined) {
        refuseRemote(session, 'who may call and whose number shows are fixed there');
      }
      return this.changeParticipant(trx, session, participant, changes, now);
    });
  }

  replaceParticipant(
    tenantId: string,
    id: string,
    participantId: string,
    replacement: ParticipantReplacement,
    now: number,
  ): Promise<Session> {
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const session = await openSession(sessions, tenantId, id, now);
      refuseRemote(session, 'its participants are fixed there');
      const { phone, ...changes } = replacement;
      const old = session.participants.find((p) => p.id === participantId);
      if (!old) {
        // A retry of a replacement already made: the one replaced is out, the newcomer in.
        const done =
          session.participants.some((p) => p.number === phone.e164) &&
          (await sessions.wasRemoved(id, participantId));
        if (done) return session;
        throw new NotFoundError('participant', participantId);
      }
      if (old.number === phone.e164) {
        // The same person again: nobody is replaced, the fields given change.
        return Object.keys(changes).length === 0
          ? session
          : this.changeParticipant(trx, session, old, changes, now);
      }
      if (session.participants.some((p) => p.number === phone.e164)) {
        throw new ConflictError('that number is already a participant of the session');
      }
      if (!(await sessions.releaseParticipant(old.id, now))) throw new NotFoundError('participant', old.id);
      const rest = session.participants.filter((p) => p.id !== old.id);
      const kept = changedParticipant(old, changes);
      const allocator = this.allocator(trx, { ...session, participants: rest }, now);
      // The newcomer's sessions past their expiry hold nothing, even before the sweeper runs.
      await allocator.histories([phone.e164]);
      let newcomer: Participant;
      if (await this.mayTakeOver(trx, session, old, phone)) {
        // The session goes on holding the proxy, through the newcomer now: its load is unchanged.
        newcomer = { ...kept, id: newId('par', now), number: phone.e164, createdAt: now };
      } else {
        // The session holds the old proxy no more, unless the other participant has it too: its
        // load is given back before the search, which may then take it again.
        if (!rest.some((p) => p.proxyNumberId === old.proxyNumberId)) {
          await new NumberRepository(trx).release([old.proxyNumberId], now);
        }
        const request: ParticipantRequest = {
          phone,
          label: kept.label,
          revealNumber: kept.revealNumber,
          canInitiate: kept.canInitiate,
        };
        newcomer = (await allocator.allocate([request]))[0] as Participant;
      }
      await sessions.insertParticipants(tenantId, [newcomer]);
      return this.changed(trx, session, [...rest, newcomer], now);
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

  rebind(tenantId: string, id: string, now: number): Promise<Session | undefined> {
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const numbers = new NumberRepository(trx);
      const session = await sessions.getForUpdate(tenantId, id);
      if (!session || effectiveStatus(session, now) !== 'open') return undefined;
      const { participants: old } = session;
      if (old.length === 0) return undefined;
      const from = (await numbers.get(tenantId, old[0]?.proxyNumberId ?? ''))?.provider;
      if (!from || usableCarriers([from], await providerFlags(trx, [from])).length > 0) {
        return undefined;
      }
      // The old proxies are given back as a replacement gives them (their history kept for the
      // cooldown), then the same people allocated afresh, as a new session on the carriers in use.
      // A binding at a remote-binding carrier ends as at the session's end: undone by the binding
      // worker once the carrier answers, its proxy kept from these people until then.
      const retired = old.map(() => newId('par', now));
      for (const [i, p] of old.entries()) await sessions.retireParticipation(p.id, retired[i] as string, now);
      await new BindingRepository(trx).end(retired, now);
      await numbers.release(new Set(old.map((p) => p.proxyNumberId)), now);
      const fresh = await this.allocator(trx, { ...session, participants: [] }, now).allocate(
        old.map((p) => ({
          phone: parsePhone(p.number, 'number'),
          label: p.label,
          revealNumber: p.revealNumber,
          canInitiate: p.canInitiate,
        })),
      );
      const participants = fresh.map((p, i) => ({
        ...p,
        id: old[i]?.id ?? p.id,
        createdAt: old[i]?.createdAt ?? now,
      }));
      await sessions.insertParticipants(tenantId, participants);
      await sessions.update(id, {}, now);
      const rebound = { ...session, participants, updatedAt: now };
      const to = (await numbers.get(tenantId, participants[0]?.proxyNumberId ?? ''))?.provider;
      await appendEvent(
        trx,
        tenantId,
        'session.rebound',
        {
          ...rebound,
          rebound: {
            from,
            to,
            previous: old.map((p) => ({ participantId: p.id, proxyNumber: p.proxyNumber })),
          },
        },
        now,
      );
      return rebound;
    });
  }

  /** The allocator for one session's new participants, allocating with its mode's preference. */
  protected allocator(trx: Db, session: Session, now: number): Allocator {
    return new Allocator(trx, session.tenantId, session, now, this.settings, preferenceFor(session.mode));
  }

  /**
   * Whether a newcomer may take over the proxy of the participant they replace: local to them as
   * the session's geoMatch asks, and not theirs already in an open session (the invariant). In a
   * shared session that proxy is the session's one, which the allocator gives them or refuses.
   */
  private async mayTakeOver(
    trx: Db,
    session: Session,
    old: Participant,
    phone: PhoneNumber,
  ): Promise<boolean> {
    const proxy = await new NumberRepository(trx).get(session.tenantId, old.proxyNumberId);
    if (!proxy || proxy.country !== phone.country) return false;
    if (session.geoMatch === 'region-strict' && proxy.region !== phone.region) return false;
    return !(await new SessionRepository(trx).holds(phone.e164, old.proxyNumber));
  }

  /** Changes one participant of an open session. */
  private async changeParticipant(
    trx: Db,
    session: Session,
    participant: Participant,
    changes: ParticipantChanges,
    now: number,
  ): Promise<Session> {
    if (!(await new SessionRepository(trx).updateParticipant(participant.id, changes))) {
      throw new NotFoundError('participant', participant.id);
    }
    const participants = session.participants.map((p) =>
      p.id === participant.id ? changedParticipant(p, changes) : p,
    );
    return this.changed(trx, session, participants, now);
  }

  /** Records that the session's participants changed (its time, the event); the session as it now is. */
  private async changed(
    trx: Db,
    session: Session,
    participants: Participant[],
    now: number,
  ): Promise<Session> {
    await new SessionRepository(trx).update(session.id, {}, now);
    const changed = { ...session, participants, updatedAt: now };
    await appendEvent(trx, session.tenantId, 'session.updated', changed, now);
    return changed;
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

/**
 * A session bound at a remote-binding carrier (Alibaba PNS) cannot be changed in place: the carrier
 * connects its calls by the binding it was given. The app closes it and opens a new one.
 */
function refuseRemote(session: Session, why: string): void {
  if (session.participants.some((p) => p.binding !== null)) {
    throw new ConflictError(
      `session ${session.id} is bound at its carrier, which cannot change it in place (${why}); close it and open a new session`,
    );
  }
}
