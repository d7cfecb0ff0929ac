import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidRequestError } from '../domain/errors.ts';
import {
  bodyFormatOf,
  type CarrierAdapter,
  RelayError,
  type WebhookPath,
  type WebhookReply,
} from '../providers/carrier.ts';
import type { Taken } from '../services/replay-guard.ts';
import type { Veil } from '../veil.ts';
import { errorBody } from './errors.ts';
import { noteDecision } from './request-log.ts';

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: string;
    /** A webhook's first taking (services/replay-guard.ts), settled with the answer it is sent. */
    receipt?: Taken;
  }
  interface FastifyContextConfig {
    /** Which of a carrier's webhooks the route serves: it decides the one body format taken. */
    webhookPath?: WebhookPath;
  }
}

const WEBHOOK_PATHS: readonly WebhookPath[] = ['voice', 'sms', 'status', 'recording'];

/** The one media type each body format arrives in (a charset parameter may follow). */
const MEDIA_TYPE = {
  form: 'application/x-www-form-urlencoded',
  json: 'application/json',
} as const;

/**
 * Most parameters a form webhook may carry. Twilio sends a few dozen; the bound keeps a body of
 * many thousands (the 1 MiB body limit allows half a million) from costing a sort and an HMAC per
 * candidate URL the signature is checked against.
 */
export const MAX_FORM_PARAMETERS = 1000;

/**
 * /webhooks/:provider/voice, /sms and /status for every enabled carrier, and /recording for one
 * that reports recordings, through one mechanism:
 * take the body only in the one format the carrier uses on that path (else 415), verify the
 * carrier's signature over what was received and the public URL (never the Host header), translate
 * to the neutral request, route, answer in the carrier's language. A request that fails
 * verification gets 403 and touches nothing; so does a request already taken (a replay), but for
 * the carrier's own retry of one it had no answer to, which gets that answer (replay-guard.ts).
 */
export async function webhookRoutes(app: FastifyInstance, { veil }: { veil: Veil }): Promise<void> {
  for (const carrier of veil.carriers.values()) {
    // One context per carrier, so each parses its own formats and no other.
    await app.register(async (routes) => carrierRoutes(routes, carrier, veil));
  }
}

async function carrierRoutes(app: FastifyInstance, carrier: CarrierAdapter, veil: Veil): Promise<void> {
  app.removeAllContentTypeParsers();
  const formats = new Set(WEBHOOK_PATHS.map((path) => bodyFormatOf(carrier, path)));
  for (const format of formats) {
    app.addContentTypeParser(MEDIA_TYPE[format], { parseAs: 'string' }, (request, body, done) => {
      request.rawBody = body as string;
      try {
        done(null, format === 'form' ? formParameters(body as string) : jsonObject(body as string));
      } catch (error) {
        done(error as Error, undefined);
      }
    });
  }
  // Before the body is read, each path takes its one format: a JSON body on a form path (or none
  // at all) is never parsed, even where the carrier's other paths take JSON.
  app.addHook('onRequest', async (request, reply) => {
    const path = request.routeOptions.config.webhookPath;
    if (!path) return;
    const accepted = MEDIA_TYPE[bodyFormatOf(carrier, path)];
    if (mediaType(request.headers['content-type']) !== accepted) {
      const who = formats.size === 1 ? carrier.name : `${carrier.name} ${path}`;
      return reply
        .status(415)
        .send(errorBody('unsupported_media_type', `${who} webhooks take ${accepted} only`));
    }
  });

  // The answer settles the request's receipt: kept for the carrier's retry, or given back on a 5xx
  // (an error the carrier delivers the request again for, which is then taken).
  app.addHook('onSend', async (request, reply, payload) => {
    request.receipt?.settle(
      reply.statusCode < 500 && typeof payload === 'string'
        ? {
            statusCode: reply.statusCode,
            contentType: String(reply.getHeader('content-type')),
            body: payload,
          }
        : undefined,
    );
    return payload;
  });

  // What the carrier's health counts of its webhooks: handled, or failed here (5xx). A refused
  // signature (403) counts as neither: a forger cannot make a carrier look unwell.
  app.addHook('onResponse', async (request, reply) => {
    if (!request.routeOptions.config.webhookPath || reply.statusCode === 403) return;
    veil.health.observe(carrier.name, reply.statusCode < 500, reply.elapsedTime);
  });

  const base = `/webhooks/${carrier.name}`;
  const preHandler = verifier(carrier, veil);
  const verified = (path: WebhookPath) => ({
    preHandler,
    schema: { hide: true },
    config: { webhookPath: path, carrier: carrier.name },
  });
  app.post(`${base}/voice`, verified('voice'), async (request, reply) => {
    const inbound = carrier.voice(params(request), request.query as Record<string, unknown>);
    const decision = await veil.router.route(inbound.request, {
      provider: carrier.name,
      providerCallId: inbound.providerCallId,
    });
    noteDecision(request, carrier.name, 'voice', decision);
    return send(reply, carrier.renderVoice(decision, inbound));
  });
  app.post(`${base}/sms`, verified('sms'), async (request, reply) => {
    const inbound = carrier.sms(params(request));
    if (!inbound) return send(reply, carrier.acknowledge());
    const decision = await veil.router.route(inbound.request, {
      provider: carrier.name,
      providerCallId: inbound.providerCallId,
    });
    noteDecision(request, carrier.name, 'sms', decision);
    try {
      // A relay through the carrier's API goes through its circuit: while it is down, at once 502.
      // A refused text asks nothing of the carrier, so it is no trial of it: through the circuit,
      // it would close an open one (half-open) and break up a run of failures.
      const answer =
        decision.action === 'forward'
          ? await veil.health.run(
              carrier.name,
              async () => carrier.renderSms(decision),
              (message) => new RelayError(message),
            )
          : await carrier.renderSms(decision);
      return send(reply, answer);
    } catch (error) {
      if (!(error instanceof RelayError)) throw error;
      // A non-2xx answer has the carrier deliver the text again. The reason names no number.
      request.log.warn(
        { provider: carrier.name, sessionId: decision.sessionId, reason: error.message },
        'text not relayed',
      );
      return reply
        .status(502)
        .send(errorBody('relay_failed', `${carrier.name} did not take the text; retry`));
    }
  });
  app.post(`${base}/status`, verified('status'), async (request, reply) => {
    const report = carrier.status(params(request));
    if (report) await veil.router.status(carrier.name, report);
    return send(reply, carrier.acknowledge());
  });
  const recording = carrier.recording?.bind(carrier);
  if (recording) {
    app.post(`${base}/recording`, verified('recording'), async (request, reply) => {
      const report = recording(params(request));
      if (report && !(await veil.router.recording(carrier.name, report))) {
        // Acknowledged all the same: an error would only have the carrier retry, or report a
        // failure, for a call Veil has no row of. The report names no number; its call id says
        // which call it was (cut to a call id's length, whatever was sent).
        request.log.warn(
          { provider: carrier.name, providerCallId: report.providerCallId.slice(0, 64) },
          'recording reported for a call with no interaction',
        );
      }
      return send(reply, carrier.acknowledge());
    });
  }
}

function mediaType(header: string | undefined): string | undefined {
  return header?.split(';')[0]?.trim().toLowerCase();
}

/**
 * An application/x-www-form-urlencoded body as the flat parameters it carries, each name once with
 * one string value, decoded as the form encoding defines (`+` is a space, then percent-decoding as
 * UTF-8). Twilio signs these decoded values, so a body re-encoded to the same values (`%2b` for
 * `%2B`) carries the same request and verifies; what it must not do is change the parameters. So a
 * name given twice is refused rather than merged (the twilio package would sign the distinct values
 * of an array, letting a second `From` ride along), a malformed escape is refused rather than kept
 * literally, and nothing else (query string, JSON, bracket nesting) adds to them.
 */
export function formParameters(body: string): Record<string, string> {
  const pairs = body.split('&', MAX_FORM_PARAMETERS + 1);
  if (pairs.length > MAX_FORM_PARAMETERS) {
    throw new InvalidRequestError(`a webhook form carries at most ${MAX_FORM_PARAMETERS} parameters`);
  }
  const parameters = new Map<string, string>();
  for (const pair of pairs) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = formDecode(eq === -1 ? pair : pair.slice(0, eq));
    // The name only, never the value: values are phone numbers and texts.
    if (parameters.has(name))
      throw new InvalidRequestError(`form parameter ${name} is given more than once`, name);
    parameters.set(name, eq === -1 ? '' : formDecode(pair.slice(eq + 1)));
  }
  // fromEntries defines own properties: a parameter named __proto__ stays a parameter.
  return Object.fromEntries(parameters);
}

function formDecode(text: string): string {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    throw new InvalidRequestError('the form body has a malformed percent-escape');
  }
}

function jsonObject(body: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new InvalidRequestError('body is not valid JSON');
  }
  return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
}

function verifier(carrier: CarrierAdapter, veil: Veil) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const url = veil.config.publicUrl + request.url;
    const refused = await refusal(carrier, request, url);
    if (refused) {
      request.webhookResult = 'refused_signature';
      request.log.warn({ provider: carrier.name, url, ...refused }, 'webhook signature refused');
      return reply.status(403).send(errorBody('forbidden', `invalid or missing ${carrier.name} signature`));
    }
    const signed = { url, headers: request.headers, rawBody: request.rawBody ?? '', params: params(request) };
    const taken = await veil.replays.take(carrier.name, carrier.replayKey(signed));
    if (taken.first) {
      request.receipt = taken;
      return;
    }
    if (taken.answer) {
      request.webhookResult = 'retried';
      const { statusCode, contentType, body } = taken.answer;
      return reply.status(statusCode).type(contentType).send(body);
    }
    request.webhookResult = 'replay';
    request.log.warn(
      { provider: carrier.name, url, reason: 'the same signed request was taken before: a replay' },
      'webhook signature refused',
    );
    return reply
      .status(403)
      .send(errorBody('forbidden', `${carrier.name} signature already used: a replayed request is refused`));
  };
}

/**
 * Why the request's signature is refused, for the operator's log (never the secret or the
 * signature itself), or undefined when it is good for `url`.
 */
async function refusal(
  carrier: CarrierAdapter,
  request: FastifyRequest,
  url: string,
): Promise<{ reason: string; signatureMatchesUrl?: string } | undefined> {
  const rawBody = request.rawBody;
  if (rawBody === undefined) return { reason: 'no body to verify' };
  const signedFor = (candidate: string) =>
    carrier.verify({ url: candidate, headers: request.headers, rawBody, params: params(request) });
  const verification = await signedFor(url);
  if (verification.ok) return undefined;
  // The commonest cause is a VEIL_PUBLIC_URL that is not the URL the carrier calls (http for
  // https, a proxy's host): name the URL the signature is good for, though it is never accepted.
  for (const other of otherUrls(request, url)) {
    if ((await signedFor(other)).ok) return { reason: verification.reason, signatureMatchesUrl: other };
  }
  return { reason: verification.reason };
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
