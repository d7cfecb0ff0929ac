import type { RouteDecision, RouteRequest } from './routing.ts';
import type { Channel } from './session.ts';

/** One call or text routed (or refused): the session's log. */
export interface Interaction {
  id: string;
  tenantId: string | null;
  sessionId: string | null;
  channel: Channel;
  /** The caller's real number. */
  from: string;
  /** The proxy number dialled. */
  to: string;
  /** Who it was connected to, and the caller id shown; null when refused. */
  target: string | null;
  callerId: string | null;
  action: RouteDecision['action'];
  reason: string | null;
  provider: string;
  providerCallId: string | null;
  /** `routed` or `refused` at first; then the carrier's own call or message status. */
  status: string;
  durationSeconds: number | null;
  /** An MMS's media URLs, as received; empty for a call or a plain text. */
  media: string[];
  /** The call's recording, once the carrier has reported on it; null until then, and for a text. */
  recording: Recording | null;
  createdAt: number;
  updatedAt: number;
}

/** A call's recording as the carrier reports it (the carrier keeps the audio; Veil keeps where it is). */
export interface Recording {
  /** Where the carrier serves the audio; null when it has none (a recording `absent` or `failed`). */
  url: string | null;
  durationSeconds: number | null;
  /** The carrier's recording status, e.g. `completed` or `absent`. */
  status: string;
}

/**
 * A number as the log keeps it: a carrier's field may hold anything (the carrier adapters have
 * already dropped the NUL that PostgreSQL refuses), but a row keeps no more than an E.164 number's
 * length with room to spare.
 */
const MAX_LOGGED_NUMBER = 32;
const asLogged = (number: string) => number.slice(0, MAX_LOGGED_NUMBER);

/** The log entry for a routing decision. */
export function interactionOf(
  id: string,
  request: RouteRequest,
  decision: RouteDecision,
  tenantId: string | null,
  provider: string,
  providerCallId: string | null,
  now: number,
): Interaction {
  const refused = decision.action === 'reject';
  const routed = decision.action === 'connect' || decision.action === 'forward';
  return {
    id,
    tenantId,
    sessionId: decision.sessionId,
    channel: request.channel,
    from: asLogged(request.from),
    to: asLogged(request.to),
    target: routed ? decision.to : null,
    callerId:
      decision.action === 'connect'
        ? decision.callerId
        : decision.action === 'forward'
          ? decision.from
          : null,
    action: decision.action,
    reason: refused ? decision.reason : null,
    provider,
    providerCallId,
    status: refused ? 'refused' : 'routed',
    durationSeconds: null,
    media: request.channel === 'sms' && request.media ? [...request.media] : [],
    recording: null,
    createdAt: now,
    updatedAt: now,
  };
}
