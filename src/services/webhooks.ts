import type { ActingKey } from '../domain/audit.ts';
import { NotFoundError } from '../domain/errors.ts';
import type { OutboxEvent } from '../domain/events.ts';
import { generateWebhookSecret, newId } from '../domain/ids.ts';
import { type Page, pageOf } from '../domain/page.ts';
import {
  type Delivery,
  endpointEvents,
  endpointUrl,
  orderKey,
  type WebhookEndpoint,
  wants,
} from '../domain/webhooks.ts';
import { recordAudit } from '../store/audit.ts';
import type { Store } from '../store/store.ts';
import { inTransaction } from '../store/transactions.ts';
import {
  DeliveryRepository,
  type EventListQuery,
  getEvent,
  listEvents,
  WebhookEndpointRepository,
} from '../store/webhooks.ts';

export interface EndpointInput {
  url: string;
  events?: string[];
}

/** An event of the log with the state of its deliveries. */
export interface LoggedEvent extends OutboxEvent {
  deliveries: Delivery[];
}

/**
 * The app's webhook endpoints and the event log (DESIGN §2): endpoints are made with a secret
 * shown once, listed and deleted; events are read with their deliveries' state and sent again on
 * request. The delivery itself is the outbox's (services/outbox.ts).
 */
export class WebhookService {
  constructor(
    private readonly store: Store,
    /** Only https:// endpoint URLs (production): events carry real numbers. */
    private readonly httpsOnly: boolean,
    private readonly clock: () => number = Date.now,
  ) {}

  /** A new endpoint of the tenant; its secret is in the answer, and never shown again by the API. */
  async create(tenantId: string, input: EndpointInput, by: ActingKey = null): Promise<WebhookEndpoint> {
    const now = this.clock();
    const endpoint: WebhookEndpoint = {
      id: newId('whe', now),
      tenantId,
      url: endpointUrl(input.url, this.httpsOnly),
      events: endpointEvents(input.events),
      secret: generateWebhookSecret(),
      createdAt: now,
      deletedAt: null,
    };
    await inTransaction(this.store, async (trx) => {
      await new WebhookEndpointRepository(trx).insert(endpoint);
      await recordAudit(
        trx,
        {
          tenantId,
          keyId: by,
          action: 'webhook_endpoint.created',
          targetId: endpoint.id,
          detail: { host: new URL(endpoint.url).host, events: endpoint.events },
        },
        now,
      );
    });
    return endpoint;
  }

  async get(tenantId: string, id: string): Promise<WebhookEndpoint> {
    const endpoint = await new WebhookEndpointRepository(this.store.db).get(tenantId, id);
    if (!endpoint) throw new NotFoundError('webhook endpoint', id);
    return endpoint;
  }

  /** The tenant's endpoints in the order they were made, `limit` at a time. */
  async list(tenantId: string, query: { cursor?: string; limit: number }): Promise<Page<WebhookEndpoint>> {
    const rows = await new WebhookEndpointRepository(this.store.db).list(
      tenantId,
      query.cursor,
      query.limit + 1,
    );
    return pageOf(rows, query.limit);
  }

  /** Deletes the tenant's endpoint: its pending deliveries are given up, and it gets nothing more. */
  async delete(tenantId: string, id: string, by: ActingKey = null): Promise<void> {
    const now = this.clock();
    const deleted = await inTransaction(this.store, async (trx) => {
      if (!(await new WebhookEndpointRepository(trx).delete(tenantId, id, now))) return false;
      await recordAudit(
        trx,
        { tenantId, keyId: by, action: 'webhook_endpoint.deleted', targetId: id, detail: null },
        now,
      );
      return true;
    });
    if (!deleted) throw new NotFoundError('webhook endpoint', id);
  }

  /**
   * The tenant's events of `type` if given, oldest first after `after` (or newest first before
   * `before`, the previous page's nextCursor), `limit` at a time, each with its deliveries.
   */
  async events(tenantId: string, query: EventListQuery): Promise<Page<LoggedEvent>> {
    const rows = await listEvents(this.store.db, tenantId, { ...query, limit: query.limit + 1 });
    const page = pageOf(rows, query.limit);
    const deliveries = await new DeliveryRepository(this.store.db).ofEvents(page.data.map((e) => e.id));
    return {
      data: page.data.map((e) => ({ ...e, deliveries: deliveries.get(e.id) ?? [] })),
      nextCursor: page.nextCursor,
    };
  }

  /**
   * Sends the tenant's event again to every endpoint that wants it (made before the event, not
   * deleted, asking for its type): each delivery back to pending, from its first attempt, with the
   * same webhook-id; one missing (the event not fanned out yet) is made.
   */
  async redeliver(tenantId: string, eventId: string): Promise<LoggedEvent> {
    const now = this.clock();
    return inTransaction(this.store, async (trx) => {
      const event = await getEvent(trx, tenantId, eventId);
      if (!event) throw new NotFoundError('event', eventId);
      const endpoints = (await new WebhookEndpointRepository(trx).active([tenantId])).filter((w) =>
        wants(w, event.type, event.createdAt),
      );
      const deliveries = new DeliveryRepository(trx);
      const key = orderKey(event.type, event.id, event.payload);
      await deliveries.insert(
        endpoints.map((w) => ({ eventId: event.id, endpointId: w.id, orderKey: key })),
        now,
      );
      await deliveries.redeliver(
        event.id,
        endpoints.map((w) => w.id),
        now,
      );
      return { ...event, deliveries: (await deliveries.ofEvents([event.id])).get(event.id) ?? [] };
    });
  }
}
