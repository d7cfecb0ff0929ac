import Telnyx, { APIConnectionTimeoutError, APIError, APIUserAbortError } from 'telnyx';
import { TelnyxWebhook } from 'telnyx/lib/webhooks';
import type { TelnyxConfig } from '../../config.ts';
import { mediaUrls } from '../../domain/media.ts';
import type { RouteDecision } from '../../domain/routing.ts';
import {
  type CallMessages,
  type CarrierAdapter,
  callStep,
  DEFAULT_CALL_MESSAGES,
  field,
  type Inbound,
  type RecordingReport,
  RelayError,
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
// TeXML is TwiML's XML, verb for verb: the same writer serves both.
import { announce, element, gather, response, text, twimlVoice } from '../twilio/twiml.ts';

const TEXML = 'text/xml';
/** How long a relayed text may take to be accepted by the Messaging API before Telnyx is asked to retry. */
export const SEND_TIMEOUT_MS = 3000;
/** The replay window the telnyx package holds telnyx-timestamp to, in seconds (either way). */
export const TIMESTAMP_TOLERANCE_SECONDS = 300;
/** Dial's timeLimit range that TeXML accepts, in seconds. */
const MIN_TIME_LIMIT = 60;
const MAX_TIME_LIMIT = 14_400;
const VOICE_PATH = '/webhooks/telnyx/voice';
const ACK: WebhookReply = { contentType: 'application/json', body: '{"ok":true}' };

/**
 * Telnyx: TeXML calls and their status callbacks arrive as forms, messaging events (an inbound
 * text is `message.received`) as JSON, every one signed with telnyx-signature-ed25519 over
 * `<telnyx-timestamp>|<raw body>` and verified by the official package with the account's public
 * key. Calls are answered in TeXML; texts are relayed through the Messaging API (POST /v2/messages)
 * within SEND_TIMEOUT_MS, since a messaging webhook's answer carries no reply.
 *
 * The signature covers the body and the time, not the URL: unlike Twilio's, a captured request
 * could be replayed to another path or with another query inside the window. The only query Veil
 * reads is a gather's attempt, which bounds re-prompts and nothing else.
 */
export class TelnyxAdapter implements CarrierAdapter {
  readonly name = 'telnyx';
  readonly bodyFormat = { voice: 'form', sms: 'json', status: 'form', recording: 'form' } as const;
  private readonly webhook: TelnyxWebhook;
  private readonly client: Telnyx;
  private readonly recordingCallback: string;

  /**
   * `publicUrl`: VEIL_PUBLIC_URL, the base Telnyx calls back at (a Gather's digits, a recording's
   * report); `messages`: what a caller who keyed a wrong extension is asked again, and what one
   * who keys nothing hears before the call ends.
   */
  constructor(
    config: TelnyxConfig,
    private readonly publicUrl: string,
    private readonly messages: CallMessages = DEFAULT_CALL_MESSAGES,
    /** The account's numbers API (procurement). */
    readonly numbers?: NumberProvider,
  ) {
    this.webhook = new TelnyxWebhook(config.publicKey);
    this.client = new Telnyx({
      apiKey: config.apiKey,
      publicKey: null,
      baseURL: `${config.apiUrl}/v2`,
      timeout: SEND_TIMEOUT_MS,
      // Telnyx delivers the webhook again on an error answer: that is the retry, within its budget.
      maxRetries: 0,
      // The package's own log would write request bodies, numbers and all.
      logLevel: 'off',
    });
    this.recordingCallback = `${publicUrl}/webhooks/telnyx/recording`;
  }

  async verify(request: {
    headers: Record<string, string | string[] | undefined>;
    rawBody: string;
  }): Promise<Verification> {
    // Each header exactly once: the package would read a repeated header's values joined.
    const signature = signatureHeader(request.headers, 'telnyx-signature-ed25519');
    if ('problem' in signature) return { ok: false, reason: signature.problem };
    const timestamp = signatureHeader(request.headers, 'telnyx-timestamp');
    if ('problem' in timestamp) return { ok: false, reason: timestamp.problem };
    try {
      await this.webhook.verify(request.rawBody, {
        'telnyx-signature-ed25519': signature.value,
        'telnyx-timestamp': timestamp.value,
      });
      return { ok: true };
    } catch (error) {
      return { ok: false, reason: refusalReason(error) };
    }
  }

  /**
   * What was signed: the timestamp and the body (a signature's base64 could be written other
   * ways), good until TIMESTAMP_TOLERANCE_SECONDS past the timestamp.
   */
  replayKey(request: { headers: Record<string, string | string[] | undefined>; rawBody: string }): ReplayKey {
    const timestamp = String(request.headers['telnyx-timestamp']);
    return {
      key: `${timestamp}|${request.rawBody}`,
      until: (Number(timestamp) + TIMESTAMP_TOLERANCE_SECONDS) * 1000,
    };
  }

  voice(params: Record<string, unknown>, query: Record<string, unknown> = {}): Inbound {
    return twimlVoice(params, query);
  }

  /**
   * A `message.received` event's text: sender, the first recipient (the proxy), text and media.
   * Any other event on the messaging webhook (message.sent, message.finalized: the delivery of a
   * text Veil relayed) is not an inbound text.
   */
  sms(params: Record<string, unknown>): Inbound | undefined {
    const data = object(params.data);
    if (field(data, 'event_type') !== 'message.received') return undefined;
    const payload = object(data.payload);
    const to = Array.isArray(payload.to) ? object(payload.to[0]) : {};
    const media = Array.isArray(payload.media) ? payload.media.map((m) => object(m).url) : [];
    return {
      request: {
        from: field(object(payload.from), 'phone_number'),
        to: field(to, 'phone_number'),
        channel: 'sms',
        body: field(payload, 'text'),
        media: mediaUrls(media),
      },
      providerCallId: field(payload, 'id') || field(data, 'id') || undefined,
    };
  }

  status(params: Record<string, unknown>): StatusReport | undefined {
    const callSid = field(params, 'CallSid');
    const status = field(params, 'CallStatus');
    return callSid && status
      ? {
          providerCallId: callSid,
          status,
          durationSeconds: seconds(params, 'CallDuration'),
          ...reportedCall(field(params, 'From'), field(params, 'To'), 'voice'),
        }
      : undefined;
  }

  recording(params: Record<string, unknown>): RecordingReport | undefined {
    return recordingReport(
      field(params, 'CallSid'),
      field(params, 'RecordingUrl'),
      seconds(params, 'RecordingDuration'),
      field(params, 'RecordingStatus'),
    );
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
          recordingStatusCallbackEvent: record ? 'completed' : undefined,
          timeLimit: timeLimit(maxCallSeconds),
        },
        element('Number', {}, text(to)),
      );
    } else if (step.step === 'ask') {
      // TeXML posts a Gather's result with the application's method: the Gather names none.
      body = gather(step, `${this.publicUrl}${VOICE_PATH}?attempt=${step.attempt}`, '');
    } else {
      body = announce(step.message) + element('Hangup');
    }
    return { contentType: TEXML, body: response(body) };
  }

  /** A forwarded text is sent through the Messaging API before Telnyx is answered; a refused one is not. */
  async renderSms(decision: RouteDecision): Promise<WebhookReply> {
    if (decision.action !== 'forward') return ACK;
    const media = decision.media ?? [];
    if (!decision.body && media.length === 0) return ACK;
    try {
      await this.client.messages.send(
        {
          from: decision.from,
          to: decision.to,
          ...(decision.body ? { text: decision.body } : {}),
          ...(media.length > 0 ? { media_urls: media } : {}),
        },
        { signal: AbortSignal.timeout(SEND_TIMEOUT_MS) },
      );
    } catch (error) {
      throw new RelayError(sendFailure(error));
    }
    return ACK;
  }

  acknowledge(): WebhookReply {
    return ACK;
  }
}

/**
 * A session's longest call as TeXML's timeLimit, which takes 60 s to 4 h: a shorter limit is
 * held to a minute (TeXML refuses less), a longer one to four hours, its default.
 */
function timeLimit(maxCallSeconds: number | null): number | undefined {
  if (!maxCallSeconds) return undefined;
  return Math.min(MAX_TIME_LIMIT, Math.max(MIN_TIME_LIMIT, maxCallSeconds));
}

function object(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/**
 * Why the package refused a signature, in words of our own: its messages quote the header's value,
 * which a log should not keep.
 */
function refusalReason(error: unknown): string {
  const message = error instanceof Error ? error.message : '';
  if (message.includes('too old or too new')) {
    return `telnyx-timestamp outside the ${TIMESTAMP_TOLERANCE_SECONDS} s window`;
  }
  if (message.startsWith('Invalid timestamp')) return 'telnyx-timestamp is not unix seconds';
  if (message.startsWith('Invalid signature format')) {
    return 'telnyx-signature-ed25519 is not a base64 Ed25519 signature';
  }
  if (message.includes('does not match')) return 'signature does not match the timestamp and body';
  return 'signature not verified';
}

/** Why a send failed, without the numbers or the text (an API error's body may quote them). */
function sendFailure(error: unknown): string {
  if (error instanceof APIUserAbortError || error instanceof APIConnectionTimeoutError)
    return `no answer from the Messaging API within ${SEND_TIMEOUT_MS} ms`;
  if (error instanceof APIError && error.status !== undefined) {
    return `the Messaging API answered ${error.status}`;
  }
  return 'the Messaging API could not be reached';
}
