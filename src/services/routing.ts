import { newId } from '../domain/ids.ts';
import { interactionOf } from '../domain/interaction.ts';
import { decideRoute, type OutOfSession, type RouteDecision, type RouteRequest } from '../domain/routing.ts';
import type { InteractionLog, Slide } from '../store/interactions.ts';
import type { NumberRepository } from '../store/numbers.ts';
import type { RouteLookup } from '../store/route-lookup.ts';

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
  ) {}

  async route(request: RouteRequest, context: RouteContext): Promise<RouteDecision> {
    const now = this.clock();
    let participation = await this.lookup.find(request.from, request.to);
    // Another tenant's session is as good as none: its numbers are not this key's to route.
    if (participation && context.tenantId !== undefined && participation.tenantId !== context.tenantId) {
      participation = undefined;
    }
    const decision = decideRoute(request, participation, now, this.outOfSession);
    const tenantId =
      participation?.tenantId ?? context.tenantId ?? (await this.numbers.tenantOf(request.to)) ?? null;
    let slide: Slide | undefined;
    if (
      participation?.ttlMode === 'sliding' &&
      participation.ttlSeconds !== null &&
      decision.action !== 'reject'
    ) {
      slide = { sessionId: participation.sessionId, expiresAt: now + participation.ttlSeconds * 1000 };
    }
    this.log.record(
      interactionOf(
        newId('int', now),
        request,
        decision,
        tenantId,
        context.provider,
        context.providerCallId ?? null,
        now,
      ),
      slide,
    );
    return decision;
  }

  /** Applies a carrier's call or message status to the interaction it belongs to. */
  status(
    provider: string,
    providerCallId: string,
    status: string,
    durationSeconds: number | null,
  ): Promise<boolean> {
    return this.log.updateStatus(provider, providerCallId, status, durationSeconds, this.clock());
  }
}
