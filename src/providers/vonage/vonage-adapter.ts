import { createHash, timingSafeEqual } from 'node:crypto';
import { verifySignature } from '@vonage/jwt';
import type { Announcement, RouteDecision } from '../../domain/routing.ts';
import {
  type CallMessages,
  type CallStep,
  type CarrierAdapter,
  callStep,
  DEFAULT_CALL_MESSAGES,
  field,
  GATHER_ATTEMPTS,
  gatherAttempt,
  type Inbound,
  type ReplayKey,
  reportedCall,
  type StatusReport,
  seconds,
  signatureHeader,
  type Verification,
  type WebhookReply,
} from '../carrier.ts';
import type { NumberProvider } from '../procurement.ts';
import type { MessagesApi } from './messages-api.ts';

const NCCO = 'application/json';
/** A signed webhook issued further than this from now, either way, is refused: a captured one cannot be replayed later. */
export const MAX_SKEW_SECONDS = 300;
/** Seconds Vonage waits after the last key before it reports what was keyed. */
const INPUT_TIMEOUT_SECONDS = 5;
/** The longest call a connect action allows (its `limit`): Vonage's own maximum, two hours. */
const MAX_CALL_LIMIT_SECONDS = 7200;
/** Longest status kept: Vonage's are words like `completed` or `unanswered`. */
const MAX_STATUS = 32;
const VOICE_PATH = '/webhooks/vonage/voice';
const STATUS_PATH = '/webhooks/vonage/status';

/** Vonage's call states in the words the interaction log uses for every carrier (Twilio's); others pass as they are. */
const CALL_STATUS: Record<string, string> = {
  answered: 'in-progress',
  unanswered: 'no-answer',
  timeout: 'no-answer',
  cancelled: 'canceled',
};

type NccoAction = Record<string, unknown>;

export interface VonageOptions {
  /** VEIL_PUBLIC_URL: where Vonage reports a gather's digits and a recording. */
  publicUrl: string;
  /** What a caller who keyed a wrong extension is asked again, and what one who keys nothing hears. */
  messages?: CallMessages;
  clock?: () => number;
  /** The account's numbers API (procurement). */
  numbers?: NumberProvider;
}

/**
 * Vonage: JSON webhooks signed with a JWT (`Authorization: Bearer`, HS256 with the account's
 * signature secret, `payload_hash` the SHA-256 of the body), verified with the official
 * `@vonage/jwt` package. Calls are answered with an NCCO; texts arrive in the Messages API's
 * format and are relayed through the Messages API (messages-api.ts), not in the answer. Vonage
 * writes numbers as digits without `+`: they are E.164 from here on, and digits again on the way out.
 */
export class VonageAdapter implements CarrierAdapter {
  readonly name = 'vonage';
  readonly bodyFormat = 'json';
  private readonly callMessages: CallMessages;
  private readonly clock: () => number;
  readonly numbers?: NumberProvider;

  constructor(
    private readonly signatureSecret: string,
    private readonly messages: MessagesApi,
    private readonly options: VonageOptions,
  ) {
    this.callMessages = options.messages ?? DEFAULT_CALL_MESSAGES;
    this.clock = options.clock ?? Date.now;
    this.numbers = options.numbers;
  }

  verify(request: { headers: Record<string, string | string[] | undefined>; rawBody: string }): Verification {
    return verifyVonageRequest(this.signatureSecret, request.headers, request.rawBody, this.clock());
  }

  /**
   * The token: its signature is compared whole and covers its claims (a `jti` of its own, `iat`),
   * good until MAX_SKEW_SECONDS past `iat`.
   */
  replayKey(request: { headers: Record<string, string | string[] | undefined> }): ReplayKey {
    const token = bearerToken(String(request.headers.authorization)) ?? '';
    const iat = payload(token).iat;
    return { key: token, until: typeof iat === 'number' ? (iat + MAX_SKEW_SECONDS) * 1000 : undefined };
  }

  voice(params: Record<string, unknown>, query: Record<string, unknown> = {}): Inbound {
    // An input action's result comes back to this webhook: `dtmf.digits`, the attempt in the URL.
    const dtmf =
      params.dtmf && typeof params.dtmf === 'object' ? (params.dtmf as Record<string, unknown>) : undefined;
    const digits = dtmf ? field(dtmf, 'digits') : '';
    // The URL is not signed (the JWT covers the body alone): the attempt is only trusted as far
    // as it goes, a count from 1 to one past the last.
    let attempt = Math.min(gatherAttempt(query), GATHER_ATTEMPTS + 1);
    // Silence is a try too: the input reports no digits, and the caller is asked again or let go.
    if (dtmf && !digits) attempt += 1;
    return {
      request: {
        from: fromVonage(field(params, 'from')),
        to: fromVonage(field(params, 'to')),
        channel: 'voice',
        ...(digits ? { digits } : {}),
      },
      providerCallId: field(params, 'uuid') || undefined,
      attempt,
    };
  }

  sms(params: Record<string, unknown>): Inbound {
    // Only an SMS is relayed as one: a message on another channel (WhatsApp, Viber) gets no
    // caller, so it is in no session and refused.
    const sms = field(params, 'channel') === 'sms';
    return {
      request: {
        from: sms ? fromVonage(field(params, 'from')) : '',
        to: fromVonage(field(params, 'to')),
        channel: 'sms',
        body: field(params, 'message_type') === 'text' ? field(params, 'text') : '',
      },
      providerCallId: field(params, 'message_uuid') || undefined,
    };
  }

  status(params: Record<string, unknown>): StatusReport | undefined {
    // A call leg's event. A message status or a recording's report names no call leg Veil
    // routed, and is only acknowledged.
    const uuid = field(params, 'uuid');
    const status = field(params, 'status');
    if (!uuid || !status || field(params, 'message_uuid')) return undefined;
    return {
      providerCallId: uuid,
      status: (CALL_STATUS[status] ?? status).slice(0, MAX_STATUS),
      durationSeconds: seconds(params, 'duration'),
      // Only the inbound leg is the call Veil routed: the leg a connect dials out has a uuid of
      // its own, and its numbers (the proxy to the real callee) must not re-create a row.
      ...(field(params, 'direction') === 'inbound'
        ? reportedCall(fromVonage(field(params, 'from')), fromVonage(field(params, 'to')), 'voice')
        : {}),
    };
  }

  renderVoice(decision: RouteDecision, inbound?: Inbound): WebhookReply {
    const step = callStep(decision, inbound, this.callMessages);
    let ncco: NccoAction[];
    if (step.step === 'connect') ncco = this.connect(step.decision);
    else if (step.step === 'ask') ncco = this.gather(step);
    // Once the NCCO is spoken the call ends.
    else ncco = [announce(step.message)];
    return { contentType: NCCO, body: JSON.stringify(ncco) };
  }

  private connect(decision: Extract<RouteDecision, { action: 'connect' }>): NccoAction[] {
    const connect: NccoAction = {
      action: 'connect',
      from: toVonage(decision.callerId),
      endpoint: [{ type: 'phone', number: toVonage(decision.to) }],
    };
    if (decision.maxCallSeconds) connect.limit = Math.min(decision.maxCallSeconds, MAX_CALL_LIMIT_SECONDS);
    if (!decision.record) return [connect];
    // Recorded from here to the call's end, both sides on their own channel. Its report goes to
    // the status webhook, which acknowledges it: Vonage names the conversation there, not the call.
    const record = {
      action: 'record',
      split: 'conversation',
      channels: 2,
      eventUrl: [`${this.options.publicUrl}${STATUS_PATH}`],
    };
    return [record, connect];
  }

  /**
   * Asks for an extension: the prompt, which a key cuts short, then the input, whose result comes
   * back to the voice webhook with the attempt in the URL.
   */
  private gather(step: Extract<CallStep, { step: 'ask' }>): NccoAction[] {
    return [
      ...step.prompt.map((prompt) => ({ ...announce(prompt), bargeIn: true })),
      {
        action: 'input',
        type: ['dtmf'],
        dtmf: { maxDigits: step.numDigits, timeOut: INPUT_TIMEOUT_SECONDS },
        eventUrl: [`${this.options.publicUrl}${VOICE_PATH}?attempt=${step.attempt}`],
        eventMethod: 'POST',
      },
    ];
  }

  /**
   * A forwarded text is sent through the Messages API before Vonage is answered, so that a text
   * that could not be sent (a RelayError) is answered 502 and delivered again by Vonage; a refused one is
   * acknowledged and sent nowhere.
   */
  async renderSms(decision: RouteDecision): Promise<WebhookReply> {
    if (decision.action === 'forward') {
      await this.messages.send({
        to: toVonage(decision.to),
        from: toVonage(decision.from),
        text: decision.body,
      });
    }
    return this.acknowledge();
  }

  acknowledge(): WebhookReply {
    return { contentType: 'text/plain', body: '' };
  }
}

/**
 * Whether headers and body carry Vonage's signature: a JWT in `Authorization: Bearer`, signed
 * with `secret` (checked, expiry included, by `@vonage/jwt`), issued within MAX_SKEW_SECONDS of
 * `now`, whose `payload_hash` is the hex SHA-256 of exactly this body.
 */
export function verifyVonageRequest(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  rawBody: string,
  now: number,
): Verification {
  const header = signatureHeader(headers, 'Authorization');
  if ('problem' in header) return { ok: false, reason: header.problem };
  const token = bearerToken(header.value);
  if (!token) return { ok: false, reason: 'Authorization is not a Bearer JWT' };
  if (!verifySignature(token, secret)) {
    return { ok: false, reason: 'JWT signature does not match the signature secret, or the token expired' };
  }
  const claims = payload(token);
  if (typeof claims.iat !== 'number') return { ok: false, reason: 'JWT has no iat claim' };
  if (Math.abs(now / 1000 - claims.iat) > MAX_SKEW_SECONDS) {
    return { ok: false, reason: `JWT iat outside the ${MAX_SKEW_SECONDS} s window` };
  }
  if (typeof claims.payload_hash !== 'string') return { ok: false, reason: 'JWT has no payload_hash claim' };
  const expected = Buffer.from(createHash('sha256').update(rawBody).digest('hex'));
  const given = Buffer.from(claims.payload_hash.toLowerCase());
  return given.length === expected.length && timingSafeEqual(given, expected)
    ? { ok: true }
    : { ok: false, reason: 'JWT payload_hash does not match the body' };
}

/** The JWT of an `Authorization: Bearer` header. */
function bearerToken(header: string): string | undefined {
  return /^Bearer +([\w-]+\.[\w-]+\.[\w-]+)$/i.exec(header.trim())?.[1];
}

/** The claims of a JWT whose signature was verified. */
function payload(token: string): Record<string, unknown> {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return claims && typeof claims === 'object' ? claims : {};
  } catch {
    return {};
  }
}

/** What a caller hears: a recording played, or the text spoken in its language and voice style. */
function announce(message: Announcement): NccoAction {
  if (message.audioUrl) return { action: 'stream', streamUrl: [message.audioUrl] };
  return {
    action: 'talk',
    text: message.text,
    ...(message.language ? { language: message.language } : {}),
    // Vonage names a voice by its style number within the language.
    ...(message.voice && /^\d{1,3}$/.test(message.voice) ? { style: Number(message.voice) } : {}),
  };
}

/** A number as Vonage writes it (digits, no `+`) in E.164; anything else (a withheld caller) as it is. */
export function fromVonage(number: string): string {
  return /^[1-9]\d{1,14}$/.test(number) ? `+${number}` : number;
}

/** An E.164 number as Vonage takes it: digits without the `+`. */
export function toVonage(number: string): string {
  return number.startsWith('+') ? number.slice(1) : number;
}
