import { LRUCache } from 'lru-cache';
import type { ActingKey } from '../domain/audit.ts';
import { NotFoundError } from '../domain/errors.ts';
import { generateSecret, newId } from '../domain/ids.ts';
import { type ApiKey, hashKey, type Scope } from '../domain/keys.ts';
import { DEFAULT_TENANT } from '../domain/tenants.ts';
import { recordAudit } from '../store/audit.ts';
import { announceRevocation } from '../store/key-revocations.ts';
import { KeyRepository } from '../store/keys.ts';
import type { Db } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { TenantRepository } from '../store/tenants.ts';
import { inTransaction } from '../store/transactions.ts';

export const DEVELOPMENT_KEY_NAME = 'development';
const BOOTSTRAP_KEY_NAME = 'bootstrap';
/**
 * How long a verified (or refused) key is remembered at most. A revocation or rotation anywhere
 * empties every instance's cache at once (the store's RevocationWatch); this only bounds how long
 * a key unused since stays in memory.
 */
export const KEY_CACHE_TTL_MS = 60_000;
/** Most secrets remembered; the least recently used goes first, so a flood of bad keys cannot flush a busy good one. */
const KEY_CACHE_MAX = 10_000;
/** Longest a revocation waits to hear its own announcement back (PostgreSQL's NOTIFY) before answering. */
const ANNOUNCEMENT_WAIT_MS = 1_000;

/**
 * Which keys a request may manage: those of one tenant, or (the installation's admin) of any.
 * Another tenant's key is not found, as if it did not exist.
 */
export type KeyOwner = { tenantId: string } | 'any';

/**
 * API keys: created with a random secret shown once, stored as a hash, verified on every request
 * from a cache so that authentication costs no query on the routing path. Revoking or rotating a
 * key announces it (store/key-revocations.ts); every instance drops its cache on the next request
 * that sees the announcement.
 */
export class KeyService {
  /** By secret: the key it opens, or none (unknown or revoked). */
  private readonly cache: LRUCache<string, { key: ApiKey | undefined }>;
  /** The revocation version the cache was filled under. */
  private seen: string | undefined;
  /** Revocations here so far: a read that a revocation overtook must not refill the cache with the key. */
  private revocations = 0;

  constructor(
    private readonly store: Store,
    private readonly clock: () => number = Date.now,
  ) {
    this.cache = new LRUCache({
      max: KEY_CACHE_MAX,
      ttl: KEY_CACHE_TTL_MS,
      updateAgeOnGet: false,
      // Read the clock at every look-up rather than lru-cache's reading kept until the next timer
      // tick: requests answered from the cache alone never reach a tick.
      ttlResolution: 0,
      perf: { now: clock },
    });
  }

  /** The unrevoked key this secret opens, or undefined; from cache unless a revocation was announced since. */
  async authenticate(secret: string): Promise<ApiKey | undefined> {
    const version = await this.store.revocations.version();
    if (version !== this.seen) {
      this.cache.clear();
      this.seen = version;
    }
    // Not listening for revocations (PostgreSQL's listener down): every request asks the database.
    const caching = version !== undefined;
    const hit = caching ? this.cache.get(secret) : undefined;
    if (hit) return hit.key;
    const revocations = this.revocations;
    const found = await new KeyRepository(this.store.reader).findByHash(hashKey(secret));
    const key = found && found.revokedAt === null ? found : undefined;
    // Another request may have seen a newer version meanwhile: then this read may be older than it.
    if (caching && revocations === this.revocations && this.seen === version) this.cache.set(secret, { key });
    return key;
  }

  /** A new key of the tenant; its secret is in the answer, and never shown again. */
  async create(
    tenantId: string,
    name: string,
    scopes: Scope[],
    by: ActingKey = null,
  ): Promise<{ key: ApiKey; secret: string }> {
    const secret = generateSecret('veil_');
    const key = await inTransaction(this.store, async (trx) => {
      if (!(await new TenantRepository(trx).get(tenantId))) throw new NotFoundError('tenant', tenantId);
      const key = await this.insert(trx, tenantId, name, scopes, secret);
      await recordAudit(
        trx,
        { tenantId, keyId: by, action: 'key.created', targetId: key.id, detail: { name, scopes } },
        key.createdAt,
      );
      return key;
    });
    return { key, secret };
  }

  /** Makes sure the operator's VEIL_API_KEY exists as an admin key of the default tenant. */
  async ensureBootstrap(secret: string): Promise<void> {
    await this.insert(this.store.db, DEFAULT_TENANT, BOOTSTRAP_KEY_NAME, ['admin'], secret);
  }

  /** A fresh admin key for development; the previous one stops working. */
  async rotateDevelopmentKey(): Promise<string> {
    await inTransaction(this.store, async (trx) => {
      await new KeyRepository(trx).revokeByName(DEVELOPMENT_KEY_NAME, this.clock());
      await announceRevocation(trx);
    });
    this.cache.clear();
    return (await this.create(DEFAULT_TENANT, DEVELOPMENT_KEY_NAME, ['admin'])).secret;
  }

  /** Whether some stored key still opens the API (production refuses to start without one). */
  hasUsableKey(): Promise<boolean> {
    return new KeyRepository(this.store.db).anyUnrevoked();
  }

  list(tenantId: string): Promise<ApiKey[]> {
    return new KeyRepository(this.store.db).list(tenantId);
  }

  /** Revokes a key; it answers 401 from the next request on, on every instance. */
  async revoke(owner: KeyOwner, id: string, by: ActingKey = null): Promise<ApiKey> {
    const now = this.clock();
    let token = '';
    const key = await inTransaction(this.store, async (trx) => {
      const repo = new KeyRepository(trx);
      const key = await repo.get(owner === 'any' ? null : owner.tenantId, id);
      if (!key || !(await repo.revoke(id, now))) throw new NotFoundError('key', id);
      token = await announceRevocation(trx);
      await recordAudit(
        trx,
        { tenantId: key.tenantId, keyId: by, action: 'key.revoked', targetId: id, detail: null },
        now,
      );
      return { ...key, revokedAt: now };
    });
    this.forget(id);
    await this.store.revocations.heard(token, ANNOUNCEMENT_WAIT_MS);
    return key;
  }

  /**
   * Gives a key a new secret, keeping its id, name and scopes: the old secret answers 401 from the
   * next request on, on every instance. A revoked key cannot be rotated (not found).
   */
  async rotate(owner: KeyOwner, id: string, by: ActingKey = null): Promise<{ key: ApiKey; secret: string }> {
    const secret = generateSecret('veil_');
    const now = this.clock();
    let token = '';
    const key = await inTransaction(this.store, async (trx) => {
      const repo = new KeyRepository(trx);
      const key = await repo.get(owner === 'any' ? null : owner.tenantId, id);
      if (!key || !(await repo.rehash(id, hashKey(secret)))) throw new NotFoundError('key', id);
      token = await announceRevocation(trx);
      await recordAudit(
        trx,
        { tenantId: key.tenantId, keyId: by, action: 'key.rotated', targetId: id, detail: null },
        now,
      );
      return key;
    });
    this.forget(id);
    await this.store.revocations.heard(token, ANNOUNCEMENT_WAIT_MS);
    return { key, secret };
  }

  /** Drops this instance's cached verifications of key `id` at once. */
  private forget(id: string): void {
    this.revocations++;
    for (const [secret, entry] of this.cache.entries()) {
      if (entry.key?.id === id) this.cache.delete(secret);
    }
  }

  private async insert(
    db: Db,
    tenantId: string,
    name: string,
    scopes: Scope[],
    secret: string,
  ): Promise<ApiKey> {
    const now = this.clock();
    const key: ApiKey = { id: newId('key', now), tenantId, name, scopes, createdAt: now, revokedAt: null };
    await new KeyRepository(db).insert(key, hashKey(secret));
    return key;
  }
}
