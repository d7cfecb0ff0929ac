import twilio from 'twilio';
import { DEFAULT_GATHER_PROMPT, type Gather, type RouteDecision } from '../../domain/routing.ts';
import { EXTENSION_DIGITS } from '../../domain/session.ts';
import {
  type CarrierAdapter,
  field,
  GATHER_ATTEMPTS,
  type Inbound,
  reportedCall,
  type StatusReport,
  seconds,
  signatureHeader,
  type Verification,
  type WebhookReply,
} from '../carrier.ts';
import { element, response, text } from './twiml.ts';

const TWIML = 'text/xml';
/** Spoken to a caller with no session on the number (a stranger, or a session that ended). */
export const NOT_AVAILABLE_MESSAGE = 'The number you have dialled is not available.';
/** Spoken before the prompt again when a keyed extension leads nowhere. */
export const WRONG_EXTENSION_MESSAGE = 'That extension is not valid.';
const VOICE_PATH = '/webhooks/twilio/voice';

/**
 * Twilio: form-encoded webhooks signed with X-Twilio-Signature (HMAC-SHA1 of URL and sorted
 * params, verified by the official package over the parameters of the form body alone, as
 * webhooks.ts decodes them), answered with TwiML (twiml.ts: what the package's
 * builders write, without their cost).
 */
export class TwilioAdapter implements CarrierAdapter {
  readonly name = 'twilio';
  readonly bodyFormat = 'form';

  /**
   * `publicUrl`: the base Twilio calls, where a Gather sends the keyed digits (signed like every
   * webhook); `retry`: what a caller who keyed a wrong extension is asked again.
   */
  constructor(
    private readonly authToken: string,
    private readonly publicUrl = '',
    private readonly retry: Gather = { numDigits: EXTENSION_DIGITS, prompt: DEFAULT_GATHER_PROMPT },
  ) {}

  verify(request: {
    url: string;
    headers: Record<string, string | string[] | undefined>;
    params: Record<string, unknown>;
  }): Verification {
    const signature = signatureHeader(request.headers, 'X-Twilio-Signature');
    if ('problem' in signature) return { ok: false, reason: signature.problem };
    // Twilio signs each form parameter once, as a string. The package would also sign an array's
    // distinct values, so a duplicated parameter could pass: only flat strings reach it.
    if (!Object.values(request.params).every((value) => typeof value === 'string')) {
      return { ok: false, reason: 'parameters are not flat form fields' };
    }
    return twilio.validateRequest(this.authToken, signature.value, request.url, request.params)
      ? { ok: true }
      : { ok: false, reason: 'signature does not match the URL and parameters' };
  }

  voice(params: Record<string, unknown>, query: Record<string, unknown> = {}): Inbound {
    const digits = field(params, 'Digits');
    const attempt = Number(field(query, 'attempt'));
    return {
      request: {
        from: field(params, 'From'),
        to: field(params, 'To'),
        channel: 'voice',
        ...(digits ? { digits } : {}),
      },
      providerCallId: field(params, 'CallSid') || undefined,
      // Only Veil writes the attempt, into a Gather's action URL, which the signature covers.
      attempt: Number.isInteger(attempt) && attempt > 0 ? attempt : 1,
    };
  }

  sms(params: Record<string, unknown>): Inbound {
    return {
      request: {
        from: field(params, 'From'),
        to: field(params, 'To'),
        channel: 'sms',
        body: field(params, 'Body'),
      },
      providerCallId: field(params, 'MessageSid') || field(params, 'SmsSid') || undefined,
    };
  }

  status(params: Record<string, unknown>): StatusReport | undefined {
    const callSid = field(params, 'CallSid');
    if (callSid) {
      const status = field(params, 'CallStatus');
      return status
        ? {
            providerCallId: callSid,
            status,
            durationSeconds: seconds(params, 'CallDuration'),
            ...reportedCall(field(params, 'From'), field(params, 'To'), 'voice'),
          }
        : undefined;
    }
    const messageSid = field(params, 'MessageSid') || field(params, 'SmsSid');
    const status = field(params, 'MessageStatus') || field(params, 'SmsStatus');
    return messageSid && status
      ? {
          providerCallId: messageSid,
          status,
          durationSeconds: null,
          ...reportedCall(field(params, 'From'), field(params, 'To'), 'sms'),
        }
      : undefined;
  }

  renderVoice(decision: RouteDecision, inbound?: Inbound): WebhookReply {
    const attempt = inbound?.attempt ?? 1;
    let body: string;
    if (decision.action === 'connect') {
      body = element(
        'Dial',
        {
          callerId: decision.callerId,
          record: decision.record ? 'record-from-answer-dual' : undefined,
          timeLimit: decision.maxCallSeconds || undefined,
        },
        element('Number', {}, text(decision.to)),
      );
    } else if (decision.action === 'gather' && attempt <= GATHER_ATTEMPTS) {
      body = this.gather(decision.numDigits, decision.prompt, attempt);
    } else if (
      decision.action === 'reject' &&
      decision.reason === 'wrong_extension' &&
      attempt < GATHER_ATTEMPTS
    ) {
      const { numDigits, prompt } = this.retry;
      body = this.gather(numDigits, `${WRONG_EXTENSION_MESSAGE} ${prompt}`, attempt + 1);
    } else {
      body = element('Say', {}, text(NOT_AVAILABLE_MESSAGE)) + element('Hangup');
    }
    return { contentType: TWIML, body: response(body) };
  }

  /**
   * Asks for an extension: the digits go to the voice webhook again, with the attempt in the URL,
   * signed by Twilio like the first request. No digits (silence) falls through to the goodbye.
   */
  private gather(numDigits: number, prompt: string, attempt: number): string {
    const action = `${this.publicUrl}${VOICE_PATH}?attempt=${attempt}`;
    return (
      element(
        'Gather',
        { input: 'dtmf', numDigits, action, method: 'POST' },
        element('Say', {}, text(prompt)),
      ) +
      element('Say', {}, text(NOT_AVAILABLE_MESSAGE)) +
      element('Hangup')
    );
  }

  renderSms(decision: RouteDecision): WebhookReply {
    // A refused text gets no reply at all: nothing tells a stranger what the number is.
    const body =
      decision.action === 'forward'
        ? element('Message', { to: decision.to, from: decision.from }, text(decision.body))
        : '';
    return { contentType: TWIML, body: response(body) };
  }

  acknowledge(): WebhookReply {
    return { contentType: TWIML, body: response() };
  }
}
