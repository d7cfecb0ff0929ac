import { type Static, type TSchema, Type } from 'typebox';

/**
 * The API's shapes, in one place: they validate requests, serialise responses and produce the
 * OpenAPI document at /docs. Phone numbers are checked for E.164 *form* here; whether a number is
 * a real, valid one is the domain's call (src/domain/phone.ts).
 */
export const PhoneNumberString = Type.String({
  minLength: 1,
  maxLength: 32,
  description: 'E.164, e.g. +14155550100 (other forms only with VEIL_DEFAULT_COUNTRY)',
  examples: ['+14155550100'],
});
const Id = Type.String({ minLength: 1, maxLength: 64 });
const Time = Type.String({ format: 'date-time' });
const Channel = Type.Union([Type.Literal('voice'), Type.Literal('sms')]);
const Channels = Type.Array(Channel, { minItems: 1, maxItems: 2, uniqueItems: true });
const Metadata = Type.Record(Type.String(), Type.Unknown(), {
  description: 'free-form JSON kept with the session',
});
const Tags = Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 256 }));
const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 }));
const Cursor = Type.Optional(Type.String({ maxLength: 64, description: 'nextCursor of the previous page' }));

export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.String({ examples: ['invalid_request'] }),
    message: Type.String(),
    field: Type.Optional(Type.String()),
  }),
});

export const IdParams = Type.Object({ id: Id });
export const ParticipantParams = Type.Object({ id: Id, pid: Id });

export const NumberBody = Type.Object(
  {
    number: PhoneNumberString,
    provider: Type.String({ minLength: 1, maxLength: 32, examples: ['sim', 'twilio'] }),
    capabilities: Type.Optional(Channels),
    region: Type.Optional(
      Type.String({ maxLength: 16, description: 'area code; derived from the number by default' }),
    ),
    tags: Type.Optional(Tags),
    maxSessions: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
  },
  { additionalProperties: false },
);
export type NumberBody = Static<typeof NumberBody>;

export const NumberImportBody = Type.Array(NumberBody, { minItems: 1, maxItems: 10_000 });

export const NumberPatch = Type.Object(
  {
    tags: Type.Optional(Tags),
    maxSessions: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
    region: Type.Optional(Type.String({ maxLength: 16 })),
    capabilities: Type.Optional(Channels),
    status: Type.Optional(
      Type.Union([Type.Literal('active'), Type.Literal('draining'), Type.Literal('retired')]),
    ),
  },
  { additionalProperties: false },
);

export const NumberQuery = Type.Object({
  status: Type.Optional(
    Type.Union([Type.Literal('active'), Type.Literal('draining'), Type.Literal('retired')]),
  ),
  provider: Type.Optional(Type.String({ maxLength: 32 })),
  country: Type.Optional(Type.String({ pattern: '^[A-Z]{2}$' })),
  cursor: Cursor,
  limit: Limit,
});

export const PoolNumber = Type.Object({
  id: Type.String(),
  number: Type.String(),
  provider: Type.String(),
  country: Type.String(),
  region: Type.String(),
  capabilities: Type.Array(Channel),
  status: Type.String(),
  tags: Tags,
  maxSessions: Type.Union([Type.Integer(), Type.Null()]),
  load: Type.Integer({ description: 'open sessions holding the number now' }),
  createdAt: Time,
  updatedAt: Time,
});

const ParticipantFields = {
  number: PhoneNumberString,
  label: Type.Optional(Type.String({ maxLength: 64 })),
  revealNumber: Type.Optional(
    Type.Boolean({ description: 'show this real number as caller id to the other side' }),
  ),
  canInitiate: Type.Optional(
    Type.Boolean({ description: 'false: may receive but not start calls and texts' }),
  ),
};
export const ParticipantBody = Type.Object(ParticipantFields, { additionalProperties: false });

export const SessionBody = Type.Object(
  {
    externalId: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, description: 'your order id; idempotency key' }),
    ),
    mode: Type.Optional(Type.String({ examples: ['per-participant', 'shared'] })),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 31_536_000 })),
    expiresAt: Type.Optional(Time),
    ttlMode: Type.Optional(Type.Union([Type.Literal('fixed'), Type.Literal('sliding')])),
    record: Type.Optional(Type.Boolean()),
    channels: Type.Optional(Channels),
    maxCallSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
    geoMatch: Type.Optional(
      Type.Union([Type.Literal('region'), Type.Literal('region-strict'), Type.Literal('country')]),
    ),
    sticky: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('prefer'), Type.Literal('avoid')])),
    extensionFallback: Type.Optional(Type.Boolean()),
    metadata: Type.Optional(Metadata),
    participants: Type.Array(ParticipantBody, { minItems: 1, maxItems: 10 }),
  },
  { additionalProperties: false },
);

export const SessionPatch = Type.Object(
  {
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 31_536_000 })),
    expiresAt: Type.Optional(Time),
    record: Type.Optional(Type.Boolean()),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false },
);

export const SessionQuery = Type.Object({
  externalId: Type.Optional(Type.String({ maxLength: 128 })),
  status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('closed'), Type.Literal('expired')])),
  cursor: Cursor,
  limit: Limit,
});

export const PageQuery = Type.Object({ cursor: Cursor, limit: Limit });

export const Participant = Type.Object({
  id: Type.String(),
  label: Type.Union([Type.String(), Type.Null()]),
  number: Type.String({ description: 'the real number' }),
  proxyNumber: Type.String({ description: 'the number this participant dials, and sees calls from' }),
  revealNumber: Type.Boolean(),
  canInitiate: Type.Boolean(),
  binding: Type.String({ description: '`bound` for carriers that route through Veil' }),
});

export const Session = Type.Object({
  id: Type.String(),
  externalId: Type.Union([Type.String(), Type.Null()]),
  mode: Type.String(),
  status: Type.String(),
  ttlMode: Type.String(),
  ttlSeconds: Type.Union([Type.Integer(), Type.Null()]),
  expiresAt: Time,
  record: Type.Boolean(),
  channels: Type.Array(Channel),
  maxCallSeconds: Type.Union([Type.Integer(), Type.Null()]),
  geoMatch: Type.String(),
  sticky: Type.String(),
  extensionFallback: Type.Boolean(),
  metadata: Metadata,
  participants: Type.Array(Participant),
  createdAt: Time,
  updatedAt: Time,
  closedAt: Type.Union([Time, Type.Null()]),
});

export const Interaction = Type.Object({
  id: Type.String(),
  sessionId: Type.Union([Type.String(), Type.Null()]),
  channel: Channel,
  from: Type.String(),
  to: Type.String({ description: 'the proxy number dialled' }),
  target: Type.Union([Type.String(), Type.Null()], { description: 'who it was connected to' }),
  callerId: Type.Union([Type.String(), Type.Null()]),
  action: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  provider: Type.String(),
  providerCallId: Type.Union([Type.String(), Type.Null()]),
  status: Type.String(),
  durationSeconds: Type.Union([Type.Integer(), Type.Null()]),
  createdAt: Time,
  updatedAt: Time,
});

export function page<T extends TSchema>(item: T) {
  return Type.Object({ data: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) });
}

export const RouteBody = Type.Object(
  {
    from: PhoneNumberString,
    to: PhoneNumberString,
    channel: Channel,
    body: Type.Optional(Type.String({ maxLength: 1600 })),
  },
  { additionalProperties: false },
);

export const RouteDecision = Type.Object({
  action: Type.Union([Type.Literal('connect'), Type.Literal('forward'), Type.Literal('reject')]),
  to: Type.Optional(Type.String()),
  from: Type.Optional(Type.String()),
  callerId: Type.Optional(Type.String()),
  body: Type.Optional(Type.String()),
  sessionId: Type.Union([Type.String(), Type.Null()]),
  record: Type.Optional(Type.Boolean()),
  maxCallSeconds: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  reason: Type.Optional(Type.String()),
});

export const KeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    scopes: Type.Array(
      Type.Union([
        Type.Literal('admin'),
        Type.Literal('sessions'),
        Type.Literal('route'),
        Type.Literal('read'),
      ]),
      { minItems: 1, uniqueItems: true },
    ),
  },
  { additionalProperties: false },
);

export const ApiKey = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scopes: Type.Array(Type.String()),
  createdAt: Time,
  revokedAt: Type.Union([Time, Type.Null()]),
});
