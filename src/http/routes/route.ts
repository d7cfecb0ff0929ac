import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { isE164, parsePhone } from '../../domain/phone.ts';
import { SIP_EDGE } from '../../providers/registry.ts';
import type { Veil } from '../../veil.ts';
import { routeRateLimit } from '../rate-limit.ts';
import { noteDecision } from '../request-log.ts';
import { RouteBody, RouteDecision } from '../schemas.ts';
import { withErrors } from './responses.ts';

/**
 * The largest route request: two numbers, a text of 1,600 characters each escaped (`\uXXXX`),
 * media URLs, with room to spare. A route key sends no more, and nothing larger is parsed.
 */
export const ROUTE_BODY_LIMIT_BYTES = 64 * 1024;

/**
 * POST /v1/route: the provider-neutral routing decision, for webhooks of any carrier and for SIP
 * proxies. This is the hot path: the key is verified from cache, the lookup is one prepared query,
 * and the interaction is logged without waiting for the write. Its requests are counted per key
 * apart from the key's other requests (routeRateLimit).
 */
export const routeRoutes: FastifyPluginAsyncTypebox<{ veil: Veil }> = async (app, { veil }) => {
  const country = veil.config.defaultCountry;
  // Numbers already in E.164 (nearly all) skip the parser.
  const canonical = (n: string, field: string) => (isE164(n) ? n : parsePhone(n, field, country).e164);
  app.post(
    '/route',
    {
      schema: {
        tags: ['routing'],
        summary: 'Decide where a call or text from a real number to a proxy number goes',
        body: RouteBody,
        response: withErrors({ 200: RouteDecision }),
      },
      config: { scope: 'route', rateLimit: routeRateLimit(veil.config.limits) },
      bodyLimit: ROUTE_BODY_LIMIT_BYTES,
    },
    async (request) => {
      const { callId, ...body } = request.body;
      const routed = { ...body, from: canonical(body.from, 'from'), to: canonical(body.to, 'to') };
      // A call id names the interaction for the status the SIP edge reports when the call ends.
      const provider = callId === undefined ? 'api' : SIP_EDGE;
      const decision = await veil.router.route(routed, {
        tenantId: request.apiKey.tenantId,
        provider,
        ...(callId === undefined ? {} : { providerCallId: callId }),
      });
      noteDecision(request, provider, routed.channel, decision);
      return decision;
    },
  );
};
