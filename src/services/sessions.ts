import { NotFoundError, PoolExhaustedError, RateLimitedError } from '../domain/errors.ts';
import type { Interaction } from '../domain/interaction.ts';
import { type Page, pageOf } from '../domain/page.ts';
import type { Announcement } from '../domain/routing.ts';
import {
  checkMetadata,
  effectiveStatus,
  lifetime,
  normalizeParticipant,
  normalizeParticipantChanges,
  normalizeParticipantReplacement,
  normalizeSession,
  type Participant,
  type ParticipantChangesInput,
  type ParticipantInput,
  type ParticipantReplacementInput,
  type Session,
  type SessionDefaults,
  type SessionInput,
  type SessionStatus,
} from '../domain/session.ts';
import { WindowCap } from '../domain/window-cap.ts';
import type { InteractionFilter, InteractionLog } from '../store/interactions.ts';
import { SessionRepository } from '../store/sessions.ts';
import type { Store } from '../store/store.ts';
import { type AllocationOperation, SessionCounters } from './session-counters.ts';
import type { SessionUpdate, SessionWriter } from './session-writer.ts';

export interface SessionChanges {
  ttlSeconds?: number;
  expiresAt?: string;
  record?: boolean;
  metadata?: Record<string, unknown>;
  rejectMessage?: Announcement | null;
}

/** Sessions expired per call of expireDue: a sweep ends them a batch at a time. */
const EXPIRY_BATCH = 500;

const MINUTE_MS = 60_000;
/** Tenants whose creates of the minute one instance counts at once. */
const SESSION_CAP_TENANTS = 10_000;

/**
 * Sessions as the API and the CLI see them: requests are checked and normalised here, on the
 * caller's clock, then handed to the SessionWriter (in this thread, or on the writer thread of a
 * SQLite file); reads go to the store directly.
 */
export class SessionService {
  /** Each tenant's creates of its current minute, on this instance. */
  private readonly creates: WindowCap | undefined;

  constructor(
    private readonly store: Store,
    private readonly log: InteractionLog,
    private readonly writer: SessionWriter,
    private readonly defaults: SessionDefaults,
    private readonly clock: () => number = Date.now,
    /** Sessions a tenant may create per minute on this instance (a toll-fraud guard); 0: no cap. */
    sessionsPerMinute = 0,
    /** What this instance opened and allocated, for /metrics. */
    readonly counters = new SessionCounters(),
  ) {
    this.creates =
      sessionsPerMinute > 0 ? new WindowCap(sessionsPerMinute, MINUTE_MS, SESSION_CAP_TENANTS) : undefined;
  }

  /**
   * Opens a session, or returns the one its externalId names (open, closed or expired, as it is)
   * when the request is the same; a different request with that externalId is a conflict. A
   * tenant past its sessions of the minute is refused (RateLimitedError) before anything is read,
   * a retry included; only a session opened counts.
   */
  async create(tenantId: string, input: SessionInput): Promise<{ session: Session; created: boolean }> {
    const now = this.clock();
    const session = normalizeSession(input, this.defaults, now);
    const waitMs = this.creates?.take(tenantId, now) ?? 0;
    if (waitMs > 0) {
      throw new RateLimitedError(
        `this tenant opened ${this.creates?.limit} sessions in the last minute, as many as VEIL_MAX_SESSIONS_PER_MINUTE allows`,
        Math.ceil(waitMs / 1000),
      );
    }
    let created = false;
    try {
      const result = await this.allocating('create', this.writer.create(tenantId, session, now));
      created = result.created;
      if (created) this.counters.sessionCreated(result.session.mode, result.session.participants.length);
      return result;
    } finally {
      if (!created) this.creates?.giveBack(tenantId, now);
    }
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
  update(tenantId: string, id: string, changes: SessionChanges): Promise<Session> {
    const now = this.clock();
    const update: SessionUpdate = {
      ...(changes.ttlSeconds !== undefined || changes.expiresAt !== undefined
        ? { life: lifetime(changes, this.defaults, now) }
        : {}),
      ...(changes.record !== undefined ? { record: changes.record } : {}),
      ...(changes.metadata !== undefined ? { metadata: checkMetadata(changes.metadata) } : {}),
      ...(changes.rejectMessage !== undefined ? { rejectMessage: changes.rejectMessage } : {}),
    };
    return this.writer.update(tenantId, id, update, now);
  }

  /** Closes a session and releases its proxies at once. Closing an ended session changes nothing. */
  close(tenantId: string, id: string): Promise<Session> {
    return this.writer.close(tenantId, id, this.clock());
  }

  /** Adds a participant (a replacement courier, say) to an open session that has room. */
  async addParticipant(tenantId: string, id: string, input: ParticipantInput): Promise<Participant> {
    const request = normalizeParticipant(input, 'number', this.defaults);
    const added = await this.allocating(
      'add_participant',
      this.writer.addParticipant(tenantId, id, request, this.clock()),
    );
    this.counters.allocated('add_participant');
    return added;
  }

  /** Takes a participant out of an open session, releasing the proxy if nobody else in it holds it. */
  removeParticipant(tenantId: string, id: string, participantId: string): Promise<Session> {
    return this.writer.removeParticipant(tenantId, id, participantId, this.clock());
  }

  /** Changes the label, revealNumber or canInitiate of a participant of an open session. */
  updateParticipant(
    tenantId: string,
    id: string,
    participantId: string,
    input: ParticipantChangesInput,
  ): Promise<Session> {
    const changes = normalizeParticipantChanges(input);
    return this.writer.updateParticipant(tenantId, id, participantId, changes, this.clock());
  }

  /**
   * Puts someone in a participant's place in one step (the courier changes); the fields not given
   * are kept from the one replaced. All or nothing: if the newcomer can get no proxy, the one
   * replaced stays.
   */
  async replaceParticipant(
    tenantId: string,
    id: string,
    participantId: string,
    input: ParticipantReplacementInput,
  ): Promise<Session> {
    const replacement = normalizeParticipantReplacement(input, this.defaults);
    const now = this.clock();
    const session = await this.allocating(
      'replace_participant',
      this.writer.replaceParticipant(tenantId, id, participantId, replacement, now),
    );
    // The one replaced is out and the newcomer came in now; the same person again (whose fields
    // changed) or a retry of a replacement made before was given no proxy.
    const number = replacement.phone.e164;
    if (
      !session.participants.some((p) => p.id === participantId) &&
      session.participants.some((p) => p.number === number && p.createdAt === now)
    ) {
      this.counters.allocated('replace_participant');
    }
    return session;
  }

  async interactions(
    tenantId: string,
    id: string,
    query: { cursor?: string; limit: number },
  ): Promise<Page<Interaction>> {
    await this.get(tenantId, id);
    return pageOf(await this.log.listForSession(tenantId, id, query.cursor, query.limit + 1), query.limit);
  }

  /**
   * The tenant's call and text log across sessions, strangers' refused calls included, oldest
   * first; a page may hold fewer than `limit` entries when few match (follow nextCursor).
   */
  async interactionLog(
    tenantId: string,
    query: InteractionFilter & { limit: number },
  ): Promise<Page<Interaction>> {
    const { limit, ...filter } = query;
    const { entries, next } = await this.log.list(tenantId, filter, limit);
    return { data: entries, nextCursor: next ?? null };
  }

  /** Expires open sessions past their expiry, a batch at a time; returns how many it ended. */
  expireDue(limit = EXPIRY_BATCH): Promise<number> {
    return this.writer.expireDue(this.clock(), limit);
  }

  /** Counts a refusal for want of a proxy number, then passes it on. */
  private async allocating<T>(operation: AllocationOperation, write: Promise<T>): Promise<T> {
    try {
      return await write;
    } catch (error) {
      if (error instanceof PoolExhaustedError) this.counters.exhausted(operation);
      throw error;
    }
  }

  private present(session: Session): Session {
    return { ...session, status: effectiveStatus(session, this.clock()) };
  }
}
