import type { Static } from 'typebox';
import type { AuditEntry } from './domain/audit.ts';
import type { BlocklistEntry } from './domain/blocklist.ts';
import type { OutboxEvent } from './domain/events.ts';
import type { Interaction } from './domain/interaction.ts';
import type { ApiKey } from './domain/keys.ts';
import type { PoolNumber } from './domain/pool.ts';
import type { Participant, Session } from './domain/session.ts';
import type { Tenant } from './domain/tenants.ts';
import type { Delivery, WebhookEndpoint } from './domain/webhooks.ts';
import type * as Api from './http/schemas.ts';
import type { PoolCensus } from './store/numbers.ts';

/**
 * Domain objects as Veil shows them to the outside: camelCase, ISO times, no internal columns,
 * typed as the API's response schemas promise. The API answers with these and the CLI prints them
 * with --json, so both show one shape.
 */
const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

export function poolGroupView(g: PoolCensus): Static<typeof Api.PoolGroup> {
  return {
    // The service adds a number only with a provider it knows.
    provider: g.provider as Static<typeof Api.PoolGroup>['provider'],
    country: g.country,
    region: g.region,
    active: g.active,
    inUse: g.inUse,
    free: g.free,
    draining: g.draining,
  };
}

export function numberView(n: PoolNumber): Static<typeof Api.PoolNumber> {
  return {
    id: n.id,
    number: n.number,
    // The service adds a number only with a provider it knows.
    provider: n.provider as Static<typeof Api.PoolNumber>['provider'],
    country: n.country,
    region: n.region,
    capabilities: n.capabilities,
    status: n.status,
    tags: n.tags,
    maxSessions: n.maxSessions,
    load: n.load,
    dedicatedTo: n.dedicatedTo,
    createdAt: iso(n.createdAt),
    updatedAt: iso(n.updatedAt),
  };
}

export function participantView(p: Participant): Static<typeof Api.Participant> {
  return {
    id: p.id,
    label: p.label,
    number: p.number,
    proxyNumber: p.proxyNumber,
    revealNumber: p.revealNumber,
    canInitiate: p.canInitiate,
    ...(p.extension !== null ? { extension: p.extension } : {}),
    // A carrier that routes through Veil has nothing to bind: its participations are bound.
    binding: p.binding ?? 'bound',
  };
}

export function sessionView(s: Session): Static<typeof Api.Session> {
  return {
    id: s.id,
    externalId: s.externalId,
    mode: s.mode,
    status: s.status,
    ttlMode: s.ttlMode,
    ttlSeconds: s.ttlSeconds,
    expiresAt: iso(s.expiresAt),
    record: s.record,
    channels: s.channels,
    maxCallSeconds: s.maxCallSeconds,
    geoMatch: s.geoMatch,
    sticky: s.sticky,
    extensionFallback: s.extensionFallback,
    rejectMessage: s.rejectMessage,
    metadata: s.metadata,
    participants: s.participants.map(participantView),
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
    closedAt: isoOrNull(s.closedAt),
  };
}

export function interactionView(i: Interaction): Static<typeof Api.Interaction> {
  return {
    id: i.id,
    sessionId: i.sessionId,
    channel: i.channel,
    from: i.from,
    to: i.to,
    target: i.target,
    callerId: i.callerId,
    action: i.action,
    // Written from a routing decision's reason only.
    reason: i.reason as Static<typeof Api.Interaction>['reason'],
    provider: i.provider,
    providerCallId: i.providerCallId,
    status: i.status,
    durationSeconds: i.durationSeconds,
    media: i.media,
    recording: i.recording,
    createdAt: iso(i.createdAt),
    updatedAt: iso(i.updatedAt),
  };
}

export function keyView(k: ApiKey): Static<typeof Api.ApiKey> {
  return {
    id: k.id,
    tenantId: k.tenantId,
    name: k.name,
    scopes: k.scopes,
    createdAt: iso(k.createdAt),
    revokedAt: isoOrNull(k.revokedAt),
  };
}

export function blocklistView(b: BlocklistEntry): Static<typeof Api.BlocklistEntry> {
  return { number: b.number, reason: b.reason, createdAt: iso(b.createdAt) };
}

export function webhookEndpointView(w: WebhookEndpoint): Static<typeof Api.WebhookEndpoint> {
  return { id: w.id, url: w.url, events: w.events, createdAt: iso(w.createdAt) };
}

/** The body of an event's webhook (the same for every attempt) and of its entry in GET /v1/events. */
export interface EventEnvelope {
  id: string;
  type: OutboxEvent['type'];
  createdAt: string;
  data: Record<string, unknown>;
}

/**
 * An event as the app sees it: a session as the API shows one (with, for `session.rebound`, what
 * moved: `rebound`), anything else as it was written.
 */
export function eventEnvelope(e: OutboxEvent): EventEnvelope {
  const { rebound } = e.payload as { rebound?: unknown };
  const data = e.type.startsWith('session.')
    ? { ...sessionView(e.payload as Session), ...(rebound === undefined ? {} : { rebound }) }
    : (e.payload as Record<string, unknown>);
  return { id: e.id, type: e.type, createdAt: iso(e.createdAt), data };
}

export function eventView(e: OutboxEvent & { deliveries: Delivery[] }): Static<typeof Api.Event> {
  return {
    ...eventEnvelope(e),
    deliveries: e.deliveries.map((d) => ({
      endpointId: d.endpointId,
      status: d.status,
      attempts: d.attempts,
      nextAttemptAt: d.status === 'pending' ? iso(d.nextAt) : null,
      lastError: d.lastError,
      lastStatus: d.lastStatus,
      deliveredAt: isoOrNull(d.deliveredAt),
    })),
  };
}

export function tenantView(t: Tenant): Static<typeof Api.Tenant> {
  return { id: t.id, name: t.name, createdAt: iso(t.createdAt) };
}

export function auditView(a: AuditEntry): Static<typeof Api.AuditEntry> {
  return {
    id: a.id,
    action: a.action,
    keyId: a.keyId,
    targetId: a.targetId,
    detail: a.detail,
    createdAt: iso(a.createdAt),
  };
}
