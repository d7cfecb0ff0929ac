import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ForbiddenError, NotFoundError, UnauthorizedError } from '../domain/errors.ts';
import { type ApiKey, allows, type Scope } from '../domain/keys.ts';
import { isInstallationAdmin } from '../domain/tenants.ts';
import type { KeyService } from '../services/keys.ts';

declare module 'fastify' {
  interface FastifyRequest {
    apiKey: ApiKey;
  }
  interface FastifyContextConfig {
    /** The scope a key needs for the route; `admin` when a route names none. */
    scope?: Scope;
    /**
     * The route acts on the whole installation (tenants, the carriers every tenant shares): only
     * the installation's admin (domain/tenants.ts isInstallationAdmin) may call it.
     */
    installation?: boolean;
  }
}

/** Bearer-key authentication and scope check for every route of the plugin it is added to. */
export function requireApiKey(app: FastifyInstance, keys: KeyService): void {
  app.decorateRequest('apiKey', null as unknown as ApiKey);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    if (!header?.startsWith('Bearer ')) throw new UnauthorizedError();
    const key = await keys.authenticate(header.slice(7).trim());
    if (!key) throw new UnauthorizedError('the API key is not valid or was revoked');
    const scope = request.routeOptions.config.scope ?? 'admin';
    if (!allows(key.scopes, scope)) throw new ForbiddenError(`this key lacks the ${scope} scope`);
    if (request.routeOptions.config.installation && !isInstallationAdmin(key)) {
      throw new ForbiddenError("only the installation's admin key may do this");
    }
    request.apiKey = key;
  });
}

/**
 * Who may read /metrics, which shows the whole installation (every carrier, the pool, the outbox):
 * a bearer `token` (VEIL_METRICS_TOKEN), which reads nothing else, so Prometheus holds no API key;
 * or an admin key of the installation's own tenant, as for GET /v1/providers. Any other key is
 * 403, no credential 401.
 */
export function requireMetricsReader(
  app: FastifyInstance,
  keys: KeyService,
  token: string | undefined,
): void {
  const tokenHash = token === undefined ? undefined : createHash('sha256').update(token).digest();
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    if (!header?.startsWith('Bearer ')) throw new UnauthorizedError();
    const secret = header.slice(7).trim();
    // Compared as digests, in constant time: equal lengths, and nothing learnt from how long it took.
    if (tokenHash && timingSafeEqual(createHash('sha256').update(secret).digest(), tokenHash)) return;
    const key = await keys.authenticate(secret);
    if (!key) throw new UnauthorizedError('the API key or metrics token is not valid');
    if (!isInstallationAdmin(key)) {
      throw new ForbiddenError(
        "metrics need VEIL_METRICS_TOKEN or an admin key of the installation's tenant",
      );
    }
  });
}

/**
 * The tenant a request acts on: the key's own, or the one it names (`tenantId`) when the key is the
 * installation's admin. Another tenant named by any other key is not found, as if it did not exist.
 */
export function tenantOf(key: ApiKey, asked: string | undefined): string {
  if (asked === undefined || asked === key.tenantId) return key.tenantId;
  if (!isInstallationAdmin(key)) throw new NotFoundError('tenant', asked);
  return asked;
}
