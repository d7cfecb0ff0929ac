import type { ActingKey } from '../domain/audit.ts';
import { newId } from '../domain/ids.ts';
import { type Page, pageOf } from '../domain/page.ts';
import { DEFAULT_TENANT, type Tenant } from '../domain/tenants.ts';
import { recordAudit } from '../store/audit.ts';
import type { Store } from '../store/store.ts';
import { TenantRepository } from '../store/tenants.ts';
import { inTransaction } from '../store/transactions.ts';

/** The installation's tenants: made by its admin, each then given keys of its own (POST /v1/keys). */
export class TenantService {
  constructor(
    private readonly store: Store,
    private readonly clock: () => number = Date.now,
  ) {}

  /** A new tenant with nothing yet: no key, no number. Its creation is audited as the installation's. */
  async create(name: string, by: ActingKey = null): Promise<Tenant> {
    const now = this.clock();
    const tenant: Tenant = { id: newId('ten', now), name, createdAt: now };
    await inTransaction(this.store, async (trx) => {
      await new TenantRepository(trx).insert(tenant);
      await recordAudit(
        trx,
        {
          tenantId: DEFAULT_TENANT,
          keyId: by,
          action: 'tenant.created',
          targetId: tenant.id,
          detail: { name },
        },
        now,
      );
    });
    return tenant;
  }

  /** The tenants in id order (so by creation; the installation's own, `default`, last), `limit` at a time. */
  async list(query: { cursor?: string; limit: number }): Promise<Page<Tenant>> {
    const rows = await new TenantRepository(this.store.db).list(query.cursor, query.limit + 1);
    return pageOf(rows, query.limit);
  }

  get(id: string): Promise<Tenant | undefined> {
    return new TenantRepository(this.store.db).get(id);
  }
}
