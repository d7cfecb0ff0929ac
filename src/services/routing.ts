import { newId } from '../domain/ids.ts';
import { interactionOf, type Recording } from '../domain/interaction.ts';
import { isE164 } from '../domain/phone.ts';
import {
  type Announcement,
  decideExtension,
  decideRoute,
  dedicatedParticipation,
  type Gather,
  type OutOfSession,
  type RouteDecision,
  type RouteRequest,
} from '../domain/routing.ts';
import { WindowCap } from '../domain/window-cap.ts';
import type { BlocklistRepository } from '../store/blocklist.ts';
import type { InteractionLog, Slide } from '../store/interactions.ts';
import type { RouteLookup, RouteParticipation } from '../store/route-lookup.ts';
import type { RouteHooks } from './app-hooks.ts';

/** A carrier's report on a call or text after the fact, with the call's numbers when it gives them. */
export interface CallStatus {
  providerCallId: string;
  status: string;
  durationSeconds: number | null;
  call?: RouteRequest;
}

/** A carrier's report on a call's recording, after the call. */
export interface CallRecording {
  providerCallId: string;
  recording: Recording;
}

export interface RouteContext {
  /** The API key's tenant; absent for carrier webhooks, where the dialled number says whose it is. */
  tenantId?: string;
  provider: string;
  providerCallId?: string;
}

/** How the routing rule is applied beyond a session's own policy (DESIGN §6). */
export interface RoutingPolicy {
  outOfSession: OutOfSession;
  /** How long a `dedicated` owner can call back the most recent caller. */
  callbackWindowSeconds: number;
  /** What a caller on a number shared by extension is asked. */
  gather: Gather;
  /** What a refused caller hears, unless their session says otherwise. */
  rejectMessage: Announcement;
  /** Calls a session may connect per hour, on this instance (a toll-fraud guard); 0: no cap. */
  callsPerSessionHour: number;
}

const HOUR_MS = 3_600_000;
/**
 * Sessions whose calls of the hour one instance counts at once (~150 bytes each): past that, the
 * session called least recently starts its count again.
 */
export const CALL_CAP_SESSIONS = 200_000;

/**
 * Routes calls and texts: one indexed lookup, the domain's decision, and an interaction entry
 * recorded without waiting for the write (see InteractionLog). A call that finds no direct
 * participation of the caller looks at the number dialled: a dedicated number reaches its owner,
 * a number shared by extension asks a caller for a code.
 */
export class Router {
  /** Each session's calls of its current hour, on this instance: counted in memory, no query per call. */
  private readonly calls: WindowCap | undefined;

  constructor(
    private readonly lookup: RouteLookup,
    private readonly blocklist: BlocklistRepository,
    private readonly log: InteractionLog,
    private readonly policy: RoutingPolicy,
    private readonly clock: () => number = Date.now,
    /** The app's webhooks (ask, intercept), when configured: they have their say on each route. */
    private readonly hooks?: RouteHooks,
  ) {
    const { callsPerSessionHour } = policy;
    this.calls =
      callsPerSessionHour > 0 ? new WindowCap(callsPerSessionHour, HOUR_MS, CALL_CAP_SESSIONS) : undefined;
  }

  async route(request: RouteRequest, context: RouteContext): Promise<RouteDecision> {
    const now = this.clock();
    const { decision, interaction, slide } = await this.decide(request, context, now, true);
    this.log.record(interaction, slide);
    return request.channel === 'voice' && decision.action === 'reject' ? this.said(decision) : decision;
  }

  /** A refused call with what the caller hears: their session's message, or the installation's. */
  private async said(decision: Extract<RouteDecision, { action: 'reject' }>): Promise<RouteDecision> {
    const own = decision.sessionId === null ? undefined : await this.lookup.rejectMessage(decision.sessionId);
    return { ...decision, message: own ?? this.policy.rejectMessage };
  }

  /**
   * Applies a carrier's call or message status to the interaction it belongs to. When there is
   * none (the process was killed between answering the call and writing its row, see
   * InteractionLog), a report that names the call's numbers re-creates the row, decided again as
   * of now: an answered call is never missing from the log. False when nothing could be applied.
   * With `tenantId` (a report made with that tenant's API key), only that tenant's interaction.
   */
  async status(provider: string, report: CallStatus, tenantId?: string): Promise<boolean> {
    const { providerCallId, status, durationSeconds, call } = report;
    const now = this.clock();
    if (await this.log.updateStatus(provider, providerCallId, status, durationSeconds, now, tenantId)) {
      return true;
    }
    if (!call) return false;
    const { interaction } = await this.decide(call, { provider, providerCallId }, now);
    this.log.record({ ...interaction, status, durationSeconds });
    await this.log.flush();
    return true;
  }

  /**
   * Keeps a call's recording, as the carrier reports it, on the call's interaction. False when no
   * interaction has that call id: a recording report names no numbers, so unlike a status it
   * cannot re-create a lost row.
   */
  async recording(provider: string, report: CallRecording): Promise<boolean> {
    return this.log.updateRecording(provider, report.providerCallId, report.recording, this.clock());
  }

  /**
   * The decision for a call or text and its log entry: one indexed lookup and the domain's rule,
   * then, for a `live` call (not a status report's re-decision), the app's say and the session's
   * cap on calls.
   */
  private async decide(request: RouteRequest, context: RouteContext, now: number, live = false) {
    const { outOfSession } = this.policy;
    // A carrier may send anything as a number ("anonymous", junk): what is not E.164 is in no
    // session and owned by no one, and is not worth a lookup.
    const known = isE164(request.from) && isE164(request.to);
    let participation = known ? await this.lookup.find(request.from, request.to) : undefined;
    // Another tenant's session is as good as none: its numbers are not this key's to route.
    if (participation && context.tenantId !== undefined && participation.tenantId !== context.tenantId) {
      participation = undefined;
    }
    let decision: RouteDecision;
    let tenantId = participation?.tenantId ?? context.tenantId ?? null;
    const dialled = !participation && known ? await this.lookup.numberUse(request.to) : undefined;
    if (dialled && (context.tenantId === undefined || dialled.tenantId === context.tenantId)) {
      tenantId = dialled.tenantId;
      if (dialled.dedicatedTo) {
        const owner = await this.lookup.ownerOf(dialled.dedicatedTo);
        const blocked = await this.blocklist.has(dialled.tenantId, request.from);
        participation = owner && dedicatedParticipation(owner, request.from, request.to, undefined, blocked);
        decision = decideRoute(request, participation, now, outOfSession, blocked);
      } else if (dialled.extensions && request.channel === 'voice') {
        // Only a call can key a code: a text to a shared number without a direct participation is
        // in no session, as a stranger's would be.
        const keyed =
          request.digits === undefined
            ? undefined
            : await this.lookup.byExtension(request.to, request.digits);
        decision = decideExtension(request, keyed, now, this.policy.gather, outOfSession);
        if (decision.action !== 'reject' && decision.action !== 'gather') participation = keyed;
      } else {
        decision = decideRoute(
          request,
          undefined,
          now,
          outOfSession,
          await this.strangerBlocked(request, tenantId),
        );
      }
    } else {
      if (participation?.mode === 'dedicated' && participation.other === null) {
        participation = await this.withCallback(participation, request, now);
      }
      decision = decideRoute(
        request,
        participation,
        now,
        outOfSession,
        !participation && (await this.strangerBlocked(request, tenantId)),
      );
    }
    // A call the session's rule connects counts against its cap, before the app's intercept is
    // asked: a flood of calls in one session must not become a flood of requests to the app.
    if (live && this.calls && decision.action === 'connect' && decision.sessionId !== null) {
      if (this.calls.take(decision.sessionId, now) > 0) {
        decision = { action: 'reject', reason: 'call_limit', sessionId: decision.sessionId };
      }
    }
    const hooks = live ? this.hooks : undefined;
    if (hooks?.consults(decision)) decision = await hooks.review(request, decision, tenantId);
    let slide: Slide | undefined;
    if (
      participation?.ttlMode === 'sliding' &&
      participation.ttlSeconds !== null &&
      (decision.action === 'connect' || decision.action === 'forward')
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

  /**
   * A `dedicated` owner dialling their own number: the most recent caller within the callback
   * window becomes the counterpart, or nobody.
   */
  private async withCallback(
    owner: RouteParticipation,
    request: RouteRequest,
    now: number,
  ): Promise<RouteParticipation> {
    const since = now - this.policy.callbackWindowSeconds * 1000;
    const lastCaller = await this.log.lastCaller(owner.sessionId, owner.number, since);
    const blocked = lastCaller !== undefined && (await this.blocklist.has(owner.tenantId, lastCaller));
    return dedicatedParticipation(owner, request.from, request.to, lastCaller, blocked);
  }

  /**
   * Whether a caller in no session is on the blocklist of the dialled number's tenant, looked up
   * only when being in no session is not reason enough to refuse.
   */
  private async strangerBlocked(request: RouteRequest, tenantId: string | null): Promise<boolean> {
    return (
      this.policy.outOfSession.action !== 'reject' &&
      tenantId !== null &&
      isE164(request.from) &&
      this.blocklist.has(tenantId, request.from)
    );
  }
}
