import type { Announcement } from '../../domain/routing.ts';
import type { CallStep } from '../carrier.ts';
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
