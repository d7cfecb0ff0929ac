import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Veil } from '../../veil.ts';
import { keyView } from '../../views.ts';
import { ApiKey, KeyBody, KeyParams, NewApiKey, page } from '../schemas.ts';
import { withErrors } from './responses.ts';

/** /v1/keys: API keys of the caller's tenant; the secret is shown once, at creation. */
export const keyRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  const tags = ['keys'];
  const config = { scope: 'admin' as const };
  app.post(
    '/keys',
    {
      schema: {
        tags,
        body: KeyBody,
        response: withErrors({ 201: NewApiKey }),
      },
      config,
    },
    async (request, reply) => {
      const { key, secret } = await veil.keys.create(
        request.apiKey.tenantId,
        request.body.name,
        request.body.scopes,
      );
      return reply.status(201).send({ ...keyView(key), key: secret });
    },
  );
  app.get(
    '/keys',
    {
      schema: {
        tags,
        response: withErrors({ 200: page(ApiKey) }),
      },
      config,
    },
    async (request) => ({
      data: (await veil.keys.list(request.apiKey.tenantId)).map(keyView),
      nextCursor: null,
    }),
  );
  app.delete(
    '/keys/:id',
    { schema: { tags, params: KeyParams, response: withErrors({ 204: Type.Null() }) }, config },
    async (request, reply) => {
      await veil.keys.revoke(request.apiKey.tenantId, request.params.id);
      return reply.status(204).send(null);
    },
  );
};
