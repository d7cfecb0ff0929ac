import { type Selectable, sql } from 'kysely';
import type { EventType, OutboxEvent } from '../domain/events.ts';
import type { Delivery, WebhookEndpoint } from '../domain/webhooks.ts';
import { dialectOf } from './dialect.ts';
import type { Db, Schema } from './schema.ts';
import { type NumberVault, vaultOf } from './vault.ts';

type EndpointRow = Selectable<Schema['webhook_endpoints']>;
type DeliveryRow = Selectable<Schema['deliveries']>;
type EventRow = Selectable<Schema['events']>;

/** Rows per INSERT of deliveries: well under either database's limit of parameters. */
const INSERT_CHUNK = 200;

/** The webhook_endpoints table: where each tenant's app gets its events. */
export class WebhookEndpointRepository {
  constructor(private readonly db: Db) {}

  async insert(endpoint: WebhookEndpoint): Promise<void> {
    await this.db
      .insertInto('webhook_endpoints')
      .values({
        id: endpoint.id,
        tenant_id: endpoint.tenantId,
        url: endpoint.url,
        events: endpoint.events === null ? null : JSON.stringify(endpoint.events),
        secret: endpoint.secret,
        created_at: endpoint.createdAt,
        deleted_at: endpoint.deletedAt,
      })
      .execute();
  }

  /** The tenant's endpoint, unless deleted. */
  async get(tenantId: string, id: string): Promise<WebhookEndpoint | undefined> {
    const row = await this.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    return row && toEndpoint(row);
  }

  /** The tenant's endpoints in the order they were made, from the one after `after`; deleted ones not. */
  async list(tenantId: string, after: string | undefined, limit: number): Promise<WebhookEndpoint[]> {
    let q = this.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('deleted_at', 'is', null);
    if (after !== undefined) q = q.where('id', '>', after);
    return (await q.orderBy('id').limit(limit).execute()).map(toEndpoint);
  }

  /** The endpoints, not deleted, of these tenants. */
  async active(tenantIds: readonly string[]): Promise<WebhookEndpoint[]> {
    if (tenantIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('tenant_id', 'in', tenantIds)
      .where('deleted_at', 'is', null)
      .execute();
    return rows.map(toEndpoint);
  }

  /**
   * Deletes the tenant's endpoint (kept, marked, for its deliveries' history) and gives up its
   * pending deliveries: it gets nothing more. False when the tenant has no such endpoint.
   */
  async delete(tenantId: string, id: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('webhook_endpoints')
      .set({ deleted_at: now })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    if (result.numUpdatedRows !== 1n) return false;
    await this.db
      .updateTable('deliveries')
      .set({ status: 'dead', last_error: 'endpoint deleted', updated_at: now })
      .where('endpoint_id', '=', id)
      .where('status', '=', 'pending')
      .execute();
    return true;
  }
}

/** A delivery claimed for an attempt, with what the attempt needs: the event and where it goes. */
export interface ClaimedDelivery {
  event: OutboxEvent;
  endpointId: string;
  url: string;
  secret: string;
  attempts: number;
  /** The lease taken: the attempt's outcome is recorded only while it is still this one. */
  lease: number;
}

/** The outcome of an attempt, as recorded. */
export type AttemptRecord =
  | { delivered: true; status: number }
  | { delivered: false; status: number | null; error: string; dead: boolean; nextAt: number };

/** The outbox's side of the events table and the deliveries table. */
export class DeliveryRepository {
  constructor(private readonly db: Db) {}

  /**
   * Up to `limit` events not fanned out yet, oldest first. On PostgreSQL they are locked, and
   * events another instance is fanning out are waited for, not skipped: skipping them would let
   * this instance fan out, and deliver, a later event of the same session (its session.updated)
   * while the earlier one (session.created) has no delivery yet for the claim's order check to see.
   */
  async eventsToFanOut(limit: number): Promise<OutboxEvent[]> {
    let q = this.db.selectFrom('events').selectAll().where('fanned_out', '=', 0).orderBy('id').limit(limit);
    if (dialectOf(this.db).locksRows) q = q.forUpdate();
    return (await q.execute()).map((row) => toEvent(vaultOf(this.db), row));
  }

  async markFannedOut(eventIds: readonly string[]): Promise<void> {
    if (eventIds.length === 0) return;
    await this.db.updateTable('events').set({ fanned_out: 1 }).where('id', 'in', eventIds).execute();
  }

  /** Adds pending deliveries; one that exists already (same event and endpoint) stays as it is. */
  async insert(rows: readonly { eventId: string; endpointId: string; orderKey: string }[], now: number) {
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      await this.db
        .insertInto('deliveries')
        .values(
          rows.slice(i, i + INSERT_CHUNK).map((r) => ({
            event_id: r.eventId,
            endpoint_id: r.endpointId,
            order_key: r.orderKey,
            status: 'pending' as const,
            attempts: 0,
            next_at: now,
            lease_until: 0,
            last_error: null,
            last_status: null,
            delivered_at: null,
            created_at: now,
            updated_at: now,
          })),
        )
        .onConflict((oc) => oc.columns(['event_id', 'endpoint_id']).doNothing())
        .execute();
    }
  }

  /**
   * Claims up to `limit` deliveries due at `now`, oldest event first, until `leaseUntil`: pending,
   * their time come, nobody's lease running, the endpoint not deleted, and no earlier delivery of
   * the same session to the same endpoint still pending (that one goes first). The claim is an
   * update guarded by the lease, so of two instances only one wins a delivery; on PostgreSQL the
   * rows are locked as they are read and those another instance is claiming are skipped.
   */
  async claim(now: number, leaseUntil: number, limit: number): Promise<ClaimedDelivery[]> {
    let q = this.db
      .selectFrom('deliveries as d')
      .innerJoin('webhook_endpoints as w', 'w.id', 'd.endpoint_id')
      .innerJoin('events as e', 'e.id', 'd.event_id')
      .select(['d.event_id', 'd.endpoint_id', 'd.attempts', 'w.url', 'w.secret'])
      .select(['e.tenant_id', 'e.type', 'e.payload', 'e.created_at'])
      .where('d.status', '=', 'pending')
      .where('d.next_at', '<=', now)
      .where('d.lease_until', '<=', now)
      .where('w.deleted_at', 'is', null)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('deliveries as before')
              .select('before.event_id')
              .whereRef('before.endpoint_id', '=', 'd.endpoint_id')
              .whereRef('before.order_key', '=', 'd.order_key')
              .where('before.status', '=', 'pending')
              .whereRef('before.event_id', '<', 'd.event_id'),
          ),
        ),
      )
      .orderBy('d.event_id')
      .limit(limit);
    if (dialectOf(this.db).locksRows) q = q.forUpdate('d').skipLocked();
    const claimed: ClaimedDelivery[] = [];
    for (const row of await q.execute()) {
      const result = await this.db
        .updateTable('deliveries')
        .set({ lease_until: leaseUntil })
        .where('event_id', '=', row.event_id)
        .where('endpoint_id', '=', row.endpoint_id)
        .where('status', '=', 'pending')
        .where('lease_until', '<=', now)
        .executeTakeFirst();
      if (result.numUpdatedRows !== 1n) continue;
      claimed.push({
        event: toEvent(vaultOf(this.db), { ...row, id: row.event_id, fanned_out: 1 }),
        endpointId: row.endpoint_id,
        url: row.url,
        secret: row.secret,
        attempts: row.attempts,
        lease: leaseUntil,
      });
    }
    return claimed;
  }

  /**
   * Records an attempt's outcome, unless the lease it was made under is gone (the delivery was
   * claimed again after the lease ran out, or put back by a redeliver): false then.
   */
  async record(claim: ClaimedDelivery, outcome: AttemptRecord, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('deliveries')
      .set(
        outcome.delivered
          ? {
              status: 'delivered',
              attempts: claim.attempts + 1,
              lease_until: 0,
              last_error: null,
              last_status: outcome.status,
              delivered_at: now,
              updated_at: now,
            }
          : {
              status: outcome.dead ? 'dead' : 'pending',
              attempts: claim.attempts + 1,
              next_at: outcome.nextAt,
              lease_until: 0,
              last_error: outcome.error,
              last_status: outcome.status,
              updated_at: now,
            },
      )
      .where('event_id', '=', claim.event.id)
      .where('endpoint_id', '=', claim.endpointId)
      .where('lease_until', '=', claim.lease)
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  /** The deliveries of these events, by event id. */
  async ofEvents(eventIds: readonly string[]): Promise<Map<string, Delivery[]>> {
    const byEvent = new Map<string, Delivery[]>();
    if (eventIds.length === 0) return byEvent;
    const rows = await this.db
      .selectFrom('deliveries')
      .selectAll()
      .where('event_id', 'in', eventIds)
      .orderBy('event_id')
      .orderBy('endpoint_id')
      .execute();
    for (const row of rows) {
      const list = byEvent.get(row.event_id) ?? [];
      list.push(toDelivery(row));
      byEvent.set(row.event_id, list);
    }
    return byEvent;
  }

  /**
   * Puts the event's deliveries to these endpoints back to pending, from their first attempt, due
   * now. A delivery in an attempt keeps its lease: the next attempt waits for it to end.
   */
  async redeliver(eventId: string, endpointIds: readonly string[], now: number): Promise<void> {
    if (endpointIds.length === 0) return;
    await this.db
      .updateTable('deliveries')
      .set({
        status: 'pending',
        attempts: 0,
        next_at: now,
        last_error: null,
        last_status: null,
        delivered_at: null,
        updated_at: now,
      })
      .where('event_id', '=', eventId)
      .where('endpoint_id', 'in', endpointIds)
      .execute();
  }
}

/** How far behind the outbox is, as /metrics shows it. */
export interface OutboxBacklog {
  /** Deliveries not yet made: due now, or waiting out a retry's backoff. */
  pending: number;
  /**
   * When the oldest event still owed to an endpoint was made (not yet fanned out, or with a
   * delivery pending), epoch ms; null when nothing is owed.
   */
  oldestCreatedAt: number | null;
  /** Deliveries given up after their last attempt, to endpoints not deleted: dead letters. */
  dead: number;
}

/**
 * The outbox's backlog across tenants. Each count is read from a partial index whose entries are
 * the rows it counts (pending deliveries, events not fanned out, dead deliveries), so a scrape
 * costs the backlog, not the history. The predicates are written as the indexes' are, literally,
 * so that both databases use them.
 */
export async function outboxBacklog(db: Db): Promise<OutboxBacklog> {
  const pending = await db
    .selectFrom('deliveries')
    .select((eb) => [eb.fn.countAll<number | string>().as('n'), eb.fn.min('event_id').as('oldest')])
    .where(sql<boolean>`status = 'pending'`)
    .executeTakeFirstOrThrow();
  const unfanned = await db
    .selectFrom('events')
    .select('id')
    .where(sql<boolean>`fanned_out = 0`)
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();
  const dead = await db
    .selectFrom('deliveries as d')
    .innerJoin('webhook_endpoints as w', 'w.id', 'd.endpoint_id')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where(sql<boolean>`d.status = 'dead'`)
    .where('w.deleted_at', 'is', null)
    .executeTakeFirstOrThrow();
  // Ids sort by creation time (domain/ids.ts): the smaller of the two is the older event.
  const oldestId = [pending.oldest, unfanned?.id]
    .filter((id): id is string => typeof id === 'string')
    .sort()[0];
  const oldest =
    oldestId === undefined
      ? undefined
      : await db.selectFrom('events').select('created_at').where('id', '=', oldestId).executeTakeFirst();
  return { pending: Number(pending.n), oldestCreatedAt: oldest?.created_at ?? null, dead: Number(dead.n) };
}

/** Which of a tenant's events to list: ids after and before bounds, oldest or newest first. */
export interface EventListQuery {
  type?: string;
  after?: string;
  before?: string;
  newest?: boolean;
  limit: number;
}

/** The tenant's events of `query.type` if given, between its bounds, in its order, `limit` at most. */
export async function listEvents(db: Db, tenantId: string, query: EventListQuery): Promise<OutboxEvent[]> {
  let q = db.selectFrom('events').selectAll().where('tenant_id', '=', tenantId);
  if (query.type !== undefined) q = q.where('type', '=', query.type);
  if (query.after !== undefined) q = q.where('id', '>', query.after);
  if (query.before !== undefined) q = q.where('id', '<', query.before);
  const rows = await q
    .orderBy('id', query.newest ? 'desc' : 'asc')
    .limit(query.limit)
    .execute();
  return rows.map((row) => toEvent(vaultOf(db), row));
}

/** The tenant's event, if it has one of this id. */
export async function getEvent(db: Db, tenantId: string, id: string): Promise<OutboxEvent | undefined> {
  const row = await db
    .selectFrom('events')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toEvent(vaultOf(db), row);
}

function toEndpoint(row: EndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    url: row.url,
    events: row.events === null ? null : (JSON.parse(row.events) as EventType[]),
    secret: row.secret,
    createdAt: row.created_at,
    deletedAt: row.deleted_at,
  };
}

/** An event as its row holds it, its payload (which shows people's numbers) opened. */
function toEvent(vault: NumberVault, row: EventRow): OutboxEvent {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    type: row.type as EventType,
    payload: JSON.parse(vault.open(row.payload)),
    createdAt: row.created_at,
  };
}

function toDelivery(row: DeliveryRow): Delivery {
  return {
    eventId: row.event_id,
    endpointId: row.endpoint_id,
    status: row.status,
    attempts: row.attempts,
    nextAt: row.next_at,
    lastError: row.last_error,
    lastStatus: row.last_status,
    deliveredAt: row.delivered_at,
  };
}
