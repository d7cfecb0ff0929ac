import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Veil } from '../../veil.ts';
import { ProviderParams, ProviderPatch, ProviderView } from '../schemas.ts';
import { withErrors } from './responses.ts';

/**
 * /v1/providers: the enabled carriers with their health, and the one-click downgrade. Every tenant
 * shares them, so only the installation's admin sees or switches them.
 */
export const providerRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  const tags = ['providers'];
  app.get(
    '/providers',
    {
      schema: {
        tags,
        summary: 'The enabled carriers: switched on or off, healthy, degraded or down',
        response: withErrors({
          200: Type.Object({ data: Type.Array(ProviderView, { description: 'every enabled carrier' }) }),
        }),
      },
      config: { scope: 'admin', installation: true },
    },
    async () => ({ data: await veil.providers.list() }),
  );

  app.patch(
    '/providers/:name',
    {
      schema: {
        tags,
        summary: 'Switch a carrier off (its numbers go to no new session) or on again',
        params: ProviderParams,
        body: ProviderPatch,
        response: withErrors({ 200: ProviderView }),
      },
      config: { scope: 'admin', installation: true },
    },
    async (request) =>
      veil.providers.setEnabled(request.params.name, request.body.enabled, request.apiKey.id),
  );
};
