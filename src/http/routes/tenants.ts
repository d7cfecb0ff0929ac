import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Veil } from '../../veil.ts';
import { tenantView } from '../../views.ts';
import { PageQuery, page, Tenant, TenantBody } from '../schemas.ts';
import { withErrors } from './responses.ts';

/**
 * /v1/tenants: the installation's customers. Only the installation's admin (the bootstrap
 * VEIL_API_KEY, or another admin key of the installation's own tenant) manages them; a tenant's
 * keys are then made with POST /v1/keys `{tenantId}`.
 */
export const tenantRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  const tags = ['tenants'];
  const config = { scope: 'admin' as const, installation: true };
  app.post(
    '/tenants',
    {
      schema: {
        tags,
        summary: "Make a tenant (the installation's admin only); give it keys with POST /v1/keys {tenantId}",
        body: TenantBody,
        response: withErrors({ 201: Tenant }),
      },
      config,
    },
    async (request, reply) => {
      const tenant = await veil.tenants.create(request.body.name, request.apiKey.id);
      return reply.status(201).send(tenantView(tenant));
    },
  );
  app.get(
    '/tenants',
    {
      schema: {
        tags,
        summary: "The tenants in the order they were made, the installation's own last",
        querystring: PageQuery,
        response: withErrors({ 200: page(Tenant) }),
      },
      config,
    },
    async (request) => {
      const { limit = 50, cursor } = request.query;
      const result = await veil.tenants.list({ cursor, limit });
      return { data: result.data.map(tenantView), nextCursor: result.nextCursor };
    },
  );
};
