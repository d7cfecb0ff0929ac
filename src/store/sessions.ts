import { type Expression, type Selectable, sql } from 'kysely';
import type {
  Channel,
  GeoMatch,
  Participant,
  ParticipantChanges,
  Session,
  SessionStatus,
  Sticky,
  TtlMode,
} from '../domain/session.ts';
import { BindingRepository } from './bindings.ts';
import { dialectOf } from './dialect.ts';
import { appendEventRow, EVENT_COLUMNS, type EventRow, sealedEventValues } from './events.ts';
import { byShape, columnList, insertRows, rowNames, rowsOf, slot, statement, valuesOf } from './prepared.ts';
import type { Db } from './schema.ts';
import { ACTIVE, DIRECT, OPEN, type Schema } from './schema.ts';
import { type NumberVault, vaultOf } from './vault.ts';

type SessionRow = Selectable<Schema['sessions']>;
type ParticipantRow = Selectable<Schema['participants']>;

/** The sessions table's columns, in the migration's order. */
export const SESSION_COLUMNS = columnList<SessionRow>()([
  'id',
  'tenant_id',
  'external_id',
  'fingerprint',
  'mode',
  'status',
  'ttl_mode',
  'ttl_seconds',
  'expires_at',
  'record',
  'channels',
  'max_call_seconds',
  'geo_match',
  'sticky',
  'extension_fallback',
  'metadata',
  'created_at',
  'updated_at',
  'closed_at',
  'reject_message',
]);
/** The participants table's columns, in the migration's order. */
export const PARTICIPANT_COLUMNS = columnList<ParticipantRow>()([
  'id',
  'tenant_id',
  'session_id',
  'number_index',
  'number_sealed',
  'label',
  'proxy_number_id',
  'proxy_number',
  'reveal_number',
  'can_initiate',
  'active',
  'created_at',
  'released_at',
  'removed_at',
  'extension',
  'binding',
  'binding_version',
  'binding_attempts',
  'binding_next_at',
  'binding_ref',
  'binding_error',
]);

// The statements of a session's creation, prepared once (a create runs each of them).
const insertSession = insertRows('sessions', SESSION_COLUMNS);
/** The INSERT of n participants (a create adds both at once). */
const insertParticipants = insertRows('participants', PARTICIPANT_COLUMNS);

/**
 * A new session with its n participants and its outbox event, in one statement (PostgreSQL's
 * data-modifying WITH): one round trip instead of three. The participants' foreign key is checked
 * at the end of the statement, when the session is there.
 */
const insertOpenedSession = byShape(
  (n: number) => n,
  (n) =>
    statement<Record<string, unknown>, never>(
      [
        ...rowNames('sessions', SESSION_COLUMNS, 1),
        ...rowNames('participants', PARTICIPANT_COLUMNS, n),
        ...rowNames('events', EVENT_COLUMNS, 1),
      ],
      (db, v) =>
        db
          .with('new_session', (q) =>
            q.insertInto('sessions').values(rowsOf('sessions', SESSION_COLUMNS, 1, v)),
          )
          .with('new_participants', (q) =>
            q.insertInto('participants').values(rowsOf('participants', PARTICIPANT_COLUMNS, n, v)),
          )
          .insertInto('events')
          .values(rowsOf('events', EVENT_COLUMNS, 1, v)),
    ),
);

/** The names the statements below give the people's numbers: person0, person1… */
type Person = `person${number}`;
const personNames = (n: number): Person[] => Array.from({ length: n }, (_, i) => `person${i}` as const);

/**
 * Open sessions past their expiry (`s`), joined to their participants (`p`), read in that order:
 * from the expiry index, then each session's participants. Joined the other way, a create would
 * read every open session of a busy courier (hundreds) to find none stale.
 * - SQLite keeps a cross join's order as written.
 * - PostgreSQL reorders joins by its estimates. With statistics or without, it started from the
 *   people's numbers (every open session of a busy courier read, none of them stale). A lateral
 *   subquery runs once per row before it, and its `offset 0` keeps it from being merged back into
 *   a plain join. It names only the session, so that the participants' session index is the one
 *   it can use.
 */
function staleSessions(db: Db, now: Expression<number>) {
  const expired = db
    .selectFrom('sessions as s')
    .where('s.status', '=', OPEN)
    .where('s.expires_at', '<=', now);
  if (!dialectOf(db).lateral)
    return expired.crossJoin('participants as p').whereRef('p.session_id', '=', 's.id');
  return expired.crossJoinLateral((eb) =>
    eb
      .selectFrom('participants')
      .select(['number_index', 'active'])
      .whereRef('session_id', '=', 's.id')
      .offset(sql.lit(0))
      .as('p'),
  );
}

/**
 * What n people's recent past says about them (each named by its blind index), in one statement: the open sessions they hold that
 * are past their expiry (a row per holding, with its session), and which of them gave a proxy back
 * since `since` (a row with no session each). Stale holdings start from the expiry index (the
 * sweeper keeps that set small) rather than from the people, since a courier may hold hundreds of
 * sessions; a give-back is one probe of the release index per person.
 */
type HistoryValues = { now: number; since: number } & Record<Person, string>;
type HistoryRow = { person: string; session_id: string | null };
const historiesQuery = byShape(
  (n: number) => n,
  (n) =>
    statement<HistoryValues, HistoryRow>(['now', 'since', ...personNames(n)], (db, v) => {
      const people = personNames(n).map((name) => slot<string>(v, name));
      const stale = staleSessions(db, v.now)
        .select(['p.number_index as person', 's.id as session_id'])
        .where('p.number_index', 'in', people)
        .where('p.active', '=', ACTIVE)
        .$castTo<HistoryRow>();
      const gaveBack = (person: Expression<string>) =>
        db
          .selectNoFrom([
            // A bare parameter has no type for PostgreSQL to give the union's column: it is cast.
            sql<string>`cast(${person} as text)`.as('person'),
            sql<string | null>`null`.as('session_id'),
          ])
          .where(({ exists, selectFrom }) =>
            exists(
              selectFrom('participants')
                .select('id')
                .where('number_index', '=', person)
                .where('released_at', '>', v.since),
            ),
          );
      return people.reduce((query, person) => query.unionAll(gaveBack(person)), stale);
    }),
);

/** The newest session of an externalId, whatever its status: the one the externalId names. */
const byExternalId = statement<{ tenantId: string; externalId: string }, SessionRow>(
  ['tenantId', 'externalId'],
  (db, v) =>
    db
      .selectFrom('sessions')
      .selectAll()
      .where('tenant_id', '=', v.tenantId)
      .where('external_id', '=', v.externalId)
      .orderBy('id', 'desc')
      .limit(sql.lit(1)),
);

export interface SessionFilter {
  tenantId: string;
  externalId?: string;
  status?: SessionStatus;
  /** Only sessions created before this id (the cursor: lists run newest first). */
  before?: string;
  limit: number;
  now: number;
}

/** A person's participation in an open session that is past its expiry. */
export interface StaleHolding {
  number: string;
  sessionId: string;
}

/** Sessions and their participants. Participants of closed sessions stay, inactive, as history. */
export class SessionRepository {
  constructor(private readonly db: Db) {}

  /**
   * Writes a new session: its row, its participants and the outbox event that announces it. Where
   * one statement can write several tables (PostgreSQL) it is one statement.
   */
  async insertOpened(session: Session, fingerprint: string, event: EventRow): Promise<void> {
    const n = session.participants.length;
    const row = valuesOf(SESSION_COLUMNS, sessionRow(session, vaultOf(this.db).fingerprint(fingerprint)));
    const participants = participantValues(vaultOf(this.db), session.tenantId, session.participants);
    if (dialectOf(this.db).writesTablesInOneStatement) {
      await insertOpenedSession(n).run(this.db, [
        ...row,
        ...participants,
        ...sealedEventValues(this.db, event),
      ]);
      return;
    }
    await insertSession(1).run(this.db, row);
    if (n > 0) await insertParticipants(n).run(this.db, participants);
    await appendEventRow(this.db, event);
  }

  /** Inserts new participants of one session, in one statement. */
  async insertParticipants(tenantId: string, participants: readonly Participant[]): Promise<void> {
    if (participants.length === 0) return;
    await insertParticipants(participants.length).run(
      this.db,
      participantValues(vaultOf(this.db), tenantId, participants),
    );
  }

  async get(tenantId: string, id: string): Promise<Session | undefined> {
    const row = await this.db
      .selectFrom('sessions')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && this.withParticipants([row]).then((s) => s[0]);
  }

  /**
   * Reads a session for a change, after an update that changes nothing but takes the row lock
   * (where rows are locked): concurrent changes to one session (two adds, an add and a close)
   * then happen one after the other, each seeing what the previous one committed.
   */
  async getForUpdate(tenantId: string, id: string): Promise<Session | undefined> {
    const touched = await this.db
      .updateTable('sessions')
      .set((eb) => ({ updated_at: eb.ref('updated_at') }))
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return touched.numUpdatedRows === 1n ? this.get(tenantId, id) : undefined;
  }

  /**
   * The session an externalId names (the newest, should a database from before that rule hold
   * several), whatever its status, and whether the request with `fingerprint` created it.
   */
  async findByExternalId(
    tenantId: string,
    externalId: string,
    fingerprint: string,
  ): Promise<{ session: Session; sameRequest: boolean } | undefined> {
    const [row] = (await byExternalId.execute(this.db, { tenantId, externalId })).rows;
    if (!row) return undefined;
    const [session] = await this.withParticipants([row]);
    return session && { session, sameRequest: row.fingerprint === vaultOf(this.db).fingerprint(fingerprint) };
  }

  /** Whether a session other than `id` has this externalId: one probe of its index. */
  async externalIdTaken(tenantId: string, externalId: string, id: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('sessions')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where('external_id', '=', externalId)
      .where('id', '<>', id)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Newest first. `status` is the effective one: an open session past its expiry counts as expired. */
  async list(filter: SessionFilter): Promise<Session[]> {
    let q = this.db.selectFrom('sessions').selectAll().where('tenant_id', '=', filter.tenantId);
    if (filter.externalId !== undefined) q = q.where('external_id', '=', filter.externalId);
    if (filter.status === 'open') q = q.where('status', '=', OPEN).where('expires_at', '>', filter.now);
    if (filter.status === 'expired') {
      q = q.where((eb) =>
        eb.or([
          eb('status', '=', 'expired'),
          eb.and([eb('status', '=', OPEN), eb('expires_at', '<=', filter.now)]),
        ]),
      );
    }
    if (filter.status === 'closed') q = q.where('status', '=', 'closed');
    if (filter.before) q = q.where('id', '<', filter.before);
    const rows = await q.orderBy('id', 'desc').limit(filter.limit).execute();
    return this.withParticipants(rows);
  }

  async update(
    id: string,
    changes: Partial<Pick<Session, 'expiresAt' | 'ttlSeconds' | 'record' | 'metadata' | 'rejectMessage'>>,
    now: number,
  ): Promise<void> {
    await this.db
      .updateTable('sessions')
      .set({
        ...(changes.expiresAt !== undefined ? { expires_at: changes.expiresAt } : {}),
        ...(changes.ttlSeconds !== undefined ? { ttl_seconds: changes.ttlSeconds } : {}),
        ...(changes.record !== undefined ? { record: changes.record ? 1 : 0 } : {}),
        ...(changes.metadata !== undefined ? { metadata: JSON.stringify(changes.metadata) } : {}),
        ...(changes.rejectMessage !== undefined
          ? { reject_message: changes.rejectMessage && JSON.stringify(changes.rejectMessage) }
          : {}),
        updated_at: now,
      })
      .where('id', '=', id)
      .execute();
  }

  /**
   * Ends an open session (closed or expired) and releases its participants. Returns the proxy
   * number ids it held, or undefined when another writer ended it first.
   */
  async end(id: string, status: 'closed' | 'expired', now: number): Promise<Set<string> | undefined> {
    const ended = await this.db
      .updateTable('sessions')
      .set({ status, closed_at: now, updated_at: now })
      .where('id', '=', id)
      .where('status', '=', OPEN)
      .executeTakeFirst();
    if (ended.numUpdatedRows !== 1n) return undefined;
    // Its participants now: a binding a rebind retired stays active until the carrier undid it.
    const released = await this.db
      .updateTable('participants')
      .set({ active: 0, released_at: now })
      .where('session_id', '=', id)
      .where('active', '=', ACTIVE)
      .where('removed_at', 'is', null)
      .returning(['id', 'proxy_number_id', 'binding'])
      .execute();
    const bound = released.filter((r) => r.binding !== null).map((r) => r.id);
    await new BindingRepository(this.db).end(bound, now);
    return new Set(released.map((r) => r.proxy_number_id));
  }

  /** Takes one participant out of an open session; true when it was still in. */
  async releaseParticipant(id: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('participants')
      .set({ active: 0, released_at: now, removed_at: now })
      .where('id', '=', id)
      .where('active', '=', ACTIVE)
      .executeTakeFirst();
    return r.numUpdatedRows === 1n;
  }

  /** Changes what an active participant may do and how it is labelled; true when it was still in. */
  async updateParticipant(id: string, changes: ParticipantChanges): Promise<boolean> {
    const r = await this.db
      .updateTable('participants')
      .set({
        ...(changes.label !== undefined ? { label: changes.label } : {}),
        ...(changes.revealNumber !== undefined ? { reveal_number: changes.revealNumber ? 1 : 0 } : {}),
        ...(changes.canInitiate !== undefined ? { can_initiate: changes.canInitiate ? 1 : 0 } : {}),
      })
      .where('id', '=', id)
      .where('active', '=', ACTIVE)
      .executeTakeFirst();
    return r.numUpdatedRows === 1n;
  }

  /**
   * A participant's proxy given back while they stay in the session (failover moves them to
   * another number): its participation becomes a released one under `historyId`, out of the session
   * as a replaced one is, so the reuse cooldown and `sticky` count it; `id` is free for the
   * participation that takes its place. True when it was still in.
   */
  async retireParticipation(id: string, historyId: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('participants')
      .set({ id: historyId, active: 0, released_at: now, removed_at: now })
      .where('id', '=', id)
      .where('active', '=', ACTIVE)
      .executeTakeFirst();
    return r.numUpdatedRows === 1n;
  }

  /**
   * Open sessions holding a proxy of one of `carriers`, in the order of the expiry index, after
   * `after` (the last one of the previous page), at most `limit` participations' worth: a walk over
   * every open session, for failover, which runs it only when a carrier is down or off. A binding
   * a rebind retired (still being undone at its carrier) is not counted: its session moved.
   */
  async onCarriers(
    carriers: readonly string[],
    after: { expiresAt: number; id: string } | undefined,
    limit: number,
  ): Promise<{ id: string; tenantId: string; expiresAt: number }[]> {
    if (carriers.length === 0) return [];
    let q = this.db
      .selectFrom('sessions as s')
      .innerJoin('participants as p', 'p.session_id', 's.id')
      .innerJoin('numbers as n', 'n.id', 'p.proxy_number_id')
      .select(['s.id as id', 's.tenant_id as tenantId', 's.expires_at as expiresAt'])
      .where('s.status', '=', OPEN)
      .where('p.active', '=', ACTIVE)
      .where('p.removed_at', 'is', null)
      .where('n.provider', 'in', carriers);
    if (after) {
      q = q
        .where('s.expires_at', '>=', after.expiresAt)
        .where((eb) => eb.or([eb('s.expires_at', '>', after.expiresAt), eb('s.id', '>', after.id)]));
    }
    const rows = await q.orderBy('s.expires_at').orderBy('s.id').limit(limit).execute();
    return rows.map((r) => ({ ...r, expiresAt: Number(r.expiresAt) }));
  }

  /** Whether this participant was in the session and was taken out of it (removed or replaced). */
  async wasRemoved(sessionId: string, participantId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('participants')
      .select('id')
      .where('id', '=', participantId)
      .where('session_id', '=', sessionId)
      .where('removed_at', 'is not', null)
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Open sessions not yet past their expiry, of every tenant: a count over the (status,
   * expires_at) index, which holds nothing else to read.
   */
  async countOpen(now: number): Promise<number> {
    const row = await this.db
      .selectFrom('sessions')
      .select((eb) => eb.fn.countAll<number | string>().as('open'))
      .where('status', '=', OPEN)
      .where('expires_at', '>', now)
      .executeTakeFirstOrThrow();
    return Number(row.open);
  }

  /** Open sessions past their expiry, oldest first: the sweeper's work list. */
  async dueForExpiry(now: number, limit: number): Promise<{ id: string; tenantId: string }[]> {
    const rows = await this.db
      .selectFrom('sessions')
      .select(['id', 'tenant_id'])
      .where('status', '=', OPEN)
      .where('expires_at', '<=', now)
      .orderBy('expires_at')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ id: r.id, tenantId: r.tenant_id }));
  }

  /**
   * The people's open sessions past their expiry that the sweeper has not reached yet, and which of
   * the people gave a proxy back since `since`: one statement.
   */
  async histories(
    numbers: readonly string[],
    now: number,
    since: number,
  ): Promise<{ stale: StaleHolding[]; gaveBack: Set<string> }> {
    if (numbers.length === 0) return { stale: [], gaveBack: new Set() };
    const vault = vaultOf(this.db);
    const byIndex = new Map(numbers.map((n) => [vault.index(n), n]));
    // In the order of the statement's names: now, since, person0, person1…
    const { rows } = await historiesQuery(byIndex.size).run(this.db, [now, since, ...byIndex.keys()]);
    const stale: StaleHolding[] = [];
    const gaveBack = new Set<string>();
    for (const r of rows) {
      const number = byIndex.get(r.person) as string;
      if (r.session_id === null) gaveBack.add(number);
      else stale.push({ number, sessionId: r.session_id });
    }
    return { stale, gaveBack };
  }

  /** Whether this person holds this proxy in an open participation: one probe of the invariant's index. */
  async holds(number: string, proxyNumber: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('participants')
      .select('id')
      .where('number_index', '=', vaultOf(this.db).index(number))
      .where('proxy_number', '=', proxyNumber)
      .where('active', '=', ACTIVE)
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * The proxies two people had in their past sessions together, newest first: from `a`'s released
   * participations (the history index), each checked for `b` in the same session.
   */
  async formerProxies(
    a: string,
    b: string,
    limit: number,
  ): Promise<{ proxyA: string; proxyIdA: string; proxyB: string; proxyIdB: string }[]> {
    const vault = vaultOf(this.db);
    return this.db
      .selectFrom('participants as pa')
      .innerJoin('participants as pb', (join) =>
        join.onRef('pb.session_id', '=', 'pa.session_id').on('pb.number_index', '=', vault.index(b)),
      )
      .select([
        'pa.proxy_number as proxyA',
        'pa.proxy_number_id as proxyIdA',
        'pb.proxy_number as proxyB',
        'pb.proxy_number_id as proxyIdB',
      ])
      .where('pa.number_index', '=', vault.index(a))
      .where('pa.released_at', 'is not', null)
      .orderBy('pa.released_at', 'desc')
      .limit(limit)
      .execute();
  }

  /** Whether an open participation on this shared number has this extension code. */
  async extensionTaken(proxyNumber: string, extension: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('participants')
      .select('id')
      .where('proxy_number', '=', proxyNumber)
      .where('extension', '=', extension)
      // The terms of the code index's predicate, so that it is the index used.
      .where('extension', '<>', DIRECT)
      .where('active', '=', ACTIVE)
      .executeTakeFirst();
    return row !== undefined;
  }

  private async withParticipants(rows: SessionRow[]): Promise<Session[]> {
    if (rows.length === 0) return [];
    const participants = await this.db
      .selectFrom('participants')
      .selectAll()
      .where(
        'session_id',
        'in',
        rows.map((r) => r.id),
      )
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map((r) =>
      toSession(
        r,
        participants
          // A session shows the participants it has (or had when it ended), not those replaced.
          .filter((p) => p.session_id === r.id && p.removed_at === null)
          .map((p) => toParticipant(p, vaultOf(this.db))),
      ),
    );
  }
}

/** The participants' values, row after row, each in the order of PARTICIPANT_COLUMNS. */
function participantValues(
  vault: NumberVault,
  tenantId: string,
  participants: readonly Participant[],
): unknown[] {
  return participants.flatMap((p) => {
    const row: ParticipantRow = {
      id: p.id,
      tenant_id: tenantId,
      session_id: p.sessionId,
      number_index: vault.index(p.number),
      number_sealed: vault.sealNumber(p.number),
      label: p.label,
      proxy_number_id: p.proxyNumberId,
      proxy_number: p.proxyNumber,
      reveal_number: p.revealNumber ? 1 : 0,
      can_initiate: p.canInitiate ? 1 : 0,
      active: 1,
      created_at: p.createdAt,
      released_at: null,
      removed_at: null,
      extension: p.extension ?? '',
      binding: p.binding,
      binding_version: 0,
      binding_attempts: 0,
      // A binding to make is due at once.
      binding_next_at: p.binding === 'binding' ? p.createdAt : null,
      binding_ref: null,
      binding_error: null,
    };
    return valuesOf(PARTICIPANT_COLUMNS, row);
  });
}

/** The session's row. */
function sessionRow(s: Session, fingerprint: string): SessionRow {
  return {
    id: s.id,
    tenant_id: s.tenantId,
    external_id: s.externalId,
    fingerprint,
    mode: s.mode,
    status: s.status,
    ttl_mode: s.ttlMode,
    ttl_seconds: s.ttlSeconds,
    expires_at: s.expiresAt,
    record: s.record ? 1 : 0,
    channels: s.channels.join(','),
    max_call_seconds: s.maxCallSeconds,
    geo_match: s.geoMatch,
    sticky: s.sticky,
    extension_fallback: s.extensionFallback ? 1 : 0,
    metadata: JSON.stringify(s.metadata),
    created_at: s.createdAt,
    updated_at: s.updatedAt,
    closed_at: s.closedAt,
    reject_message: s.rejectMessage && JSON.stringify(s.rejectMessage),
  };
}

function toSession(r: SessionRow, participants: Participant[]): Session {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    externalId: r.external_id,
    mode: r.mode as Session['mode'],
    status: r.status,
    ttlMode: r.ttl_mode as TtlMode,
    ttlSeconds: r.ttl_seconds,
    expiresAt: r.expires_at,
    record: r.record === 1,
    channels: r.channels.split(',') as Channel[],
    maxCallSeconds: r.max_call_seconds,
    geoMatch: r.geo_match as GeoMatch,
    sticky: r.sticky as Sticky,
    extensionFallback: r.extension_fallback === 1,
    metadata: JSON.parse(r.metadata),
    participants,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    closedAt: r.closed_at,
    rejectMessage: r.reject_message === null ? null : JSON.parse(r.reject_message),
  };
}

export function toParticipant(r: ParticipantRow, vault: NumberVault): Participant {
  return {
    id: r.id,
    sessionId: r.session_id,
    number: vault.openNumber(r.number_sealed),
    label: r.label,
    proxyNumberId: r.proxy_number_id,
    proxyNumber: r.proxy_number,
    revealNumber: r.reveal_number === 1,
    canInitiate: r.can_initiate === 1,
    extension: r.extension === '' ? null : r.extension,
    binding: r.binding,
    createdAt: r.created_at,
  };
}
