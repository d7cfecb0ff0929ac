import type { Config } from '../config.ts';
import { EXTENSION_DIGITS } from '../domain/session.ts';
import type { Binder } from './binder.ts';
import type { CallMessages, CarrierAdapter } from './carrier.ts';
import { SimAdapter } from './sim/sim-adapter.ts';

/** Providers whose numbers the pool accepts (a provider without credentials can hold numbers, not route). */
export const PROVIDER_NAMES = ['sim', 'twilio', 'vonage', 'plivo', 'telnyx', 'aliyun', 'sip'] as const;

/**
 * The SIP edge (deploy/kamailio), the provider of numbers that ring on a plain SIP trunk. Always
 * enabled: the edge asks POST /v1/route with an API key, so there are no credentials to configure,
 * no webhooks of a carrier's own and no numbers to buy.
 */
export const SIP_EDGE = 'sip';

/**
 * The providers whose free numbers any session may get, counted as the pool's free capacity: the
 * enabled carriers and the SIP edge (a remote-binding carrier's numbers go to shared sessions only).
 */
export function poolCarriers(carriers: ReadonlyMap<string, CarrierAdapter>): string[] {
  return [...carriers.keys(), SIP_EDGE];
}

/** Every enabled provider, as GET /v1/providers lists them: the pool's carriers and the binders. */
export function enabledProviders(
  carriers: ReadonlyMap<string, CarrierAdapter>,
  binders: ReadonlyMap<string, unknown>,
): string[] {
  return [...poolCarriers(carriers), ...binders.keys()];
}

/**
 * The carriers whose numbers may be added in this installation: all but the simulator in
 * production, where a call through it would reach nobody.
 */
export function acceptedProviders(config: Pick<Config, 'production'>): readonly string[] {
  return config.production ? PROVIDER_NAMES.filter((name) => name !== 'sim') : PROVIDER_NAMES;
}

/**
 * The enabled carriers, which route and whose numbers are allocated: the simulator outside
 * production, the others when their credentials are configured.
 * A carrier's SDK is loaded only when it is enabled (twilio alone costs a quarter second at start,
 * plivo about as much, telnyx half a second).
 */
export async function createCarriers(
  config: Config,
  simSecret: string,
): Promise<Map<string, CarrierAdapter>> {
  const carriers = new Map<string, CarrierAdapter>();
  const messages: CallMessages = {
    gather: { numDigits: EXTENSION_DIGITS, prompt: config.gatherPrompt, message: config.gather },
    reject: config.rejectMessage,
  };
  if (!config.production) carriers.set('sim', new SimAdapter(simSecret));
  if (config.twilio) {
    const { TwilioAdapter } = await import('./twilio/twilio-adapter.ts');
    const { TwilioNumbers } = await import('./twilio/twilio-numbers.ts');
    const { accountSid, authToken, apiUrl } = config.twilio;
    carriers.set(
      'twilio',
      new TwilioAdapter(
        authToken,
        config.publicUrl,
        messages,
        new TwilioNumbers(accountSid, authToken, apiUrl),
      ),
    );
  }
  if (config.telnyx) {
    const { TelnyxAdapter } = await import('./telnyx/telnyx-adapter.ts');
    const { TelnyxNumbers } = await import('./telnyx/telnyx-numbers.ts');
    const { apiKey, apiUrl } = config.telnyx;
    carriers.set(
      'telnyx',
      new TelnyxAdapter(config.telnyx, config.publicUrl, messages, new TelnyxNumbers(apiKey, apiUrl)),
    );
  }
  if (config.plivo) {
    const { PlivoAdapter } = await import('./plivo/plivo-adapter.ts');
    const { PlivoNumbers } = await import('./plivo/plivo-numbers.ts');
    const { authId, authToken, apiUrl } = config.plivo;
    carriers.set(
      'plivo',
      new PlivoAdapter(authToken, config.publicUrl, messages, new PlivoNumbers(authId, authToken, apiUrl)),
    );
  }
  if (config.vonage) {
    const { VonageAdapter } = await import('./vonage/vonage-adapter.ts');
    const { MessagesApi } = await import('./vonage/messages-api.ts');
    const { VonageNumbers } = await import('./vonage/vonage-numbers.ts');
    const { apiUrl, restUrl, apiKey, apiSecret, signatureSecret } = config.vonage;
    carriers.set(
      'vonage',
      new VonageAdapter(signatureSecret, new MessagesApi(apiUrl, apiKey, apiSecret), {
        publicUrl: config.publicUrl,
        messages,
        numbers: new VonageNumbers(apiKey, apiSecret, restUrl),
      }),
    );
  }
  return carriers;
}

/**
 * The enabled remote-binding carriers (domain/binding.ts), which connect calls themselves once a
 * session is bound there: no webhooks, no number purchase. Their numbers are allocated to `shared`
 * sessions only.
 */
export async function createBinders(config: Config): Promise<Map<string, Binder>> {
  const binders = new Map<string, Binder>();
  if (config.aliyun) {
    const { AliyunBinder } = await import('./aliyun/aliyun-binder.ts');
    binders.set('aliyun', new AliyunBinder(config.aliyun));
  }
  return binders;
}
