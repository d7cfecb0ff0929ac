import { type ExpressionBuilder, type QueryResult, type Selectable, sql } from 'kysely';
import type { ProxySearch } from '../domain/allocation.ts';
import type { NumberStatus, PoolNumber } from '../domain/pool.ts';
import type { Channel } from '../domain/session.ts';
import { dialectOf } from './dialect.ts';
import { byShape, columnList, slot, statement } from './prepared.ts';
import type { Db } from './schema.ts';
import { ACTIVE, DIRECT, type Schema } from './schema.ts';
import { type NumberVault, vaultOf } from './vault.ts';

type NumberRow = Selectable<Schema['numbers']>;

/** The numbers table's columns, in the migration's order. */
export const NUMBER_COLUMNS = columnList<NumberRow>()([
  'id',
  'tenant_id',
  'number',
  'provider',
  'country',
  'region',
  'voice',
  'sms',
  'status',
  'tags',
  'max_sessions',
  'load',
  'created_at',
  'updated_at',
  'dedicated_to',
]);

export interface NumberFilter {
  tenantId: string;
  status?: NumberStatus;
  provider?: string;
  country?: string;
  after?: string;
  limit: number;
}

/** The pool table: numbers, their load, and the guarded updates allocation relies on. */
export class NumberRepository {
  constructor(private readonly db: Db) {}

  async insert(n: PoolNumber): Promise<void> {
    await this.db.insertInto('numbers').values(toRow(n)).execute();
  }

  /** Puts a retired number back in the pool with new attributes (same id, load 0). */
  async reactivate(n: PoolNumber): Promise<void> {
    const { id, created_at: _created, dedicated_to: _dedicated, ...row } = toRow(n);
    await this.db.updateTable('numbers').set(row).where('id', '=', id).execute();
  }

  async get(tenantId: string, id: string): Promise<PoolNumber | undefined> {
    const row = await this.db
      .selectFrom('numbers')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && toNumber(row);
  }

  /** The tenant whose pool holds this number, if any: whose log a refused call belongs to. */
  async tenantOf(number: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('numbers')
      .select('tenant_id')
      .where('number', '=', number)
      .executeTakeFirst();
    return row?.tenant_id;
  }

  async findByNumber(number: string): Promise<PoolNumber | undefined> {
    const row = await this.db
      .selectFrom('numbers')
      .selectAll()
      .where('number', '=', number)
      .executeTakeFirst();
    return row && toNumber(row);
  }

  /** Which of `numbers` are in the pool and not retired. */
  async present(numbers: readonly string[]): Promise<string[]> {
    if (numbers.length === 0) return [];
    const rows = await this.db
      .selectFrom('numbers')
      .select('number')
      .where('number', 'in', numbers)
      .where('status', '<>', 'retired')
      .execute();
    return rows.map((r) => r.number);
  }

  async list(filter: NumberFilter): Promise<PoolNumber[]> {
    let q = this.db.selectFrom('numbers').selectAll().where('tenant_id', '=', filter.tenantId);
    if (filter.status) q = q.where('status', '=', filter.status);
    if (filter.provider) q = q.where('provider', '=', filter.provider);
    if (filter.country) q = q.where('country', '=', filter.country);
    if (filter.after) q = q.where('id', '>', filter.after);
    const rows = await q.orderBy('id').limit(filter.limit).execute();
    return rows.map(toNumber);
  }

  async update(n: PoolNumber): Promise<void> {
    // Load and ownership change only with the sessions that hold the number.
    const { id, created_at: _created, load: _load, dedicated_to: _dedicated, ...row } = toRow(n);
    await this.db.updateTable('numbers').set(row).where('id', '=', id).execute();
  }

  /**
   * Takes the active number that answers the search and comes first by its preference: counts one
   * more open session on it (a dedicated session becomes its owner) and returns it, or undefined
   * when none fits. Search and take are one statement, so nothing can fill the number up in
   * between (PostgreSQL locks the row it picks; SQLite runs one write transaction at a time). Where
   * the database locks rows the search first passes over numbers other transactions are taking
   * right now, so that concurrent allocations spread instead of queueing on one row; only a search
   * that then waits for them may conclude nothing fits.
   *
   * `session`: the session taking it, and the numbers it already holds. One of those may be picked
   * again (two participants of a session can share a proxy), but a session counts once in a
   * number's load.
   */
  async takeProxy(
    search: ProxySearch,
    session: { id: string; held: ReadonlySet<string> },
    now: number,
  ): Promise<TakenProxy | undefined> {
    const run = (lock: Lock) =>
      proxyQuery({ search, held: session.held.size, lock }).execute(this.db, search, session, now);
    if (!dialectOf(this.db).locksRows || search.number !== undefined) return first(await run(''));
    return first(await run('skip locked')) ?? first(await run('wait'));
  }

  /**
   * How many numbers of a scope (a country, or one of its regions) can take another ordinary
   * session: active, of one of `providers`, owned by no dedicated session and under their caps.
   */
  async free(
    tenantId: string,
    scope: { country: string; region?: string },
    providers: readonly string[],
  ): Promise<number> {
    if (providers.length === 0) return 0;
    let q = this.db
      .selectFrom('numbers')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('tenant_id', '=', tenantId)
      .where('status', '=', 'active')
      .where('country', '=', scope.country)
      .where('provider', 'in', providers)
      .where(fits('direct'));
    if (scope.region !== undefined) q = q.where('region', '=', scope.region);
    return Number((await q.executeTakeFirstOrThrow()).n);
  }

  /**
   * The tenant's pool by carrier, country and region: numbers active and draining, and of the
   * active ones those in use (held by an open session) and those free (as `free` counts them). One pass over the tenant's pool, which is small
   * beside its sessions.
   */
  async census(tenantId: string): Promise<PoolCensus[]> {
    const rows = await this.db
      .selectFrom('numbers')
      .select((eb) => [
        'provider',
        'country',
        'region',
        eb.fn
          .sum<number | string>(eb.case().when('status', '=', 'active').then(1).else(0).end())
          .as('active'),
        eb.fn
          .sum<number | string>(eb.case().when('status', '=', 'draining').then(1).else(0).end())
          .as('draining'),
        eb.fn
          .sum<number | string>(
            eb
              .case()
              .when(eb.and([eb('status', '=', 'active'), eb('load', '>', 0)]))
              .then(1)
              .else(0)
              .end(),
          )
          .as('in_use'),
        eb.fn
          .sum<number | string>(
            eb
              .case()
              .when(eb.and([eb('status', '=', 'active'), fits('direct')(eb)]))
              .then(1)
              .else(0)
              .end(),
          )
          .as('free'),
      ])
      .where('tenant_id', '=', tenantId)
      .where('status', '<>', 'retired')
      .groupBy(['provider', 'country', 'region'])
      .execute();
    return rows.map((r) => ({
      provider: r.provider,
      country: r.country,
      region: r.region,
      active: Number(r.active),
      draining: Number(r.draining),
      inUse: Number(r.in_use),
      free: Number(r.free),
    }));
  }

  /** Counts one open session fewer on each number; a draining number nobody holds any more retires. */
  async release(ids: Iterable<string>, now: number): Promise<void> {
    const list = [...ids].sort(); // one lock order for every transaction, so that releases never deadlock
    if (list.length === 0) return;
    await this.db
      .updateTable('numbers')
      // Only its own session holds a dedicated number: once it lets go, nobody owns the number.
      .set((eb) => ({ load: eb('load', '-', 1), dedicated_to: null, updated_at: now }))
      .where('id', 'in', list)
      .execute();
    await this.db
      .updateTable('numbers')
      .set({ status: 'retired', updated_at: now })
      .where('id', 'in', list)
      .where('status', '=', 'draining')
      .where('load', '=', 0)
      .execute();
  }
}

/** One carrier's numbers in one country and region, by what they can do now. */
export interface PoolCensus {
  provider: string;
  country: string;
  region: string;
  active: number;
  draining: number;
  /** Active numbers that at least one open session holds. */
  inUse: number;
  /** Active numbers that can take another ordinary session. */
  free: number;
}

/** A number taken as a proxy: which one, and whose. */
export interface TakenProxy {
  id: string;
  number: string;
  provider: string;
}

const underCap = (eb: ExpressionBuilder<Schema, 'numbers'>) =>
  eb.or([eb('max_sessions', 'is', null), eb('load', '<', eb.ref('max_sessions'))]);

type Lock = '' | 'skip locked' | 'wait';

/**
 * The statement that takes a proxy: its text depends on the search's shape (its use, region or
 * not, one number or the best, the channels, how many people, cooldown or not, how many to avoid,
 * the preference), on how many numbers the session holds and on the lock, so each shape is
 * prepared once and the values change from run to run.
 */
const proxyQuery = byShape(
  ({ search, held, lock }: { search: ProxySearch; held: number; lock: Lock }) =>
    [
      search.use,
      search.carriers.length,
      search.region !== undefined,
      search.number !== undefined,
      search.channels.join('+'),
      search.people.length,
      search.releasedSince !== undefined,
      search.avoid?.length ?? 0,
      search.preference,
      held,
      lock,
    ].join('|'),
  ({ search, held, lock }) => proxyStatement(search, held, lock),
);

/** The values of a proxy search: the search's, the people's numbers, the numbers the session holds. */
type ProxyValues = {
  tenantId: string;
  country: string;
  region: string;
  number: string;
  releasedSince: number;
  sessionId: string;
  now: number;
} & Record<`carrier${number}` | `person${number}` | `held${number}` | `avoid${number}`, string>;

/**
 * `update numbers … where id = (the search) returning id, number`: the search picks one number
 * and the update counts the session on it, in one statement and one round trip.
 */
function proxyStatement(shape: ProxySearch, heldCount: number, lock: Lock) {
  const carriers = shape.carriers.map((_, i) => `carrier${i}` as const);
  const people = shape.people.map((_, i) => `person${i}` as const);
  const sessionHolds = Array.from({ length: heldCount }, (_, i) => `held${i}` as const);
  const avoided = Array.from({ length: shape.avoid?.length ?? 0 }, (_, i) => `avoid${i}` as const);
  const region = shape.region !== undefined;
  const one = shape.number !== undefined;
  const cooling = shape.releasedSince !== undefined;
  const dedicated = shape.use === 'dedicated';
  const names: (keyof ProxyValues & string)[] = [
    'tenantId',
    'country',
    ...carriers,
    ...(region ? ['region' as const] : []),
    ...(one ? ['number' as const] : []),
    ...people,
  ];
  if (cooling) names.push('releasedSince');
  names.push(...avoided, ...sessionHolds, 'now');
  if (dedicated) names.push('sessionId');
  // The values in the order of the names.
  const inOrder = (
    vault: NumberVault,
    v: ProxySearch,
    session: { id: string; held: ReadonlySet<string> },
    now: number,
  ): unknown[] => {
    const list: unknown[] = [v.tenantId, v.country, ...v.carriers];
    if (region) list.push(v.region);
    if (one) list.push(v.number);
    // The people by their blind indexes, as the participants table knows them.
    for (const person of v.people) list.push(vault.index(person));
    if (cooling) list.push(v.releasedSince);
    list.push(...(v.avoid ?? []), ...session.held, now);
    if (dedicated) list.push(session.id);
    return list;
  };
  const prepared = statement<ProxyValues, TakenProxy>(names, (db, v) => {
    const who = people.map((name) => slot<string>(v, name));
    let search = db
      .selectFrom('numbers')
      .select('id')
      .where('tenant_id', '=', v.tenantId)
      .where('country', '=', v.country)
      .where('status', '=', 'active')
      .where(
        'provider',
        'in',
        carriers.map((name) => slot<string>(v, name)),
      )
      .where(fits(shape.use));
    if (region) search = search.where('region', '=', v.region);
    if (one) search = search.where('number', '=', v.number);
    for (const channel of shape.channels) search = search.where(channel, '=', 1);
    // What the people hold is checked number by number, in the search's order, by a probe of the
    // invariant's unique index: the search stops at the first number that fits, however many
    // sessions a courier holds. A direct proxy must be one they hold in no way; a number they
    // reach by extension must be one they do not hold directly (their call to it would connect
    // without asking for a code).
    search = search.where(({ not, exists, selectFrom }) => {
      let held = selectFrom('participants as held')
        .select('held.id')
        .where('held.number_index', 'in', who)
        .whereRef('held.proxy_number', '=', 'numbers.number')
        .where('held.active', '=', ACTIVE);
      if (shape.use === 'extension') held = held.where('held.extension', '=', DIRECT);
      return not(exists(held));
    });
    if (cooling) {
      // Number by number too, a probe of the release index per person.
      search = search.where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('participants as released')
              .select('released.id')
              .where('released.number_index', 'in', who)
              .whereRef('released.proxy_number_id', '=', 'numbers.id')
              .where('released.released_at', '>', v.releasedSince),
          ),
        ),
      );
    }
    if (avoided.length > 0) {
      search = search.where(
        'id',
        'not in',
        avoided.map((name) => slot<string>(v, name)),
      );
    }
    if (!one) {
      // Ties go to the oldest number when spreading and the newest when packing: either way the
      // order is the index's own (load, id), read forwards or backwards.
      if (shape.preference === 'least-loaded') search = search.orderBy('load', 'asc').orderBy('id', 'asc');
      if (shape.preference === 'most-loaded') search = search.orderBy('load', 'desc').orderBy('id', 'desc');
      if (shape.preference === 'first-fit') search = search.orderBy('id');
    }
    // A literal, not a parameter. Told only `limit ?`, SQLite plans the search for many rows (several
    // times slower in a busy courier's area, bench/HISTORY.md), and PostgreSQL costs a generic plan of
    // `limit $n` as ten rows, so it would plan the search again on every run rather than reuse `limit 1`'s.
    search = search.limit(sql.lit(1));
    if (lock === 'skip locked') search = search.forUpdate().skipLocked();
    if (lock === 'wait') search = search.forUpdate();
    return (
      db
        .updateTable('numbers')
        .set((eb) => ({
          load:
            sessionHolds.length === 0
              ? eb('load', '+', 1)
              : eb(
                  'load',
                  '+',
                  eb
                    .case()
                    .when(
                      'id',
                      'in',
                      sessionHolds.map((name) => slot<string>(v, name)),
                    )
                    .then(0)
                    .else(1)
                    .end(),
                ),
          ...(dedicated ? { dedicated_to: v.sessionId } : {}),
          updated_at: v.now,
        }))
        .where('id', '=', search)
        // The search already asks this; said again on the row written, the use's limits hold by
        // this update alone.
        .where('status', '=', 'active')
        .where(fits(shape.use))
        .returning(['id', 'number', 'provider'])
    );
  });
  return {
    execute: (db: Db, search: ProxySearch, session: { id: string; held: ReadonlySet<string> }, now: number) =>
      prepared.run(db, inOrder(vaultOf(db), search, session, now)),
  };
}

/**
 * Whether a number can be taken for a use: a direct proxy needs room under the cap, a dedicated
 * one no session at all; a number serving by extension takes any load (its sessions are told apart
 * by their codes, which is the point when no number has room). None lands on a dedicated number.
 */
function fits(use: ProxySearch['use']) {
  return (eb: ExpressionBuilder<Schema, 'numbers'>) => {
    if (use === 'dedicated') return eb('load', '=', 0);
    const unowned = eb('dedicated_to', 'is', null);
    return use === 'extension' ? unowned : eb.and([unowned, underCap(eb)]);
  };
}

function first<Row>(result: QueryResult<Row>): Row | undefined {
  return result.rows[0];
}

function toRow(n: PoolNumber): NumberRow {
  return {
    id: n.id,
    tenant_id: n.tenantId,
    number: n.number,
    provider: n.provider,
    country: n.country,
    region: n.region,
    voice: n.capabilities.includes('voice') ? 1 : 0,
    sms: n.capabilities.includes('sms') ? 1 : 0,
    status: n.status,
    tags: JSON.stringify(n.tags),
    max_sessions: n.maxSessions,
    load: n.load,
    created_at: n.createdAt,
    updated_at: n.updatedAt,
    dedicated_to: n.dedicatedTo,
  };
}

function toNumber(row: NumberRow): PoolNumber {
  const capabilities: Channel[] = [];
  if (row.voice) capabilities.push('voice');
  if (row.sms) capabilities.push('sms');
  return {
    id: row.id,
    tenantId: row.tenant_id,
    number: row.number,
    provider: row.provider,
    country: row.country,
    region: row.region,
    capabilities,
    status: row.status,
    tags: JSON.parse(row.tags),
    maxSessions: row.max_sessions,
    load: row.load,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    dedicatedTo: row.dedicated_to,
  };
}
