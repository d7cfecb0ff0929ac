import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RouteDecision } from '../domain/routing.ts';
import type { Channel } from '../domain/session.ts';

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
    /** The routing decision the request was answered with, for its log line. */
    decision?: LoggedDecision;
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
 */
export function registerRequestLog(app: FastifyInstance): void {
  app.addHook('onResponse', (request, reply, done) => {
    const { decision } = request;
    // A level that is off is a no-op in pino: the line costs nothing more than this object.
    app.log[decision ? 'debug' : 'info'](
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        key: request.apiKey?.id,
        ...decision,
      },
      decision ? 'routed' : 'request',
    );
    done();
  });
}
