import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { Config } from '../config.ts';
import {
  type Answer,
  askedDecision,
  connectRefusal,
  type HookRequest,
  hookRequest,
  interceptedDecision,
  isOutOfSession,
  readAskAnswer,
  readInterceptAnswer,
} from '../domain/app-hooks.ts';
import { isE164 } from '../domain/phone.ts';
import type { RouteDecision, RouteRequest } from '../domain/routing.ts';
import type { Logger } from '../logger.ts';
import { NumberRepository } from '../store/numbers.ts';
import type { Store } from '../store/store.ts';
import { ensureHookSecret } from './hook-secret.ts';
import { MAX_ANSWER_BYTES, postSigned } from './signed-post.ts';

/**
 * How long a route waits for the app, for its whole exchange with the app's webhooks (both, when
 * ask and intercept both have their say): request, answer and its body. Carriers give a webhook
 * about 5 s before the caller hears silence or an error.
 */
export const HOOK_TIMEOUT_MS = 3000;

export { MAX_ANSWER_BYTES };

/** What came back from a webhook: its JSON, or why there is none to use. */
export type Exchange = { ok: true; body: unknown } | { ok: false; reason: string };

/**
 * POSTs JSON to the app's webhooks, signed with Standard Webhooks headers (`webhook-id`,
 * `webhook-timestamp`, `webhook-signature`), and reads the JSON answer: within the given signal,
 * at most MAX_ANSWER_BYTES, from a 2xx and not a redirect (which could carry the numbers elsewhere).
 */
export class AppWebhookClient {
  private readonly webhook: Webhook;

  constructor(
    secret: string,
    /** The signature's timestamp is checked by the app against its own clock: the wall clock's. */
    private readonly clock: () => number = Date.now,
  ) {
    this.webhook = new Webhook(secret);
  }

  async post(url: string, payload: HookRequest, signal: AbortSignal): Promise<Exchange> {
    const message = { id: `msg_${randomUUID()}`, at: new Date(this.clock()), body: JSON.stringify(payload) };
    const reply = await postSigned(this.webhook, url, message, signal, true);
    if (!reply.ok) return reply;
    if (reply.status < 200 || reply.status > 299) return { ok: false, reason: `status ${reply.status}` };
    if (reply.text === undefined) return { ok: false, reason: `an answer over ${MAX_ANSWER_BYTES} bytes` };
    try {
      return { ok: true, body: JSON.parse(reply.text) };
    } catch {
      return { ok: false, reason: 'malformed: the answer is not JSON' };
    }
  }
}

/** The webhooks configured: `ask` for calls out of session, `intercept` for every connection. */
export interface HookUrls {
  ask?: string;
  intercept?: string;
}

/**
 * The app's say in routing (DESIGN §1 out-of-session calls and intercept). A call out of session
 * is put to `ask`, whose connect answer is used once it passes the pool's rules; every call or text
 * about to be connected, in session or not, is put to `intercept`, which must allow it. No answer,
 * a refusal or anything malformed refuses the call, and the route never waits for the app longer
 * than HOOK_TIMEOUT_MS in all. A failure is logged with its reason and the webhook's URL, never a
 * number or a body.
 */
export class RouteHooks {
  /** Each webhook's URL as the log shows it: without its query, which may carry a token. */
  private readonly shown: HookUrls;

  constructor(
    private readonly urls: HookUrls,
    private readonly client: AppWebhookClient,
    private readonly numbers: NumberRepository,
    private readonly logger: Logger,
  ) {
    this.shown = {
      ask: urls.ask && shownUrl(urls.ask),
      intercept: urls.intercept && shownUrl(urls.intercept),
    };
  }

  /** Whether the app has a say in this decision (false: the route goes on without waiting). */
  consults(decision: RouteDecision): boolean {
    return decision.action === 'reject'
      ? this.urls.ask !== undefined && isOutOfSession(decision)
      : this.urls.intercept !== undefined;
  }

  /**
   * The decision once the app has had its say. `tenantId`: whose the call is (the dialled
   * number's tenant, or the API key's).
   */
  async review(
    request: RouteRequest,
    decision: RouteDecision,
    tenantId: string | null,
  ): Promise<RouteDecision> {
    const signal = AbortSignal.timeout(HOOK_TIMEOUT_MS);
    let reviewed = decision;
    if (this.urls.ask !== undefined && isOutOfSession(decision)) {
      reviewed = await this.ask(this.urls.ask, request, decision, tenantId, signal);
    }
    if (this.urls.intercept !== undefined && reviewed.action !== 'reject') {
      reviewed = await this.intercept(this.urls.intercept, request, reviewed, signal);
    }
    return reviewed;
  }

  private async ask(
    url: string,
    request: RouteRequest,
    refused: RouteDecision,
    tenantId: string | null,
    signal: AbortSignal,
  ): Promise<RouteDecision> {
    // Only the tenant whose pool holds the dialled number has a say about calls to it.
    const dialled = isE164(request.to) ? await this.numbers.findByNumber(request.to) : undefined;
    if (!dialled || dialled.tenantId !== tenantId) return refused;
    const answer = await this.exchange('ask', url, hookRequest(request, null), readAskAnswer, signal);
    if (answer?.action !== 'connect') return refused;
    const [callerId, to] = await Promise.all([
      this.numbers.findByNumber(answer.callerId),
      this.numbers.findByNumber(answer.to),
    ]);
    const refusal = connectRefusal(dialled, callerId, to, request.channel);
    if (refusal) {
      this.failed('ask', `not allowed: ${refusal}`);
      return refused;
    }
    return askedDecision(request, answer);
  }

  private async intercept(
    url: string,
    request: RouteRequest,
    decision: RouteDecision,
    signal: AbortSignal,
  ): Promise<RouteDecision> {
    const payload = hookRequest(request, decision.sessionId);
    const answer = await this.exchange('intercept', url, payload, readInterceptAnswer, signal);
    return answer?.action === 'allow' ? decision : interceptedDecision(decision);
  }

  /** The app's answer read by `read`, or undefined (logged) when it gave none that counts. */
  private async exchange<T>(
    hook: keyof HookUrls,
    url: string,
    payload: HookRequest,
    read: (body: unknown) => Answer<T>,
    signal: AbortSignal,
  ): Promise<T | undefined> {
    const result = await this.client.post(url, payload, signal);
    if (!result.ok) {
      this.failed(hook, result.reason);
      return undefined;
    }
    const answer = read(result.body);
    if (!answer.ok) {
      this.failed(hook, `malformed: ${answer.problem}`);
      return undefined;
    }
    return answer.answer;
  }

  private failed(hook: keyof HookUrls, reason: string): void {
    this.logger.warn(
      { hook, url: this.shown[hook], reason },
      `the ${hook} webhook gave no usable answer: refused`,
    );
  }
}

function shownUrl(url: string): string {
  const { origin, pathname } = new URL(url);
  return origin + pathname;
}

/**
 * The app's say in routing as configured (VEIL_OUT_OF_SESSION=ask:URL, VEIL_INTERCEPT_URL), signed
 * with the secret kept in the database; undefined when neither is set, and routing asks no one.
 */
export async function createRouteHooks(
  config: Config,
  store: Store,
  logger: Logger,
): Promise<RouteHooks | undefined> {
  const urls: HookUrls = {
    ask: config.outOfSession.action === 'ask' ? config.outOfSession.url : undefined,
    intercept: config.interceptUrl,
  };
  if (urls.ask === undefined && urls.intercept === undefined) return undefined;
  const secret = await ensureHookSecret(store.db);
  return new RouteHooks(urls, new AppWebhookClient(secret), new NumberRepository(store.reader), logger);
}
