import type { Tenant } from '../domain/tenants.ts';
import type { Db } from './schema.ts';

/** The tenants table. */
export class TenantRepository {
  constructor(private readonly db: Db) {}

  async insert(tenant: Tenant): Promise<void> {
    await this.db
      .insertInto('tenants')
      .values({ id: tenant.id, name: tenant.name, created_at: tenant.createdAt })
      .execute();
  }

  async get(id: string): Promise<Tenant | undefined> {
    const row = await this.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
    return row && { id: row.id, name: row.name, createdAt: row.created_at };
  }

  /** The tenants after `after` in id order (the installation's own, `default`, sorts after the others). */
  async list(after: string | undefined, limit: number): Promise<Tenant[]> {
    let q = this.db.selectFrom('tenants').selectAll();
    if (after !== undefined) q = q.where('id', '>', after);
    const rows = await q.orderBy('id').limit(limit).execute();
    return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at }));
  }
}
