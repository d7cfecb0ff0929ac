import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RouteDecision } from '../domain/routing.ts';
import type { Channel } from '../domain/session.ts';
import type { Metrics, WebhookResult } from '../services/metrics.ts';

/** A routing decision as its request's log line shows it: no number, only what was decided. */
export interface LoggedDecision {
  provider: string;
  channel: Channel;
  action: RouteDecision['action'];
  reason: string | null;
  session: string | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The routing decision the request was answered with, for its log line and metrics. */
    decision?: LoggedDecision;
    /** How a carrier webhook was refused or answered again, when not by its handler (http/webhooks.ts). */
    webhookResult?: WebhookResult;
  }
  interface FastifyContextConfig {
    /** The carrier whose webhook the route is (http/webhooks.ts), for its metrics. */
    carrier?: string;
  }
}

/** Notes a routing decision on its request, for the request's log line. */
export function noteDecision(
  request: FastifyRequest,
  provider: string,
  channel: Channel,
  decision: RouteDecision,
): void {
  request.decision = {
    provider,
    channel,
    action: decision.action,
    reason: decision.action === 'reject' ? decision.reason : null,
    session: decision.sessionId,
  };
}

/**
 * One line per request once it is answered: its method, its route's pattern (never the URL, which
 * may hold a number), the status, the time taken and the acting key; a routing request adds the
 * carrier, the action and the reason. Routing requests log at `debug`: a line costs some 20 µs
 * (the mask that keeps numbers out of the log reads every line), a tenth of a routed call, and the
 * interaction log already keeps each decision. Every other request logs at `info`.
 *
 * The same hook counts for `metrics`: each routing decision and its request's time, and each
 * carrier webhook's result. No more than that per request: increments and one histogram
 * observation.
 */
export function registerRequestLog(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', (request, reply, done) => {
    const { decision } = request;
    const status = reply.statusCode;
    if (decision) {
      metrics.routed(
        decision.provider,
        decision.channel,
        decision.action,
        decision.reason,
        reply.elapsedTime,
      );
    }
    const { carrier, webhookPath } = request.routeOptions.config;
    if (carrier && webhookPath) {
      metrics.webhook(carrier, webhookPath, request.webhookResult ?? webhookResultOf(status));
    }
    // A level that is off is a no-op in pino: the line costs nothing more than this object.
    app.log[decision ? 'debug' : 'info'](
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        key: request.apiKey?.id,
        ...decision,
      },
      decision ? 'routed' : 'request',
    );
    done();
  });
}

/** A webhook's result by its answer's status, when no step before its handler decided it. */
function webhookResultOf(status: number): WebhookResult {
  if (status >= 500) return 'error';
  return status >= 400 ? 'invalid' : 'accepted';
}
