import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ApiKey as Key } from '../../domain/keys.ts';
import { isInstallationAdmin } from '../../domain/tenants.ts';
import type { KeyOwner } from '../../services/keys.ts';
import type { Veil } from '../../veil.ts';
import { keyView } from '../../views.ts';
import { tenantOf } from '../auth.ts';
import { ApiKey, KeyBody, KeyParams, KeyQuery, NewApiKey, page } from '../schemas.ts';
import { withErrors } from './responses.ts';

/**
 * /v1/keys: API keys of the caller's tenant; the secret is shown once, at creation or rotation.
 * The installation's admin may also manage another tenant's keys (`tenantId`).
 */
export const keyRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  const tags = ['keys'];
  const config = { scope: 'admin' as const };
  /** The keys this caller manages: its tenant's, or (the installation's admin) any. */
  const ownerOf = (key: Key): KeyOwner => (isInstallationAdmin(key) ? 'any' : { tenantId: key.tenantId });

  app.post(
    '/keys',
    {
      schema: {
        tags,
        summary: 'Make a key: the answer holds its secret, shown this once',
        body: KeyBody,
        response: withErrors({ 201: NewApiKey }),
      },
      config,
    },
    async (request, reply) => {
      const { name, scopes, tenantId } = request.body;
      const { key, secret } = await veil.keys.create(
        tenantOf(request.apiKey, tenantId),
        name,
        scopes,
        request.apiKey.id,
      );
      return reply.status(201).send({ ...keyView(key), key: secret });
    },
  );
  app.get(
    '/keys',
    {
      schema: {
        tags,
        summary: 'The keys, revoked ones included, without their secrets',
        querystring: KeyQuery,
        response: withErrors({ 200: page(ApiKey) }),
      },
      config,
    },
    async (request) => ({
      data: (await veil.keys.list(tenantOf(request.apiKey, request.query.tenantId))).map(keyView),
      nextCursor: null,
    }),
  );
  app.post(
    '/keys/:id/rotate',
    {
      schema: {
        tags,
        summary:
          'Give a key a new secret (shown this once); the old one answers 401 from the next request on',
        params: KeyParams,
        response: withErrors({ 200: NewApiKey }),
      },
      config,
    },
    async (request) => {
      const { key, secret } = await veil.keys.rotate(
        ownerOf(request.apiKey),
        request.params.id,
        request.apiKey.id,
      );
      return { ...keyView(key), key: secret };
    },
  );
  app.delete(
    '/keys/:id',
    {
      schema: {
        tags,
        summary: 'Revoke a key: it answers 401 from the next request on, on every instance',
        params: KeyParams,
        response: withErrors({ 204: Type.Null() }),
      },
      config,
    },
    async (request, reply) => {
      await veil.keys.revoke(ownerOf(request.apiKey), request.params.id, request.apiKey.id);
      return reply.status(204).send(null);
    },
  );
};
