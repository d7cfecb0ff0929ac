import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../../services/metrics.ts';
import type { Veil } from '../../veil.ts';
import { requireMetricsReader } from '../auth.ts';

/**
 * GET /metrics: Prometheus text, for VEIL_METRICS_TOKEN or an admin key (http/auth.ts). Not in the
 * OpenAPI document, as /healthz and /readyz are not: it is for the monitoring system, not the API's
 * clients.
 */
export const metricsRoutes: FastifyPluginAsync<{ veil: Veil; metrics: Metrics }> = async (
  app,
  { veil, metrics },
) => {
  requireMetricsReader(app, veil.keys, veil.config.metricsToken);
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
    reply.type(metrics.contentType).send(await metrics.render()),
  );
};
