import { isE164 } from './phone.ts';
import type { PoolNumber } from './pool.ts';
import type { RouteDecision, RouteRequest } from './routing.ts';
import type { Channel } from './session.ts';

/**
 * The rules of the app's two routing webhooks (DESIGN §1, §6), free of HTTP: `ask` decides where a
 * call from outside any session goes, `intercept` may veto any call or text about to be connected.
 * What they are sent, which answers count and the decision an answer makes.
 */

/** What either webhook is POSTed: who calls which proxy, how; never the text of a message. */
export interface HookRequest {
  from: string;
  to: string;
  channel: Channel;
  /** The session the interaction belongs to, when it belongs to one. */
  sessionId?: string;
}

export type AskAnswer = { action: 'connect'; to: string; callerId: string } | { action: 'reject' };
export type InterceptAnswer = { action: 'allow' } | { action: 'reject' };

/** An answer the app gave, or what is wrong with it (for the operator's log: it names no number). */
export type Answer<T> = { ok: true; answer: T } | { ok: false; problem: string };

export function hookRequest(request: RouteRequest, sessionId: string | null): HookRequest {
  const { from, to, channel } = request;
  return sessionId === null ? { from, to, channel } : { from, to, channel, sessionId };
}

/** True for the decision `ask` is about: no open session for this caller on this proxy. */
export function isOutOfSession(decision: RouteDecision): boolean {
  return decision.action === 'reject' && decision.reason === 'no_session';
}

/**
 * The app's answer to `ask`: `{"action":"connect","to":"+E164","callerId":"+E164"}` or
 * `{"action":"reject"}`. Other fields are ignored; anything else is no answer.
 */
export function readAskAnswer(body: unknown): Answer<AskAnswer> {
  if (!isObject(body)) return { ok: false, problem: 'the answer is not a JSON object' };
  if (body.action === 'reject') return { ok: true, answer: { action: 'reject' } };
  if (body.action !== 'connect') return { ok: false, problem: 'action is neither connect nor reject' };
  const { to, callerId } = body;
  if (typeof to !== 'string' || !isE164(to)) return { ok: false, problem: 'to is not an E.164 number' };
  if (typeof callerId !== 'string' || !isE164(callerId)) {
    return { ok: false, problem: 'callerId is not an E.164 number' };
  }
  return { ok: true, answer: { action: 'connect', to, callerId } };
}

/** The app's answer to `intercept`: `{"action":"allow"}` or `{"action":"reject"}`; anything else is no answer. */
export function readInterceptAnswer(body: unknown): Answer<InterceptAnswer> {
  if (!isObject(body)) return { ok: false, problem: 'the answer is not a JSON object' };
  if (body.action === 'allow' || body.action === 'reject')
    return { ok: true, answer: { action: body.action } };
  return { ok: false, problem: 'action is neither allow nor reject' };
}

/**
 * Why the app may not connect a stranger's call as it answered, or undefined when it may. The
 * answer chooses the caller id the callee sees, so it must be one of the numbers Veil masks with:
 * a pool number of the tenant whose number was dialled, in service, on the dialled number's
 * carrier (an outbound leg can only show a number its carrier owns), able to carry the channel.
 * And the call must leave the pool: a pool number as `to` would come straight back as a new
 * call, out of session again, and be asked about again.
 *
 * `callerId`, `to`: the pool's entries for the answer's numbers, if any; `dialled`: the proxy called.
 */
export function connectRefusal(
  dialled: PoolNumber,
  callerId: PoolNumber | undefined,
  to: PoolNumber | undefined,
  channel: Channel,
): string | undefined {
  if (to) return 'to is a pool number';
  if (!callerId || callerId.tenantId !== dialled.tenantId) {
    return "callerId is not a number of the dialled number's pool";
  }
  if (callerId.status === 'retired') return 'callerId is a retired number';
  if (callerId.provider !== dialled.provider) return "callerId is not on the dialled number's carrier";
  if (!callerId.capabilities.includes(channel)) return `callerId cannot carry ${channel}`;
  return undefined;
}

/**
 * The decision an `ask` connect makes: a call connected to `to` showing `callerId`, a text
 * forwarded to `to` from `callerId`. Out of session, so no session, no recording, no time limit.
 */
export function askedDecision(
  request: RouteRequest,
  answer: { to: string; callerId: string },
): RouteDecision {
  if (request.channel === 'sms') {
    return {
      action: 'forward',
      to: answer.to,
      from: answer.callerId,
      body: request.body ?? '',
      sessionId: null,
    };
  }
  return {
    action: 'connect',
    to: answer.to,
    callerId: answer.callerId,
    sessionId: null,
    record: false,
    maxCallSeconds: null,
  };
}

/** A decision the intercept webhook vetoed (or did not allow in time): refused, in its session still. */
export function interceptedDecision(decision: RouteDecision): RouteDecision {
  return { action: 'reject', reason: 'intercepted', sessionId: decision.sessionId };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
