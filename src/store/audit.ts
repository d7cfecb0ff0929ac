import type { Selectable } from 'kysely';
import type { AuditAction, AuditEntry } from '../domain/audit.ts';
import { newId } from '../domain/ids.ts';
import type { Db, Schema } from './schema.ts';

type AuditRow = Selectable<Schema['audit']>;

/** What an action tells the audit log; the id and time are the log's. */
export type AuditRecord = Omit<AuditEntry, 'id' | 'createdAt'>;

/** Writes an audit entry, within the transaction of the change it records when given one. */
export async function recordAudit(db: Db, record: AuditRecord, now: number): Promise<void> {
  await db
    .insertInto('audit')
    .values({
      id: newId('aud', now),
      tenant_id: record.tenantId,
      key_id: record.keyId,
      action: record.action,
      target_id: record.targetId,
      detail: record.detail === null ? null : JSON.stringify(record.detail),
      created_at: now,
    })
    .execute();
}

/** A tenant's entries, oldest first, from the one after `after`. */
export async function listAudit(
  db: Db,
  tenantId: string,
  query: { action?: AuditAction; after?: string; limit: number },
): Promise<AuditEntry[]> {
  let q = db.selectFrom('audit').selectAll().where('tenant_id', '=', tenantId);
  if (query.action !== undefined) q = q.where('action', '=', query.action);
  if (query.after !== undefined) q = q.where('id', '>', query.after);
  const rows = await q.orderBy('id').limit(query.limit).execute();
  return rows.map(toEntry);
}

function toEntry(r: AuditRow): AuditEntry {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    keyId: r.key_id,
    action: r.action as AuditAction,
    targetId: r.target_id,
    detail: r.detail === null ? null : JSON.parse(r.detail),
    createdAt: r.created_at,
  };
}
