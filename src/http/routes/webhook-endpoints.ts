import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Veil } from '../../veil.ts';
import { webhookEndpointView } from '../../views.ts';
import {
  NewWebhookEndpoint,
  PageQuery,
  page,
  WebhookEndpoint,
  WebhookEndpointBody,
  WebhookEndpointParams,
} from '../schemas.ts';
import { withErrors } from './responses.ts';

/**
 * /v1/webhook-endpoints: where the caller's tenant gets its events, signed as Standard Webhooks
 * are; the signing secret is shown once, at creation.
 */
export const webhookEndpointRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  const tags = ['webhook endpoints'];
  const config = { scope: 'admin' as const };
  app.post(
    '/webhook-endpoints',
    {
      schema: {
        tags,
        summary: 'Send events to a URL: the answer holds the signing secret, shown this once',
        body: WebhookEndpointBody,
        response: withErrors({ 201: NewWebhookEndpoint }),
      },
      config,
    },
    async (request, reply) => {
      const endpoint = await veil.webhooks.create(request.apiKey.tenantId, request.body, request.apiKey.id);
      return reply.status(201).send({ ...webhookEndpointView(endpoint), secret: endpoint.secret });
    },
  );
  app.get(
    '/webhook-endpoints',
    {
      schema: {
        tags,
        summary: 'The endpoints, in the order they were made (without their secrets)',
        querystring: PageQuery,
        response: withErrors({ 200: page(WebhookEndpoint) }),
      },
      config,
    },
    async (request) => {
      const { limit = 50, cursor } = request.query;
      const result = await veil.webhooks.list(request.apiKey.tenantId, { cursor, limit });
      return { data: result.data.map(webhookEndpointView), nextCursor: result.nextCursor };
    },
  );
  app.get(
    '/webhook-endpoints/:id',
    {
      schema: {
        tags,
        summary: 'An endpoint (without its secret)',
        params: WebhookEndpointParams,
        response: withErrors({ 200: WebhookEndpoint }),
      },
      config,
    },
    async (request) =>
      webhookEndpointView(await veil.webhooks.get(request.apiKey.tenantId, request.params.id)),
  );
  app.delete(
    '/webhook-endpoints/:id',
    {
      schema: {
        tags,
        summary: 'Stop sending events to an endpoint: its pending deliveries are given up',
        params: WebhookEndpointParams,
        response: withErrors({ 204: Type.Null() }),
      },
      config,
    },
    async (request, reply) => {
      await veil.webhooks.delete(request.apiKey.tenantId, request.params.id, request.apiKey.id);
      return reply.status(204).send(null);
    },
  );
};
