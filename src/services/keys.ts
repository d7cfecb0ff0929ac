import { LRUCache } from 'lru-cache';
import { NotFoundError } from '../domain/errors.ts';
import { generateSecret, newId } from '../domain/ids.ts';
import { type ApiKey, hashKey, type Scope } from '../domain/keys.ts';
import { DEFAULT_TENANT } from '../domain/tenants.ts';
import { KeyRepository } from '../store/keys.ts';
import type { Store } from '../store/store.ts';

export const DEVELOPMENT_KEY_NAME = 'development';
const BOOTSTRAP_KEY_NAME = 'bootstrap';
/**
 * How long a verified (or refused) key is remembered: a revocation on another instance applies
 * within it (one on this instance applies at once).
 */
export const KEY_CACHE_TTL_MS = 10_000;
/** Most secrets remembered; the least recently used goes first, so a flood of bad keys cannot flush a busy good one. */
const KEY_CACHE_MAX = 10_000;

/**
 * API keys: created with a random secret shown once, stored as a hash, verified on every request
 * from a short-lived cache so that authentication costs no query on the routing path.
 */
export class KeyService {
  /** By secret: the key it opens, or none (unknown or revoked). */
  private readonly cache: LRUCache<string, { key: ApiKey | undefined }>;
  /** Revocations so far: a read that a revocation overtook must not refill the cache with the key. */
  private revocations = 0;

  constructor(
    private readonly store: Store,
    private readonly clock: () => number = Date.now,
  ) {
    // The entry's age counts from its verification, not its last use: a busy key is still read
    // again every KEY_CACHE_TTL_MS, so a revocation elsewhere reaches it too.
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

  /** The unrevoked key this secret opens, or undefined; from a cache at most KEY_CACHE_TTL_MS old. */
  async authenticate(secret: string): Promise<ApiKey | undefined> {
    const hit = this.cache.get(secret);
    if (hit) return hit.key;
    const revocations = this.revocations;
    const found = await new KeyRepository(this.store.reader).findByHash(hashKey(secret));
    const key = found && found.revokedAt === null ? found : undefined;
    if (revocations === this.revocations) this.cache.set(secret, { key });
    return key;
  }

  async create(tenantId: string, name: string, scopes: Scope[]): Promise<{ key: ApiKey; secret: string }> {
    const secret = generateSecret('veil_');
    const key = await this.insert(tenantId, name, scopes, secret);
    return { key, secret };
  }

  /** Makes sure the operator's VEIL_API_KEY exists as an admin key of the default tenant. */
  async ensureBootstrap(secret: string): Promise<void> {
    await this.insert(DEFAULT_TENANT, BOOTSTRAP_KEY_NAME, ['admin'], secret);
  }

  /** A fresh admin key for development; the previous one stops working. */
  async rotateDevelopmentKey(): Promise<string> {
    await new KeyRepository(this.store.db).revokeByName(DEVELOPMENT_KEY_NAME, this.clock());
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

  /** Revokes a key of the tenant; this instance refuses it from the next request on. */
  async revoke(tenantId: string, id: string): Promise<void> {
    if (!(await new KeyRepository(this.store.db).revoke(tenantId, id, this.clock()))) {
      throw new NotFoundError('key', id);
    }
    this.revocations++;
    for (const [secret, entry] of this.cache.entries()) {
      if (entry.key?.id === id) this.cache.delete(secret);
    }
  }

  private async insert(tenantId: string, name: string, scopes: Scope[], secret: string): Promise<ApiKey> {
    const now = this.clock();
    const key: ApiKey = { id: newId('key', now), tenantId, name, scopes, createdAt: now, revokedAt: null };
    await new KeyRepository(this.store.db).insert(key, hashKey(secret));
    return key;
  }
}
