import type { Interaction } from './domain/interaction.ts';
import type { ApiKey } from './domain/keys.ts';
import type { PoolNumber } from './domain/pool.ts';
import type { Participant, Session } from './domain/session.ts';

/**
 * Domain objects as Veil shows them to the outside: camelCase, ISO times, no internal columns.
 * The API answers with these and the CLI prints them with --json, so both show one shape.
 */
const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

export function numberView(n: PoolNumber) {
  return {
    id: n.id,
    number: n.number,
    provider: n.provider,
    country: n.country,
    region: n.region,
    capabilities: n.capabilities,
    status: n.status,
    tags: n.tags,
    maxSessions: n.maxSessions,
    load: n.load,
    createdAt: iso(n.createdAt),
    updatedAt: iso(n.updatedAt),
  };
}

export function participantView(p: Participant) {
  return {
    id: p.id,
    label: p.label,
    number: p.number,
    proxyNumber: p.proxyNumber,
    revealNumber: p.revealNumber,
    canInitiate: p.canInitiate,
    binding: 'bound',
  };
}

export function sessionView(s: Session) {
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
    metadata: s.metadata,
    participants: s.participants.map(participantView),
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
    closedAt: isoOrNull(s.closedAt),
  };
}

export function interactionView(i: Interaction) {
  return {
    id: i.id,
    sessionId: i.sessionId,
    channel: i.channel,
    from: i.from,
    to: i.to,
    target: i.target,
    callerId: i.callerId,
    action: i.action,
    reason: i.reason,
    provider: i.provider,
    providerCallId: i.providerCallId,
    status: i.status,
    durationSeconds: i.durationSeconds,
    createdAt: iso(i.createdAt),
    updatedAt: iso(i.updatedAt),
  };
}

export function keyView(k: ApiKey) {
  return {
    id: k.id,
    name: k.name,
    scopes: k.scopes,
    createdAt: iso(k.createdAt),
    revokedAt: isoOrNull(k.revokedAt),
  };
}
