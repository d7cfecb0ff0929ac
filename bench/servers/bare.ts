import formbody from '@fastify/formbody';
import Fastify from 'fastify';

/**
 * The baseline: bare Fastify endpoints of the same shape as Veil's, with nothing behind them. A JSON
 * route that parses a body like POST /v1/route's and answers a small JSON object, and a form route
 * that parses a Twilio webhook's body and answers a small TwiML document. No schema, no auth, no
 * database: the ceiling Veil's routing is measured against.
 */

const TWIML_REJECT = '<?xml version="1.0" encoding="UTF-8"?><Response><Reject/></Response>';

interface RouteShape {
  from?: string;
  to?: string;
  channel?: string;
}

async function main(): Promise<void> {
  const app = Fastify({ logger: false });
  await app.register(formbody);
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.post('/v1/route', async (request) => {
    const { from, to } = request.body as RouteShape;
    return { action: 'connect', to: from, callerId: to, sessionId: null, record: false };
  });
  app.post('/webhooks/twilio/voice', async (request, reply) => {
    const { From } = request.body as { From?: string };
    return reply.type('text/xml').send(From === undefined ? '<Response/>' : TWIML_REJECT);
  });
  await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' });
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
