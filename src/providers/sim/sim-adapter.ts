import { createHmac, timingSafeEqual } from 'node:crypto';
import { mediaUrls } from '../../domain/media.ts';
import type { RouteDecision } from '../../domain/routing.ts';
import {
  type CarrierAdapter,
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
import { SimNumbers } from './sim-numbers.ts';

export const SIGNATURE_HEADER = 'x-sim-signature';
export const TIMESTAMP_HEADER = 'x-sim-timestamp';
/** A signed request older (or newer) than this is refused, so a captured one cannot be replayed later. */
const MAX_SKEW_SECONDS = 300;

/** The simulator's signature: hex HMAC-SHA256 over `<unix seconds>.<raw body>`. */
export function simSignature(secret: string, timestamp: string, rawBody: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex');
}

/** The headers that sign a simulator webhook body (used by `veil call` and tests). */
export function signSimRequest(secret: string, rawBody: string, now = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(now / 1000));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: simSignature(secret, timestamp, rawBody) };
}

/**
 * The built-in simulator: numbers that need no carrier. Webhooks are JSON
 * (`{"from","to","body"?,"media"?,"digits"?,"callId"?}`, a recording `{"callId","status","url"?,"durationSeconds"?}`),
 * signed with SIM_WEBHOOK_SECRET, and answered with the neutral decision itself. Every request must be signed, in development too: the answer names the
 * other participant's real number, so an unsigned path would let anyone look numbers up.
 */
export class SimAdapter implements CarrierAdapter {
  readonly name = 'sim';
  readonly bodyFormat = 'json';
  readonly numbers = new SimNumbers();

  constructor(
    private readonly secret: string,
    private readonly clock: () => number = Date.now,
  ) {}

  verify(request: { headers: Record<string, string | string[] | undefined>; rawBody: string }): Verification {
    if (request.headers[SIGNATURE_HEADER] === undefined && request.headers[TIMESTAMP_HEADER] === undefined) {
      return { ok: false, reason: 'missing X-Sim-Signature and X-Sim-Timestamp headers' };
    }
    const signature = signatureHeader(request.headers, 'X-Sim-Signature');
    if ('problem' in signature) return { ok: false, reason: signature.problem };
    const timestamp = signatureHeader(request.headers, 'X-Sim-Timestamp');
    if ('problem' in timestamp) return { ok: false, reason: timestamp.problem };
    if (!/^\d+$/.test(timestamp.value)) return { ok: false, reason: 'X-Sim-Timestamp is not unix seconds' };
    if (Math.abs(this.clock() / 1000 - Number(timestamp.value)) > MAX_SKEW_SECONDS) {
      return { ok: false, reason: `X-Sim-Timestamp outside the ${MAX_SKEW_SECONDS} s window` };
    }
    const expected = Buffer.from(simSignature(this.secret, timestamp.value, request.rawBody));
    const given = Buffer.from(signature.value);
    return given.length === expected.length && timingSafeEqual(given, expected)
      ? { ok: true }
      : { ok: false, reason: 'signature does not match the body' };
  }

  /** What was signed: the timestamp and the body, good until MAX_SKEW_SECONDS past the timestamp. */
  replayKey(request: { headers: Record<string, string | string[] | undefined>; rawBody: string }): ReplayKey {
    const timestamp = String(request.headers[TIMESTAMP_HEADER]);
    return { key: `${timestamp}.${request.rawBody}`, until: (Number(timestamp) + MAX_SKEW_SECONDS) * 1000 };
  }

  voice(params: Record<string, unknown>): Inbound {
    const digits = field(params, 'digits');
    return {
      request: {
        from: field(params, 'from'),
        to: field(params, 'to'),
        channel: 'voice',
        ...(digits ? { digits } : {}),
      },
      providerCallId: field(params, 'callId') || undefined,
    };
  }

  sms(params: Record<string, unknown>): Inbound {
    return {
      request: {
        from: field(params, 'from'),
        to: field(params, 'to'),
        channel: 'sms',
        body: field(params, 'body'),
        media: mediaUrls(Array.isArray(params.media) ? params.media : []),
      },
      providerCallId: field(params, 'callId') || undefined,
    };
  }

  status(params: Record<string, unknown>): StatusReport | undefined {
    const callId = field(params, 'callId');
    const status = field(params, 'status');
    return callId && status
      ? {
          providerCallId: callId,
          status,
          durationSeconds: seconds(params, 'durationSeconds'),
          ...reportedCall(
            field(params, 'from'),
            field(params, 'to'),
            field(params, 'channel') === 'sms' ? 'sms' : 'voice',
          ),
        }
      : undefined;
  }

  recording(params: Record<string, unknown>): RecordingReport | undefined {
    return recordingReport(
      field(params, 'callId'),
      field(params, 'url'),
      seconds(params, 'durationSeconds'),
      field(params, 'status'),
    );
  }

  renderVoice(decision: RouteDecision): WebhookReply {
    return { contentType: 'application/json', body: JSON.stringify(decision) };
  }

  renderSms(decision: RouteDecision): WebhookReply {
    return { contentType: 'application/json', body: JSON.stringify(decision) };
  }

  acknowledge(): WebhookReply {
    return { contentType: 'application/json', body: '{"ok":true}' };
  }
}
