import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Veil } from '../../veil.ts';
import { auditView } from '../../views.ts';
import { tenantOf } from '../auth.ts';
import { AuditEntry, AuditQuery, page } from '../schemas.ts';
import { withErrors } from './responses.ts';

/** /v1/audit: the admin actions on the caller's tenant, oldest first, with the key that did each. */
export const auditRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  app.get(
    '/audit',
    {
      schema: {
        tags: ['audit'],
        summary:
          'Admin actions (keys, tenants, numbers, carriers, blocklist, webhook endpoints), oldest first; a tenant sees its own',
        querystring: AuditQuery,
        response: withErrors({ 200: page(AuditEntry) }),
      },
      config: { scope: 'admin' },
    },
    async (request) => {
      const { limit = 50, cursor, action, tenantId } = request.query;
      const result = await veil.audit.list(tenantOf(request.apiKey, tenantId), { action, cursor, limit });
      return { data: result.data.map(auditView), nextCursor: result.nextCursor };
    },
  );
};
