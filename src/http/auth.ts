import type { FastifyInstance } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../domain/errors.ts';
import { type ApiKey, allows, type Scope } from '../domain/keys.ts';
import type { KeyService } from '../services/keys.ts';

declare module 'fastify' {
  interface FastifyRequest {
    apiKey: ApiKey;
  }
  interface FastifyContextConfig {
    /** The scope a key needs for the route; `admin` when a route names none. */
    scope?: Scope;
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
    request.apiKey = key;
  });
}
