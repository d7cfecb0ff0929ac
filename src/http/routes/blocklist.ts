import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Veil } from '../../veil.ts';
import { blocklistView } from '../../views.ts';
import { BlocklistBody, BlocklistEntry, BlocklistParams, PageQuery, page } from '../schemas.ts';
import { withErrors } from './responses.ts';

/**
 * /v1/blocklist: real numbers the caller's tenant never connects, whether they call or are called,
 * in a session or out of one (a call is refused with reason `blocked`).
 */
export const blocklistRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  const tags = ['blocklist'];
  app.get(
    '/blocklist',
    {
      schema: {
        tags,
        summary: 'The blocked numbers, a page at a time (the cursor is opaque)',
        querystring: PageQuery,
        response: withErrors({ 200: page(BlocklistEntry) }),
      },
      config: { scope: 'read' },
    },
    async (request) => {
      const { limit = 50, cursor } = request.query;
      const result = await veil.blocklist.list(request.apiKey.tenantId, { cursor, limit });
      return { data: result.data.map(blocklistView), nextCursor: result.nextCursor };
    },
  );

  app.post(
    '/blocklist',
    {
      schema: {
        tags,
        summary: 'Block a number: 201 when added, 200 with the entry as it was when already blocked',
        body: BlocklistBody,
        response: withErrors({ 200: BlocklistEntry, 201: BlocklistEntry }),
      },
      config: { scope: 'admin' },
    },
    async (request, reply) => {
      const { entry, added } = await veil.blocklist.add(
        request.apiKey.tenantId,
        request.body,
        request.apiKey.id,
      );
      return reply.status(added ? 201 : 200).send(blocklistView(entry));
    },
  );

  app.delete(
    '/blocklist/:number',
    {
      schema: {
        tags,
        summary: 'Unblock a number',
        params: BlocklistParams,
        response: withErrors({ 204: Type.Null() }),
      },
      config: { scope: 'admin' },
    },
    async (request, reply) => {
      await veil.blocklist.remove(request.apiKey.tenantId, request.params.number, request.apiKey.id);
      return reply.status(204).send(null);
    },
  );
};
