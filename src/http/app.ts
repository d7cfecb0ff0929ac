import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Veil } from '../veil.ts';
import { requireApiKey } from './auth.ts';
import { registerErrorHandler } from './errors.ts';
import { keyRoutes } from './routes/keys.ts';
import { numberRoutes } from './routes/numbers.ts';
import { routeRoutes } from './routes/route.ts';
import { sessionRoutes } from './routes/sessions.ts';
import { validatorCompiler } from './validation.ts';
import { webhookRoutes } from './webhooks.ts';

/** Largest request body accepted (a number import of a few thousand entries fits). */
export const BODY_LIMIT_BYTES = 1024 * 1024;

/** The HTTP server over the core: the API at /v1, carrier webhooks, health and docs. */
export async function buildApp(veil: Veil, logger: Logger): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // No info line per request: routing is on the path of every call (DESIGN "The routing hot path").
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // The API speaks JSON only: text/plain must be 415, not a string handed to the body schema.
  app.removeContentTypeParser('text/plain');

  registerErrorHandler(app);
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
    return reply.status(reason ? 503 : 200).send({ status: reason ?? 'ready' });
  });

  await app.register(
    async (v1) => {
      requireApiKey(v1, veil.keys);
      await v1.register(numberRoutes, { veil });
      await v1.register(sessionRoutes, { veil });
      await v1.register(routeRoutes, { veil });
      await v1.register(keyRoutes, { veil });
    },
    { prefix: '/v1' },
  );
  await app.register(webhookRoutes, { veil });
  return app;
}
