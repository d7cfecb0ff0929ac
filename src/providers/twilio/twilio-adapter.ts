import twilio from 'twilio';
import type { RouteDecision } from '../../domain/routing.ts';
import {
  type CarrierAdapter,
  field,
  type Inbound,
  type StatusReport,
  seconds,
  type WebhookReply,
} from '../carrier.ts';

const TWIML = 'text/xml';
/** Spoken to a caller with no session on the number (a stranger, or a session that ended). */
export const NOT_AVAILABLE_MESSAGE = 'The number you have dialled is not available.';

/**
 * Twilio: form-encoded webhooks signed with X-Twilio-Signature (HMAC-SHA1 of URL and sorted
 * params, verified by the official package), answered with TwiML built by the package.
 */
export class TwilioAdapter implements CarrierAdapter {
  readonly name = 'twilio';
  readonly bodyFormat = 'form';

  constructor(private readonly authToken: string) {}

  verify(request: {
    url: string;
    headers: Record<string, string | string[] | undefined>;
    params: Record<string, unknown>;
  }): boolean {
    const signature = request.headers['x-twilio-signature'];
    if (typeof signature !== 'string' || signature === '') return false;
    return twilio.validateRequest(this.authToken, signature, request.url, request.params);
  }

  voice(params: Record<string, unknown>): Inbound {
    return {
      request: { from: field(params, 'From'), to: field(params, 'To'), channel: 'voice' },
      providerCallId: field(params, 'CallSid') || undefined,
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
        ? { providerCallId: callSid, status, durationSeconds: seconds(params, 'CallDuration') }
        : undefined;
    }
    const messageSid = field(params, 'MessageSid') || field(params, 'SmsSid');
    const status = field(params, 'MessageStatus') || field(params, 'SmsStatus');
    return messageSid && status ? { providerCallId: messageSid, status, durationSeconds: null } : undefined;
  }

  renderVoice(decision: RouteDecision): WebhookReply {
    const response = new twilio.twiml.VoiceResponse();
    if (decision.action === 'connect') {
      const dial = response.dial({
        callerId: decision.callerId,
        ...(decision.record ? { record: 'record-from-answer-dual' as const } : {}),
        ...(decision.maxCallSeconds ? { timeLimit: decision.maxCallSeconds } : {}),
      });
      dial.number(decision.to);
    } else {
      response.say(NOT_AVAILABLE_MESSAGE);
      response.hangup();
    }
    return { contentType: TWIML, body: response.toString() };
  }

  renderSms(decision: RouteDecision): WebhookReply {
    const response = new twilio.twiml.MessagingResponse();
    // A refused text gets no reply at all: nothing tells a stranger what the number is.
    if (decision.action === 'forward')
      response.message({ to: decision.to, from: decision.from }, decision.body);
    return { contentType: TWIML, body: response.toString() };
  }

  acknowledge(): WebhookReply {
    return { contentType: TWIML, body: new twilio.twiml.VoiceResponse().toString() };
  }
}
