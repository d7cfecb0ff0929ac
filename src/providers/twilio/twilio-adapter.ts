import twilio from 'twilio';
import { MAX_MEDIA, mediaUrls } from '../../domain/media.ts';
import type { RouteDecision } from '../../domain/routing.ts';
import {
  type CallMessages,
  type CarrierAdapter,
  callStep,
  DEFAULT_CALL_MESSAGES,
  field,
  type Inbound,
  type RecordingReport,
  type ReplayKey,
  recordingReport,
  reportedCall,
  type StatusReport,
  seconds,
  signatureHeader,
  type Verification,
  type WebhookReply,
} from '../carrier.ts';
import type { NumberProvider } from '../procurement.ts';
import { element, response, text } from '../xml.ts';
import { announce, gather, twimlVoice } from './twiml.ts';

const TWIML = 'text/xml';
const VOICE_PATH = '/webhooks/twilio/voice';
/** The recording events Twilio is asked to report: the audio is ready (`completed`), or none was made (`absent`). */
const RECORDING_EVENTS = 'completed absent';

/**
 * Twilio: form-encoded webhooks signed with X-Twilio-Signature (HMAC-SHA1 of URL and sorted
 * params, verified by the official package over the parameters of the form body alone, as
 * webhooks.ts decodes them), answered with TwiML (../xml.ts: what the package's
 * builders write, without their cost).
 */
export class TwilioAdapter implements CarrierAdapter {
  readonly name = 'twilio';
  readonly bodyFormat = 'form';
  /** Where Twilio reports a recorded call's recording: signed, like every webhook, for this URL. */
  private readonly recordingCallback: string;

  /**
   * `publicUrl`: VEIL_PUBLIC_URL, the base Twilio calls back (and signs) webhooks at: a Gather's
   * digits and a recording's report; `messages`: what a caller who keyed a wrong extension is
   * asked again, and what one who keys nothing hears before the call ends.
   */
  constructor(
    private readonly authToken: string,
    private readonly publicUrl: string,
    private readonly messages: CallMessages = DEFAULT_CALL_MESSAGES,
    /** The account's numbers API (procurement), when the account's SID is known. */
    readonly numbers?: NumberProvider,
  ) {
    this.recordingCallback = `${publicUrl}/webhooks/twilio/recording`;
  }

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

  /**
   * The signature: it is compared whole, so no other request carries it (the package takes the
   * URL with its port written out, or the form re-encoded, only as this same request). It has no
   * time: Twilio sends it again, unchanged, when it retries a request it had no answer to.
   */
  replayKey(request: { headers: Record<string, string | string[] | undefined> }): ReplayKey {
    return { key: String(request.headers['x-twilio-signature']), resent: true };
  }

  voice(params: Record<string, unknown>, query: Record<string, unknown> = {}): Inbound {
    // Only Veil writes the attempt, into a Gather's action URL, which the signature covers.
    return twimlVoice(params, query);
  }

  sms(params: Record<string, unknown>): Inbound {
    return {
      request: {
        from: field(params, 'From'),
        to: field(params, 'To'),
        channel: 'sms',
        body: field(params, 'Body'),
        media: media(params),
      },
      providerCallId: field(params, 'MessageSid') || field(params, 'SmsSid') || undefined,
    };
  }

  recording(params: Record<string, unknown>): RecordingReport | undefined {
    return recordingReport(
      field(params, 'CallSid'),
      field(params, 'RecordingUrl'),
      seconds(params, 'RecordingDuration'),
      field(params, 'RecordingStatus'),
    );
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
    const step = callStep(decision, inbound, this.messages);
    let body: string;
    if (step.step === 'connect') {
      const { callerId, record, maxCallSeconds, to } = step.decision;
      body = element(
        'Dial',
        {
          callerId,
          record: record ? 'record-from-answer-dual' : undefined,
          recordingStatusCallback: record ? this.recordingCallback : undefined,
          recordingStatusCallbackEvent: record ? RECORDING_EVENTS : undefined,
          timeLimit: maxCallSeconds || undefined,
        },
        element('Number', {}, text(to)),
      );
    } else if (step.step === 'ask') {
      body = gather(step, `${this.publicUrl}${VOICE_PATH}?attempt=${step.attempt}`);
    } else {
      body = announce(step.message) + element('Hangup');
    }
    return { contentType: TWIML, body: response(body) };
  }

  renderSms(decision: RouteDecision): WebhookReply {
    // A refused text gets no reply at all: nothing tells a stranger what the number is.
    const body = decision.action === 'forward' ? message(decision) : '';
    return { contentType: TWIML, body: response(body) };
  }

  acknowledge(): WebhookReply {
    return { contentType: TWIML, body: response() };
  }
}

/**
 * An MMS's media: MediaUrl0 to MediaUrl{NumMedia-1}. Twilio sends at most MAX_MEDIA, so no
 * slot past that is read, however large NumMedia says it is.
 */
function media(params: Record<string, unknown>): string[] {
  const given = field(params, 'NumMedia');
  const count = /^\d+$/.test(given) ? Math.min(Number(given), MAX_MEDIA) : 0;
  return mediaUrls(Array.from({ length: count }, (_, i) => field(params, `MediaUrl${i}`)));
}

/**
 * A forwarded text. A plain text is the Message's own content; an MMS carries its text in a Body
 * (none when it is only pictures) and each media URL in a Media of its own.
 */
function message(decision: Extract<RouteDecision, { action: 'forward' }>): string {
  const attributes = { to: decision.to, from: decision.from };
  if (!decision.media?.length) return element('Message', attributes, text(decision.body));
  const body = text(decision.body);
  return element(
    'Message',
    attributes,
    (body ? element('Body', {}, body) : '') +
      decision.media.map((url) => element('Media', {}, text(url))).join(''),
  );
}
