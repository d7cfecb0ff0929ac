import type { Channel, SessionMode } from './session.ts';

/** A call or text to route, in the neutral form every carrier webhook is translated into. */
export interface RouteRequest {
  from: string;
  to: string;
  channel: Channel;
  body?: string;
  /** The extension the caller keyed, when a shared number asked for one. */
  digits?: string;
  /** An MMS's media URLs, for sms: at most MAX_MEDIA, each a media URL (src/domain/media.ts). */
  media?: readonly string[];
}

/** The open participation of the caller on the dialed proxy, with its session and counterpart. */
export interface Participation {
  participantId: string;
  sessionId: string;
  tenantId: string;
  mode: SessionMode;
  expiresAt: number;
  record: boolean;
  channels: readonly Channel[];
  maxCallSeconds: number | null;
  canInitiate: boolean;
  revealNumber: boolean;
  /** The caller's real number. */
  number: string;
  /** The caller's real number is on the tenant's blocklist. */
  callerBlocked: boolean;
  /** The other participant, absent while a replacement is pending. */
  other: { participantId: string; number: string; proxyNumber: string } | null;
  /** The other participant's real number is on the tenant's blocklist (false without one). */
  otherBlocked: boolean;
}

export const REJECT_REASONS = [
  'no_session',
  'channel_not_allowed',
  'not_allowed',
  'no_counterpart',
  'wrong_extension',
  'blocked',
  'intercepted',
  /** The session connected as many calls this hour as VEIL_MAX_CALLS_PER_SESSION_HOUR allows. */
  'call_limit',
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
  | {
      action: 'forward';
      to: string;
      from: string;
      body: string;
      /** The media to relay with the text; present only for an MMS. */
      media?: string[];
      sessionId: string | null;
    }
  | { action: 'gather'; numDigits: number; prompt: string; message?: Announcement; sessionId: null }
  | { action: 'reject'; reason: RejectReason; message?: Announcement; sessionId: string | null };

/**
 * What a caller hears: `text` spoken in `language` with `voice` (both as the carrier names them,
 * e.g. `en-GB`, `Polly.Amy`), or the recording at `audioUrl` played instead, `text` then being
 * what it says. On a decision, `message` is what the caller is told before the call ends (a
 * reject) or is asked (a gather, whose `prompt` is its text); absent, the carrier's default.
 */
export interface Announcement {
  text: string;
  language?: string;
  voice?: string;
  audioUrl?: string;
}

/** Bounds of an announcement's fields, shared by the API's schema and the configuration. */
export const ANNOUNCEMENT_LIMITS = {
  text: 500,
  /** A BCP 47 tag as carriers take them: `en`, `en-GB`, `cmn-Hans-CN`. */
  language: '^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$',
  /** A carrier's voice name: `alice`, `Polly.Amy`, `en-GB-Standard-A`, `WOMAN`. */
  voice: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
} as const;

export const DEFAULT_GATHER_PROMPT = 'Please enter the extension you were given.';
export const DEFAULT_REJECT_MESSAGE = 'The number you have dialled is not available.';

/** What a caller is asked on a shared number (extension fallback). */
export interface Gather {
  numDigits: number;
  prompt: string;
  /** The prompt as heard: its text in a language and voice, or a recording. */
  message?: Announcement;
}

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
 *
 * A number on the blocklist is never connected: not as the caller, not as the one called, and not
 * to the out-of-session destination. `strangerBlocked` says whether a caller in no session is on
 * the blocklist of the dialled number's tenant; it matters only when out-of-session calls are not
 * simply refused, and the caller of a session that has ended is judged by its participation.
 */
export function decideRoute(
  request: RouteRequest,
  participation: Participation | undefined,
  now: number,
  outOfSession: OutOfSession,
  strangerBlocked = false,
): RouteDecision {
  if (!participation || participation.expiresAt <= now) {
    return outside(request, outOfSession, participation ? participation.callerBlocked : strangerBlocked);
  }
  const sessionId = participation.sessionId;
  if (participation.callerBlocked || participation.otherBlocked) {
    return { action: 'reject', reason: 'blocked', sessionId };
  }
  if (!participation.channels.includes(request.channel)) {
    return { action: 'reject', reason: 'channel_not_allowed', sessionId };
  }
  if (!participation.canInitiate) return { action: 'reject', reason: 'not_allowed', sessionId };
  const other = participation.other;
  if (!other) return { action: 'reject', reason: 'no_counterpart', sessionId };
  const callerId = participation.revealNumber ? participation.number : other.proxyNumber;
  if (request.channel === 'sms') {
    return {
      action: 'forward',
      to: other.number,
      from: callerId,
      body: request.body ?? '',
      ...mediaOf(request),
      sessionId,
    };
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

/**
 * A call to a number shared by extension with no direct participation of the caller: the caller is
 * asked for their code, and the code leads only to their own participation on that number. A
 * wrong code and a stranger's code are refused alike, so that guessing tells nothing.
 */
export function decideExtension(
  request: RouteRequest,
  keyed: Participation | undefined,
  now: number,
  gather: Gather,
  outOfSession: OutOfSession,
): RouteDecision {
  if (request.digits === undefined) return { action: 'gather', ...gather, sessionId: null };
  if (!keyed || keyed.number !== request.from) {
    return { action: 'reject', reason: 'wrong_extension', sessionId: null };
  }
  return decideRoute(request, keyed, now, outOfSession);
}

/**
 * A `dedicated` session's number as a caller meets it. Anyone who is not the owner reaches the
 * owner, shown the number they dialled; the owner reaches the most recent caller (within the
 * callback window, which the caller of this function applied), shown it too, or nobody.
 * `blocked`: whether the one who is not the owner (the caller, or the one called back) is on the
 * blocklist.
 */
export function dedicatedParticipation<P extends Participation>(
  owner: P,
  caller: string,
  dialled: string,
  lastCaller: string | undefined,
  blocked = false,
): P {
  if (caller === owner.number) {
    return {
      ...owner,
      otherBlocked: blocked,
      other: lastCaller
        ? { participantId: owner.participantId, number: lastCaller, proxyNumber: dialled }
        : null,
    };
  }
  return {
    ...owner,
    number: caller,
    callerBlocked: blocked,
    otherBlocked: owner.callerBlocked,
    canInitiate: true,
    revealNumber: false,
    other: { participantId: owner.participantId, number: owner.number, proxyNumber: dialled },
  };
}

function outside(request: RouteRequest, outOfSession: OutOfSession, callerBlocked: boolean): RouteDecision {
  if (outOfSession.action === 'reject') return { action: 'reject', reason: 'no_session', sessionId: null };
  if (callerBlocked) return { action: 'reject', reason: 'blocked', sessionId: null };
  // Refused here, the Router then asks the app (services/app-hooks.ts).
  if (outOfSession.action === 'ask') return { action: 'reject', reason: 'no_session', sessionId: null };
  // The caller reaches the configured line, shown the proxy they dialled: their own number is not passed on.
  if (request.channel === 'sms') {
    return {
      action: 'forward',
      to: outOfSession.to,
      from: request.to,
      body: request.body ?? '',
      ...mediaOf(request),
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

/** A text's media for its forward decision: none for a plain text, so that its decision stays as it was. */
function mediaOf(request: RouteRequest): { media?: string[] } {
  return request.media?.length ? { media: [...request.media] } : {};
}
