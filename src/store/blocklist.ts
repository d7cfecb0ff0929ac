import type { Selectable } from 'kysely';
import type { BlocklistEntry } from '../domain/blocklist.ts';
import { statement } from './prepared.ts';
import type { Db, Schema } from './schema.ts';
import { vaultOf } from './vault.ts';

type BlocklistRow = Selectable<Schema['blocklist']>;

/**
 * Whether a number is on a tenant's blocklist: one probe of the primary key. Routing asks it only
 * for a caller in no session when out-of-session calls are not simply refused; a participation's
 * lookup reads its people's blocks itself (route-lookup.ts).
 */
const isBlocked = statement<{ tenantId: string; index: string }, { tenant_id: string }>(
  ['tenantId', 'index'],
  (db, v) =>
    db
      .selectFrom('blocklist')
      .select('tenant_id')
      .where('tenant_id', '=', v.tenantId)
      .where('number_index', '=', v.index),
);

/** An entry as a page of the list shows it, with where the next page starts. */
export type ListedEntry = BlocklistEntry & { cursor: string };

/**
 * The blocklist table: numbers each tenant never connects, keyed by (tenant, the number's blind
 * index), each kept sealed beside its index (store/vault.ts).
 */
export class BlocklistRepository {
  constructor(private readonly db: Db) {}

  /** Adds the entry unless the tenant has the number already: true when it was added. */
  async insert(entry: BlocklistEntry): Promise<boolean> {
    const vault = vaultOf(this.db);
    const result = await this.db
      .insertInto('blocklist')
      .values({
        tenant_id: entry.tenantId,
        number_index: vault.index(entry.number),
        number_sealed: vault.sealNumber(entry.number),
        reason: entry.reason,
        created_at: entry.createdAt,
      })
      .onConflict((oc) => oc.columns(['tenant_id', 'number_index']).doNothing())
      .executeTakeFirst();
    return result.numInsertedOrUpdatedRows === 1n;
  }

  async get(tenantId: string, number: string): Promise<BlocklistEntry | undefined> {
    const row = await this.db
      .selectFrom('blocklist')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('number_index', '=', vaultOf(this.db).index(number))
      .executeTakeFirst();
    return row && this.toEntry(row);
  }

  async has(tenantId: string, number: string): Promise<boolean> {
    const { rows } = await isBlocked.run(this.db, [tenantId, vaultOf(this.db).index(number)]);
    return rows.length > 0;
  }

  /**
   * The tenant's entries in the order of their blind indexes (an order that tells nothing of the
   * numbers), from the one after the cursor `after`.
   */
  async list(tenantId: string, after: string | undefined, limit: number): Promise<ListedEntry[]> {
    let q = this.db.selectFrom('blocklist').selectAll().where('tenant_id', '=', tenantId);
    if (after !== undefined) q = q.where('number_index', '>', after);
    const rows = await q.orderBy('number_index').limit(limit).execute();
    return rows.map((row) => ({ ...this.toEntry(row), cursor: row.number_index }));
  }

  /** Removes the tenant's entry for the number: false when there was none. */
  async remove(tenantId: string, number: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('blocklist')
      .where('tenant_id', '=', tenantId)
      .where('number_index', '=', vaultOf(this.db).index(number))
      .executeTakeFirst();
    return result.numDeletedRows === 1n;
  }

  private toEntry(row: BlocklistRow): BlocklistEntry {
    return {
      tenantId: row.tenant_id,
      number: vaultOf(this.db).openNumber(row.number_sealed),
      reason: row.reason,
      createdAt: row.created_at,
    };
  }
}
