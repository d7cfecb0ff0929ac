import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { NotFoundError } from '../../domain/errors.ts';
import { SIP_EDGE } from '../../providers/registry.ts';
import type { Veil } from '../../veil.ts';
import { requireApiKey } from '../auth.ts';
import { SipStatusBody } from '../schemas.ts';
import { withErrors } from './responses.ts';

/**
 * POST /webhooks/sip/status: the SIP edge's report of how a call it routed ended (BYE, failure,
 * the dialog's timeout), with its duration, onto the interaction. Authenticated like the route
 * request, with a key of scope `route`.
 */
export const sipStatusRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  requireApiKey(app, veil.keys);
  app.post(
    '/status',
    {
      schema: {
        // A webhook like the carriers' (which the API document leaves out too).
        hide: true,
        summary: 'Report how a call routed by the SIP edge ended',
        body: SipStatusBody,
        response: withErrors({ 204: Type.Null({ description: 'recorded on the interaction' }) }),
      },
      config: { scope: 'route' },
    },
    async (request, reply) => {
      const { callId, status, durationSeconds } = request.body;
      // Only the key's own tenant's calls: a Call-ID is no secret from the trunk.
      const found = await veil.router.status(
        SIP_EDGE,
        { providerCallId: callId, status, durationSeconds: durationSeconds ?? null },
        request.apiKey.tenantId,
      );
      if (!found) throw new NotFoundError('call', 'with this callId');
      return reply.status(204).send(null);
    },
  );
};
