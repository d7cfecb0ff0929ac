import type { Channel } from './session.ts';

/** A call or text to route, in the neutral form every carrier webhook is translated into. */
export interface RouteRequest {
  from: string;
  to: string;
  channel: Channel;
  body?: string;
}

/** The open participation of the caller on the dialed proxy, with its session and counterpart. */
export interface Participation {
  participantId: string;
  sessionId: string;
  tenantId: string;
  expiresAt: number;
  record: boolean;
  channels: readonly Channel[];
  maxCallSeconds: number | null;
  canInitiate: boolean;
  revealNumber: boolean;
  /** The caller's real number. */
  number: string;
  /** The other participant, absent while a replacement is pending. */
  other: { participantId: string; number: string; proxyNumber: string } | null;
}

export const REJECT_REASONS = [
  'no_session',
  'channel_not_allowed',
  'not_allowed',
  'no_counterpart',
  'intercepted',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export type RouteDecision =
  | {
      action: 'connect';
      to: string;
      callerId: string;
      sessionId: string | null;
      record: boolean;
      maxCallSeconds: number | null;
    }
  | { action: 'forward'; to: string; from: string; body: string; sessionId: string | null }
  | { action: 'reject'; reason: RejectReason; sessionId: string | null };

/**
 * Where calls from outside any session go: refused (default), a fixed number such as a support
 * line, or where the app's webhook at `url` says. The rule here refuses what is to be asked: that
 * is the answer when the app gives none (the Router asks, services/app-hooks.ts).
 */
export type OutOfSession =
  | { action: 'reject' }
  | { action: 'forward'; to: string }
  | { action: 'ask'; url: string };

/**
 * The routing rule of DESIGN §1. A call from F to P is connected only within F's open session on P,
 * to the other participant, showing the proxy that participant knows. Anything else is refused or
 * sent to the out-of-session destination: never to a participant of some other session.
 */
export function decideRoute(
  request: RouteRequest,
  participation: Participation | undefined,
  now: number,
  outOfSession: OutOfSession,
): RouteDecision {
  if (!participation || participation.expiresAt <= now) return outside(request, outOfSession);
  const sessionId = participation.sessionId;
  if (!participation.channels.includes(request.channel)) {
    return { action: 'reject', reason: 'channel_not_allowed', sessionId };
  }
  if (!participation.canInitiate) return { action: 'reject', reason: 'not_allowed', sessionId };
  const other = participation.other;
  if (!other) return { action: 'reject', reason: 'no_counterpart', sessionId };
  const callerId = participation.revealNumber ? participation.number : other.proxyNumber;
  if (request.channel === 'sms') {
    return { action: 'forward', to: other.number, from: callerId, body: request.body ?? '', sessionId };
  }
  return {
    action: 'connect',
    to: other.number,
    callerId,
    sessionId,
    record: participation.record,
    maxCallSeconds: participation.maxCallSeconds,
  };
}

function outside(request: RouteRequest, outOfSession: OutOfSession): RouteDecision {
  if (outOfSession.action !== 'forward') return { action: 'reject', reason: 'no_session', sessionId: null };
  // The caller reaches the configured line, shown the proxy they dialled: their own number is not passed on.
  if (request.channel === 'sms') {
    return {
      action: 'forward',
      to: outOfSession.to,
      from: request.to,
      body: request.body ?? '',
      sessionId: null,
    };
  }
  return {
    action: 'connect',
    to: outOfSession.to,
    callerId: request.to,
    sessionId: null,
    record: false,
    maxCallSeconds: null,
  };
}
