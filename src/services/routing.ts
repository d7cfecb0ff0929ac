import { newId } from '../domain/ids.ts';
import { interactionOf } from '../domain/interaction.ts';
import { isE164 } from '../domain/phone.ts';
import { decideRoute, type OutOfSession, type RouteDecision, type RouteRequest } from '../domain/routing.ts';
import type { InteractionLog, Slide } from '../store/interactions.ts';
import type { NumberRepository } from '../store/numbers.ts';
import type { RouteLookup } from '../store/route-lookup.ts';
import type { RouteHooks } from './app-hooks.ts';

/** A carrier's report on a call or text after the fact, with the call's numbers when it gives them. */
export interface CallStatus {
  providerCallId: string;
  status: string;
  durationSeconds: number | null;
  call?: RouteRequest;
}

export interface RouteContext {
  /** The API key's tenant; absent for carrier webhooks, where the dialled number says whose it is. */
  tenantId?: string;
  provider: string;
  providerCallId?: string;
}

/**
 * Routes calls and texts: one indexed lookup, the domain's decision, and an interaction entry
 * recorded without waiting for the write (see InteractionLog).
 */
export class Router {
  constructor(
    private readonly lookup: RouteLookup,
    private readonly numbers: NumberRepository,
    private readonly log: InteractionLog,
    private readonly outOfSession: OutOfSession,
    private readonly clock: () => number = Date.now,
    /** The app's webhooks (ask, intercept), when configured: they have their say on each route. */
    private readonly hooks?: RouteHooks,
  ) {}

  async route(request: RouteRequest, context: RouteContext): Promise<RouteDecision> {
    const now = this.clock();
    const { decision, interaction, slide } = await this.decide(request, context, now, this.hooks);
    this.log.record(interaction, slide);
    return decision;
  }

  /**
   * Applies a carrier's call or message status to the interaction it belongs to. When there is
   * none (the process was killed between answering the call and writing its row, see
   * InteractionLog), a report that names the call's numbers re-creates the row, decided again as
   * of now: an answered call is never missing from the log. False when nothing could be applied.
   */
  async status(provider: string, report: CallStatus): Promise<boolean> {
    const { providerCallId, status, durationSeconds, call } = report;
    const now = this.clock();
    if (await this.log.updateStatus(provider, providerCallId, status, durationSeconds, now)) return true;
    if (!call) return false;
    const { interaction } = await this.decide(call, { provider, providerCallId }, now);
    this.log.record({ ...interaction, status, durationSeconds });
    await this.log.flush();
    return true;
  }

  /**
   * The decision for a call or text and its log entry: one indexed lookup and the domain's rule,
   * then the app's say when `hooks` gives it one (not for a status report's re-decision).
   */
  private async decide(request: RouteRequest, context: RouteContext, now: number, hooks?: RouteHooks) {
    // A carrier may send anything as a number ("anonymous", junk): what is not E.164 is in no
    // session and owned by no one, and is not worth a lookup.
    const known = isE164(request.from) && isE164(request.to);
    let participation = known ? await this.lookup.find(request.from, request.to) : undefined;
    // Another tenant's session is as good as none: its numbers are not this key's to route.
    if (participation && context.tenantId !== undefined && participation.tenantId !== context.tenantId) {
      participation = undefined;
    }
    let decision = decideRoute(request, participation, now, this.outOfSession);
    const tenantId =
      participation?.tenantId ??
      context.tenantId ??
      (isE164(request.to) ? await this.numbers.tenantOf(request.to) : undefined) ??
      null;
    if (hooks?.consults(decision)) decision = await hooks.review(request, decision, tenantId);
    let slide: Slide | undefined;
    if (
      participation?.ttlMode === 'sliding' &&
      participation.ttlSeconds !== null &&
      decision.action !== 'reject'
    ) {
      slide = { sessionId: participation.sessionId, expiresAt: now + participation.ttlSeconds * 1000 };
    }
    const interaction = interactionOf(
      newId('int', now),
      request,
      decision,
      tenantId,
      context.provider,
      context.providerCallId ?? null,
      now,
    );
    return { decision, interaction, slide };
  }
}
