import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import { Metrics } from '../services/metrics.ts';
import type { Veil } from '../veil.ts';
import { adminRoutes } from './admin.ts';
import { requireApiKey } from './auth.ts';
import { registerErrorHandler } from './errors.ts';
import { limitRequestsPerKey } from './rate-limit.ts';
import { registerRequestLog } from './request-log.ts';
import { auditRoutes } from './routes/audit.ts';
import { blocklistRoutes } from './routes/blocklist.ts';
import { eventRoutes } from './routes/events.ts';
import { interactionRoutes } from './routes/interactions.ts';
import { keyRoutes } from './routes/keys.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { numberRoutes } from './routes/numbers.ts';
import { providerRoutes } from './routes/providers.ts';
import { routeRoutes } from './routes/route.ts';
import { sessionRoutes } from './routes/sessions.ts';
import { sipStatusRoutes } from './routes/sip-status.ts';
import { tenantRoutes } from './routes/tenants.ts';
import { webhookEndpointRoutes } from './routes/webhook-endpoints.ts';
import { validatorCompiler } from './validation.ts';
import { webhookRoutes } from './webhooks.ts';

/** Largest request body accepted (a number import of a few thousand entries fits). */
export const BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * How long a client may hold a connection, so that no socket waits for ever (README "Timeouts").
 * Fixed rather than configured: carriers give up on a webhook after about 15 s, and a legitimate
 * client sends a whole request (at most BODY_LIMIT_BYTES) in far less than these.
 */
export const HTTP_TIMEOUTS = {
  /** Request line and headers; a connection that sends nothing is answered 408 and closed too. */
  headersMs: 10_000,
  /** The whole request, body included: a client sending its body slowly (slowloris) is cut off. */
  requestMs: 30_000,
  /** Between requests on a keep-alive connection: longer than load balancers' 60 s, so they close first. */
  keepAliveMs: 72_000,
  /** No traffic either way, whatever the socket waits for (a client that stops reading its answer). */
  silenceMs: 60_000,
};
export type HttpTimeouts = typeof HTTP_TIMEOUTS;

/**
 * How often Node looks for requests past `headersMs` or `requestMs` (its default, 30 s, would let
 * a stalled request stay up to 30 s longer); more often when those are shorter, in tests.
 */
const TIMEOUT_CHECK_MS = 1_000;

/** The HTTP server over the core: the API at /v1, carrier webhooks, health, metrics, docs and the dashboard. */
export async function buildApp(
  veil: Veil,
  logger: Logger,
  timeouts: HttpTimeouts = HTTP_TIMEOUTS,
): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // No info line per request: routing is on the path of every call (DESIGN "The routing hot path").
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    http: {
      headersTimeout: timeouts.headersMs,
      connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_MS, timeouts.headersMs),
    },
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    connectionTimeout: timeouts.silenceMs,
    // A request read while the server stops is answered as any other (with `Connection: close`),
    // not 503: it may be a live call's webhook, and the core stays open until HTTP has closed.
    return503OnClosing: false,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // The API speaks JSON only: text/plain must be 415, not a string handed to the body schema.
  app.removeContentTypeParser('text/plain');

  registerErrorHandler(app);
  // Its own registry per app, so that the apps of one process (tests) keep theirs apart.
  const metrics = new Metrics(veil);
  registerRequestLog(app, metrics);
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Veil',
        version: '1',
        description: 'Number masking: proxy numbers, sessions and call routing',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const reason = await veil.unready();
    const degraded = veil.degraded();
    return reply
      .status(reason ? 503 : 200)
      .send({ status: reason ?? 'ready', ...(degraded.length > 0 && { degraded }) });
  });

  await app.register(
    async (v1) => {
      requireApiKey(v1, veil.keys);
      await limitRequestsPerKey(v1, veil.config.limits);
      await v1.register(numberRoutes, { veil });
      await v1.register(sessionRoutes, { veil });
      await v1.register(routeRoutes, { veil });
      await v1.register(keyRoutes, { veil });
      await v1.register(webhookEndpointRoutes, { veil });
      await v1.register(eventRoutes, { veil });
      await v1.register(interactionRoutes, { veil });
      await v1.register(blocklistRoutes, { veil });
      await v1.register(providerRoutes, { veil });
      await v1.register(tenantRoutes, { veil });
      await v1.register(auditRoutes, { veil });
    },
    { prefix: '/v1' },
  );
  await app.register(webhookRoutes, { veil });
  await app.register(sipStatusRoutes, { veil, prefix: '/webhooks/sip' });
  await app.register(adminRoutes);
  await app.register(metricsRoutes, { veil, metrics });
  return app;
}
