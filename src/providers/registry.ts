import type { Config } from '../config.ts';
import type { CarrierAdapter } from './carrier.ts';
import { SimAdapter } from './sim/sim-adapter.ts';
import { TwilioAdapter } from './twilio/twilio-adapter.ts';

/** Providers whose numbers the pool accepts (a provider without credentials can hold numbers, not route). */
export const PROVIDER_NAMES = ['sim', 'twilio'] as const;

/** The enabled carriers: the simulator always, the others when their credentials are configured. */
export function createCarriers(config: Config, simSecret: string): Map<string, CarrierAdapter> {
  const carriers = new Map<string, CarrierAdapter>();
  carriers.set('sim', new SimAdapter(simSecret, !config.production));
  if (config.twilio) carriers.set('twilio', new TwilioAdapter(config.twilio.authToken));
  return carriers;
}
