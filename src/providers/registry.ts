import type { Config } from '../config.ts';
import { EXTENSION_DIGITS } from '../domain/session.ts';
import type { Logger } from '../logger.ts';
import type { CarrierAdapter } from './carrier.ts';
import { SimAdapter } from './sim/sim-adapter.ts';

/** Providers whose numbers the pool accepts (a provider without credentials can hold numbers, not route). */
export const PROVIDER_NAMES = ['sim', 'twilio', 'vonage'] as const;

/**
 * The enabled carriers: the simulator always, the others when their credentials are configured.
 * A carrier's SDK is loaded only when it is enabled (twilio alone costs a quarter second at start).
 * `logger` hears of what a carrier could not do outside a webhook's answer (a text not relayed).
 */
export async function createCarriers(
  config: Config,
  simSecret: string,
  logger?: Pick<Logger, 'warn'>,
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
  if (config.vonage) {
    const { VonageAdapter } = await import('./vonage/vonage-adapter.ts');
    const { MessagesApi } = await import('./vonage/messages-api.ts');
    const { apiUrl, apiKey, apiSecret, signatureSecret } = config.vonage;
    carriers.set(
      'vonage',
      new VonageAdapter(signatureSecret, new MessagesApi(apiUrl, apiKey, apiSecret), {
        publicUrl: config.publicUrl,
        retry: { numDigits: EXTENSION_DIGITS, prompt: config.gatherPrompt },
        logger,
      }),
    );
  }
  return carriers;
}
