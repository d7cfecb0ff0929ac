import { parse as parseForm } from 'node:querystring';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CarrierAdapter, WebhookReply } from '../providers/carrier.ts';
import type { Veil } from '../veil.ts';
import { errorBody } from './errors.ts';

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: string;
  }
}

/**
 * /webhooks/:provider/voice, /sms and /status for every enabled carrier, through one mechanism:
 * verify the carrier's signature over the exact bytes received and the public URL (never the Host
 * header), translate to the neutral request, route, answer in the carrier's language. A request
 * that fails verification gets 403 and touches nothing.
 */
export async function webhookRoutes(app: FastifyInstance, { veil }: { veil: Veil }): Promise<void> {
  // Keep the raw body: signatures are computed over it.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (request, body, done) => {
      request.rawBody = body as string;
      done(null, { ...parseForm(body as string) });
    },
  );
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    request.rawBody = body as string;
    try {
      const parsed = JSON.parse(body as string);
      done(null, parsed && typeof parsed === 'object' ? parsed : {});
    } catch {
      done(Object.assign(new Error('body is not valid JSON'), { statusCode: 400 }), undefined);
    }
  });

  for (const carrier of veil.carriers.values()) {
    const base = `/webhooks/${carrier.name}`;
    const verified = { preHandler: verifier(carrier, veil.config.publicUrl), schema: { hide: true } };
    app.post(`${base}/voice`, verified, async (request, reply) => {
      const { request: call, providerCallId } = carrier.voice(params(request));
      const decision = await veil.router.route(call, { provider: carrier.name, providerCallId });
      return send(reply, carrier.renderVoice(decision));
    });
    app.post(`${base}/sms`, verified, async (request, reply) => {
      const { request: text, providerCallId } = carrier.sms(params(request));
      const decision = await veil.router.route(text, { provider: carrier.name, providerCallId });
      return send(reply, carrier.renderSms(decision));
    });
    app.post(`${base}/status`, verified, async (request, reply) => {
      const report = carrier.status(params(request));
      if (report)
        await veil.router.status(carrier.name, report.providerCallId, report.status, report.durationSeconds);
      return send(reply, carrier.acknowledge());
    });
  }
}

function verifier(carrier: CarrierAdapter, publicUrl: string) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const ok =
      request.rawBody !== undefined &&
      carrier.verify({
        url: publicUrl + request.url,
        headers: request.headers,
        rawBody: request.rawBody,
        params: params(request),
      });
    if (!ok) {
      request.log.warn(
        { provider: carrier.name, path: request.url.split('?')[0] },
        'webhook signature refused',
      );
      return reply.status(403).send(errorBody('forbidden', `invalid or missing ${carrier.name} signature`));
    }
  };
}

function params(request: FastifyRequest): Record<string, unknown> {
  return (request.body ?? {}) as Record<string, unknown>;
}

function send(reply: FastifyReply, answer: WebhookReply) {
  return reply.type(answer.contentType).send(answer.body);
}
