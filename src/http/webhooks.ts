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
    const url = publicUrl + request.url;
    const refused = refusal(carrier, request, url);
    if (refused) {
      request.log.warn({ provider: carrier.name, url, ...refused }, 'webhook signature refused');
      return reply.status(403).send(errorBody('forbidden', `invalid or missing ${carrier.name} signature`));
    }
  };
}

/**
 * Why the request's signature is refused, for the operator's log (never the secret or the
 * signature itself), or undefined when it is good for `url`.
 */
function refusal(
  carrier: CarrierAdapter,
  request: FastifyRequest,
  url: string,
): { reason: string; signatureMatchesUrl?: string } | undefined {
  const rawBody = request.rawBody;
  if (rawBody === undefined) return { reason: 'no form or JSON body to verify' };
  const signedFor = (candidate: string) =>
    carrier.verify({ url: candidate, headers: request.headers, rawBody, params: params(request) });
  const verification = signedFor(url);
  if (verification.ok) return undefined;
  // The commonest cause is a VEIL_PUBLIC_URL that is not the URL the carrier calls (http for
  // https, a proxy's host): name the URL the signature is good for, though it is never accepted.
  const matches = otherUrls(request, url).find((other) => signedFor(other).ok);
  return { reason: verification.reason, ...(matches ? { signatureMatchesUrl: matches } : {}) };
}

/**
 * The URLs a carrier may have signed instead of VEIL_PUBLIC_URL's: the same with the other scheme,
 * and the one the Host (or X-Forwarded-*) headers name.
 */
function otherUrls(request: FastifyRequest, url: string): string[] {
  const swapped = url.startsWith('https:') ? `http:${url.slice(6)}` : `https:${url.slice(5)}`;
  const host = first(request.headers['x-forwarded-host']) ?? request.headers.host;
  const proto = first(request.headers['x-forwarded-proto']);
  const fromHost = host
    ? (proto ? [proto] : ['http', 'https']).map((scheme) => `${scheme}://${host}${request.url}`)
    : [];
  return [...new Set([swapped, ...fromHost])].filter((other) => other !== url);
}

function first(header: string | string[] | undefined): string | undefined {
  return (Array.isArray(header) ? header[0] : header)?.split(',')[0]?.trim() || undefined;
}

function params(request: FastifyRequest): Record<string, unknown> {
  return (request.body ?? {}) as Record<string, unknown>;
}

function send(reply: FastifyReply, answer: WebhookReply) {
  return reply.type(answer.contentType).send(answer.body);
}
