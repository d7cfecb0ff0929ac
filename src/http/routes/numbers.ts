import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Veil } from '../../veil.ts';
import { numberView, poolGroupView } from '../../views.ts';
import {
  NumberBody,
  NumberImportBody,
  NumberImportResult,
  NumberParams,
  NumberPatch,
  NumberQuery,
  PoolGroup,
  PoolNumber,
  page,
} from '../schemas.ts';
import { withErrors } from './responses.ts';

/** /v1/numbers: the pool. */
export const numberRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  const tags = ['numbers'];
  app.post(
    '/numbers',
    {
      schema: { tags, body: NumberBody, response: withErrors({ 201: PoolNumber }) },
      config: { scope: 'admin' },
    },
    async (request, reply) => {
      const n = await veil.numbers.add(request.apiKey.tenantId, request.body, request.apiKey.id);
      return reply.status(201).send(numberView(n));
    },
  );

  app.post(
    '/numbers/import',
    {
      schema: {
        tags,
        summary: 'Add many numbers at once (all or none), or buy numbers through a carrier',
        description:
          'An array adds those numbers, all or none. A purchase `{provider, country, areaCode?, count}` buys through the carrier’s API and adds each number as it is bought: 201 lists what was added, and `purchase` says how many of `count` and, if fewer, why; 503 when nothing could be bought.',
        body: NumberImportBody,
        response: withErrors({ 201: NumberImportResult }),
      },
      config: { scope: 'admin' },
    },
    async (request, reply) => {
      const { body } = request;
      const tenantId = request.apiKey.tenantId;
      if (Array.isArray(body)) {
        const added = await veil.numbers.import(tenantId, body, request.apiKey.id);
        return reply.status(201).send({ data: added.map(numberView), nextCursor: null });
      }
      const result = await veil.procurement.buy(tenantId, body);
      return reply.status(201).send({
        data: result.numbers.map(numberView),
        nextCursor: null,
        purchase: {
          requested: result.requested,
          bought: result.numbers.length,
          ...(result.problem ? { problem: result.problem } : {}),
        },
      });
    },
  );

  app.get(
    '/numbers',
    {
      schema: { tags, querystring: NumberQuery, response: withErrors({ 200: page(PoolNumber) }) },
      config: { scope: 'read' },
    },
    async (request) => {
      const { limit = 50, ...query } = request.query;
      const result = await veil.numbers.list(request.apiKey.tenantId, { ...query, limit });
      return { data: result.data.map(numberView), nextCursor: result.nextCursor };
    },
  );

  app.get(
    '/pool',
    {
      schema: {
        tags,
        summary: 'Pool use by country, region and carrier: numbers free, in use and draining',
        description:
          'One entry per carrier, country and region with numbers not retired, sorted by country, region, carrier; always one page.',
        response: withErrors({
          200: Type.Object({
            data: Type.Array(PoolGroup, { description: 'each carrier, country and region of the pool' }),
            nextCursor: Type.Null({ description: 'always null: the whole pool in one page' }),
          }),
        }),
      },
      config: { scope: 'read' },
    },
    async (request) => ({
      data: (await veil.numbers.census(request.apiKey.tenantId)).map(poolGroupView),
      nextCursor: null,
    }),
  );

  app.get(
    '/numbers/:id',
    {
      schema: { tags, params: NumberParams, response: withErrors({ 200: PoolNumber }) },
      config: { scope: 'read' },
    },
    async (request) => numberView(await veil.numbers.get(request.apiKey.tenantId, request.params.id)),
  );

  app.patch(
    '/numbers/:id',
    {
      schema: { tags, params: NumberParams, body: NumberPatch, response: withErrors({ 200: PoolNumber }) },
      config: { scope: 'admin' },
    },
    async (request) =>
      numberView(
        await veil.numbers.update(
          request.apiKey.tenantId,
          request.params.id,
          request.body,
          request.apiKey.id,
        ),
      ),
  );

  app.delete(
    '/numbers/:id',
    {
      schema: {
        tags,
        summary: 'Drain then retire: no new sessions; retired once no open session holds it',
        params: NumberParams,
        response: withErrors({ 200: PoolNumber }),
      },
      config: { scope: 'admin' },
    },
    async (request) =>
      numberView(await veil.numbers.retire(request.apiKey.tenantId, request.params.id, request.apiKey.id)),
  );
};
