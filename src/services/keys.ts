import { generateSecret } from '../config.ts';
import { NotFoundError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import { type ApiKey, hashKey, type Scope } from '../domain/keys.ts';
import type { Store } from '../store/db.ts';
import { KeyRepository } from '../store/keys.ts';

export const DEFAULT_TENANT = 'default';
export const DEVELOPMENT_KEY_NAME = 'development';
const BOOTSTRAP_KEY_NAME = 'bootstrap';
/** How long a verified (or refused) key is remembered; a revocation elsewhere applies within it. */
const CACHE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;

/**
 * API keys: created with a random secret shown once, stored as a hash, verified on every request
 * from a short-lived cache so that authentication costs no query on the routing path.
 */
export class KeyService {
  private readonly cache = new Map<string, { key: ApiKey | undefined; until: number }>();

  constructor(
    private readonly store: Store,
    private readonly clock: () => number = Date.now,
  ) {}

  async authenticate(secret: string): Promise<ApiKey | undefined> {
    const now = this.clock();
    const hit = this.cache.get(secret);
    if (hit && hit.until > now) return hit.key;
    const found = await new KeyRepository(this.store.reader).findByHash(hashKey(secret));
    const key = found && found.revokedAt === null ? found : undefined;
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(secret, { key, until: now + CACHE_TTL_MS });
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
    return (await this.create(DEFAULT_TENANT, DEVELOPMENT_KEY_NAME, ['admin'])).secret;
  }

  /** Whether some stored key still opens the API (production refuses to start without one). */
  hasUsableKey(): Promise<boolean> {
    return new KeyRepository(this.store.db).anyUnrevoked();
  }

  list(tenantId: string): Promise<ApiKey[]> {
    return new KeyRepository(this.store.db).list(tenantId);
  }

  async revoke(tenantId: string, id: string): Promise<void> {
    if (!(await new KeyRepository(this.store.db).revoke(tenantId, id, this.clock()))) {
      throw new NotFoundError('key', id);
    }
    this.cache.clear();
  }

  private async insert(tenantId: string, name: string, scopes: Scope[], secret: string): Promise<ApiKey> {
    const now = this.clock();
    const key: ApiKey = { id: newId('key', now), tenantId, name, scopes, createdAt: now, revokedAt: null };
    await new KeyRepository(this.store.db).insert(key, hashKey(secret));
    return key;
  }
}
