import type { Recording } from '../domain/interaction.ts';
import { isMediaUrl } from '../domain/media.ts';
import {
  type Announcement,
  DEFAULT_GATHER_PROMPT,
  DEFAULT_REJECT_MESSAGE,
  type Gather,
  type RouteDecision,
  type RouteRequest,
} from '../domain/routing.ts';
import { type Channel, EXTENSION_DIGITS } from '../domain/session.ts';
import type { NumberProvider } from './procurement.ts';

/** A carrier's webhook as received: the URL the carrier called (public base + path), headers, body. */
export interface WebhookRequest {
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawBody: string;
  /** The body's parameters; for a form, flat strings, each name once (webhooks.ts). */
  params: Record<string, unknown>;
}

/**
 * Whether a webhook carries a valid signature and, when not, why: which header is missing or what
 * did not match, for the operator's log. A reason never holds the secret or the signature itself.
 */
export type Verification = { ok: true } | { ok: false; reason: string };

/**
 * What makes a verified webhook the one request it is: the same request sent again has the same
 * key (services/replay-guard.ts refuses it), any other request of the carrier another. It is what
 * the carrier signed, or a signature no other request can carry, never a part the sender can vary.
 */
export interface ReplayKey {
  key: string;
  /** When the carrier's own check refuses the request as stale, in ms; undefined when it never does. */
  until?: number;
  /**
   * The carrier sends a request it had no answer to again with this same key (Twilio's retries),
   * rather than signing each delivery anew: that retry is answered as the request was.
   */
  resent?: boolean;
}

/** What the carrier is answered, in its own language (TwiML, NCCO, JSON). */
export interface WebhookReply {
  contentType: string;
  body: string;
}

/** The webhook paths a carrier is served at: /webhooks/<name>/<path>. */
export type WebhookPath = 'voice' | 'sms' | 'status' | 'recording';

/** How a webhook body is encoded: application/x-www-form-urlencoded or application/json. */
export type BodyFormat = 'form' | 'json';

/** The one body format a carrier's webhook at `path` arrives in. */
export function bodyFormatOf(carrier: Pick<CarrierAdapter, 'bodyFormat'>, path: WebhookPath): BodyFormat {
  return typeof carrier.bodyFormat === 'string' ? carrier.bodyFormat : carrier.bodyFormat[path];
}

/**
 * A text the carrier's API did not take (an error answer, no answer in time). Its message says
 * what went wrong and never holds a number or the text: it is logged, and the carrier is answered
 * with an error so that it delivers the webhook again.
 */
export class RelayError extends Error {
  override readonly name = 'RelayError';
}

/** An inbound call or text, translated to the neutral route request. */
export interface Inbound {
  request: RouteRequest;
  providerCallId?: string;
  /** Which time this call is asked for an extension, counting from 1: a carrier's own retry count. */
  attempt?: number;
}

/** Which time a call is asked for an extension: the `attempt` Veil wrote into the gather's URL, else 1. */
export function gatherAttempt(query: Record<string, unknown>): number {
  const attempt = Number(field(query, 'attempt'));
  return Number.isInteger(attempt) && attempt > 0 ? attempt : 1;
}

/** Times a caller is asked for an extension before the call ends. */
export const GATHER_ATTEMPTS = 3;
/** Said before the prompt again when a keyed extension leads nowhere. */
export const WRONG_EXTENSION_MESSAGE = 'That extension is not valid.';

/** What a caller is told on the calls that do not connect, as the installation configures it. */
export interface CallMessages {
  /** What a caller on a number shared by extension is asked again after a wrong code. */
  gather: Gather;
  /** What a caller hears before the call ends, when the decision says nothing itself. */
  reject: Announcement;
}

export const DEFAULT_CALL_MESSAGES: CallMessages = {
  gather: { numDigits: EXTENSION_DIGITS, prompt: DEFAULT_GATHER_PROMPT },
  reject: { text: DEFAULT_REJECT_MESSAGE },
};

/**
 * What a carrier tells a call to do next, worked out once for every carrier: put it through, ask
 * for an extension (the digits come back to the voice webhook as `attempt`; silence ends the call
 * with `goodbye`), or end it with a message. A wrong extension is asked again, a few times.
 */
export type CallStep =
  | { step: 'connect'; decision: Extract<RouteDecision, { action: 'connect' }> }
  | { step: 'ask'; numDigits: number; prompt: Announcement[]; attempt: number; goodbye: Announcement }
  | { step: 'end'; message: Announcement };

export function callStep(
  decision: RouteDecision,
  inbound: Inbound | undefined,
  messages: CallMessages,
): CallStep {
  const attempt = inbound?.attempt ?? 1;
  const goodbye = messages.reject;
  if (decision.action === 'connect') return { step: 'connect', decision };
  if (decision.action === 'gather' && attempt <= GATHER_ATTEMPTS) {
    const prompt = decision.message ?? { text: decision.prompt };
    return { step: 'ask', numDigits: decision.numDigits, prompt: [prompt], attempt, goodbye };
  }
  if (decision.action === 'reject' && decision.reason === 'wrong_extension' && attempt < GATHER_ATTEMPTS) {
    const { numDigits, prompt: text, message = { text } } = messages.gather;
    // In the prompt's voice; a recorded prompt is played after the words.
    const { audioUrl, ...voice } = message;
    const prompt = audioUrl
      ? [{ ...voice, text: WRONG_EXTENSION_MESSAGE }, message]
      : [{ ...voice, text: `${WRONG_EXTENSION_MESSAGE} ${message.text}` }];
    return { step: 'ask', numDigits, prompt, attempt: attempt + 1, goodbye };
  }
  return { step: 'end', message: (decision.action === 'reject' && decision.message) || goodbye };
}

/** A call or message status the carrier reports after the fact. */
export interface StatusReport {
  providerCallId: string;
  status: string;
  durationSeconds: number | null;
  /** The call's numbers, when the report gives them: enough to log a call whose row was lost. */
  call?: RouteRequest;
}

/** A call's recording the carrier reports after the fact (Twilio's recordingStatusCallback). */
export interface RecordingReport {
  providerCallId: string;
  recording: Recording;
}

/** Longest recording status kept: carriers' are words like `completed` or `absent`. */
const MAX_RECORDING_STATUS = 32;

/**
 * A recording report from a carrier's fields, or undefined without a call id and a status. A URL
 * that is not a media URL (src/domain/media.ts) is kept as none: the status still says what became
 * of the recording.
 */
export function recordingReport(
  providerCallId: string,
  url: string,
  durationSeconds: number | null,
  status: string,
): RecordingReport | undefined {
  if (!providerCallId || !status) return undefined;
  return {
    providerCallId,
    recording: {
      url: isMediaUrl(url) ? url : null,
      durationSeconds,
      status: status.slice(0, MAX_RECORDING_STATUS),
    },
  };
}

/** The call a status report names, when it gives both numbers. */
export function reportedCall(from: string, to: string, channel: Channel): { call?: RouteRequest } {
  return from && to ? { call: { from, to, channel } } : {};
}

/**
 * One carrier behind one interface. An adapter translates the carrier's webhooks into the neutral
 * route request and the neutral decision back into the carrier's answer; it decides nothing.
 */
export interface CarrierAdapter {
  readonly name: string;
  /**
   * How the carrier encodes webhook bodies: one format for every path, or one per path (Telnyx
   * posts TeXML calls as forms and messaging events as JSON). Each path takes its one format only.
   */
  readonly bodyFormat: BodyFormat | Readonly<Record<WebhookPath, BodyFormat>>;
  /**
   * Ok when the request carries a valid signature of this carrier for exactly this URL and body
   * (or, for a carrier that does not sign the URL, this body). May answer asynchronously, for a
   * carrier whose package verifies with WebCrypto.
   */
  verify(request: WebhookRequest): Verification | Promise<Verification>;
  /** What identifies a request that `verify` accepted, for refusing it when it comes again. */
  replayKey(request: WebhookRequest): ReplayKey;
  /** `query`: the webhook URL's query string, which carries state Veil gave the carrier (a gather's attempt). */
  voice(params: Record<string, unknown>, query?: Record<string, unknown>): Inbound;
  /** Undefined when the request is not an inbound text (a carrier's delivery report on the same URL). */
  sms(params: Record<string, unknown>): Inbound | undefined;
  status(params: Record<string, unknown>): StatusReport | undefined;
  /**
   * A recording callback, for a carrier that records calls and reports on them separately
   * (served at /webhooks/<name>/recording); undefined when the request reports none.
   */
  recording?(params: Record<string, unknown>): RecordingReport | undefined;
  /** The answer to a call; `inbound` is the call as received, for state kept across its requests. */
  renderVoice(decision: RouteDecision, inbound?: Inbound): WebhookReply;
  /**
   * The answer to a text. A carrier that relays texts through its API rather than in the reply
   * (Vonage's Messages API, Telnyx's) sends the relayed text here, within its own time bound, and
   * answers with an acknowledgement; a send that fails throws a RelayError.
   */
  renderSms(decision: RouteDecision): WebhookReply | Promise<WebhookReply>;
  /** The answer to a status callback (and to a request that carries no usable call). */
  acknowledge(): WebhookReply;
  /**
   * The carrier's numbers API, when Veil can buy and release numbers through it
   * (POST /v1/numbers/import with a purchase; a bought number retired is given back).
   */
  readonly numbers?: NumberProvider;
}

/**
 * A signature header, which must come exactly once and not empty: its value, or what is wrong with
 * it (`name` as the carrier writes it, e.g. X-Twilio-Signature).
 */
export function signatureHeader(
  headers: WebhookRequest['headers'],
  name: string,
): { value: string } | { problem: string } {
  const value = headers[name.toLowerCase()];
  if (Array.isArray(value)) return { problem: `${name} header sent more than once` };
  if (value === undefined || value === '') return { problem: `missing ${name} header` };
  return { value };
}

/**
 * A webhook field as a string ('' when absent or not a string), without NUL characters: no carrier
 * sends them, and PostgreSQL refuses them in text, so one would fail the write that carries it.
 */
export function field(params: Record<string, unknown>, name: string): string {
  const v = params[name];
  return typeof v === 'string' ? v.replaceAll('\u0000', '') : '';
}

/** The most seconds a duration column holds (a 32-bit integer on PostgreSQL): ~68 years. */
const MAX_SECONDS = 2_147_483_647;

/** A webhook field as a whole number of seconds, or null (also when it is past any real call's). */
export function seconds(params: Record<string, unknown>, name: string): number | null {
  const v = params[name];
  const n =
    typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : Number.NaN;
  return Number.isInteger(n) && n >= 0 && n <= MAX_SECONDS ? n : null;
}
