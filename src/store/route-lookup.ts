import { type Expression, type ExpressionBuilder, type InferResult, sql } from 'kysely';
import type { Announcement, Participation } from '../domain/routing.ts';
import type { Channel, SessionMode, TtlMode } from '../domain/session.ts';
import { Prepared } from './prepared.ts';
import { ACTIVE, type Db, DIRECT, type Schema } from './schema.ts';
import type { Store } from './store.ts';
import { type NumberVault, vaultOf } from './vault.ts';

/** The caller's participation with what routing and a sliding TTL need. */
export interface RouteParticipation extends Participation {
  ttlMode: TtlMode;
  ttlSeconds: number | null;
}

/**
 * What a route reads: the caller's participation (`p`), its session (`s`) and the other
 * participant (`o`). The one list of the lookup's columns: the SQL selects them, Kysely types the
 * row by them and the row is read back by their names.
 */
const PARTICIPATION = [
  'p.id as participantId',
  'p.session_id as sessionId',
  'p.tenant_id as tenantId',
  'p.number_sealed as numberSealed',
  'p.can_initiate as canInitiate',
  'p.reveal_number as revealNumber',
  's.mode as mode',
  's.expires_at as expiresAt',
  's.record as record',
  's.channels as channels',
  's.max_call_seconds as maxCallSeconds',
  's.ttl_mode as ttlMode',
  's.ttl_seconds as ttlSeconds',
  'o.id as otherId',
  'o.number_sealed as otherNumberSealed',
  'o.proxy_number as otherProxy',
  (eb: Lookup) => onBlocklist(eb, 'p.number_index').as('callerBlocked'),
  (eb: Lookup) => onBlocklist(eb, 'o.number_index').as('otherBlocked'),
] as const;

/** What the lookup's columns can refer to: the caller's participation, its session, the other participant. */
type Lookup = ExpressionBuilder<
  Schema & { p: Schema['participants']; s: Schema['sessions']; o: Schema['participants'] },
  'p' | 's' | 'o'
>;

/**
 * Whether a person of the call is on the blocklist of the participation's tenant: one probe of the
 * blocklist's primary key, in the lookup's own statement (no second round trip on the hot path).
 */
function onBlocklist(eb: Lookup, index: 'p.number_index' | 'o.number_index') {
  return eb.exists(
    eb
      .selectFrom('blocklist as b')
      .select('b.tenant_id')
      .whereRef('b.tenant_id', '=', 'p.tenant_id')
      .whereRef('b.number_index', '=', index),
  );
}

/**
 * The other participant (`o`) of the participation's session: one still in it. A participation a
 * rebind retired stays active while its carrier undoes its binding (store/bindings.ts), and is
 * nobody's other party.
 */
const otherParticipant = sql<boolean>`o.session_id = p.session_id and o.active = ${ACTIVE} and o.removed_at is null and o.id <> p.id`;

/** Open participations (`p`) joined to their session and the other participant. */
function participations(db: Db) {
  return db
    .selectFrom('participants as p')
    .innerJoin('sessions as s', 's.id', 'p.session_id')
    .leftJoin('participants as o', (join) => join.on(otherParticipant))
    .select(PARTICIPATION)
    .where('p.active', '=', ACTIVE)
    .where(routable);
}

/**
 * Nothing routes before its carrier confirmed it: a participation bound at a remote-binding
 * carrier (domain/binding.ts) only once `bound`; any other (no binding) as ever. One more test of
 * the row the index found.
 */
const routable = sql<boolean>`(p.binding is null or p.binding = 'bound')`;

/**
 * The open direct participation of the caller whose blind index is `from` on proxy `to` (the
 * unique index of the invariant finds it), joined to its session and the other participant: one
 * row, or none. (The benchmark's floor server runs this query too, bare.)
 */
export function participationQuery(db: Db, from: Expression<string>, to: Expression<string>) {
  return participations(db)
    .where('p.number_index', '=', from)
    .where('p.proxy_number', '=', to)
    .where('p.extension', '=', DIRECT);
}

/** A participation as the lookup reads it. */
export type ParticipationRow = InferResult<ReturnType<typeof participationQuery>>[number];

/** The participations of many (caller, proxy) pairs in one statement, each row led by its pair (PostgreSQL). */
function participationsQuery(db: Db, froms: Expression<string[]>, tos: Expression<string[]>) {
  return db
    .selectFrom(
      sql<{
        caller: string;
        proxy: string;
      }>`unnest(cast(${froms} as text[]), cast(${tos} as text[]))`.as<'q'>(sql`q(caller, proxy)`),
    )
    .innerJoin('participants as p', (join) =>
      join
        .onRef('p.number_index', '=', 'q.caller')
        .onRef('p.proxy_number', '=', 'q.proxy')
        .on('p.extension', '=', DIRECT)
        .on('p.active', '=', ACTIVE)
        .on(routable),
    )
    .innerJoin('sessions as s', 's.id', 'p.session_id')
    .leftJoin('participants as o', (join) => join.on(otherParticipant))
    .select(['q.caller', 'q.proxy', ...PARTICIPATION]);
}

/** A pool number as routing sees it. */
export interface NumberUse {
  tenantId: string;
  dedicatedTo: string | null;
  extensions: boolean;
}

/** The pool number dialled, with whether any open participation holds it by extension code. */
function numberUseQuery(db: Db, number: Expression<string>) {
  return db
    .selectFrom('numbers as n')
    .select((eb) => [
      'n.tenant_id as tenantId',
      'n.dedicated_to as dedicatedTo',
      eb
        .exists(
          eb
            .selectFrom('participants as x')
            .select('x.id')
            .whereRef('x.proxy_number', '=', 'n.number')
            .where('x.extension', '<>', DIRECT)
            .where('x.active', '=', ACTIVE),
        )
        .$castTo<number | boolean>()
        .as('extensions'),
    ])
    .where('n.number', '=', number);
}

/** A lookup waiting for the end of the event loop's turn. */
interface Waiting {
  /** The caller's number, and its blind index. */
  number: string;
  fromIndex: string;
  to: string;
  resolve: (participation: RouteParticipation | undefined) => void;
  reject: (error: unknown) => void;
}

/**
 * The one read on the routing hot path: the open participation of `from` on proxy `to`.
 *
 * The lookups asked for in one turn of the event loop (the calls that arrived together) are
 * answered together once its I/O is handled (`setImmediate`):
 * - on SQLite, one after another, each one probe of a statement prepared once. Back to back, all
 *   but the first find the CPU's caches warm, where one per request, between parsing a request
 *   and answering it, met them cold (bench/HISTORY.md);
 * - where the dialect batches lookups (PostgreSQL), in one statement and one round trip for the turn.
 *
 * A lone call waits for the end of its turn: microseconds.
 */
export class RouteLookup {
  private readonly one: Prepared<{ from: string; to: string }, ParticipationRow>;
  private readonly many:
    | Prepared<{ froms: string[]; tos: string[] }, ParticipationRow & { caller: string; proxy: string }>
    | undefined;
  private readonly number: Prepared<{ number: string }, NumberUse>;
  private readonly keyed: Prepared<{ proxy: string; extension: string }, ParticipationRow>;
  private readonly owner: Prepared<{ sessionId: string }, ParticipationRow>;
  private readonly rejecting: Prepared<{ sessionId: string }, { message: string | null }>;
  private waiting: Waiting[] = [];

  private readonly vault: NumberVault;

  constructor(private readonly store: Store) {
    const db = store.reader;
    this.vault = vaultOf(db);
    this.one = new Prepared(['from', 'to'], (v) => participationQuery(db, v.from, v.to));
    this.number = new Prepared(['number'], (v) => numberUseQuery(db, v.number));
    this.keyed = new Prepared(['proxy', 'extension'], (v) =>
      participations(db)
        .where('p.proxy_number', '=', v.proxy)
        .where('p.extension', '=', v.extension)
        // The term of the code index's predicate, so that it is the index used.
        .where('p.extension', '<>', DIRECT),
    );
    this.owner = new Prepared(['sessionId'], (v) =>
      participations(db).where('p.session_id', '=', v.sessionId).limit(sql.lit(1)),
    );
    this.rejecting = new Prepared(['sessionId'], (v) =>
      db.selectFrom('sessions').select('reject_message as message').where('id', '=', v.sessionId),
    );
    this.many = store.dialect.batchesLookups
      ? new Prepared(['froms', 'tos'], (v) => participationsQuery(db, v.froms, v.tos))
      : undefined;
  }

  /** The open direct participation of `from` on proxy `to`. */
  find(from: string, to: string): Promise<RouteParticipation | undefined> {
    const index = this.vault.index(from);
    return new Promise((resolve, reject) => {
      this.waiting.push({ number: from, fromIndex: index, to, resolve, reject });
      if (this.waiting.length === 1) setImmediate(this.answer);
    });
  }

  /**
   * What a dialled number is, for a call that found no direct participation: whose pool it is in,
   * the dedicated session that owns it, and whether it serves sessions by extension.
   */
  async numberUse(number: string): Promise<NumberUse | undefined> {
    const [row] = await this.store.readRows(this.number.bind([number]));
    return row && { ...row, extensions: Boolean(row.extensions) };
  }

  /** The open participation that holds this extension code on a shared number. */
  async byExtension(proxy: string, extension: string): Promise<RouteParticipation | undefined> {
    const [row] = await this.store.readRows(this.keyed.bind([proxy, extension]));
    return row && participationOf(row, this.vault);
  }

  /** The owner's participation in a `dedicated` session (its only one). */
  async ownerOf(sessionId: string): Promise<RouteParticipation | undefined> {
    const [row] = await this.store.readRows(this.owner.bind([sessionId]));
    return row && participationOf(row, this.vault);
  }

  /** The session's own reject message, if it has one (read only for a call refused within it). */
  async rejectMessage(sessionId: string): Promise<Announcement | undefined> {
    const [row] = await this.store.readRows(this.rejecting.bind([sessionId]));
    return row?.message ? (JSON.parse(row.message) as Announcement) : undefined;
  }

  private readonly answer = (): void => {
    const turn = this.waiting;
    this.waiting = [];
    if (this.many && turn.length > 1) void this.answerTogether(this.many, turn);
    else for (const w of turn) void this.answerOne(w);
  };

  private async answerOne(w: Waiting): Promise<void> {
    try {
      const [row] = await this.store.readRows(this.one.bind([w.fromIndex, w.to]));
      w.resolve(row && participationOf(row, this.vault, w.number));
    } catch (error) {
      w.reject(error);
    }
  }

  private async answerTogether(many: NonNullable<RouteLookup['many']>, turn: Waiting[]): Promise<void> {
    try {
      const query = many.bind([turn.map((w) => w.fromIndex), turn.map((w) => w.to)]);
      const found = new Map<string, ParticipationRow>();
      for (const row of await this.store.readRows(query)) found.set(pairKey(row.caller, row.proxy), row);
      for (const w of turn) {
        const row = found.get(pairKey(w.fromIndex, w.to));
        w.resolve(row && participationOf(row, this.vault, w.number));
      }
    } catch (error) {
      for (const w of turn) w.reject(error);
    }
  }
}

function pairKey(from: string, to: string): string {
  return `${from} ${to}`;
}

/**
 * The participation a row read by the lookup describes, its people's numbers opened. A caller
 * found by their number (`caller`) is not opened again: their sealed form is remembered instead,
 * so that a route whose people are not remembered yet opens one number, the one it connects to.
 */
export function participationOf(
  row: ParticipationRow,
  vault: NumberVault,
  caller?: string,
): RouteParticipation {
  const { otherId, otherNumberSealed, otherProxy } = row;
  return {
    participantId: row.participantId,
    sessionId: row.sessionId,
    tenantId: row.tenantId,
    mode: row.mode as SessionMode,
    number:
      caller === undefined ? vault.openNumber(row.numberSealed) : vault.knownAs(caller, row.numberSealed),
    // An exists is a boolean on PostgreSQL, 0 or 1 on SQLite.
    callerBlocked: Boolean(row.callerBlocked),
    canInitiate: row.canInitiate === 1,
    revealNumber: row.revealNumber === 1,
    expiresAt: row.expiresAt,
    record: row.record === 1,
    channels: row.channels.split(',') as Channel[],
    maxCallSeconds: row.maxCallSeconds,
    ttlMode: row.ttlMode as TtlMode,
    ttlSeconds: row.ttlSeconds,
    other:
      otherId && otherProxy
        ? { participantId: otherId, number: vault.openNumber(otherNumberSealed), proxyNumber: otherProxy }
        : null,
    otherBlocked: Boolean(row.otherBlocked),
  };
}
