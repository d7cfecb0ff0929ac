import type { AuditAction, AuditEntry } from '../domain/audit.ts';
import { type Page, pageOf } from '../domain/page.ts';
import { listAudit } from '../store/audit.ts';
import type { Store } from '../store/store.ts';

/** Reads the audit log; the entries are written by the services, each with its change. */
export class AuditService {
  constructor(private readonly store: Store) {}

  /** A tenant's entries, oldest first, after the entry `cursor`, `limit` at a time. */
  async list(
    tenantId: string,
    query: { action?: AuditAction; cursor?: string; limit: number },
  ): Promise<Page<AuditEntry>> {
    const rows = await listAudit(this.store.db, tenantId, {
      action: query.action,
      after: query.cursor,
      limit: query.limit + 1,
    });
    return pageOf(rows, query.limit);
  }
}
