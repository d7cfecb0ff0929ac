import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Veil } from '../../veil.ts';
import { interactionView } from '../../views.ts';
import { Interaction, InteractionQuery, page } from '../schemas.ts';
import { withErrors } from './responses.ts';

/** /v1/interactions: the tenant's call and text log across sessions, strangers' refused calls included. */
export const interactionRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  app.get(
    '/interactions',
    {
      schema: {
        tags: ['interactions'],
        summary:
          'The call and text log across sessions, oldest first, strangers’ refused calls included; filter by action, reason or channel. A page may hold fewer than `limit` entries (each request reads a bounded stretch of the log): follow nextCursor until it is null',
        querystring: InteractionQuery,
        response: withErrors({ 200: page(Interaction) }),
      },
      config: { scope: 'read' },
    },
    async (request) => {
      const { action, reason, channel, after, cursor, limit = 50 } = request.query;
      // Both name the last entry already seen; given both, the later one.
      const from = [after, cursor]
        .filter((c) => c !== undefined)
        .sort()
        .at(-1);
      const result = await veil.sessions.interactionLog(request.apiKey.tenantId, {
        action,
        reason,
        channel,
        after: from,
        limit,
      });
      return { data: result.data.map(interactionView), nextCursor: result.nextCursor };
    },
  );
};
