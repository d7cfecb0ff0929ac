import type { Config } from '../config.ts';
import { EXTENSION_DIGITS } from '../domain/session.ts';
import type { CarrierAdapter } from './carrier.ts';
import { SimAdapter } from './sim/sim-adapter.ts';

/** Providers whose numbers the pool accepts (a provider without credentials can hold numbers, not route). */
export const PROVIDER_NAMES = ['sim', 'twilio', 'plivo'] as const;

/**
 * The enabled carriers: the simulator always, the others when their credentials are configured.
 * A carrier's SDK is loaded only when it is enabled (twilio alone costs a quarter second at start,
 * plivo about as much).
 */
export async function createCarriers(
  config: Config,
  simSecret: string,
): Promise<Map<string, CarrierAdapter>> {
  const carriers = new Map<string, CarrierAdapter>();
  carriers.set('sim', new SimAdapter(simSecret));
  if (config.twilio) {
    const { TwilioAdapter } = await import('./twilio/twilio-adapter.ts');
    carriers.set(
      'twilio',
      new TwilioAdapter(config.twilio.authToken, config.publicUrl, {
        numDigits: EXTENSION_DIGITS,
        prompt: config.gatherPrompt,
      }),
    );
  }
  if (config.plivo) {
    const { PlivoAdapter } = await import('./plivo/plivo-adapter.ts');
    carriers.set(
      'plivo',
      new PlivoAdapter(config.plivo.authToken, config.publicUrl, {
        numDigits: EXTENSION_DIGITS,
        prompt: config.gatherPrompt,
      }),
    );
  }
  return carriers;
}
