import twilio from 'twilio';
import { maskNumbersInText } from '../../domain/phone.ts';
import type { Channel } from '../../domain/session.ts';
import type { AvailableNumber, NumberProvider, NumberSearch, OwnedNumber } from '../procurement.ts';
import { ProcurementError } from '../procurement.ts';

/** Where the `twilio` package sends REST API requests; TWILIO_API_URL replaces it. */
export const TWILIO_API_BASE = 'https://api.twilio.com';
/** How long one REST request may take. */
const REQUEST_TIMEOUT_MS = 15_000;

type RequestOptions = twilio.RequestClient extends { request(opts: infer O): unknown } ? O : never;

/**
 * The package's own HTTP client, sending what it would send to api.twilio.com to `apiUrl` instead
 * (a regional relay, or a local fake in tests). The package's `edge`/`region` options only rename
 * Twilio's own hosts, and a Domain's `baseUrl` is still rewritten by them, so the URL is swapped
 * here, after the package has built it.
 */
class RelocatedRequestClient extends twilio.RequestClient {
  constructor(private readonly apiUrl: string) {
    super({ timeout: REQUEST_TIMEOUT_MS });
  }

  override request<TData>(opts: RequestOptions & { data?: TData }) {
    const uri = opts.uri.startsWith(TWILIO_API_BASE)
      ? this.apiUrl + opts.uri.slice(TWILIO_API_BASE.length)
      : opts.uri;
    return super.request<TData>({ ...opts, uri });
  }
}

/**
 * Twilio's numbers API through the official client: AvailablePhoneNumbers (local) to search,
 * IncomingPhoneNumbers to buy, look up and release.
 */
export class TwilioNumbers implements NumberProvider {
  private readonly client: twilio.Twilio;

  constructor(accountSid: string, authToken: string, apiUrl: string = TWILIO_API_BASE) {
    this.client = twilio(accountSid, authToken, {
      timeout: REQUEST_TIMEOUT_MS,
      ...(apiUrl === TWILIO_API_BASE ? {} : { httpClient: new RelocatedRequestClient(apiUrl) }),
    });
  }

  async search(query: NumberSearch): Promise<AvailableNumber[]> {
    const offers = await call('search', () =>
      this.client.availablePhoneNumbers(query.country).local.list({
        ...(query.areaCode ? { areaCode: Number(query.areaCode) } : {}),
        limit: query.count,
      }),
    );
    const available = offers
      .map((o) => ({ number: o.phoneNumber, capabilities: channels(o.capabilities) }))
      .filter((o) => o.number && o.capabilities.length > 0);
    const taken = await query.taken(available.map((o) => o.number));
    return available.filter((o) => !taken.has(o.number)).slice(0, query.count);
  }

  async buy(number: string): Promise<OwnedNumber> {
    const bought = await call('purchase', () =>
      this.client.incomingPhoneNumbers.create({ phoneNumber: number }),
    );
    return owned(bought);
  }

  async owned(number: string): Promise<OwnedNumber | undefined> {
    const [found] = await call('lookup', () =>
      this.client.incomingPhoneNumbers.list({ phoneNumber: number, limit: 1 }),
    );
    return found?.phoneNumber === number ? owned(found) : undefined;
  }

  async release(number: OwnedNumber): Promise<void> {
    try {
      await call('release', () => this.client.incomingPhoneNumbers(number.ref).remove());
    } catch (error) {
      // Released already (in the console, or by an earlier try whose answer was lost).
      if (error instanceof TwilioProcurementError && error.status === 404) return;
      throw error;
    }
  }
}

class TwilioProcurementError extends ProcurementError {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    // A 4xx is Twilio's answer that it did nothing; no answer, or a 5xx, leaves it unknown.
    super(message, status !== undefined && status >= 400 && status < 500);
  }
}

/** Runs a REST call, turning its failure into a ProcurementError that names what failed and why. */
async function call<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const e = error as { status?: unknown; code?: unknown; message?: unknown };
    const status = typeof e.status === 'number' ? e.status : undefined;
    const detail = [
      status === undefined ? undefined : `HTTP ${status}`,
      typeof e.code === 'number' || typeof e.code === 'string' ? `code ${e.code}` : undefined,
      typeof e.message === 'string' ? maskNumbersInText(e.message) : undefined,
    ]
      .filter(Boolean)
      .join(', ');
    throw new TwilioProcurementError(`twilio ${what} failed: ${detail || 'no answer'}`, status);
  }
}

function owned(n: { sid: string; phoneNumber: string; capabilities?: unknown }): OwnedNumber {
  return { number: n.phoneNumber, ref: n.sid, capabilities: channels(n.capabilities) };
}

/** Twilio writes capabilities as `{voice, SMS, MMS}` on some resources and `{voice, sms, mms}` on others. */
function channels(capabilities: unknown): Channel[] {
  const c = (capabilities ?? {}) as Record<string, unknown>;
  const list: Channel[] = [];
  if (c.voice === true) list.push('voice');
  if (c.sms === true || c.SMS === true) list.push('sms');
  return list;
}
