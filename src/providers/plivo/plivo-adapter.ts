import { validateV3Signature } from 'plivo';
import type { Announcement, RouteDecision } from '../../domain/routing.ts';
import {
  type CallMessages,
  type CallStep,
  type CarrierAdapter,
  callStep,
  DEFAULT_CALL_MESSAGES,
  field,
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
import { element, response, text } from '../xml.ts';

const PLIVO_XML = 'text/xml';
const VOICE_PATH = '/webhooks/plivo/voice';
/** Longest status kept from a hangup callback: Plivo's are words like `completed` or `no-answer`. */
const MAX_STATUS = 32;
/**
 * Hangup causes of a call that ended normally, for a hangup callback without a CallStatus: Plivo's
 * names and codes (Normal Hangup 4000, End Of XML Instructions 4010) and the older FreeSWITCH name.
 */
const NORMAL_HANGUP_CAUSES = new Set(['Normal Hangup', 'End Of XML Instructions', 'NORMAL_CLEARING']);
const NORMAL_HANGUP_CODES = new Set(['4000', '4010']);

/**
 * Plivo: form-encoded answer, message and hangup callbacks signed with X-Plivo-Signature-V3 (HMAC-SHA256
 * over the method's URL with its query, the sorted POST parameters and X-Plivo-Signature-V3-Nonce),
 * verified by the official package over the parameters of the form body alone, answered with
 * Plivo XML. Plivo writes numbers as digits without `+`: they become E.164 on the way in and digits
 * again on the way out.
 */
export class PlivoAdapter implements CarrierAdapter {
  readonly name = 'plivo';
  readonly bodyFormat = 'form';

  /**
   * `publicUrl`: VEIL_PUBLIC_URL, the base Plivo calls back (and signs) a GetDigits' digits at;
   * `messages`: what a caller who keyed a wrong extension is asked again, and what one who keys
   * nothing hears before the call ends.
   */
  constructor(
    private readonly authToken: string,
    private readonly publicUrl: string,
    private readonly messages: CallMessages = DEFAULT_CALL_MESSAGES,
    /** The account's numbers API (procurement). */
    readonly numbers?: NumberProvider,
  ) {}

  verify(request: {
    url: string;
    headers: Record<string, string | string[] | undefined>;
    params: Record<string, unknown>;
  }): Verification {
    const signature = signatureHeader(request.headers, 'X-Plivo-Signature-V3');
    if ('problem' in signature) return { ok: false, reason: signature.problem };
    const nonce = signatureHeader(request.headers, 'X-Plivo-Signature-V3-Nonce');
    if ('problem' in nonce) return { ok: false, reason: nonce.problem };
    // The package signs an array's values one by one: only flat strings, each name once, reach it.
    if (!Object.values(request.params).every((value) => typeof value === 'string')) {
      return { ok: false, reason: 'parameters are not flat form fields' };
    }
    let valid: boolean;
    try {
      // The header may list several signatures, comma-separated (one per auth token Plivo signs
      // with): the package accepts the request when one of them matches.
      valid = Boolean(
        validateV3Signature(
          'POST',
          request.url,
          nonce.value,
          this.authToken,
          signature.value,
          request.params,
        ),
      );
    } catch {
      return { ok: false, reason: 'the URL or the signature headers could not be read' };
    }
    return valid
      ? { ok: true }
      : { ok: false, reason: 'signature does not match the URL, parameters and nonce' };
  }

  /**
   * The nonce: Plivo signs a new one into every request (the signature header may list several
   * signatures, in any order, so it is no key), and no time.
   */
  replayKey(request: { headers: Record<string, string | string[] | undefined> }): ReplayKey {
    return { key: String(request.headers['x-plivo-signature-v3-nonce']) };
  }

  voice(params: Record<string, unknown>, query: Record<string, unknown> = {}): Inbound {
    const digits = field(params, 'Digits');
    return {
      request: {
        from: e164(field(params, 'From')),
        to: e164(field(params, 'To')),
        channel: 'voice',
        ...(digits ? { digits } : {}),
      },
      providerCallId: field(params, 'CallUUID') || undefined,
      // Only Veil writes the attempt, into a GetDigits' action URL, which the signature covers.
      attempt: gatherAttempt(query),
    };
  }

  sms(params: Record<string, unknown>): Inbound {
    return {
      request: {
        from: e164(field(params, 'From')),
        to: e164(field(params, 'To')),
        channel: 'sms',
        body: field(params, 'Text'),
      },
      providerCallId: field(params, 'MessageUUID') || undefined,
    };
  }

  /** The hangup callback: the call's end, with its duration (not the billed one). */
  status(params: Record<string, unknown>): StatusReport | undefined {
    const callUuid = field(params, 'CallUUID');
    const status = hangupStatus(params);
    return callUuid && status
      ? {
          providerCallId: callUuid,
          status,
          durationSeconds: seconds(params, 'Duration'),
          ...reportedCall(e164(field(params, 'From')), e164(field(params, 'To')), 'voice'),
        }
      : undefined;
  }

  renderVoice(decision: RouteDecision, inbound?: Inbound): WebhookReply {
    const step = callStep(decision, inbound, this.messages);
    let body: string;
    if (step.step === 'connect') {
      const { callerId, maxCallSeconds, to } = step.decision;
      body = element(
        'Dial',
        { callerId: digits(callerId), timeLimit: maxCallSeconds || undefined },
        element('Number', {}, text(digits(to))),
      );
    } else if (step.step === 'ask') {
      body = this.getDigits(step);
    } else {
      body = announce(step.message) + element('Hangup');
    }
    return { contentType: PLIVO_XML, body: response(body) };
  }

  /**
   * Asks for an extension: the digits go to the voice webhook again as `Digits`, with the attempt
   * in the URL, signed by Plivo like the first request. No digits (silence) falls through to the
   * goodbye. GetDigits rather than the newer GetInput: it takes keypresses alone, nothing spoken.
   */
  private getDigits(step: Extract<CallStep, { step: 'ask' }>): string {
    const action = `${this.publicUrl}${VOICE_PATH}?attempt=${step.attempt}`;
    return (
      element(
        'GetDigits',
        { action, method: 'POST', numDigits: step.numDigits },
        step.prompt.map(announce).join(''),
      ) +
      announce(step.goodbye) +
      element('Hangup')
    );
  }

  renderSms(decision: RouteDecision): WebhookReply {
    // A refused text gets no reply at all: nothing tells a stranger what the number is.
    const body =
      decision.action === 'forward'
        ? element(
            'Message',
            { src: digits(decision.from), dst: digits(decision.to), type: 'sms' },
            text(decision.body),
          )
        : '';
    return { contentType: PLIVO_XML, body: response(body) };
  }

  acknowledge(): WebhookReply {
    return { contentType: PLIVO_XML, body: response() };
  }
}

/** What a caller hears: the recording played, or the text spoken in the language and voice given. */
function announce(message: Announcement): string {
  if (message.audioUrl) return element('Play', {}, text(message.audioUrl));
  return element('Speak', { voice: message.voice, language: message.language }, text(message.text));
}

/**
 * A number as Plivo sends it (country code and number, no `+`) in E.164. Anything else (a SIP
 * URI, `anonymous`) is kept as sent: it is no E.164 number, so it is in no session.
 */
function e164(number: string): string {
  return /^[1-9]\d{6,14}$/.test(number) ? `+${number}` : number;
}

/**
 * An E.164 number as Plivo XML writes it: digits, without `+`. Only numbers Veil holds reach here,
 * so never a `<`, which a Message's dst would read as a list of destinations.
 */
function digits(number: string): string {
  return number.startsWith('+') ? number.slice(1) : number;
}

/**
 * The status of a hangup callback: Plivo's CallStatus (`completed` for an inbound call that was
 * hung up); without one, `completed` for a normal hangup cause and `failed` for any other.
 */
function hangupStatus(params: Record<string, unknown>): string {
  const status = field(params, 'CallStatus');
  if (status) return status.slice(0, MAX_STATUS);
  const cause = field(params, 'HangupCause');
  const code = field(params, 'HangupCauseCode');
  if (!cause && !code) return '';
  return NORMAL_HANGUP_CAUSES.has(cause) || NORMAL_HANGUP_CODES.has(code) ? 'completed' : 'failed';
}
