import { type Static, type TSchema, Type } from 'typebox';
import { AUDIT_ACTIONS } from '../domain/audit.ts';
import { BINDING_STATES } from '../domain/binding.ts';
import { EVENT_TYPES } from '../domain/events.ts';
import { SCOPES } from '../domain/keys.ts';
import { MAX_MEDIA, MAX_MEDIA_URL_LENGTH, MEDIA_URL_PATTERN } from '../domain/media.ts';
import { NUMBER_STATUSES } from '../domain/pool.ts';
import { ANNOUNCEMENT_LIMITS, REJECT_REASONS } from '../domain/routing.ts';
import { CHANNELS, MAX_TTL_SECONDS, METADATA_LIMITS, SESSION_MODES } from '../domain/session.ts';
import { DELIVERY_STATUSES, MAX_ENDPOINT_URL_LENGTH } from '../domain/webhooks.ts';
import { MAX_PURCHASE } from '../providers/procurement.ts';
import { PROVIDER_NAMES } from '../providers/registry.ts';
import { METADATA_KEYWORD } from './validation.ts';

/**
 * The API's shapes, in one place: they validate requests, serialise responses and produce the
 * OpenAPI document at /docs. Every field says what it is, and a field with a fixed set of values
 * lists them (an `enum`), so that the document promises what the server does and no more: an
 * option not built yet is absent, and a request naming it is refused as an unknown field.
 * Phone numbers are checked for E.164 *form* here; whether a number is a real, valid one is the
 * domain's call (src/domain/phone.ts).
 */
const PhoneNumber = (whose: string) =>
  Type.String({
    minLength: 1,
    maxLength: 32,
    description: `${whose}, E.164 such as +14155550100 (other forms only with VEIL_DEFAULT_COUNTRY)`,
    examples: ['+14155550100'],
  });

const Time = (description: string) => Type.String({ format: 'date-time', description });
const Created = Time('when it was created');
const Updated = Time('when it last changed');
const Channel = Type.Enum(CHANNELS, { description: 'voice calls or sms texts' });
const Channels = (description: string) =>
  Type.Array(Channel, { minItems: 1, maxItems: 2, uniqueItems: true, description });
const MODES =
  'per-participant: each participant gets a proxy of their own; shared: one proxy for both; dedicated: the one participant (the owner) gets a number of their own that anyone may call, and calls back the most recent caller';
const Mode = (more = '') => Type.Enum(SESSION_MODES, { description: MODES + more });
const Sticky = Type.Enum(['none', 'prefer', 'avoid'], {
  description:
    'the proxies the same two people had before: prefer gives them again when the invariant allows, avoid never while another fits (default none)',
});
const ExtensionFallback = Type.Boolean({
  description:
    'when no number is free, share one with other sessions and give the participant an extension code to key (default from VEIL_EXTENSION_FALLBACK)',
});
const TTL_MODES = 'fixed: expiresAt stays; sliding: expiresAt moves to the last interaction + ttlSeconds';
const TtlMode = (more = '') => Type.Enum(['fixed', 'sliding'], { description: TTL_MODES + more });
const GeoMatch = Type.Enum(['region', 'region-strict', 'country'], {
  description:
    "how proxies match each participant: region (prefer the participant's area code, else the country), region-strict, or country",
});
const NumberStatus = Type.Enum(NUMBER_STATUSES, {
  description: 'active: takes new sessions; draining: keeps its open sessions, takes no new ones; retired',
});
const SessionStatus = Type.Enum(['open', 'closed', 'expired'], {
  description: 'open, or ended: closed, or expired',
});
const Provider = Type.Enum(PROVIDER_NAMES, { description: 'the carrier the number belongs to' });
const Metadata = Type.Record(Type.String(), Type.Unknown(), {
  description: `free-form JSON kept with the session: at most ${METADATA_LIMITS.depth} levels deep and ${METADATA_LIMITS.bytes} bytes`,
  [METADATA_KEYWORD]: true,
});
const Tags = Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 256 }), {
  description: 'labels for the number, e.g. {"city": "sf"}',
});
const MaxSessions = Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
  description: 'most open sessions that may hold the number at once; null: no cap',
});
const TtlSeconds = Type.Integer({
  minimum: 1,
  maximum: MAX_TTL_SECONDS,
  description: 'life of the session in seconds from now (default VEIL_DEFAULT_TTL_SECONDS)',
});
const ExpiresAt = Time('when the session ends (instead of ttlSeconds), at most a year from now');
const RecordCalls = (more = '') => Type.Boolean({ description: `record calls${more}` });
const Limit = Type.Optional(
  Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'most items on the page' }),
);
const Cursor = Type.Optional(Type.String({ maxLength: 64, description: 'nextCursor of the previous page' }));
const Id = (what: string) => Type.String({ minLength: 1, maxLength: 64, description: `the ${what}'s id` });

export const ErrorBody = Type.Object(
  {
    error: Type.Object(
      {
        code: Type.String({
          description: 'what went wrong, in snake_case',
          examples: ['invalid_request'],
        }),
        message: Type.String({ description: 'what went wrong, for a person' }),
        field: Type.Optional(
          Type.String({ description: 'the request field at fault, as a path (participants/0/number)' }),
        ),
      },
      { description: 'the error' },
    ),
  },
  { description: 'every error answer' },
);

export const NumberParams = Type.Object({ id: Id('number') });
export const SessionParams = Type.Object({ id: Id('session') });
export const KeyParams = Type.Object({ id: Id('key') });
export const ParticipantParams = Type.Object({ id: Id('session'), pid: Id('participant') });

export const NumberBody = Type.Object(
  {
    number: PhoneNumber('the proxy number to add'),
    provider: Provider,
    capabilities: Type.Optional(Channels('what the number can carry (default both)')),
    region: Type.Optional(
      Type.String({ maxLength: 16, description: 'area code; derived from the number by default' }),
    ),
    tags: Type.Optional(Tags),
    maxSessions: Type.Optional(MaxSessions),
  },
  { additionalProperties: false },
);
export type NumberBody = Static<typeof NumberBody>;

const NumberList = Type.Array(NumberBody, {
  minItems: 1,
  maxItems: 10_000,
  description: 'the numbers to add: all of them, or none',
});

export const NumberPurchase = Type.Object(
  {
    provider: Type.String({
      minLength: 1,
      maxLength: 32,
      description:
        'the carrier to buy from: an enabled one with a numbers API (sim, twilio); sim makes numbers up in fictional ranges, outside production',
    }),
    country: Type.String({
      pattern: '^[A-Z]{2}$',
      description: 'ISO country code of the numbers, e.g. US',
    }),
    areaCode: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,6}$', description: 'area code the numbers should have, e.g. 415' }),
    ),
    count: Type.Integer({
      minimum: 1,
      maximum: MAX_PURCHASE,
      description: `how many numbers to buy, 1 to ${MAX_PURCHASE}`,
    }),
  },
  {
    additionalProperties: false,
    description: 'numbers to buy through the carrier’s API, each added to the pool as it is bought',
  },
);
export type NumberPurchase = Static<typeof NumberPurchase>;

export const NumberImportBody = Type.Union([NumberList, NumberPurchase], {
  description: 'an array of numbers to add (all or none), or a purchase',
});

export const NumberPatch = Type.Object(
  {
    tags: Type.Optional(Tags),
    maxSessions: Type.Optional(MaxSessions),
    region: Type.Optional(Type.String({ maxLength: 16, description: 'area code the number serves' })),
    capabilities: Type.Optional(Channels('what the number can carry')),
    status: Type.Optional(NumberStatus),
  },
  { additionalProperties: false },
);

export const NumberQuery = Type.Object({
  status: Type.Optional(NumberStatus),
  provider: Type.Optional(Provider),
  country: Type.Optional(
    Type.String({ pattern: '^[A-Z]{2}$', description: 'ISO country code of the numbers, e.g. US' }),
  ),
  cursor: Cursor,
  limit: Limit,
});

export const PoolNumber = Type.Object({
  id: Id('number'),
  number: Type.String({ description: 'the proxy number, E.164' }),
  provider: Provider,
  country: Type.String({ description: 'ISO country code' }),
  region: Type.String({ description: 'area code' }),
  capabilities: Channels('what the number carries'),
  status: NumberStatus,
  tags: Tags,
  maxSessions: MaxSessions,
  load: Type.Integer({ description: 'open sessions holding the number now' }),
  dedicatedTo: Type.Union([Type.String(), Type.Null()], {
    description: 'the open dedicated session that owns the number alone; null otherwise',
  }),
  createdAt: Created,
  updatedAt: Updated,
});

/** One carrier's numbers in one country and region, counted by what they do now (GET /v1/pool). */
export const PoolGroup = Type.Object({
  provider: Provider,
  country: Type.String({ description: 'ISO country code' }),
  region: Type.String({ description: "area code; '' for numbers with none" }),
  active: Type.Integer({ description: 'numbers in the pool and taking sessions' }),
  inUse: Type.Integer({ description: 'active numbers that at least one open session holds' }),
  free: Type.Integer({
    description:
      'active numbers with room for another session (under their cap, not dedicated), as pool.low counts them',
  }),
  draining: Type.Integer({ description: 'numbers taking no new session, retired once their last one ends' }),
});

export const NumberImportResult = Type.Object({
  data: Type.Array(PoolNumber, { description: 'the numbers added to the pool' }),
  nextCursor: Type.Null({ description: 'always null: every number added is listed' }),
  purchase: Type.Optional(
    Type.Object(
      {
        requested: Type.Integer({ description: 'how many numbers were asked for' }),
        bought: Type.Integer({ description: 'how many were bought and added' }),
        problem: Type.Optional(
          Type.String({
            description: 'why fewer were bought than asked for (the carrier’s error, or none left)',
          }),
        ),
      },
      { description: 'for a purchase: how it went' },
    ),
  ),
});

const ParticipantFields = {
  number: PhoneNumber("the participant's real number"),
  label: Type.Optional(Type.String({ maxLength: 64, description: 'who this is, e.g. courier' })),
  revealNumber: Type.Optional(
    Type.Boolean({
      description: 'show this real number as caller id to the other side (default false)',
    }),
  ),
  canInitiate: Type.Optional(
    Type.Boolean({ description: 'false: may receive but not start calls and texts (default true)' }),
  ),
  proxyNumber: Type.Optional(
    PhoneNumber(
      'a pool number to have as proxy: given when the invariant allows, else 409 saying why; 400 if not in the pool',
    ),
  ),
};
export const ParticipantBody = Type.Object(ParticipantFields, { additionalProperties: false });

/** What PATCH and PUT of a participant may change; a field not given stays as it is. */
const ParticipantChangeFields = {
  label: Type.Optional(
    Type.Union([Type.String({ maxLength: 64 }), Type.Null()], {
      description: 'who this is, e.g. courier; null removes the label',
    }),
  ),
  revealNumber: Type.Optional(
    Type.Boolean({ description: 'show this real number as caller id to the other side' }),
  ),
  canInitiate: Type.Optional(
    Type.Boolean({ description: 'false: may receive but not start calls and texts' }),
  ),
};

export const ParticipantPatch = Type.Object(ParticipantChangeFields, {
  additionalProperties: false,
  minProperties: 1,
  description: 'the fields to change, at least one; the others stay as they are',
});

export const ParticipantReplaceBody = Type.Object(
  { number: PhoneNumber("the newcomer's real number"), ...ParticipantChangeFields },
  {
    additionalProperties: false,
    description: 'who takes the participant’s place; label, revealNumber and canInitiate not given are kept',
  },
);

/** What a caller hears (domain/routing.ts Announcement). */
const Announcement = (description: string) =>
  Type.Object(
    {
      text: Type.String({
        minLength: 1,
        maxLength: ANNOUNCEMENT_LIMITS.text,
        description: 'what is said; with audioUrl, what the recording says',
      }),
      language: Type.Optional(
        Type.String({
          pattern: ANNOUNCEMENT_LIMITS.language,
          description: 'the language it is spoken in, as the carrier names it (en-GB)',
        }),
      ),
      voice: Type.Optional(
        Type.String({
          pattern: ANNOUNCEMENT_LIMITS.voice,
          description: 'the carrier’s voice to speak it with (Polly.Amy)',
        }),
      ),
      audioUrl: Type.Optional(
        Type.String({
          maxLength: MAX_MEDIA_URL_LENGTH,
          pattern: MEDIA_URL_PATTERN,
          description: 'a recording to play instead of speaking the text',
        }),
      ),
    },
    { additionalProperties: false, description },
  );

const REJECT_MESSAGE = 'what a caller refused within the session hears';
const RejectMessage = (nullable: string) =>
  Type.Union([Announcement(REJECT_MESSAGE), Type.Null()], { description: `${REJECT_MESSAGE}${nullable}` });

export const SessionBody = Type.Object(
  {
    externalId: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, description: 'your order id; idempotency key' }),
    ),
    mode: Type.Optional(Mode(' (default per-participant)')),
    ttlSeconds: Type.Optional(TtlSeconds),
    expiresAt: Type.Optional(ExpiresAt),
    ttlMode: Type.Optional(TtlMode(' (default fixed)')),
    record: Type.Optional(RecordCalls(' (default false)')),
    channels: Type.Optional(Channels('what the session relays (default both)')),
    maxCallSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 86_400, description: 'longest call allowed, in seconds' }),
    ),
    geoMatch: Type.Optional(GeoMatch),
    sticky: Type.Optional(Sticky),
    extensionFallback: Type.Optional(ExtensionFallback),
    rejectMessage: Type.Optional(Announcement(`${REJECT_MESSAGE} (default: the installation’s)`)),
    metadata: Type.Optional(Metadata),
    participants: Type.Array(ParticipantBody, {
      minItems: 1,
      maxItems: 2,
      description: 'the two people who talk through the session; the owner alone in dedicated mode',
    }),
  },
  { additionalProperties: false },
);

export const SessionPatch = Type.Object(
  {
    ttlSeconds: Type.Optional(TtlSeconds),
    expiresAt: Type.Optional(ExpiresAt),
    record: Type.Optional(RecordCalls()),
    rejectMessage: Type.Optional(RejectMessage('; null: the installation’s (VEIL_REJECT_MESSAGE)')),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false },
);

export const SessionQuery = Type.Object({
  externalId: Type.Optional(Type.String({ maxLength: 128, description: 'the session of this order id' })),
  status: Type.Optional(SessionStatus),
  cursor: Cursor,
  limit: Limit,
});

export const PageQuery = Type.Object({ cursor: Cursor, limit: Limit });

export const Participant = Type.Object({
  id: Id('participant'),
  label: Type.Union([Type.String(), Type.Null()], { description: 'who this is, e.g. courier' }),
  number: Type.String({ description: 'the real number' }),
  proxyNumber: Type.String({ description: 'the number this participant dials, and sees calls from' }),
  revealNumber: Type.Boolean({ description: 'this real number is shown as caller id to the other side' }),
  canInitiate: Type.Boolean({ description: 'false: may receive but not start calls and texts' }),
  extension: Type.Optional(
    Type.String({
      description:
        'on a shared number (extension fallback): the code this participant keys after dialling proxyNumber',
    }),
  ),
  binding: Type.Enum(BINDING_STATES, {
    description:
      '`bound` for carriers that route through Veil; at a remote-binding carrier (aliyun) the binding’s state: `binding` until the carrier confirmed (nothing routes before), `bound`, `unbinding` and `unbound` once the session ended, `failed` when the carrier refused every try (`binding.failed`)',
  }),
});

export const Session = Type.Object({
  id: Id('session'),
  externalId: Type.Union([Type.String(), Type.Null()], { description: 'your order id' }),
  mode: Mode(),
  status: SessionStatus,
  ttlMode: TtlMode(),
  ttlSeconds: Type.Union([Type.Integer(), Type.Null()], {
    description: 'the life given at creation or last renewal; null when given as expiresAt',
  }),
  expiresAt: Time('when the session ends'),
  record: RecordCalls(),
  channels: Channels('what the session relays'),
  maxCallSeconds: Type.Union([Type.Integer(), Type.Null()], {
    description: 'longest call allowed, in seconds; null: no limit',
  }),
  geoMatch: GeoMatch,
  sticky: Sticky,
  extensionFallback: ExtensionFallback,
  rejectMessage: RejectMessage('; null: the installation’s'),
  metadata: Metadata,
  participants: Type.Array(Participant, { description: 'the people in the session' }),
  createdAt: Created,
  updatedAt: Updated,
  closedAt: Type.Union([Time('when it closed'), Type.Null()], {
    description: 'when it was closed or expired; null while open',
  }),
});

const Action = Type.Enum(['connect', 'forward', 'gather', 'reject'], {
  description: 'connect the call, forward the text, ask for an extension (gather), or reject',
});
const RejectReason = Type.Enum(REJECT_REASONS, { description: 'why it was rejected' });
const MediaUrl = Type.String({
  maxLength: MAX_MEDIA_URL_LENGTH,
  pattern: MEDIA_URL_PATTERN,
  description: 'an http(s) URL of a picture or other media',
  examples: ['https://example.com/door.jpg'],
});
const Media = (description: string) => Type.Array(MediaUrl, { maxItems: MAX_MEDIA, description });
const Recording = Type.Object(
  {
    url: Type.Union([Type.String(), Type.Null()], {
      description:
        "where the carrier serves the audio (fetched with the carrier's credentials); null when it has none",
    }),
    durationSeconds: Type.Union([Type.Integer(), Type.Null()], {
      description: 'how long the recording lasts',
    }),
    status: Type.String({ description: "the carrier's recording status, e.g. completed or absent" }),
  },
  { description: "the call's recording" },
);

export const Interaction = Type.Object({
  id: Id('interaction'),
  sessionId: Type.Union([Type.String(), Type.Null()], {
    description: 'the session it belonged to; null for a stranger',
  }),
  channel: Channel,
  from: Type.String({ description: "the caller's real number" }),
  to: Type.String({ description: 'the proxy number dialled' }),
  target: Type.Union([Type.String(), Type.Null()], { description: 'who it was connected to' }),
  callerId: Type.Union([Type.String(), Type.Null()], { description: 'the caller id shown to them' }),
  action: Action,
  reason: Type.Union([RejectReason, Type.Null()], { description: 'why it was rejected; null otherwise' }),
  provider: Type.String({ description: 'the carrier it came through, or api for POST /v1/route' }),
  providerCallId: Type.Union([Type.String(), Type.Null()], {
    description: "the carrier's call or message id",
  }),
  status: Type.String({ description: "routed or refused at first, then the carrier's call status" }),
  durationSeconds: Type.Union([Type.Integer(), Type.Null()], { description: 'how long the call lasted' }),
  media: Media("an MMS's media URLs; empty for a call or a plain text"),
  recording: Type.Union([Recording, Type.Null()], {
    description: "the call's recording, once the carrier has reported it; null until then, and for a text",
  }),
  createdAt: Created,
  updatedAt: Updated,
});

export function page<T extends TSchema>(item: T) {
  return Type.Object({
    data: Type.Array(item, { description: 'the items of this page' }),
    nextCursor: Type.Union([Type.String(), Type.Null()], {
      description: 'give it as cursor for the next page; null on the last',
    }),
  });
}

export const RouteBody = Type.Object(
  {
    from: PhoneNumber("the caller's real number"),
    to: PhoneNumber('the proxy number dialled'),
    channel: Channel,
    body: Type.Optional(Type.String({ maxLength: 1600, description: 'the text, for sms' })),
    media: Type.Optional(Media('media URLs of an MMS, for sms')),
    digits: Type.Optional(
      Type.String({
        pattern: '^[0-9]{1,16}$',
        description: 'the extension the caller keyed, after a gather answer',
      }),
    ),
    callId: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description: "the call's id at the SIP edge (its Call-ID), which a later status names",
      }),
    ),
  },
  { additionalProperties: false },
);

export const SipStatusBody = Type.Object(
  {
    callId: Type.String({ minLength: 1, maxLength: 256, description: 'the callId given to POST /v1/route' }),
    status: Type.Union(
      ['completed', 'busy', 'no-answer', 'canceled', 'failed'].map((s) => Type.Literal(s)),
      { description: 'how the call ended' },
    ),
    durationSeconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'how long it lasted once answered' }),
    ),
  },
  { additionalProperties: false },
);

export const RouteDecision = Type.Object({
  action: Action,
  to: Type.Optional(Type.String({ description: 'connect, forward: the real number to reach' })),
  from: Type.Optional(Type.String({ description: 'forward: the proxy number the text comes from' })),
  callerId: Type.Optional(Type.String({ description: 'connect: the caller id to show' })),
  body: Type.Optional(Type.String({ description: 'forward: the text' })),
  media: Type.Optional(
    Type.Array(Type.String(), {
      description: 'forward: the media URLs to relay with the text (an MMS only)',
    }),
  ),
  sessionId: Type.Union([Type.String(), Type.Null()], { description: 'the session; null for a stranger' }),
  record: Type.Optional(Type.Boolean({ description: 'connect: record the call' })),
  maxCallSeconds: Type.Optional(
    Type.Union([Type.Integer(), Type.Null()], { description: 'connect: longest call allowed, in seconds' }),
  ),
  reason: Type.Optional(RejectReason),
  numDigits: Type.Optional(Type.Integer({ description: 'gather: how many digits to collect' })),
  prompt: Type.Optional(Type.String({ description: 'gather: what to say to the caller' })),
  message: Type.Optional(
    Announcement(
      'reject (a call) or gather: what the caller hears, as the carrier is told to say or play it',
    ),
  ),
});

export const BlocklistBody = Type.Object(
  {
    number: PhoneNumber('the real number to block'),
    reason: Type.Optional(
      Type.String({ minLength: 1, maxLength: 256, description: 'why it is blocked, for your records' }),
    ),
  },
  { additionalProperties: false },
);

export const BlocklistParams = Type.Object({
  number: PhoneNumber('the blocked number, URL-encoded (%2B14155550100)'),
});

export const BlocklistEntry = Type.Object({
  number: Type.String({ description: 'the blocked number, E.164: never connected, calling or called' }),
  reason: Type.Union([Type.String(), Type.Null()], { description: 'why it is blocked; null when not given' }),
  createdAt: Time('when it was blocked'),
});

const Scopes = Type.Array(
  Type.Enum(SCOPES, {
    description: 'admin: everything; sessions: sessions and routing; route: routing decisions; read: reading',
  }),
  { minItems: 1, uniqueItems: true, description: 'what the key may do' },
);

export const KeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, description: 'what the key is for' }),
    scopes: Scopes,
    tenantId: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description:
          "the tenant the key belongs to (default: the caller's); only the installation's admin names another tenant",
      }),
    ),
  },
  { additionalProperties: false },
);

export const KeyQuery = Type.Object({
  tenantId: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 64,
      description: "another tenant's keys (the installation's admin only; default: the caller's)",
    }),
  ),
});

export const ApiKey = Type.Object({
  id: Id('key'),
  tenantId: Type.String({ description: 'the tenant the key acts for' }),
  name: Type.String({ description: 'what the key is for' }),
  scopes: Scopes,
  createdAt: Created,
  revokedAt: Type.Union([Time('when it was revoked'), Type.Null()], {
    description: 'when it was revoked; null while usable',
  }),
});

export const NewApiKey = Type.Object({
  ...ApiKey.properties,
  key: Type.String({ description: 'the secret to send as Bearer; shown this once only' }),
});

export const ProviderParams = Type.Object({
  name: Type.String({
    maxLength: 32,
    description: `the carrier: ${PROVIDER_NAMES.join(', ')}`,
  }),
});

export const ProviderPatch = Type.Object(
  {
    enabled: Type.Boolean({
      description:
        'false: the one-click downgrade (its numbers go to no new session); true: back in use. Writes provider.down or provider.up when it changes',
    }),
  },
  { additionalProperties: false },
);

export const ProviderView = Type.Object({
  name: Type.String({ description: 'the carrier' }),
  enabled: Type.Boolean({ description: 'the operator switch: false while downgraded' }),
  health: Type.Union([Type.Literal('healthy'), Type.Literal('degraded'), Type.Literal('down')], {
    description:
      'down: its API calls failed in a row (or an operator instance found so) and its numbers go to no new session; degraded: being tried again, or over a fifth of recent calls failed',
  }),
  errorRate: Type.Number({
    description: 'the share of its recent calls on this instance that failed (0 to 1)',
  }),
  latencyMs: Type.Union([Type.Number(), Type.Null()], {
    description: 'the median time of its recent successful calls on this instance; null with none',
  }),
  calls: Type.Integer({ description: 'how many recent calls (at most 100) the two figures are read from' }),
});

const EVENTS =
  'session.created, session.updated (participants changed), session.closed, session.expired, pool.low (free numbers below a low-water mark), binding.failed (a remote binding given up), provider.down, provider.up (a carrier out of use or back)';
const EventTypeName = Type.Enum(EVENT_TYPES, { description: `the kind of event: ${EVENTS}` });

export const WebhookEndpointBody = Type.Object(
  {
    url: Type.String({
      minLength: 1,
      maxLength: MAX_ENDPOINT_URL_LENGTH,
      description: 'where events are POSTed: an http(s) URL (https:// only in production)',
      examples: ['https://app.example.com/veil/events'],
    }),
    events: Type.Optional(
      Type.Array(Type.String({ maxLength: 64, description: `an event type: ${EVENTS}` }), {
        minItems: 1,
        maxItems: EVENT_TYPES.length * 2,
        description: 'the event types to send; left out: all of them',
      }),
    ),
  },
  { additionalProperties: false },
);

export const WebhookEndpointParams = Type.Object({ id: Id('webhook endpoint') });

export const WebhookEndpoint = Type.Object({
  id: Id('webhook endpoint'),
  url: Type.String({ description: 'where events are POSTed' }),
  events: Type.Union([Type.Array(EventTypeName, { description: 'the event types sent' }), Type.Null()], {
    description: 'the event types sent; null: all',
  }),
  createdAt: Time('when it was made: only events made since are sent to it'),
});

export const NewWebhookEndpoint = Type.Object({
  ...WebhookEndpoint.properties,
  secret: Type.String({
    description:
      'the Standard Webhooks signing secret (whsec_ and base64) that verifies the webhook-signature header; shown this once only',
  }),
});

export const EventQuery = Type.Object({
  type: Type.Optional(EventTypeName),
  after: Type.Optional(
    Type.String({ maxLength: 64, description: 'the events after this event id (or a nextCursor)' }),
  ),
  order: Type.Optional(
    Type.Enum(['oldest', 'newest'], {
      description:
        'oldest first (the default, to follow the log with after) or newest first (the recent events; nextCursor then leads to older ones)',
    }),
  ),
  cursor: Cursor,
  limit: Limit,
});

export const EventParams = Type.Object({ id: Id('event') });

export const InteractionQuery = Type.Object({
  action: Type.Optional(Action),
  reason: Type.Optional(RejectReason),
  channel: Type.Optional(Channel),
  after: Type.Optional(
    Type.String({ maxLength: 64, description: 'the entries after this interaction id (or a nextCursor)' }),
  ),
  cursor: Cursor,
  limit: Limit,
});

const EventDelivery = Type.Object(
  {
    endpointId: Id('webhook endpoint'),
    status: Type.Enum(DELIVERY_STATUSES, {
      description:
        'pending: to be sent (again); delivered: answered 2xx; dead: given up after the last attempt',
    }),
    attempts: Type.Integer({ description: 'attempts made since it was made or last redelivered' }),
    nextAttemptAt: Type.Union([Time('when it is tried next'), Type.Null()], {
      description: 'when it is tried next; null unless pending',
    }),
    lastError: Type.Union([Type.String(), Type.Null()], {
      description:
        'why the last attempt failed: status (see lastStatus), timeout, unreachable: CODE; null when none did',
    }),
    lastStatus: Type.Union([Type.Integer(), Type.Null()], {
      description: 'the HTTP status of the last answer; null when none came',
    }),
    deliveredAt: Type.Union([Time('when it was delivered'), Type.Null()], {
      description: 'when the endpoint took it; null until then',
    }),
  },
  { description: 'the event on its way to one endpoint' },
);

export const Event = Type.Object({
  id: Id('event'),
  type: EventTypeName,
  createdAt: Time('when it happened'),
  data: Type.Record(Type.String(), Type.Unknown(), {
    description:
      "what it is about: for session.* the session as GET /v1/sessions/:id shows it (session.rebound adds `rebound`: the carrier it left, the one it moved to, and each participant's previous proxy), for pool.low the scope and its counts, for provider.* the carrier and the reason",
  }),
  deliveries: Type.Array(EventDelivery, {
    description: "the event's deliveries, one per endpoint that wants it",
  }),
});

export const TenantBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64, description: 'who the tenant is, for the operator' }) },
  { additionalProperties: false },
);

export const Tenant = Type.Object({
  id: Id('tenant'),
  name: Type.String({ description: 'who the tenant is, for the operator' }),
  createdAt: Created,
});

export const AuditQuery = Type.Object({
  action: Type.Optional(Type.Enum(AUDIT_ACTIONS, { description: 'only entries of this action' })),
  tenantId: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 64,
      description: "another tenant's entries (the installation's admin only; default: the caller's)",
    }),
  ),
  cursor: Cursor,
  limit: Limit,
});

export const AuditEntry = Type.Object({
  id: Id('audit entry'),
  action: Type.Enum(AUDIT_ACTIONS, { description: 'what was done' }),
  keyId: Type.Union([Type.String(), Type.Null()], {
    description: 'the API key that did it; null for the veil CLI',
  }),
  targetId: Type.String({
    description:
      "the id of what it was done to (a blocked number's mask: numbers are never kept in clear here)",
  }),
  detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], {
    description: 'what changed (numbers masked); null when the action says it all',
  }),
  createdAt: Time('when it was done'),
});
