import { createHash } from 'node:crypto';
import type { BindingState } from './binding.ts';
import { InvalidRequestError } from './errors.ts';
import { type PhoneNumber, parsePhone } from './phone.ts';
import type { Announcement } from './routing.ts';

export const SESSION_MODES = ['per-participant', 'shared', 'dedicated'] as const;
export type SessionMode = (typeof SESSION_MODES)[number];
export type SessionStatus = 'open' | 'closed' | 'expired';
export const CHANNELS = ['voice', 'sms'] as const;
export type Channel = (typeof CHANNELS)[number];
export type TtlMode = 'fixed' | 'sliding';
export type GeoMatch = 'region' | 'region-strict' | 'country';
export type Sticky = 'none' | 'prefer' | 'avoid';

export const DEFAULT_TTL_SECONDS = 86_400;
/** Sessions of these modes have exactly two participants while complete; a `dedicated` one has one. */
export const MAX_PARTICIPANTS = 2;
/** Digits of an extension code on a shared number (extension fallback). */
export const EXTENSION_DIGITS = 4;

/** How many participants a complete session of the mode has: the owner alone in `dedicated`. */
export function participantsOf(mode: SessionMode): number {
  return mode === 'dedicated' ? 1 : MAX_PARTICIPANTS;
}
/** The longest a session lives from now, given as ttlSeconds or as expiresAt: one year. */
export const MAX_TTL_SECONDS = 31_536_000;
/**
 * How much free-form metadata a session keeps: levels of nesting (the object itself is one) and
 * bytes as JSON. Deeper or larger is refused, so that no request can make the server or its
 * threads recurse without end or carry megabytes with every read of the session.
 */
export const METADATA_LIMITS = { depth: 8, bytes: 16_384 } as const;

/** What a session does, fixed at creation (record may change later). */
export interface SessionPolicy {
  mode: SessionMode;
  ttlMode: TtlMode;
  /** The life given at creation or last renewal; for sliding sessions counted from the last interaction. */
  ttlSeconds: number | null;
  record: boolean;
  channels: Channel[];
  maxCallSeconds: number | null;
  geoMatch: GeoMatch;
  sticky: Sticky;
  extensionFallback: boolean;
}

export interface Participant {
  id: string;
  sessionId: string;
  number: string;
  label: string | null;
  proxyNumberId: string;
  proxyNumber: string;
  revealNumber: boolean;
  canInitiate: boolean;
  /** The code this participant keys after dialling a shared proxy (extension fallback), else null. */
  extension: string | null;
  /** The session's binding at a remote-binding carrier (domain/binding.ts); null for the others. */
  binding: BindingState | null;
  createdAt: number;
}

export interface Session extends SessionPolicy {
  id: string;
  tenantId: string;
  externalId: string | null;
  /** What a caller refused within this session hears, instead of the installation's message. */
  rejectMessage: Announcement | null;
  status: SessionStatus;
  expiresAt: number;
  metadata: Record<string, unknown>;
  participants: Participant[];
  createdAt: number;
  updatedAt: number;
  closedAt: number | null;
}

/** A participant as asked for, before a proxy number is chosen. */
export interface ParticipantRequest {
  phone: PhoneNumber;
  /** The pool number asked for as this participant's proxy, if any (Alibaba's PhoneNoX). */
  proxyNumber?: PhoneNumber;
  label: string | null;
  revealNumber: boolean;
  canInitiate: boolean;
}

/** A change to a participant: only the fields given change (a label of null removes it). */
export interface ParticipantChanges {
  label?: string | null;
  revealNumber?: boolean;
  canInitiate?: boolean;
}

/** Who takes a participant's place; the fields not given are kept from the one replaced. */
export interface ParticipantReplacement extends ParticipantChanges {
  phone: PhoneNumber;
}

/** A validated create request: what the store needs to open the session. */
export interface NewSession {
  externalId: string | null;
  policy: SessionPolicy;
  rejectMessage: Announcement | null;
  expiresAt: number;
  metadata: Record<string, unknown>;
  participants: ParticipantRequest[];
  /** Hash of the normalised request: the same externalId with another body is a conflict. */
  fingerprint: string;
}

export interface ParticipantInput {
  number: string;
  proxyNumber?: string;
  label?: string;
  revealNumber?: boolean;
  canInitiate?: boolean;
}

export interface SessionInput {
  externalId?: string;
  mode?: string;
  ttlSeconds?: number;
  expiresAt?: string;
  ttlMode?: TtlMode;
  record?: boolean;
  channels?: Channel[];
  maxCallSeconds?: number;
  geoMatch?: GeoMatch;
  sticky?: Sticky;
  extensionFallback?: boolean;
  rejectMessage?: Announcement;
  metadata?: Record<string, unknown>;
  participants: ParticipantInput[];
}

export interface SessionDefaults {
  ttlSeconds: number;
  defaultCountry?: string;
  /** Whether sessions that give no `extensionFallback` may fall back to a shared number and a code. */
  extensionFallback?: boolean;
}

/** Validates a create request and applies defaults. Throws InvalidRequestError naming the field. */
export function normalizeSession(input: SessionInput, defaults: SessionDefaults, now: number): NewSession {
  const mode = (input.mode ?? 'per-participant') as SessionMode;
  if (!SESSION_MODES.includes(mode)) {
    throw new InvalidRequestError(`mode must be one of ${SESSION_MODES.join(', ')}`, 'mode');
  }
  if (mode === 'dedicated' && input.extensionFallback) {
    throw new InvalidRequestError(
      'a dedicated number is never shared: no extensionFallback',
      'extensionFallback',
    );
  }
  const participants = input.participants.map((p, i) =>
    normalizeParticipant(p, `participants/${i}`, defaults),
  );
  const count = participantsOf(mode);
  if (participants.length !== count) {
    const what = count === 1 ? 'exactly one participant, the owner' : 'exactly two participants';
    throw new InvalidRequestError(`a ${mode} session takes ${what}`, 'participants');
  }
  assertDistinct(participants);
  if (mode === 'shared' && participants[0]?.phone.country !== participants[1]?.phone.country) {
    throw new InvalidRequestError(
      'a shared session needs both participants in one country (its one proxy must be local to both)',
      'participants',
    );
  }
  const ttlMode = input.ttlMode ?? 'fixed';
  const life = lifetime(input, defaults, now);
  if (ttlMode === 'sliding' && life.ttlSeconds === null) {
    throw new InvalidRequestError('a sliding session needs ttlSeconds, not expiresAt', 'ttlSeconds');
  }
  const policy: SessionPolicy = {
    mode,
    ttlMode,
    ttlSeconds: life.ttlSeconds,
    record: input.record ?? false,
    channels: normalizeChannels(input.channels),
    maxCallSeconds: input.maxCallSeconds ?? null,
    geoMatch: input.geoMatch ?? 'region',
    sticky: input.sticky ?? 'none',
    extensionFallback:
      mode !== 'dedicated' && (input.extensionFallback ?? defaults.extensionFallback ?? false),
  };
  const externalId = input.externalId ?? null;
  const metadata = checkMetadata(input.metadata ?? {});
  const rejectMessage = input.rejectMessage ?? null;
  const fingerprint = fingerprintOf({
    externalId,
    policy,
    // Only when given, so that earlier sessions' retries still match.
    ...(rejectMessage ? { rejectMessage } : {}),
    // A retry that sends the same ttlSeconds a moment later is the same request.
    expiresAt: input.expiresAt ? life.expiresAt : null,
    metadata,
    // A proxy asked for joins the list only when given, so that earlier sessions' retries still match.
    participants: participants.map((p) => [
      p.phone.e164,
      p.label,
      p.revealNumber,
      p.canInitiate,
      ...(p.proxyNumber ? [p.proxyNumber.e164] : []),
    ]),
  });
  return {
    externalId,
    policy,
    rejectMessage,
    expiresAt: life.expiresAt,
    metadata,
    participants,
    fingerprint,
  };
}

export function normalizeParticipant(
  input: ParticipantInput,
  field: string,
  defaults: Pick<SessionDefaults, 'defaultCountry'>,
): ParticipantRequest {
  return {
    phone: parsePhone(input.number, `${field}/number`, defaults.defaultCountry),
    ...(input.proxyNumber !== undefined
      ? { proxyNumber: parsePhone(input.proxyNumber, `${field}/proxyNumber`, defaults.defaultCountry) }
      : {}),
    label: input.label ?? null,
    revealNumber: input.revealNumber ?? false,
    canInitiate: input.canInitiate ?? true,
  };
}

export interface ParticipantChangesInput {
  label?: string | null;
  revealNumber?: boolean;
  canInitiate?: boolean;
}

export interface ParticipantReplacementInput extends ParticipantChangesInput {
  number: string;
}

/** Validates a change to a participant: at least one field, and only the fields given. */
export function normalizeParticipantChanges(input: ParticipantChangesInput): ParticipantChanges {
  const changes = onlyGiven(input);
  if (Object.keys(changes).length === 0) {
    throw new InvalidRequestError('give at least one of label, revealNumber, canInitiate to change');
  }
  return changes;
}

/** Validates who replaces a participant; the fields not given stay as they were. */
export function normalizeParticipantReplacement(
  input: ParticipantReplacementInput,
  defaults: Pick<SessionDefaults, 'defaultCountry'>,
): ParticipantReplacement {
  return { phone: parsePhone(input.number, 'number', defaults.defaultCountry), ...onlyGiven(input) };
}

function onlyGiven(input: ParticipantChangesInput): ParticipantChanges {
  return {
    ...(input.label !== undefined ? { label: input.label } : {}),
    ...(input.revealNumber !== undefined ? { revealNumber: input.revealNumber } : {}),
    ...(input.canInitiate !== undefined ? { canInitiate: input.canInitiate } : {}),
  };
}

/** The participant with the changes applied. */
export function changedParticipant(participant: Participant, changes: ParticipantChanges): Participant {
  return { ...participant, ...onlyGiven(changes) };
}

function assertDistinct(participants: ParticipantRequest[]): void {
  const seen = new Set<string>();
  for (const p of participants) {
    if (seen.has(p.phone.e164)) {
      throw new InvalidRequestError('the same number appears twice among the participants', 'participants');
    }
    seen.add(p.phone.e164);
  }
}

function normalizeChannels(channels: Channel[] | undefined): Channel[] {
  if (!channels) return [...CHANNELS];
  const unique = CHANNELS.filter((c) => channels.includes(c));
  if (unique.length === 0) throw new InvalidRequestError('channels must name voice, sms or both', 'channels');
  return unique;
}

/** Works out expiresAt from ttlSeconds or an explicit expiresAt (not both). */
export function lifetime(
  input: { ttlSeconds?: number; expiresAt?: string },
  defaults: Pick<SessionDefaults, 'ttlSeconds'>,
  now: number,
): { ttlSeconds: number | null; expiresAt: number } {
  if (input.ttlSeconds !== undefined && input.expiresAt !== undefined) {
    throw new InvalidRequestError('give ttlSeconds or expiresAt, not both', 'expiresAt');
  }
  if (input.expiresAt !== undefined) {
    const at = Date.parse(input.expiresAt);
    if (Number.isNaN(at)) throw new InvalidRequestError('expiresAt must be an ISO-8601 time', 'expiresAt');
    if (at <= now) throw new InvalidRequestError('expiresAt must be in the future', 'expiresAt');
    if (at - now > MAX_TTL_SECONDS * 1000) {
      throw new InvalidRequestError(
        `expiresAt must be at most ${MAX_TTL_SECONDS} seconds (one year) from now`,
        'expiresAt',
      );
    }
    return { ttlSeconds: null, expiresAt: at };
  }
  const ttlSeconds = input.ttlSeconds ?? defaults.ttlSeconds;
  return { ttlSeconds, expiresAt: now + ttlSeconds * 1000 };
}

/**
 * What is wrong with a session's metadata (too deep or too large), or undefined. The walk stops
 * one level past the limit, so even a body nested thousands deep costs a few steps and no stack.
 */
export function metadataProblem(metadata: unknown): string | undefined {
  const { depth, bytes } = METADATA_LIMITS;
  const tooDeep = (value: unknown, level: number): boolean =>
    value !== null &&
    typeof value === 'object' &&
    (level > depth || Object.values(value).some((v) => tooDeep(v, level + 1)));
  if (tooDeep(metadata, 1)) return `must be nested at most ${depth} levels deep`;
  if (Buffer.byteLength(JSON.stringify(metadata)) > bytes) return `must be at most ${bytes} bytes as JSON`;
  return undefined;
}

/** The metadata itself when within METADATA_LIMITS; else InvalidRequestError naming the limit. */
export function checkMetadata(metadata: Record<string, unknown>): Record<string, unknown> {
  const problem = metadataProblem(metadata);
  if (problem) throw new InvalidRequestError(`metadata ${problem}`, 'metadata');
  return metadata;
}

/** An open session past its expiry is expired, whether or not the sweeper has reached it yet. */
export function effectiveStatus(session: Pick<Session, 'status' | 'expiresAt'>, now: number): SessionStatus {
  return session.status === 'open' && session.expiresAt <= now ? 'expired' : session.status;
}

function fingerprintOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('base64url');
}

/** JSON with object keys sorted, so that key order in a request does not change its fingerprint. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
