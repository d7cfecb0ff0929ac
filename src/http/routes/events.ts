import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Veil } from '../../veil.ts';
import { eventView } from '../../views.ts';
import { Event, EventParams, EventQuery, page } from '../schemas.ts';
import { withErrors } from './responses.ts';

/** /v1/events: the outbox of the caller's tenant, with each event's deliveries, and redelivery. */
export const eventRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  const tags = ['events'];
  app.get(
    '/events',
    {
      schema: {
        tags,
        summary: 'The events, oldest first (or newest first), each with the state of its deliveries',
        querystring: EventQuery,
        response: withErrors({ 200: page(Event) }),
      },
      config: { scope: 'read' },
    },
    async (request) => {
      const { type, after, cursor, order, limit = 50 } = request.query;
      const tenantId = request.apiKey.tenantId;
      if (order === 'newest') {
        // `after` bounds the list from below; the cursor names the oldest event already seen.
        const result = await veil.webhooks.events(tenantId, {
          type,
          after,
          before: cursor,
          newest: true,
          limit,
        });
        return { data: result.data.map(eventView), nextCursor: result.nextCursor };
      }
      // Both name the last event already seen; given both, the later one.
      const from = [after, cursor]
        .filter((c) => c !== undefined)
        .sort()
        .at(-1);
      const result = await veil.webhooks.events(tenantId, { type, after: from, limit });
      return { data: result.data.map(eventView), nextCursor: result.nextCursor };
    },
  );
  app.post(
    '/events/:id/redeliver',
    {
      schema: {
        tags,
        summary:
          'Send an event again to every endpoint that wants it, from a first attempt, with the same webhook-id',
        params: EventParams,
        response: withErrors({ 202: Event }),
      },
      config: { scope: 'admin' },
    },
    async (request, reply) => {
      const event = await veil.webhooks.redeliver(request.apiKey.tenantId, request.params.id);
      return reply.status(202).send(eventView(event));
    },
  );
};
