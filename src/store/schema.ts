import { type Kysely, sql } from 'kysely';
import type { BindingState } from '../domain/binding.ts';
import type { DeliveryStatus } from '../domain/webhooks.ts';

/**
 * The tables as Kysely sees them. Times are epoch milliseconds, booleans 0/1 and JSON is text, so
 * that SQLite and PostgreSQL hold the same values.
 */
export interface Schema {
  tenants: { id: string; name: string; created_at: number };
  api_keys: {
    id: string;
    tenant_id: string;
    name: string;
    key_hash: string;
    scopes: string;
    created_at: number;
    revoked_at: number | null;
  };
  numbers: {
    id: string;
    tenant_id: string;
    number: string;
    provider: string;
    country: string;
    region: string;
    voice: number;
    sms: number;
    status: 'active' | 'draining' | 'retired';
    tags: string;
    max_sessions: number | null;
    /** Open sessions holding the number, kept in the same transaction as every allocation and release. */
    load: number;
    created_at: number;
    updated_at: number;
    /** The open `dedicated` session that owns the number alone, if any. */
    dedicated_to: string | null;
  };
  sessions: {
    id: string;
    tenant_id: string;
    external_id: string | null;
    fingerprint: string;
    mode: string;
    status: 'open' | 'closed' | 'expired';
    ttl_mode: string;
    ttl_seconds: number | null;
    expires_at: number;
    record: number;
    channels: string;
    max_call_seconds: number | null;
    geo_match: string;
    sticky: string;
    extension_fallback: number;
    metadata: string;
    created_at: number;
    updated_at: number;
    closed_at: number | null;
    reject_message: string | null;
  };
  participants: {
    id: string;
    tenant_id: string;
    session_id: string;
    /** The person's blind index (store/vault.ts): what every lookup by number compares. */
    number_index: string;
    /** The person's number, sealed; null only in a row from before migration 0015 not yet sealed. */
    number_sealed: string | null;
    label: string | null;
    proxy_number_id: string;
    proxy_number: string;
    reveal_number: number;
    can_initiate: number;
    /**
     * 1 while the participant is in an open session, or its ended session's binding at a carrier is
     * being undone (`unbinding`): the unique index of the invariant covers these rows, so that the
     * people are not given that proxy again while the carrier may still connect them through it.
     */
    active: number;
    created_at: number;
    /** When the proxy was given back (session ended, or participant removed): the reuse cooldown counts from it. */
    released_at: number | null;
    /** When the participant was taken out of a still open session (replaced): no longer shown in it. */
    removed_at: number | null;
    /** The code a caller keys on a shared number (extension fallback); '' for a direct participation. */
    extension: string;
    /** At a remote-binding carrier, the state of the session's binding (domain/binding.ts); else null. */
    binding: BindingState | null;
    /** The optimistic lock: every change of the binding names the version it read, and bumps it. */
    binding_version: number;
    /** Failed tries of the pending binding or unbinding. */
    binding_attempts: number;
    /** When the worker may try the pending binding or unbinding (again); null when none is pending. */
    binding_next_at: number | null;
    /** The carrier's id for the binding (Alibaba's SubsId), once bound. */
    binding_ref: string | null;
    /** Why the last try failed: the carrier's code or what went wrong, never a number. */
    binding_error: string | null;
  };
  interactions: {
    id: string;
    tenant_id: string | null;
    session_id: string | null;
    channel: string;
    /** Sealed (store/vault.ts), as are target_number and caller_id; to_number is the pool number dialled. */
    from_number: string;
    to_number: string;
    target_number: string | null;
    caller_id: string | null;
    /** The blind index of from_number (null in rows from before migration 0015). */
    from_index: string | null;
    action: string;
    reason: string | null;
    provider: string;
    provider_call_id: string | null;
    status: string;
    duration_seconds: number | null;
    /** An MMS's media URLs as a JSON array; null when there are none. */
    media: string | null;
    /** The call's recording, set by the carrier's recording callback; recording_status null until then. */
    recording_url: string | null;
    recording_duration_seconds: number | null;
    recording_status: string | null;
    created_at: number;
    updated_at: number;
  };
  events: {
    id: string;
    tenant_id: string;
    type: string;
    payload: string;
    created_at: number;
    /** 1 once the outbox has made the event's deliveries (migration 0011). */
    fanned_out: number;
  };
  /** Where a tenant's app gets events (migration 0011); deleted ones are kept for their deliveries. */
  webhook_endpoints: {
    id: string;
    tenant_id: string;
    url: string;
    /** JSON array of event types; null: all. */
    events: string | null;
    secret: string;
    created_at: number;
    deleted_at: number | null;
  };
  /** One event on its way to one endpoint; the primary key is (event_id, endpoint_id). */
  deliveries: {
    event_id: string;
    endpoint_id: string;
    /** What orders the endpoint's deliveries: the session's id, or the event's own for other events. */
    order_key: string;
    status: DeliveryStatus;
    attempts: number;
    next_at: number;
    /** Until when an instance holds the delivery to attempt it (0: nobody). */
    lease_until: number;
    last_error: string | null;
    last_status: number | null;
    delivered_at: number | null;
    created_at: number;
    updated_at: number;
  };
  /** Numbers a tenant never connects; the primary key is (tenant_id, number). */
  blocklist: {
    tenant_id: string;
    /** The blocked number's blind index, as in participants. */
    number_index: string;
    number_sealed: string | null;
    reason: string | null;
    created_at: number;
  };
  settings: { key: string; value: string };
  /** The admin actions (migration 0013), newest last by id. */
  audit: {
    id: string;
    tenant_id: string;
    key_id: string | null;
    action: string;
    target_id: string;
    /** JSON: what the action changed, numbers masked; null when the action says it all. */
    detail: string | null;
    created_at: number;
  };
  /** Carrier webhooks taken, by digest, until the carrier's signature would be refused as stale. */
  webhook_receipts: { provider: string; digest: string; expires_at: number };
  /** The purchase journal (migration 0008): numbers being bought, bought, and given back. */
  purchases: {
    id: string;
    tenant_id: string;
    provider: string;
    number: string;
    status: PurchaseStatus;
    /** The carrier's id for the number (Twilio's PN... sid), once bought. */
    carrier_ref: string | null;
    /** What the number carries (JSON array of channels), as the carrier offered it. */
    capabilities: string;
    release_attempts: number;
    /** Who asked for it: `import` (an operator) or `replenish` (the replenisher). */
    origin: PurchaseOrigin;
    created_at: number;
    updated_at: number;
  };
}

/**
 * buying: the carrier is being asked (or was, and its answer is not recorded); bought: in the pool;
 * releasing: being given back; released; release_failed: the carrier refused to take it back.
 */
export type PurchaseStatus = 'buying' | 'bought' | 'releasing' | 'released' | 'release_failed';

/** Who asked for a purchase: an operator's import, or the replenisher. */
export type PurchaseOrigin = 'import' | 'replenish';

/**
 * Constants that partial indexes depend on, written into the SQL as literals: bound as parameters,
 * they would make SQLite re-plan the statement on every execution, since the plan (whether the
 * partial index applies) depends on the value.
 */
export const ACTIVE = sql.lit<number>(1);
export const OPEN = sql.lit<'open'>('open');
/** The extension of a direct participation (no code). */
export const DIRECT = sql.lit<string>('');

/** The database as the repositories use it: Kysely over the schema (or a transaction of it). */
export type Db = Kysely<Schema>;
