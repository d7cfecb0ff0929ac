import type { Selectable } from 'kysely';
import type { ApiKey, Scope } from '../domain/keys.ts';
import type { Db, Schema } from './schema.ts';

type KeyRow = Selectable<Schema['api_keys']>;

/** API keys, stored as hashes only. */
export class KeyRepository {
  constructor(private readonly db: Db) {}

  async insert(key: ApiKey, hash: string): Promise<void> {
    await this.db
      .insertInto('api_keys')
      .values({
        id: key.id,
        tenant_id: key.tenantId,
        name: key.name,
        key_hash: hash,
        scopes: key.scopes.join(','),
        created_at: key.createdAt,
        revoked_at: key.revokedAt,
      })
      .onConflict((oc) => oc.column('key_hash').doNothing())
      .execute();
  }

  async findByHash(hash: string): Promise<ApiKey | undefined> {
    const row = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .where('key_hash', '=', hash)
      .executeTakeFirst();
    return row && toKey(row);
  }

  /** Whether any key, of any tenant, is not revoked: whether anyone can use the API at all. */
  async anyUnrevoked(): Promise<boolean> {
    const row = await this.db
      .selectFrom('api_keys')
      .select('id')
      .where('revoked_at', 'is', null)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  async list(tenantId: string): Promise<ApiKey[]> {
    const rows = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .orderBy('created_at')
      .execute();
    return rows.map(toKey);
  }

  /** The key `id`, of `tenantId` (of any tenant when null). */
  async get(tenantId: string | null, id: string): Promise<ApiKey | undefined> {
    let q = this.db.selectFrom('api_keys').selectAll().where('id', '=', id);
    if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
    const row = await q.executeTakeFirst();
    return row && toKey(row);
  }

  async revoke(id: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('api_keys')
      .set({ revoked_at: now })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows === 1n;
  }

  /** Gives an unrevoked key a new secret (its hash): the old one opens nothing from then on. */
  async rehash(id: string, hash: string): Promise<boolean> {
    const r = await this.db
      .updateTable('api_keys')
      .set({ key_hash: hash })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows === 1n;
  }

  /** Revokes every live key of that name (the development key is replaced at each start). */
  async revokeByName(name: string, now: number): Promise<void> {
    await this.db
      .updateTable('api_keys')
      .set({ revoked_at: now })
      .where('name', '=', name)
      .where('revoked_at', 'is', null)
      .execute();
  }
}

function toKey(r: KeyRow): ApiKey {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    scopes: r.scopes.split(',') as Scope[],
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}
