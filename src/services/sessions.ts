import { type ProxyPreference, preferenceFor, proxySearchPlan } from '../domain/allocation.ts';
import { ConflictError, InvalidRequestError, NotFoundError, PoolExhaustedError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import type { Interaction } from '../domain/interaction.ts';
import { parsePhone } from '../domain/phone.ts';
import {
  effectiveStatus,
  lifetime,
  MAX_PARTICIPANTS,
  type NewSession,
  normalizeParticipant,
  normalizeSession,
  type Participant,
  type ParticipantInput,
  type ParticipantRequest,
  type Session,
  type SessionDefaults,
  type SessionInput,
  type SessionStatus,
} from '../domain/session.ts';
import { type Db, inTransaction, type Store } from '../store/db.ts';
import { appendEvent, eventValues } from '../store/events.ts';
import type { InteractionLog } from '../store/interactions.ts';
import { NumberRepository } from '../store/numbers.ts';
import { SessionRepository } from '../store/sessions.ts';

export interface SessionServiceOptions extends SessionDefaults {
  reuseCooldownSeconds: number;
  /** Overrides the preference each mode allocates with (the pool benchmark compares them). */
  preference?: ProxyPreference;
}

export interface SessionChanges {
  ttlSeconds?: number;
  expiresAt?: string;
  record?: boolean;
  metadata?: Record<string, unknown>;
}

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/**
 * A page of `limit` items from `rows`, read with one row more than the page: when that extra row
 * came back there is a next page, starting after the last item shown (ids sort by creation).
 */
export function pageOf<T extends { id: string }>(rows: T[], limit: number): Page<T> {
  const data = rows.slice(0, limit);
  return { data, nextCursor: rows.length > limit ? (data.at(-1)?.id ?? null) : null };
}

/**
 * Sessions and the allocation of their proxy numbers. Every change runs in one transaction that
 * also writes its outbox event; allocation relies on the database's unique index for the
 * invariant and starts again from the top when a concurrent writer took a number first.
 */
export class SessionService {
  constructor(
    private readonly store: Store,
    private readonly log: InteractionLog,
    private readonly options: SessionServiceOptions,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Opens a session, or returns the open one with the same externalId and the same request. */
  create(tenantId: string, input: SessionInput): Promise<{ session: Session; created: boolean }> {
    const now = this.clock();
    return this.createNormalized(tenantId, normalizeSession(input, this.options, now), now);
  }

  /** The write of `create`, once the request is checked and normalized. */
  createNormalized(
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
      const session = await this.open(trx, tenantId, request, now);
      const event = eventValues(tenantId, 'session.created', session, now);
      await sessions.insertOpened(session, request.fingerprint, event);
      return { session, created: true };
    });
  }

  /** The new session, its participants' proxies taken; the caller writes it. */
  private async open(trx: Db, tenantId: string, request: NewSession, now: number): Promise<Session> {
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
    const allocator = this.allocator(trx, tenantId, session, now);
    session.participants = await allocator.allocate(request.participants);
    return session;
  }

  async get(tenantId: string, id: string): Promise<Session> {
    const session = await new SessionRepository(this.store.db).get(tenantId, id);
    if (!session) throw new NotFoundError('session', id);
    return this.present(session);
  }

  async list(
    tenantId: string,
    query: { externalId?: string; status?: SessionStatus; cursor?: string; limit: number },
  ): Promise<Page<Session>> {
    const rows = await new SessionRepository(this.store.db).list({
      tenantId,
      externalId: query.externalId,
      status: query.status,
      before: query.cursor,
      limit: query.limit + 1,
      now: this.clock(),
    });
    return pageOf(
      rows.map((s) => this.present(s)),
      query.limit,
    );
  }

  /** Renews (ttlSeconds / expiresAt) and changes record or metadata of an open session. */
  async update(tenantId: string, id: string, changes: SessionChanges): Promise<Session> {
    const now = this.clock();
    const life =
      changes.ttlSeconds !== undefined || changes.expiresAt !== undefined
        ? lifetime(changes, { ttlSeconds: this.options.ttlSeconds }, now)
        : undefined;
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const session = await this.openSession(sessions, tenantId, id, now);
      if (life && session.ttlMode === 'sliding' && life.ttlSeconds === null) {
        throw new InvalidRequestError('a sliding session is renewed with ttlSeconds', 'ttlSeconds');
      }
      const update = {
        ...(life
          ? {
              expiresAt: life.expiresAt,
              ...(life.ttlSeconds !== null ? { ttlSeconds: life.ttlSeconds } : {}),
            }
          : {}),
        ...(changes.record !== undefined ? { record: changes.record } : {}),
        ...(changes.metadata !== undefined ? { metadata: changes.metadata } : {}),
      };
      await sessions.update(id, update, now);
      return { ...session, ...update, updatedAt: now };
    });
  }

  /** Closes a session and releases its proxies at once. Closing an ended session changes nothing. */
  async close(tenantId: string, id: string): Promise<Session> {
    const now = this.clock();
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const session = await sessions.getForUpdate(tenantId, id);
      if (!session) throw new NotFoundError('session', id);
      if (session.status !== 'open') return session;
      const status = effectiveStatus(session, now) === 'expired' ? 'expired' : 'closed';
      await endSession(trx, session, status, now);
      return { ...session, status, closedAt: now, updatedAt: now };
    });
  }

  /** Adds a participant (a replacement courier, say) to an open session that has room. */
  async addParticipant(tenantId: string, id: string, input: ParticipantInput): Promise<Participant> {
    const now = this.clock();
    const request = normalizeParticipant(input, 'number', this.options);
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const session = await this.openSession(sessions, tenantId, id, now);
      if (session.participants.length >= MAX_PARTICIPANTS) {
        throw new ConflictError('the session already has two participants; remove one first');
      }
      if (session.participants.some((p) => p.number === request.phone.e164)) {
        throw new ConflictError('that number is already a participant of the session');
      }
      const allocator = this.allocator(trx, tenantId, session, now);
      const added = await allocator.allocate([request]);
      await sessions.insertParticipants(tenantId, added);
      await sessions.update(id, {}, now);
      return added[0] as Participant;
    });
  }

  /** Takes a participant out of an open session, releasing the proxy if nobody else in it holds it. */
  async removeParticipant(tenantId: string, id: string, participantId: string): Promise<Session> {
    const now = this.clock();
    return inTransaction(this.store, async (trx) => {
      const sessions = new SessionRepository(trx);
      const session = await this.openSession(sessions, tenantId, id, now);
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

  async interactions(
    tenantId: string,
    id: string,
    query: { cursor?: string; limit: number },
  ): Promise<Page<Interaction>> {
    await this.get(tenantId, id);
    return pageOf(await this.log.listForSession(tenantId, id, query.cursor, query.limit + 1), query.limit);
  }

  /** Expires open sessions past their expiry, a batch at a time; returns how many it ended. */
  async expireDue(limit = 500): Promise<number> {
    const now = this.clock();
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

  private allocator(trx: Db, tenantId: string, session: Session, now: number): Allocator {
    const preference = this.options.preference ?? preferenceFor(session.mode);
    return new Allocator(trx, tenantId, session, now, this.options.reuseCooldownSeconds, preference);
  }

  /** The session, locked for this change, if it is open; otherwise not_found or conflict. */
  private async openSession(
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

  private present(session: Session): Session {
    return { ...session, status: effectiveStatus(session, this.clock()) };
  }
}

/**
 * Ends an open session as closed or expired: participants released, numbers' load given back, the
 * event written. False when another writer ended it first (then nothing is done twice).
 */
async function endSession(
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

/**
 * Chooses proxy numbers for new participants of one session, inside its transaction. It first
 * expires the people's stale sessions (so a session past its expiry holds nothing even before the
 * sweeper runs), then walks the search plan of the domain, taking the first number that fits.
 * The caller writes the participants it returns.
 */
class Allocator {
  private readonly sessions: SessionRepository;
  private readonly numbers: NumberRepository;

  constructor(
    private readonly trx: Db,
    private readonly tenantId: string,
    private readonly session: Session,
    private readonly now: number,
    private readonly cooldownSeconds: number,
    private readonly preference: ProxyPreference,
  ) {
    this.sessions = new SessionRepository(trx);
    this.numbers = new NumberRepository(trx);
  }

  async allocate(requests: readonly ParticipantRequest[]): Promise<Participant[]> {
    const cooling = await this.histories(requests.map((r) => r.phone.e164));
    const held = new Set(this.session.participants.map((p) => p.proxyNumberId));
    const sharedPick =
      this.session.mode !== 'shared'
        ? undefined
        : this.session.participants[0]
          ? await this.joinShared(this.session.participants[0], requests)
          : await this.pick(requests, cooling, held, 'participants');
    const participants: Participant[] = [];
    for (const [i, request] of requests.entries()) {
      const proxy = sharedPick ?? (await this.pick([request], cooling, held, `participants/${i}`));
      const participant: Participant = {
        id: newId('par', this.now),
        sessionId: this.session.id,
        number: request.phone.e164,
        label: request.label,
        proxyNumberId: proxy.id,
        proxyNumber: proxy.number,
        revealNumber: request.revealNumber,
        canInitiate: request.canInitiate,
        createdAt: this.now,
      };
      held.add(proxy.id);
      participants.push(participant);
    }
    return participants;
  }

  /**
   * A shared session keeps its one proxy for life: a newcomer gets the number the session has,
   * which must be local to them and not already theirs in another open session.
   */
  private async joinShared(
    member: Participant,
    requests: readonly ParticipantRequest[],
  ): Promise<{ id: string; number: string }> {
    const country = parsePhone(member.proxyNumber, 'proxyNumber').country;
    for (const request of requests) {
      if (request.phone.country !== country) {
        throw new InvalidRequestError(
          `this shared session's proxy is local to ${country}; the newcomer is not`,
          'number',
        );
      }
      if (await this.sessions.holds(request.phone.e164, member.proxyNumber)) {
        throw new ConflictError('the newcomer already holds this shared session’s proxy in another session');
      }
    }
    return { id: member.proxyNumberId, number: member.proxyNumber };
  }

  /** Numbers given back after this moment are within the reuse cooldown. */
  private get coolingSince(): number {
    return this.now - this.cooldownSeconds * 1000;
  }

  /**
   * Expires the people's stale sessions (so that they hold nothing, even before the sweeper runs)
   * and says which of the people gave a number back within the reuse cooldown, those stale
   * sessions' numbers included: they are given back now.
   */
  private async histories(people: string[]): Promise<Set<string>> {
    const { stale, gaveBack } = await this.sessions.histories(people, this.now, this.coolingSince);
    for (const sessionId of new Set(stale.map((h) => h.sessionId))) {
      const session = await this.sessions.get(this.tenantId, sessionId);
      // A stale session of another tenant is left to the sweeper; its numbers are not in this pool.
      if (session) await endSession(this.trx, session, 'expired', this.now);
    }
    return new Set([...gaveBack, ...stale.map((h) => h.number)]);
  }

  /** The best number for these people (one, or both of a shared session), counted as taken. */
  private async pick(
    requests: readonly ParticipantRequest[],
    cooling: ReadonlySet<string>,
    heldBySession: ReadonlySet<string>,
    field: string,
  ): Promise<{ id: string; number: string }> {
    const plan = proxySearchPlan({
      tenantId: this.tenantId,
      people: requests.map((r) => r.phone),
      geoMatch: this.session.geoMatch,
      channels: this.session.channels,
      preference: this.preference,
      coolingSince: requests.some((r) => cooling.has(r.phone.e164)) ? this.coolingSince : undefined,
    });
    for (const search of plan) {
      const found = await this.numbers.takeProxy(search, heldBySession, this.now);
      if (found) return found;
    }
    const where = requests[0]?.phone.country ?? '';
    throw new PoolExhaustedError(`no proxy number in ${where} is free for ${field}`);
  }
}
