import { Webhook } from 'standardwebhooks';
import { type OutboxPolicy, orderKey, retryDelayMs, wants } from '../domain/webhooks.ts';
import type { Logger } from '../logger.ts';
import type { Store } from '../store/store.ts';
import { inTransaction } from '../store/transactions.ts';
import {
  type AttemptRecord,
  type ClaimedDelivery,
  DeliveryRepository,
  WebhookEndpointRepository,
} from '../store/webhooks.ts';
import { eventEnvelope } from '../views.ts';
import { postSigned } from './signed-post.ts';

/** Events fanned out per transaction. */
const FAN_OUT_BATCH = 500;
/** Deliveries claimed, and attempted side by side, at a time. */
const DELIVERY_BATCH = 20;
/** Most batches of deliveries per pass, so that a pass ends (and a stop waits for no more than this). */
const MAX_ROUNDS = 10;
/** How much longer than an attempt's timeout its lease lasts: time to record the outcome. */
const LEASE_MARGIN_MS = 30_000;

/** What a pass did. */
export interface OutboxPass {
  fannedOut: number;
  attempted: number;
  delivered: number;
}

/**
 * Delivers the events of the outbox to the app's webhook endpoints (DESIGN §3), signed as Standard
 * Webhooks are, with the event's id as `webhook-id` on every attempt. A pass first turns the
 * events written since the last into deliveries, one per endpoint that wants the event, then
 * attempts the deliveries that are due. A delivery answered 2xx is delivered; any other answer,
 * no answer within the timeout or no connection is a failure, tried again after a full-jitter
 * backoff, and dead after the last attempt. Per endpoint, the events of one session go out in the
 * order they were made: a delivery still pending holds back the later ones of its session.
 *
 * Safe on every instance at once: fan-out inserts rows that are unique per event and endpoint, and
 * each delivery is attempted under a lease taken by a guarded update, so one instance at a time
 * tries it. An instance that dies mid-attempt leaves a lease that runs out, and another tries again:
 * at least once, under the same webhook-id, which lets the receiver drop a duplicate.
 */
export class Outbox {
  constructor(
    private readonly store: Store,
    private readonly policy: OutboxPolicy,
    private readonly logger: Logger,
    /** Schedules retries and times the signatures, which receivers check against their own clock. */
    private readonly clock: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  /** One pass: fan out what is new, then attempt what is due. */
  async pass(): Promise<OutboxPass> {
    const fannedOut = await this.fanOut();
    let attempted = 0;
    let delivered = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const batch = await this.deliverDue();
      attempted += batch.attempted;
      delivered += batch.delivered;
      // Go on while deliveries go through: each may have let the next of its session go.
      if (batch.delivered === 0) break;
    }
    return { fannedOut, attempted, delivered };
  }

  /**
   * Makes the deliveries of the events not fanned out yet: one per endpoint of the event's tenant
   * that asked for its type and existed when it was made. Returns the events handled.
   */
  async fanOut(): Promise<number> {
    let total = 0;
    for (;;) {
      const count = await inTransaction(this.store, async (trx) => {
        const deliveries = new DeliveryRepository(trx);
        const events = await deliveries.eventsToFanOut(FAN_OUT_BATCH);
        if (events.length === 0) return 0;
        const tenants = [...new Set(events.map((e) => e.tenantId))];
        const endpoints = await new WebhookEndpointRepository(trx).active(tenants);
        const rows = events.flatMap((e) =>
          endpoints
            .filter((w) => w.tenantId === e.tenantId && wants(w, e.type, e.createdAt))
            .map((w) => ({ eventId: e.id, endpointId: w.id, orderKey: orderKey(e.type, e.id, e.payload) })),
        );
        await deliveries.insert(rows, this.clock());
        await deliveries.markFannedOut(events.map((e) => e.id));
        return events.length;
      });
      total += count;
      if (count < FAN_OUT_BATCH) return total;
    }
  }

  /** Claims a batch of due deliveries and attempts them side by side. */
  async deliverDue(): Promise<{ attempted: number; delivered: number }> {
    const now = this.clock();
    const leaseUntil = now + this.policy.timeoutMs + LEASE_MARGIN_MS;
    const claimed = await inTransaction(this.store, (trx) =>
      new DeliveryRepository(trx).claim(now, leaseUntil, DELIVERY_BATCH),
    );
    const outcomes = await Promise.all(claimed.map((c) => this.attempt(c)));
    return { attempted: claimed.length, delivered: outcomes.filter(Boolean).length };
  }

  /** One attempt at one delivery, its outcome recorded; true when delivered. */
  private async attempt(claim: ClaimedDelivery): Promise<boolean> {
    const body = JSON.stringify(eventEnvelope(claim.event));
    const message = { id: claim.event.id, at: new Date(this.clock()), body };
    const signal = AbortSignal.timeout(this.policy.timeoutMs);
    const reply = await postSigned(new Webhook(claim.secret), claim.url, message, signal, false);
    const now = this.clock();
    const attempts = claim.attempts + 1;
    let outcome: AttemptRecord;
    if (reply.ok && reply.status >= 200 && reply.status <= 299) {
      outcome = { delivered: true, status: reply.status };
    } else {
      const dead = attempts >= this.policy.maxAttempts;
      outcome = {
        delivered: false,
        status: reply.ok ? reply.status : null,
        error: reply.ok ? 'status' : shortReason(reply.reason),
        dead,
        nextAt: dead ? now : now + retryDelayMs(this.policy, attempts, this.random),
      };
    }
    const recorded = await new DeliveryRepository(this.store.db).record(claim, outcome, now);
    if (!outcome.delivered) {
      const context = {
        endpoint: claim.endpointId,
        event: claim.event.id,
        attempts,
        reason: outcome.error,
        status: outcome.status ?? undefined,
      };
      if (outcome.dead) this.logger.error(context, 'webhook delivery failed for the last time: dead');
      else this.logger.warn(context, 'webhook delivery failed; will retry');
    }
    if (!recorded)
      this.logger.warn({ event: claim.event.id }, 'webhook delivery lease lost before its outcome');
    return outcome.delivered;
  }
}

/**
 * A failure as kept in the delivery (`timeout`, `unreachable: ECONNREFUSED`): no address, nothing
 * the receiver said.
 */
function shortReason(reason: string): string {
  if (reason.startsWith('timeout')) return 'timeout';
  const code = /^unreachable: ([A-Z_]+)$/.exec(reason)?.[1];
  return code ? `unreachable: ${code}` : 'unreachable';
}
