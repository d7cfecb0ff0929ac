import type { Selectable } from 'kysely';
import type { ProxySearch } from '../domain/allocation.ts';
import type { NumberStatus, PoolNumber } from '../domain/pool.ts';
import type { Channel } from '../domain/session.ts';
import { type Db, locksRows } from './db.ts';
import { ACTIVE, type Schema } from './schema.ts';

type NumberRow = Selectable<Schema['numbers']>;

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
    const { id, created_at: _created, ...row } = toRow(n);
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
    const { id, created_at: _created, load: _load, ...row } = toRow(n);
    await this.db.updateTable('numbers').set(row).where('id', '=', id).execute();
  }

  /**
   * The active number that answers the search and comes first by its preference, or undefined,
   * locked for this transaction where the database locks rows. There the search first passes over
   * numbers other transactions are taking right now, so that concurrent allocations spread instead
   * of queueing on one row; only a search that then waits for them may conclude nothing fits.
   * (SQLite runs one write transaction at a time: a single search is the whole answer.)
   */
  async findProxy(
    search: ProxySearch,
    skip: readonly string[] = [],
  ): Promise<{ id: string; number: string } | undefined> {
    const q = this.proxyQuery(search, skip);
    if (!locksRows(this.db)) return q.executeTakeFirst();
    return (await q.forUpdate().skipLocked().executeTakeFirst()) ?? (await q.forUpdate().executeTakeFirst());
  }

  /** `skip`: numbers found full a moment ago by this same allocation. */
  private proxyQuery(search: ProxySearch, skip: readonly string[]) {
    let q = this.db
      .selectFrom('numbers')
      .select(['id', 'number'])
      .where('tenant_id', '=', search.tenantId)
      .where('country', '=', search.country)
      .where('status', '=', 'active')
      .where((eb) => eb.or([eb('max_sessions', 'is', null), eb('load', '<', eb.ref('max_sessions'))]));
    if (search.region !== undefined) q = q.where('region', '=', search.region);
    for (const channel of search.channels) q = q.where(channel, '=', 1);
    // What the people hold is checked number by number, in the search's order, by a probe of the
    // invariant's unique index: the search stops at the first number that fits, however many
    // sessions a courier holds, and the statement's text never changes with them.
    q = q.where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('participants as held')
            .select('held.id')
            .where('held.number', 'in', search.people)
            .whereRef('held.proxy_number', '=', 'numbers.number')
            .where('held.active', '=', ACTIVE),
        ),
      ),
    );
    if (search.releasedSince !== undefined) {
      const since = search.releasedSince;
      q = q.where('id', 'not in', (eb) =>
        eb
          .selectFrom('participants')
          .select('proxy_number_id')
          .where('number', 'in', search.people)
          .where('released_at', '>', since),
      );
    }
    if (skip.length > 0) q = q.where('id', 'not in', skip);
    // Ties go to the oldest number when spreading and the newest when packing: either way the
    // order is the index's own (load, id), read forwards or backwards.
    if (search.preference === 'least-loaded') q = q.orderBy('load', 'asc').orderBy('id', 'asc');
    if (search.preference === 'most-loaded') q = q.orderBy('load', 'desc').orderBy('id', 'desc');
    if (search.preference === 'first-fit') q = q.orderBy('id');
    return q.limit(1);
  }

  /**
   * Counts one more open session on the number, if it is still active and under its cap. False when
   * a concurrent allocation took the last place (or an operator drained it) since it was chosen.
   */
  async take(id: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('numbers')
      .set((eb) => ({ load: eb('load', '+', 1), updated_at: now }))
      .where('id', '=', id)
      .where('status', '=', 'active')
      .where((eb) => eb.or([eb('max_sessions', 'is', null), eb('load', '<', eb.ref('max_sessions'))]))
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  /** Counts one open session fewer on each number; a draining number nobody holds any more retires. */
  async release(ids: Iterable<string>, now: number): Promise<void> {
    const list = [...ids].sort(); // one lock order for every transaction, so that releases never deadlock
    if (list.length === 0) return;
    await this.db
      .updateTable('numbers')
      .set((eb) => ({ load: eb('load', '-', 1), updated_at: now }))
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
  };
}
