import { dirname, join, resolve } from 'node:path';
import { isSupportedCountry } from 'libphonenumber-js';
import { type Static, type TSchema, Type } from 'typebox';
import { Value } from 'typebox/value';
import type { CarrierWeights } from './domain/allocation.ts';
import { MAX_MEDIA_URL_LENGTH, MEDIA_URL_PATTERN } from './domain/media.ts';
import { type ReplenishPolicy, type ReplenishRule, scopeName } from './domain/replenish.ts';
import {
  ANNOUNCEMENT_LIMITS,
  type Announcement,
  DEFAULT_GATHER_PROMPT,
  DEFAULT_REJECT_MESSAGE,
  type OutOfSession,
} from './domain/routing.ts';
import { DEFAULT_TTL_SECONDS } from './domain/session.ts';
import { DEFAULT_WEBHOOK_RETRY, type OutboxPolicy } from './domain/webhooks.ts';
import { DEFAULT_ALIYUN_PNS_URL, DEFAULT_ALIYUN_TIMEOUT_MS } from './providers/aliyun/aliyun-binder.ts';
import { MAX_PURCHASE } from './providers/procurement.ts';
import { PROVIDER_NAMES } from './providers/registry.ts';
import { checkDataKeys, type DataKeys } from './store/vault.ts';

export const DEFAULT_PORT = 3000;
export const DEFAULT_SQLITE_FILE = './data/veil.db';
export const DEFAULT_REUSE_COOLDOWN_SECONDS = 3600;
export const DEFAULT_RETENTION_DAYS = 30;
export const DEFAULT_CALLBACK_WINDOW_SECONDS = 86_400;
/** Where the Telnyx API (numbers, and the Messaging API that relays texts) is reached. */
export const DEFAULT_TELNYX_API_URL = 'https://api.telnyx.com';
/** Where Plivo's REST API (numbers: search, buy, release) is reached. */
export const DEFAULT_PLIVO_API_URL = 'https://api.plivo.com';
/** Where Twilio's REST API (numbers: search, buy, release) is reached. */
export const DEFAULT_TWILIO_API_URL = 'https://api.twilio.com';
/** Where Vonage's REST APIs (the Messages API, which relays texts) are reached. */
export const DEFAULT_VONAGE_API_URL = 'https://api.nexmo.com';
/** Where Vonage's Numbers API (search, buy, cancel, the account's numbers) is reached: its own host. */
export const DEFAULT_VONAGE_REST_URL = 'https://rest.nexmo.com';
const MAX_SECONDS = 31_536_000;
/** Abuse limits (README "Abuse limits"); each 0 turns its limit off. */
export const DEFAULT_RATE_LIMIT_PER_MINUTE = 6000;
export const DEFAULT_RATE_LIMIT_ROUTE_PER_MINUTE = 60_000;
export const DEFAULT_MAX_SESSIONS_PER_MINUTE = 1200;
export const DEFAULT_MAX_CALLS_PER_SESSION_HOUR = 60;
/** Tries of a remote binding before it is given up (VEIL_BINDING_MAX_ATTEMPTS). */
export const DEFAULT_BINDING_MAX_ATTEMPTS = 6;

/** Order events in (DESIGN §6): where they are read from, and where malformed ones go. */
export const DEFAULT_NATS_SUBJECT = 'orders.>';
export const DEFAULT_NATS_DEAD_SUBJECT = 'veil.orders.dead';
export const DEFAULT_NATS_DURABLE = 'veil-orders';
export const DEFAULT_KAFKA_TOPIC = 'orders';
export const DEFAULT_KAFKA_DEAD_TOPIC = 'veil.orders.dead';
export const DEFAULT_KAFKA_GROUP = 'veil-orders';
/** A NATS subject: dot-separated tokens, `*` a whole token, `>` the last one. */
const NATS_SUBJECT_PATTERN = '^([^.*>\\s]+|\\*)(\\.([^.*>\\s]+|\\*))*(\\.>)?$|^>$';
const NATS_PLAIN_SUBJECT_PATTERN = '^[^.*>\\s]+(\\.[^.*>\\s]+)*$';
const KAFKA_TOPIC_PATTERN = '^[A-Za-z0-9._-]{1,249}$';

/**
 * Two annotations of our own on a variable's schema: `secret` (its value never appears in an
 * error) and `expected` (what a pattern means, in words an operator reads).
 */
interface Annotations {
  secret?: true;
  expected?: string;
}

/**
 * The environment of DESIGN §6, declared once: each variable's type, allowed values, bounds,
 * default and meaning (a variable with a default is never missing once read). Values arrive as text; `loadConfig` reads integers and booleans strictly,
 * checks the result against this schema and derives `Config` from it. Defaults that depend on
 * NODE_ENV (HOST, VEIL_DEMO_POOL) or on other variables (VEIL_PUBLIC_URL) are applied after.
 */
export const Environment = Type.Object({
  NODE_ENV: Type.Optional(
    Type.String({
      description:
        '`production` turns off the demo pool and the printed development key; anything else is development',
    }),
  ),
  PORT: Type.Integer({
    minimum: 0,
    maximum: 65_535,
    default: DEFAULT_PORT,
    description: 'the port the HTTP server listens on (0: any free port)',
  }),
  HOST: Type.Optional(
    Type.String({
      description: 'the address the HTTP server listens on; 127.0.0.1 in development, 0.0.0.0 in production',
    }),
  ),
  DATABASE_URL: Type.String({
    default: `sqlite:${DEFAULT_SQLITE_FILE}`,
    secret: true,
    description: '`postgres://...` for PostgreSQL, `sqlite:path` or a file path for SQLite',
  }),
  VEIL_API_KEY: Type.Optional(
    Type.String({
      minLength: 16,
      secret: true,
      description:
        'bootstrap admin API key, ensured at start; generated and printed in development, required in production unless a usable key is stored',
    }),
  ),
  VEIL_METRICS_TOKEN: Type.Optional(
    Type.String({
      minLength: 16,
      secret: true,
      description:
        'a bearer token that reads GET /metrics and nothing else (for Prometheus); admin keys of the installation read it too',
    }),
  ),
  VEIL_DEMO_POOL: Type.Optional(
    Type.Boolean({
      description:
        '`false` skips seeding the demo sim pool on an empty database; true in development, false in production',
    }),
  ),
  VEIL_PUBLIC_URL: Type.Optional(
    Type.String({
      description:
        'the public http(s) base URL carriers call; webhook signatures are checked against it, never against Host; default http://HOST:PORT',
    }),
  ),
  VEIL_DEFAULT_COUNTRY: Type.Optional(
    Type.String({
      pattern: '^[A-Z]{2}$',
      expected: 'an ISO country code like US',
      description: 'ISO country used to parse numbers not in E.164; unset: non-E.164 numbers are refused',
    }),
  ),
  VEIL_DEFAULT_TTL_SECONDS: Type.Integer({
    minimum: 1,
    maximum: MAX_SECONDS,
    default: DEFAULT_TTL_SECONDS,
    description: 'session life in seconds when a request gives none',
  }),
  VEIL_REUSE_COOLDOWN_SECONDS: Type.Integer({
    minimum: 0,
    maximum: MAX_SECONDS,
    default: DEFAULT_REUSE_COOLDOWN_SECONDS,
    description: "how long, in seconds, a person's released proxy number is avoided for them",
  }),
  VEIL_RETENTION_DAYS: Type.Integer({
    minimum: 0,
    maximum: 36_500,
    default: DEFAULT_RETENTION_DAYS,
    description:
      "how many days sessions that ended (with their people's real numbers), interaction logs and events are kept before they are purged; 0: for ever",
  }),
  VEIL_OUT_OF_SESSION: Type.String({
    pattern: '^(reject|forward:\\+[1-9]\\d{6,14}|ask:.+)$',
    default: 'reject',
    expected: 'reject, forward:+E164 or ask:https://URL',
    description:
      'what a call outside any session meets: `reject`, `forward:+E164` to a support line, or `ask:https://URL`, the app’s webhook, which answers where it goes',
  }),
  VEIL_CALLBACK_WINDOW_SECONDS: Type.Integer({
    minimum: 0,
    maximum: MAX_SECONDS,
    default: DEFAULT_CALLBACK_WINDOW_SECONDS,
    description: 'how long, in seconds, a dedicated number’s owner can call back the most recent caller',
  }),
  VEIL_EXTENSION_FALLBACK: Type.Boolean({
    default: false,
    description:
      'whether a session that gives no extensionFallback may share a number with an extension code when none is free',
  }),
  VEIL_GATHER_PROMPT: Type.String({
    minLength: 1,
    maxLength: 500,
    default: DEFAULT_GATHER_PROMPT,
    description: 'what a caller hears on a number shared by extension, before keying their code',
  }),
  VEIL_GATHER_AUDIO_URL: Type.Optional(
    Type.String({
      maxLength: MAX_MEDIA_URL_LENGTH,
      pattern: MEDIA_URL_PATTERN,
      expected: 'an http(s) URL',
      description: 'a recording played instead of speaking VEIL_GATHER_PROMPT',
    }),
  ),
  VEIL_REJECT_MESSAGE: Type.String({
    minLength: 1,
    maxLength: ANNOUNCEMENT_LIMITS.text,
    default: DEFAULT_REJECT_MESSAGE,
    description: 'what a refused caller hears before the call ends (a session may say its own)',
  }),
  VEIL_REJECT_AUDIO_URL: Type.Optional(
    Type.String({
      maxLength: MAX_MEDIA_URL_LENGTH,
      pattern: MEDIA_URL_PATTERN,
      expected: 'an http(s) URL',
      description: 'a recording played instead of speaking VEIL_REJECT_MESSAGE',
    }),
  ),
  VEIL_VOICE_LANGUAGE: Type.Optional(
    Type.String({
      pattern: ANNOUNCEMENT_LIMITS.language,
      expected: 'a language tag such as en-GB',
      description: 'the language the messages and prompts are spoken in, as the carriers name it',
    }),
  ),
  VEIL_VOICE: Type.Optional(
    Type.String({
      pattern: ANNOUNCEMENT_LIMITS.voice,
      expected: 'a voice name such as Polly.Amy',
      description: 'the carriers’ voice that speaks the messages and prompts',
    }),
  ),
  VEIL_CARRIER_WEIGHTS: Type.Optional(
    Type.String({
      maxLength: 2000,
      description:
        'gray release: which carrier new sessions use, by weight, e.g. `twilio=9,telnyx=1;415:telnyx=1;GB:vonage=1` (a rule for everyone, then rules for a region or country)',
    }),
  ),
  VEIL_REPLENISH: Type.Optional(
    Type.String({
      maxLength: 2000,
      description:
        'the pool’s low-water marks, e.g. `US/415=10@twilio, GB=5`: below 10 free numbers in area code 415, `pool.low` is written and twilio buys more; below 5 in GB, only `pool.low`',
    }),
  ),
  VEIL_REPLENISH_BATCH: Type.Integer({
    minimum: 1,
    maximum: MAX_PURCHASE,
    default: 5,
    description: 'the replenisher buys numbers in multiples of this',
  }),
  VEIL_REPLENISH_BUDGET: Type.Integer({
    minimum: 0,
    maximum: 100_000,
    default: 20,
    description: 'the most numbers the replenisher may buy in any 30 days (operators’ imports do not count)',
  }),
  VEIL_REPLENISH_INTERVAL_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 86_400,
    default: 60,
    description: 'how often, in seconds, the pool’s free numbers are checked against VEIL_REPLENISH',
  }),
  VEIL_WEBHOOK_MAX_ATTEMPTS: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: DEFAULT_WEBHOOK_RETRY.maxAttempts,
    description: 'attempts at delivering an event to a webhook endpoint before it is dead',
  }),
  VEIL_WEBHOOK_TIMEOUT_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 60,
    default: 10,
    description: 'how long a webhook endpoint has to answer a delivery before the attempt failed',
  }),
  VEIL_WEBHOOK_RETRY_BASE_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 3600,
    default: DEFAULT_WEBHOOK_RETRY.baseMs / 1000,
    description:
      'the first retry of a failed delivery waits up to this; each later one up to twice the one before',
  }),
  VEIL_WEBHOOK_RETRY_MAX_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 86_400,
    default: DEFAULT_WEBHOOK_RETRY.capMs / 1000,
    description: 'no retry of a failed delivery waits longer than this',
  }),
  VEIL_WEBHOOK_INTERVAL_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 3600,
    default: 1,
    description: 'how often, in seconds, the outbox looks for events to deliver',
  }),
  VEIL_INTERCEPT_URL: Type.Optional(
    Type.String({
      description:
        'the app’s webhook that may veto each call or text about to be connected (https:// in production)',
    }),
  ),
  TWILIO_ACCOUNT_SID: Type.Optional(
    Type.String({
      pattern: '^AC[0-9a-fA-F]{32}$',
      expected: 'AC followed by 32 hex digits',
      description: 'Twilio account SID; with TWILIO_AUTH_TOKEN it enables the twilio provider',
    }),
  ),
  TWILIO_AUTH_TOKEN: Type.Optional(
    Type.String({ secret: true, description: 'Twilio auth token; verifies X-Twilio-Signature on webhooks' }),
  ),
  TWILIO_API_URL: Type.String({
    default: DEFAULT_TWILIO_API_URL,
    description:
      'base URL of Twilio’s REST API, where numbers are searched, bought and released; https:// in production but for a loopback host',
  }),
  TELNYX_API_KEY: Type.Optional(
    Type.String({
      secret: true,
      description:
        'Telnyx API key (v2); with TELNYX_PUBLIC_KEY it enables the telnyx provider, and it relays texts through the Messaging API',
    }),
  ),
  TELNYX_PUBLIC_KEY: Type.Optional(
    Type.String({
      // 32 bytes are 43 base64 characters and one `=` of padding, as the portal shows the key.
      pattern: '^[A-Za-z0-9+/]{43}=$',
      expected: 'the 32-byte Ed25519 public key in base64 (44 characters), as the Telnyx portal shows it',
      description: 'Telnyx account public key (base64); verifies telnyx-signature-ed25519 on webhooks',
    }),
  ),
  TELNYX_API_URL: Type.String({
    default: DEFAULT_TELNYX_API_URL,
    description:
      'base URL of the Telnyx API, where numbers are searched, bought and released and texts are relayed (its /v2/messages); https:// in production but for a loopback host',
  }),
  PLIVO_AUTH_ID: Type.Optional(
    Type.String({
      pattern: '^[MS]A[A-Z0-9]{18}$',
      expected: 'MA or SA followed by 18 capital letters and digits',
      description:
        'Plivo Auth ID (account or subaccount); with PLIVO_AUTH_TOKEN it enables the plivo provider',
    }),
  ),
  PLIVO_AUTH_TOKEN: Type.Optional(
    Type.String({
      secret: true,
      description: 'Plivo Auth Token of that account; verifies X-Plivo-Signature-V3 on webhooks',
    }),
  ),
  PLIVO_API_URL: Type.String({
    default: DEFAULT_PLIVO_API_URL,
    description:
      'base URL of Plivo’s REST API, where numbers are searched, bought and released; https:// in production but for a loopback host',
  }),
  VONAGE_API_KEY: Type.Optional(
    Type.String({
      description:
        'Vonage API key; with VONAGE_API_SECRET and VONAGE_SIGNATURE_SECRET it enables the vonage provider',
    }),
  ),
  VONAGE_API_SECRET: Type.Optional(
    Type.String({
      secret: true,
      description: 'Vonage API secret; authenticates the Messages API requests that relay texts',
    }),
  ),
  VONAGE_SIGNATURE_SECRET: Type.Optional(
    Type.String({
      secret: true,
      description: 'Vonage signature secret; verifies the signed JWT (Authorization: Bearer) on webhooks',
    }),
  ),
  VONAGE_API_URL: Type.String({
    default: DEFAULT_VONAGE_API_URL,
    description:
      'base URL of Vonage’s REST API, where texts are relayed (POST /v1/messages); https:// in production but for a loopback host',
  }),
  VONAGE_REST_URL: Type.String({
    default: DEFAULT_VONAGE_REST_URL,
    description:
      'base URL of Vonage’s Numbers API, where numbers are searched, bought and cancelled; https:// in production but for a loopback host',
  }),
  ALIYUN_ACCESS_KEY_ID: Type.Optional(
    Type.String({
      description:
        'Alibaba Cloud AccessKey ID; with ALIYUN_ACCESS_KEY_SECRET and ALIYUN_PNS_POOL_KEY it enables the aliyun provider (Phone Number Protection, remote binding)',
    }),
  ),
  ALIYUN_ACCESS_KEY_SECRET: Type.Optional(
    Type.String({ secret: true, description: 'Alibaba Cloud AccessKey secret; signs every PNS API request' }),
  ),
  ALIYUN_PNS_POOL_KEY: Type.Optional(
    Type.String({ description: 'the PNS number pool’s key (PoolKey), as the PNS console shows it' }),
  ),
  ALIYUN_PNS_URL: Type.String({
    default: DEFAULT_ALIYUN_PNS_URL,
    description:
      'base URL of the PNS API (Dyplsapi), where bindings are made and undone; https:// in production but for a loopback host',
  }),
  ALIYUN_PNS_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 60_000,
    default: DEFAULT_ALIYUN_TIMEOUT_MS,
    description: 'how long, in milliseconds, one PNS API call may take before it counts as failed',
  }),
  VEIL_BINDING_MAX_ATTEMPTS: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: DEFAULT_BINDING_MAX_ATTEMPTS,
    description:
      'tries of a remote binding (or unbinding) before it is given up as failed and `binding.failed` is written',
  }),
  VEIL_BINDING_INTERVAL_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 3600,
    default: 1,
    description: 'how often, in seconds, the binding worker looks for bindings to make or undo',
  }),
  VEIL_PROVIDER_FAILURES: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 5,
    description:
      "failures in a row of a carrier's API calls (texts relayed, numbers bought, health probes) after which it counts as down: its numbers go to no new session until it recovers",
  }),
  VEIL_PROVIDER_HALF_OPEN_MS: Type.Integer({
    minimum: 10,
    maximum: 3_600_000,
    default: 30_000,
    description:
      'how long, in milliseconds, a carrier counted as down waits before one call (a probe, if no other comes) tries it again',
  }),
  VEIL_PROVIDER_PROBE_SECONDS: Type.Integer({
    minimum: 0,
    maximum: 3600,
    default: 30,
    description:
      'how often, in seconds, a carrier found down is probed (a lookup of one number at its numbers API, which buys nothing), so that it recovers with no traffic; 0: never',
  }),
  VEIL_FAILOVER_MS: Type.Integer({
    minimum: 0,
    maximum: 600_000,
    default: 1000,
    description:
      'how often, in milliseconds, open sessions holding numbers of a carrier that is down or switched off are looked for and moved to numbers of carriers in use (session.rebound); 0: never',
  }),
  VEIL_RATE_LIMIT_PER_MINUTE: Type.Integer({
    minimum: 0,
    maximum: 10_000_000,
    default: DEFAULT_RATE_LIMIT_PER_MINUTE,
    description:
      'requests one API key may make to /v1 (but POST /v1/route) per minute on one instance; beyond, 429 rate_limited; 0: no limit',
  }),
  VEIL_RATE_LIMIT_ROUTE_PER_MINUTE: Type.Integer({
    minimum: 0,
    maximum: 10_000_000,
    default: DEFAULT_RATE_LIMIT_ROUTE_PER_MINUTE,
    description:
      'POST /v1/route requests one API key may make per minute on one instance, counted apart from its other requests; 0: no limit',
  }),
  VEIL_MAX_SESSIONS_PER_MINUTE: Type.Integer({
    minimum: 0,
    maximum: 10_000_000,
    default: DEFAULT_MAX_SESSIONS_PER_MINUTE,
    description:
      'sessions one tenant may create per minute on one instance; beyond, 429 rate_limited; 0: no cap',
  }),
  VEIL_MAX_CALLS_PER_SESSION_HOUR: Type.Integer({
    minimum: 0,
    maximum: 10_000_000,
    default: DEFAULT_MAX_CALLS_PER_SESSION_HOUR,
    description:
      'calls one session may connect per hour on one instance (a toll-fraud guard); beyond, a call is refused with reason call_limit; 0: no cap',
  }),
  VEIL_DATA_KEYS: Type.Optional(
    Type.String({
      secret: true,
      pattern: '^[A-Za-z0-9_-]{1,16}:[A-Za-z0-9+/=_-]+(,[A-Za-z0-9_-]{1,16}:[A-Za-z0-9+/=_-]+)*$',
      expected: 'id:base64 of 32 bytes, comma-separated, the key that encrypts first',
      description:
        'the AES-256-GCM keys that encrypt real numbers at rest, as id:base64 (32 bytes); the first encrypts, the others only decrypt (rotation); with VEIL_INDEX_KEY',
    }),
  ),
  VEIL_INDEX_KEY: Type.Optional(
    Type.String({
      secret: true,
      pattern: '^[A-Za-z0-9+/=_-]+$',
      expected: 'base64 of 32 bytes',
      description:
        'the HMAC-SHA256 key of the blind index real numbers are looked up by; with VEIL_DATA_KEYS',
    }),
  ),
  VEIL_KEY_FILE: Type.Optional(
    Type.String({
      description:
        'a JSON file holding the index key and the data keys, instead of VEIL_DATA_KEYS and VEIL_INDEX_KEY; in development one is generated beside the database when neither is set',
    }),
  ),
  VEIL_NATS_URL: Type.Optional(
    Type.String({
      secret: true,
      description:
        'NATS server(s) to consume order events from through JetStream, comma-separated nats://host:port (they may carry credentials); unset: no NATS consumer',
    }),
  ),
  VEIL_NATS_SUBJECT: Type.String({
    pattern: NATS_SUBJECT_PATTERN,
    default: DEFAULT_NATS_SUBJECT,
    expected: 'a NATS subject such as orders.> (tokens split by dots, * and > as wildcards)',
    description:
      'the subject (wildcards allowed) whose order events are consumed; a stream is created for it if none captures it',
  }),
  VEIL_NATS_DEAD_SUBJECT: Type.String({
    pattern: NATS_PLAIN_SUBJECT_PATTERN,
    default: DEFAULT_NATS_DEAD_SUBJECT,
    expected: 'a NATS subject without wildcards, such as veil.orders.dead',
    description:
      'where malformed order events go, with the reason in a header; outside VEIL_NATS_SUBJECT, and kept in a stream (created if none captures it)',
  }),
  VEIL_NATS_DURABLE: Type.String({
    pattern: '^[A-Za-z0-9_-]{1,64}$',
    default: DEFAULT_NATS_DURABLE,
    expected: 'letters, digits, _ and -',
    description: 'the durable JetStream consumer every instance shares (each event goes to one of them)',
  }),
  KAFKA_BROKERS: Type.Optional(
    Type.String({
      pattern: '^[^,\\s]+:\\d+(,[^,\\s]+:\\d+)*$',
      expected: 'host:port, comma-separated',
      description:
        'Kafka brokers to consume order events from, comma-separated host:port; unset: no Kafka consumer',
    }),
  ),
  VEIL_KAFKA_TOPIC: Type.String({
    pattern: KAFKA_TOPIC_PATTERN,
    default: DEFAULT_KAFKA_TOPIC,
    expected: 'a Kafka topic name (letters, digits, ., _ and -)',
    description: 'the Kafka topic whose order events are consumed',
  }),
  VEIL_KAFKA_DEAD_TOPIC: Type.String({
    pattern: KAFKA_TOPIC_PATTERN,
    default: DEFAULT_KAFKA_DEAD_TOPIC,
    expected: 'a Kafka topic name (letters, digits, ., _ and -)',
    description: 'the Kafka topic malformed order events are sent to, with the reason in a header',
  }),
  VEIL_KAFKA_GROUP: Type.String({
    pattern: KAFKA_TOPIC_PATTERN,
    default: DEFAULT_KAFKA_GROUP,
    expected: 'a consumer group id (letters, digits, ., _ and -)',
    description: 'the Kafka consumer group every instance joins (each event goes to one of them)',
  }),
  SIM_WEBHOOK_SECRET: Type.Optional(
    Type.String({
      secret: true,
      description:
        'HMAC secret the simulator signs its webhooks with; generated and kept in the database when unset',
    }),
  ),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    default: 'info',
    description: 'pino log level',
  }),
});
export type Environment = Static<typeof Environment>;
type Key = keyof Environment;

/** Telnyx: the API key relays texts, the public key verifies webhooks, `apiUrl` has no trailing slash. */
export interface TelnyxConfig {
  apiKey: string;
  publicKey: string;
  apiUrl: string;
}

export type StoreConfig = { dialect: 'sqlite'; file: string } | { dialect: 'postgres'; url: string };

/** The environment, checked and typed (its types are the schema's): what the rest of Veil reads. */
export interface Config {
  production: boolean;
  port: Environment['PORT'];
  host: string;
  store: StoreConfig;
  /** Bootstrap admin key; in development one is generated when absent. */
  apiKey?: Environment['VEIL_API_KEY'];
  /** A bearer token that reads /metrics only, for Prometheus. */
  metricsToken?: Environment['VEIL_METRICS_TOKEN'];
  demoPool: boolean;
  /** Base URL carriers call; webhook signatures are checked against it, never against Host. */
  publicUrl: string;
  defaultCountry?: Environment['VEIL_DEFAULT_COUNTRY'];
  defaultTtlSeconds: Environment['VEIL_DEFAULT_TTL_SECONDS'];
  reuseCooldownSeconds: Environment['VEIL_REUSE_COOLDOWN_SECONDS'];
  /** How long ended sessions, interactions and events are kept, in days; 0: for ever. */
  retentionDays: Environment['VEIL_RETENTION_DAYS'];
  outOfSession: OutOfSession;
  callbackWindowSeconds: Environment['VEIL_CALLBACK_WINDOW_SECONDS'];
  extensionFallback: Environment['VEIL_EXTENSION_FALLBACK'];
  gatherPrompt: Environment['VEIL_GATHER_PROMPT'];
  /** The gather prompt as heard: VEIL_GATHER_PROMPT in the configured voice, or its recording. */
  gather: Announcement;
  /** What a refused caller hears, unless their session says otherwise. */
  rejectMessage: Announcement;
  /** The app's webhook that may veto each call or text about to be connected. */
  interceptUrl?: string;
  /** Gray release: which carrier new sessions use, by weight; all alike when absent. */
  carrierWeights?: CarrierWeights;
  /** The pool's low-water marks and how the replenisher buys; no rules: the pool is not watched. */
  replenish: ReplenishPolicy;
  /** How events are delivered to the app's webhook endpoints (VEIL_WEBHOOK_*). */
  outbox: OutboxPolicy;
  twilio?: TwilioConfig;
  telnyx?: TelnyxConfig;
  plivo?: PlivoConfig;
  vonage?: VonageConfig;
  aliyun?: AliyunConfig;
  /** How the binding worker tries remote bindings (any remote-binding carrier's). */
  binding: { maxAttempts: number; intervalMs: number };
  /** When a carrier counts as down, when it is tried again, and how often it is probed (0: never). */
  health: ProviderHealthPolicy;
  /** How much one key, tenant or session may do (README "Abuse limits"); 0 turns a limit off. */
  limits: AbuseLimits;
  /** Where the keys that encrypt real numbers at rest come from (services/data-keys.ts). */
  dataKeys: DataKeySource;
  /** Where order events come from (NATS JetStream, Kafka, both or neither). */
  orders: OrderEventsConfig;
  /** Secret the simulator signs webhooks with; undefined in development means "generate and keep". */
  simWebhookSecret?: Environment['SIM_WEBHOOK_SECRET'];
  logLevel: Environment['LOG_LEVEL'];
}

/** The brokers order events are consumed from; each is off when absent. */
export interface OrderEventsConfig {
  nats?: NatsOrdersConfig;
  kafka?: KafkaOrdersConfig;
}

export interface NatsOrdersConfig {
  /** The servers, as the nats client takes them (they may carry credentials: never logged). */
  servers: string[];
  subject: string;
  deadSubject: string;
  durable: string;
}

export interface KafkaOrdersConfig {
  brokers: string[];
  topic: string;
  deadTopic: string;
  groupId: string;
}

/** Limits on one key's requests, one tenant's new sessions and one session's calls; 0: none. */
export interface AbuseLimits {
  /** Requests per API key per minute to /v1, POST /v1/route apart. */
  requestsPerMinute: number;
  /** POST /v1/route requests per API key per minute. */
  routesPerMinute: number;
  /** Sessions created per tenant per minute. */
  sessionsPerMinute: number;
  /** Calls connected per session per hour. */
  callsPerSessionHour: number;
}

/** A carrier's health: down after `failures` in a row, tried again after `halfOpenAfterMs`. */
export interface ProviderHealthPolicy {
  failures: number;
  halfOpenAfterMs: number;
  /** How often every carrier with a numbers API is probed; 0: never. */
  probeIntervalMs: number;
  /** How often sessions on a carrier down or off are looked for and re-bound; 0: never. */
  failoverIntervalMs: number;
}

/** The Twilio account: its token verifies webhooks; with the SID it buys and releases numbers at `apiUrl`. */
export interface TwilioConfig {
  accountSid: string;
  authToken: string;
  /** Base URL of the REST API, without a trailing slash. */
  apiUrl: string;
}

/**
 * The Vonage account: its key and secret send texts and buy numbers, its signature secret verifies
 * webhooks.
 */
export interface VonageConfig {
  apiKey: string;
  apiSecret: string;
  signatureSecret: string;
  /** Base URL of the REST API (the Messages API), without a trailing slash. */
  apiUrl: string;
  /** Base URL of the Numbers API, on a host of its own, without a trailing slash. */
  restUrl: string;
}

/** The Plivo account: its token verifies webhooks; with its Auth ID it buys numbers. */
export interface PlivoConfig {
  authId: string;
  authToken: string;
  /** Base URL of the REST API, without a trailing slash. */
  apiUrl: string;
}

/** Alibaba Cloud Phone Number Protection: the AccessKey signs requests; the pool's key names the numbers' pool. */
export interface AliyunConfig {
  accessKeyId: string;
  accessKeySecret: string;
  poolKey: string;
  /** Base URL of the PNS API, without a trailing slash. */
  url: string;
  timeoutMs: number;
}

/** A bad value in the environment, named, so that start-up fails with a message an operator can act on. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`${key}: ${problem}`);
  }
}

type Env = Record<string, string | undefined>;

/**
 * Reads and validates the environment of DESIGN §6, once. Throws a ConfigError naming the first
 * bad variable and what it allows (echoing the value only when it is not a secret).
 */
export function loadConfig(env: Env = process.env): Config {
  const e = environment(env);
  const production = e.NODE_ENV === 'production';
  const host = e.HOST ?? (production ? '0.0.0.0' : '127.0.0.1');
  return {
    production,
    port: e.PORT,
    host,
    store: storeConfig(e.DATABASE_URL),
    apiKey: e.VEIL_API_KEY,
    metricsToken: e.VEIL_METRICS_TOKEN,
    demoPool: e.VEIL_DEMO_POOL ?? !production,
    publicUrl: publicUrl(e.VEIL_PUBLIC_URL, host, e.PORT),
    defaultCountry: defaultCountry(e.VEIL_DEFAULT_COUNTRY),
    defaultTtlSeconds: e.VEIL_DEFAULT_TTL_SECONDS,
    reuseCooldownSeconds: e.VEIL_REUSE_COOLDOWN_SECONDS,
    retentionDays: retentionDays(e),
    outOfSession: outOfSession(e.VEIL_OUT_OF_SESSION, production),
    interceptUrl:
      e.VEIL_INTERCEPT_URL === undefined
        ? undefined
        : hookUrl('VEIL_INTERCEPT_URL', e.VEIL_INTERCEPT_URL, production),
    callbackWindowSeconds: e.VEIL_CALLBACK_WINDOW_SECONDS,
    carrierWeights: e.VEIL_CARRIER_WEIGHTS === undefined ? undefined : carrierWeights(e.VEIL_CARRIER_WEIGHTS),
    replenish: {
      rules: e.VEIL_REPLENISH === undefined ? [] : replenishRules(e.VEIL_REPLENISH, production),
      batch: e.VEIL_REPLENISH_BATCH,
      budget: e.VEIL_REPLENISH_BUDGET,
      intervalMs: e.VEIL_REPLENISH_INTERVAL_SECONDS * 1000,
    },
    outbox: {
      maxAttempts: e.VEIL_WEBHOOK_MAX_ATTEMPTS,
      timeoutMs: e.VEIL_WEBHOOK_TIMEOUT_SECONDS * 1000,
      baseMs: e.VEIL_WEBHOOK_RETRY_BASE_SECONDS * 1000,
      capMs: Math.max(e.VEIL_WEBHOOK_RETRY_MAX_SECONDS, e.VEIL_WEBHOOK_RETRY_BASE_SECONDS) * 1000,
      intervalMs: e.VEIL_WEBHOOK_INTERVAL_SECONDS * 1000,
    },
    extensionFallback: e.VEIL_EXTENSION_FALLBACK,
    gatherPrompt: e.VEIL_GATHER_PROMPT,
    gather: announcement(e, e.VEIL_GATHER_PROMPT, e.VEIL_GATHER_AUDIO_URL),
    rejectMessage: announcement(e, e.VEIL_REJECT_MESSAGE, e.VEIL_REJECT_AUDIO_URL),
    twilio: twilioConfig(e, production),
    telnyx: telnyxConfig(e, production),
    plivo: plivoConfig(e, production),
    vonage: vonageConfig(e, production),
    aliyun: aliyunConfig(e, production),
    binding: {
      maxAttempts: e.VEIL_BINDING_MAX_ATTEMPTS,
      intervalMs: e.VEIL_BINDING_INTERVAL_SECONDS * 1000,
    },
    health: {
      failures: e.VEIL_PROVIDER_FAILURES,
      halfOpenAfterMs: e.VEIL_PROVIDER_HALF_OPEN_MS,
      probeIntervalMs: e.VEIL_PROVIDER_PROBE_SECONDS * 1000,
      failoverIntervalMs: e.VEIL_FAILOVER_MS,
    },
    limits: {
      requestsPerMinute: e.VEIL_RATE_LIMIT_PER_MINUTE,
      routesPerMinute: e.VEIL_RATE_LIMIT_ROUTE_PER_MINUTE,
      sessionsPerMinute: e.VEIL_MAX_SESSIONS_PER_MINUTE,
      callsPerSessionHour: e.VEIL_MAX_CALLS_PER_SESSION_HOUR,
    },
    dataKeys: dataKeySource(e, production),
    orders: { nats: natsOrders(e), kafka: kafkaOrders(e) },
    simWebhookSecret: e.SIM_WEBHOOK_SECRET,
    logLevel: e.LOG_LEVEL,
  };
}

/**
 * Where the keys that seal real numbers come from: the environment (both variables), a key file,
 * or, in development only, a file generated beside the database (in memory for an in-memory one).
 */
export type DataKeySource =
  | { from: 'environment'; keys: DataKeys }
  | { from: 'file'; file: string; generate: boolean }
  | { from: 'memory' };

function dataKeySource(e: Environment, production: boolean): DataKeySource {
  const given = credentials(e, ['VEIL_DATA_KEYS', 'VEIL_INDEX_KEY']);
  if (given && e.VEIL_KEY_FILE !== undefined)
    throw new ConfigError(
      'VEIL_KEY_FILE',
      'cannot be set with VEIL_DATA_KEYS and VEIL_INDEX_KEY: choose one',
    );
  if (given) return { from: 'environment', keys: dataKeysOf(given.VEIL_DATA_KEYS, given.VEIL_INDEX_KEY) };
  if (e.VEIL_KEY_FILE !== undefined) return { from: 'file', file: resolve(e.VEIL_KEY_FILE), generate: false };
  if (production)
    throw new ConfigError(
      'VEIL_DATA_KEYS',
      'and VEIL_INDEX_KEY (or VEIL_KEY_FILE) are required in production: the keys that encrypt real numbers at rest',
    );
  const store = storeConfig(e.DATABASE_URL);
  if (store.dialect === 'sqlite' && store.file === ':memory:') return { from: 'memory' };
  const folder = store.dialect === 'sqlite' ? dirname(store.file) : dirname(resolve(DEFAULT_SQLITE_FILE));
  return { from: 'file', file: join(folder, DEVELOPMENT_KEY_FILE), generate: true };
}

/** The key file development generates beside the database. */
export const DEVELOPMENT_KEY_FILE = 'veil-keys.json';

/** VEIL_DATA_KEYS and VEIL_INDEX_KEY as keys, checked (sizes, ids), naming the variable at fault. */
function dataKeysOf(list: string, index: string): DataKeys {
  const keys: DataKeys = {
    indexKey: Buffer.from(index, 'base64'),
    dataKeys: list.split(',').map((entry) => {
      const at = entry.indexOf(':');
      return { id: entry.slice(0, at), key: Buffer.from(entry.slice(at + 1), 'base64') };
    }),
  };
  if (keys.indexKey.length !== 32) throw new ConfigError('VEIL_INDEX_KEY', 'must be the base64 of 32 bytes');
  try {
    checkDataKeys(keys);
  } catch (error) {
    throw new ConfigError('VEIL_DATA_KEYS', (error as Error).message);
  }
  return keys;
}

/** The variables of the schema, read from text, with the schema's defaults applied, checked. */
function environment(env: Env): Environment {
  const values: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(Environment.properties)) {
    const text = env[key];
    // An empty value counts as unset, as shells and compose files write them.
    if (text !== undefined && text !== '') values[key] = fromText(schema, text);
  }
  const read = Value.Default(Environment, values);
  const error = Value.Errors(Environment, read)[0];
  if (error) {
    const key = error.instancePath.slice(1) as Key;
    throw new ConfigError(key, problem(Environment.properties[key], error.keyword, env[key] ?? ''));
  }
  return read as Environment;
}

/** Integers and booleans read strictly: text that is neither stays text, and fails the check. */
function fromText(schema: TSchema, text: string): unknown {
  if (Type.IsInteger(schema)) return /^\d+$/.test(text) ? Number(text) : text;
  if (Type.IsBoolean(schema)) return BOOLEAN_WORDS[text] ?? text;
  return text;
}

type VariableSchema = TSchema & Annotations & { minimum?: number; maximum?: number; minLength?: number };

const BOOLEAN_WORDS: Record<string, boolean> = { true: true, '1': true, false: false, '0': false };

/** What the schema allows, in words, for the check that failed. */
function problem(schema: VariableSchema, keyword: string, text: string): string {
  const { minimum, maximum, minLength, secret, expected } = schema;
  const got = secret ? '' : `, got "${text}"`;
  if (Type.IsInteger(schema)) return `must be an integer from ${minimum} to ${maximum}${got}`;
  if (Type.IsBoolean(schema)) return `must be true or false${got}`;
  if (Type.IsEnum(schema)) return `must be one of ${schema.enum.join(', ')}${got}`;
  if (keyword === 'minLength') return `must be at least ${minLength} characters`;
  return `must be ${expected ?? 'valid'}${got}`;
}

function storeConfig(url: string): StoreConfig {
  if (/^postgres(ql)?:\/\//.test(url)) {
    try {
      new URL(url);
    } catch {
      throw new ConfigError('DATABASE_URL', 'is not a valid postgres:// URL');
    }
    return { dialect: 'postgres', url };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.startsWith('sqlite:')) {
    throw new ConfigError('DATABASE_URL', 'must be postgres://..., sqlite:path or a file path');
  }
  const file = url.replace(/^sqlite:(\/\/)?/, '');
  if (!file) throw new ConfigError('DATABASE_URL', 'sqlite: needs a file path');
  return { dialect: 'sqlite', file: file === ':memory:' ? file : resolve(file) };
}

/** The URL at which this host is reached locally: wildcard addresses become loopback, IPv6 is bracketed. */
export function localUrl(host: string, port: number): string {
  const callable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${callable.includes(':') ? `[${callable}]` : callable}:${port}`;
}

function publicUrl(value: string | undefined, host: string, port: number): string {
  if (!value) return localUrl(host, port);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError('VEIL_PUBLIC_URL', 'is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('VEIL_PUBLIC_URL', 'must be http:// or https://');
  }
  return value.replace(/\/+$/, '');
}

function defaultCountry(code: string | undefined): string | undefined {
  // Shaped like a country (the schema checked that) but unknown to libphonenumber: every national
  // number would fail to parse.
  if (code !== undefined && !isSupportedCountry(code)) {
    throw new ConfigError('VEIL_DEFAULT_COUNTRY', `must be an ISO country code like US, got "${code}"`);
  }
  return code;
}

function outOfSession(value: string, production: boolean): OutOfSession {
  if (value.startsWith('forward:')) return { action: 'forward', to: value.slice('forward:'.length) };
  if (value.startsWith('ask:')) {
    return { action: 'ask', url: hookUrl('VEIL_OUT_OF_SESSION', value.slice('ask:'.length), production) };
  }
  return { action: 'reject' };
}

/**
 * The URL of one of the app's webhooks, which are sent real numbers: https in production (http
 * only in development, for an app on the same machine). The value is not echoed: a URL may carry
 * a token.
 */
function hookUrl(key: string, value: string, production: boolean): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(key, 'is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(key, 'must be an https:// URL');
  }
  if (production && url.protocol !== 'https:') {
    throw new ConfigError(key, 'must be an https:// URL in production: it is sent real numbers');
  }
  // fetch refuses such a URL at the first call; say so at start instead.
  if (url.username || url.password) throw new ConfigError(key, 'must not carry a user name or password');
  return value;
}

/**
 * VEIL_CARRIER_WEIGHTS: rules separated by `;`, each `[scope:]carrier=weight,...`, where a scope is
 * an area code (`415`) or a country (`GB`) and a rule without one is everyone's. Weights are whole
 * numbers from 0 to 1000; a carrier not named is tried after the named ones.
 */
function carrierWeights(value: string): CarrierWeights {
  const key = 'VEIL_CARRIER_WEIGHTS';
  const weights: { default: Record<string, number>; scoped: Record<string, Record<string, number>> } = {
    default: {},
    scoped: {},
  };
  for (const rule of value
    .split(';')
    .map((r) => r.trim())
    .filter(Boolean)) {
    const colon = rule.indexOf(':');
    const scope = colon === -1 ? undefined : rule.slice(0, colon).trim();
    if (scope !== undefined && !/^([A-Z]{2}|[0-9A-Za-z]{1,16})$/.test(scope)) {
      throw new ConfigError(key, `"${scope}" is neither an area code nor a country code`);
    }
    const into: Record<string, number> = {};
    for (const pair of rule.slice(colon + 1).split(',')) {
      const match = /^\s*([a-z]+)\s*=\s*(\d{1,4})\s*$/.exec(pair);
      const carrier = match?.[1] ?? '';
      if (!match || !(PROVIDER_NAMES as readonly string[]).includes(carrier) || Number(match[2]) > 1000) {
        throw new ConfigError(
          key,
          `"${pair.trim()}" is not carrier=weight (a carrier of ${PROVIDER_NAMES.join(', ')}, a weight from 0 to 1000)`,
        );
      }
      into[carrier] = Number(match[2]);
    }
    if (scope === undefined) weights.default = into;
    else weights.scoped[scope] = into;
  }
  return weights;
}

/**
 * VEIL_REPLENISH: rules separated by commas, each `COUNTRY[/AREA]=MIN[@carrier]`. One rule per
 * scope; a carrier that cannot buy here is caught when Veil starts (it knows the enabled ones).
 */
function replenishRules(value: string, production: boolean): ReplenishRule[] {
  const key = 'VEIL_REPLENISH';
  const rules: ReplenishRule[] = [];
  for (const text of value
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean)) {
    const match = /^([A-Z]{2})(?:\/(\d{1,6}))?=(\d{1,5})(?:@([a-z]+))?$/.exec(text);
    if (!match) {
      throw new ConfigError(key, `"${text}" is not COUNTRY[/AREA]=MIN[@carrier], such as US/415=10@twilio`);
    }
    const [, country = '', region, min, provider] = match;
    if (!isSupportedCountry(country)) throw new ConfigError(key, `"${country}" is not a country code`);
    if (provider !== undefined && !(PROVIDER_NAMES as readonly string[]).includes(provider)) {
      throw new ConfigError(key, `"${provider}" is not a carrier: one of ${PROVIDER_NAMES.join(', ')}`);
    }
    if (provider === 'sim' && production) {
      throw new ConfigError(key, 'the simulator cannot fill a production pool: its numbers reach nobody');
    }
    const rule: ReplenishRule = { country, minFree: Number(min), ...(region ? { region } : {}) };
    if (provider) rule.provider = provider;
    if (rules.some((r) => scopeName(r) === scopeName(rule))) {
      throw new ConfigError(key, `${scopeName(rule)} has two rules`);
    }
    rules.push(rule);
  }
  return rules;
}

/** A message of the installation's, in its voice when one is configured. */
function announcement(e: Environment, text: string, audioUrl: string | undefined): Announcement {
  return {
    text,
    ...(e.VEIL_VOICE_LANGUAGE ? { language: e.VEIL_VOICE_LANGUAGE } : {}),
    ...(e.VEIL_VOICE ? { voice: e.VEIL_VOICE } : {}),
    ...(audioUrl ? { audioUrl } : {}),
  };
}

/**
 * A carrier's credentials, all given or none (then undefined: the carrier is not enabled). A partial
 * set stops start-up naming the first one missing.
 */
function credentials<K extends keyof Environment & string>(
  e: Environment,
  keys: readonly K[],
): Record<K, string> | undefined {
  const given = keys.filter((key) => e[key]);
  if (given.length === 0) return undefined;
  const missing = keys.find((key) => !e[key]);
  if (missing) {
    const are = given.length > 1 ? 'are' : 'is';
    throw new ConfigError(missing, `is required when ${given.join(' and ')} ${are} set`);
  }
  return Object.fromEntries(keys.map((key) => [key, String(e[key])])) as Record<K, string>;
}

function twilioConfig(e: Environment, production: boolean): Config['twilio'] {
  const c = credentials(e, ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN']);
  return (
    c && {
      accountSid: c.TWILIO_ACCOUNT_SID,
      authToken: c.TWILIO_AUTH_TOKEN,
      apiUrl: carrierApiUrl('TWILIO_API_URL', e.TWILIO_API_URL, production),
    }
  );
}

function vonageConfig(e: Environment, production: boolean): Config['vonage'] {
  const c = credentials(e, ['VONAGE_API_KEY', 'VONAGE_API_SECRET', 'VONAGE_SIGNATURE_SECRET']);
  return (
    c && {
      apiKey: c.VONAGE_API_KEY,
      apiSecret: c.VONAGE_API_SECRET,
      signatureSecret: c.VONAGE_SIGNATURE_SECRET,
      apiUrl: carrierApiUrl('VONAGE_API_URL', e.VONAGE_API_URL, production),
      restUrl: carrierApiUrl('VONAGE_REST_URL', e.VONAGE_REST_URL, production),
    }
  );
}

function plivoConfig(e: Environment, production: boolean): PlivoConfig | undefined {
  const c = credentials(e, ['PLIVO_AUTH_ID', 'PLIVO_AUTH_TOKEN']);
  return (
    c && {
      authId: c.PLIVO_AUTH_ID,
      authToken: c.PLIVO_AUTH_TOKEN,
      apiUrl: carrierApiUrl('PLIVO_API_URL', e.PLIVO_API_URL, production),
    }
  );
}

function telnyxConfig(e: Environment, production: boolean): TelnyxConfig | undefined {
  const c = credentials(e, ['TELNYX_API_KEY', 'TELNYX_PUBLIC_KEY']);
  return (
    c && {
      apiKey: c.TELNYX_API_KEY,
      publicKey: c.TELNYX_PUBLIC_KEY,
      apiUrl: carrierApiUrl('TELNYX_API_URL', e.TELNYX_API_URL, production),
    }
  );
}

function aliyunConfig(e: Environment, production: boolean): AliyunConfig | undefined {
  const c = credentials(e, ['ALIYUN_ACCESS_KEY_ID', 'ALIYUN_ACCESS_KEY_SECRET', 'ALIYUN_PNS_POOL_KEY']);
  return (
    c && {
      accessKeyId: c.ALIYUN_ACCESS_KEY_ID,
      accessKeySecret: c.ALIYUN_ACCESS_KEY_SECRET,
      poolKey: c.ALIYUN_PNS_POOL_KEY,
      url: carrierApiUrl('ALIYUN_PNS_URL', e.ALIYUN_PNS_URL, production),
      timeoutMs: e.ALIYUN_PNS_TIMEOUT_MS,
    }
  );
}

/**
 * The base URL of a carrier's REST API, without its trailing slash. Every request to it carries
 * the carrier's secret: https in production (but for a loopback host: a local relay or a test
 * double), and no user, password, query or fragment of its own.
 */
function carrierApiUrl(key: string, value: string, production: boolean): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(key, `is not a URL, got "${value}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(key, 'must be an https:// URL');
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (production && url.protocol !== 'https:' && !loopback) {
    throw new ConfigError(key, 'must be an https:// URL in production: it is sent the carrier’s secret');
  }
  if (url.username || url.password) throw new ConfigError(key, 'must not carry a user name or password');
  if (url.search || url.hash) throw new ConfigError(key, 'must not carry a query or fragment');
  return value.replace(/\/+$/, '');
}

function natsOrders(e: Environment): NatsOrdersConfig | undefined {
  if (e.VEIL_NATS_URL === undefined) return undefined;
  const servers = e.VEIL_NATS_URL.split(',').map((s) => s.trim());
  if (servers.some((s) => !/^(nats|tls|wss?):\/\/[^\s/]+\/?$/.test(s) && !/^[^\s/:]+:\d+$/.test(s))) {
    throw new ConfigError('VEIL_NATS_URL', 'must be nats://host:port (or host:port), comma-separated');
  }
  // A dead letter the consumer itself reads would come back to it, and go to the dead letters again.
  if (subjectMatches(e.VEIL_NATS_SUBJECT, e.VEIL_NATS_DEAD_SUBJECT)) {
    throw new ConfigError(
      'VEIL_NATS_DEAD_SUBJECT',
      `must lie outside VEIL_NATS_SUBJECT (${e.VEIL_NATS_SUBJECT}), got "${e.VEIL_NATS_DEAD_SUBJECT}"`,
    );
  }
  return {
    servers,
    subject: e.VEIL_NATS_SUBJECT,
    deadSubject: e.VEIL_NATS_DEAD_SUBJECT,
    durable: e.VEIL_NATS_DURABLE,
  };
}

/** Whether the NATS subject `filter` (with `*` and `>`) takes in the subject `subject`. */
export function subjectMatches(filter: string, subject: string): boolean {
  const want = filter.split('.');
  const have = subject.split('.');
  for (const [i, token] of want.entries()) {
    if (token === '>') return have.length > i;
    if (i >= have.length || (token !== '*' && token !== have[i])) return false;
  }
  return want.length === have.length;
}

function kafkaOrders(e: Environment): KafkaOrdersConfig | undefined {
  if (e.KAFKA_BROKERS === undefined) return undefined;
  if (e.VEIL_KAFKA_DEAD_TOPIC === e.VEIL_KAFKA_TOPIC) {
    throw new ConfigError('VEIL_KAFKA_DEAD_TOPIC', 'must differ from VEIL_KAFKA_TOPIC');
  }
  return {
    brokers: e.KAFKA_BROKERS.split(','),
    topic: e.VEIL_KAFKA_TOPIC,
    deadTopic: e.VEIL_KAFKA_DEAD_TOPIC,
    groupId: e.VEIL_KAFKA_GROUP,
  };
}

/**
 * The retention period, which must outlast what Veil reads back from the history it purges: a
 * person's released proxies (the reuse cooldown) and a dedicated number's last caller (the
 * callback window).
 */
function retentionDays(e: Environment): number {
  const days = e.VEIL_RETENTION_DAYS;
  const needed = Math.max(e.VEIL_REUSE_COOLDOWN_SECONDS, e.VEIL_CALLBACK_WINDOW_SECONDS);
  if (days > 0 && days * 86_400 < needed) {
    throw new ConfigError(
      'VEIL_RETENTION_DAYS',
      `must cover VEIL_REUSE_COOLDOWN_SECONDS and VEIL_CALLBACK_WINDOW_SECONDS (${needed} s), or be 0 to keep everything`,
    );
  }
  return days;
}
