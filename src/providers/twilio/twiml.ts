import type { Announcement } from '../../domain/routing.ts';
import { type CallStep, field, gatherAttempt, type Inbound } from '../carrier.ts';
import { element, response, text } from '../xml.ts';

/**
 * TwiML, as Twilio takes it and Telnyx's TeXML too, written with the shared XML helpers
 * (../xml.ts): the same bytes as the `twilio` package's builders (test/providers/twiml.test.ts
 * holds the package as the oracle).
 */
export { element, response, text };

/**
 * Asks for an extension (TwiML, as Twilio and Telnyx's TeXML take it): the digits go to `action`,
 * signed by the carrier like the first request. No digits (silence) falls through to the goodbye.
 */
export function gather(step: Extract<CallStep, { step: 'ask' }>, action: string, method = 'POST'): string {
  return (
    element(
      'Gather',
      { input: 'dtmf', numDigits: step.numDigits, action, method: method || undefined },
      step.prompt.map(announce).join(''),
    ) +
    announce(step.goodbye) +
    element('Hangup')
  );
}

/** An announcement in TwiML: its recording played, or its text said in its language and voice. */
export function announce(message: Announcement): string {
  return message.audioUrl
    ? element('Play', {}, text(message.audioUrl))
    : element('Say', { voice: message.voice, language: message.language }, text(message.text));
}

/**
 * A call as TwiML's webhooks post it (Twilio's, and Telnyx's TeXML): From, To, CallSid, and a
 * Gather's Digits with the attempt Veil wrote into its action URL.
 */
export function twimlVoice(params: Record<string, unknown>, query: Record<string, unknown> = {}): Inbound {
  const digits = field(params, 'Digits');
  return {
    request: {
      from: field(params, 'From'),
      to: field(params, 'To'),
      channel: 'voice',
      ...(digits ? { digits } : {}),
    },
    providerCallId: field(params, 'CallSid') || undefined,
    attempt: gatherAttempt(query),
  };
}
