import type { Selectable } from 'kysely';
import type { BlocklistEntry } from '../domain/blocklist.ts';
import { statement } from './prepared.ts';
import type { Db, Schema } from './schema.ts';

type BlocklistRow = Selectable<Schema['blocklist']>;

/**
 * Whether a number is on a tenant's blocklist: one probe of the primary key. Routing asks it only
 * for a caller in no session when out-of-session calls are not simply refused; a participation's
 * lookup reads its people's blocks itself (route-lookup.ts).
 */
const isBlocked = statement<{ tenantId: string; number: string }, { number: string }>(
  ['tenantId', 'number'],
  (db, v) =>
    db
      .selectFrom('blocklist')
      .select('number')
      .where('tenant_id', '=', v.tenantId)
      .where('number', '=', v.number),
);

/** The blocklist table: numbers each tenant never connects, keyed by (tenant, number). */
export class BlocklistRepository {
  constructor(private readonly db: Db) {}

  /** Adds the entry unless the tenant has the number already: true when it was added. */
  async insert(entry: BlocklistEntry): Promise<boolean> {
    const result = await this.db
      .insertInto('blocklist')
      .values({
        tenant_id: entry.tenantId,
        number: entry.number,
        reason: entry.reason,
        created_at: entry.createdAt,
      })
      .onConflict((oc) => oc.columns(['tenant_id', 'number']).doNothing())
      .executeTakeFirst();
    return result.numInsertedOrUpdatedRows === 1n;
  }

  async get(tenantId: string, number: string): Promise<BlocklistEntry | undefined> {
    const row = await this.db
      .selectFrom('blocklist')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('number', '=', number)
      .executeTakeFirst();
    return row && toEntry(row);
  }

  async has(tenantId: string, number: string): Promise<boolean> {
    const { rows } = await isBlocked.run(this.db, [tenantId, number]);
    return rows.length > 0;
  }

  /** The tenant's entries in the order of their numbers, from the one after `after`. */
  async list(tenantId: string, after: string | undefined, limit: number): Promise<BlocklistEntry[]> {
    let q = this.db.selectFrom('blocklist').selectAll().where('tenant_id', '=', tenantId);
    if (after !== undefined) q = q.where('number', '>', after);
    const rows = await q.orderBy('number').limit(limit).execute();
    return rows.map(toEntry);
  }

  /** Removes the tenant's entry for the number: false when there was none. */
  async remove(tenantId: string, number: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('blocklist')
      .where('tenant_id', '=', tenantId)
      .where('number', '=', number)
      .executeTakeFirst();
    return result.numDeletedRows === 1n;
  }
}

function toEntry(row: BlocklistRow): BlocklistEntry {
  return { tenantId: row.tenant_id, number: row.number, reason: row.reason, createdAt: row.created_at };
}
