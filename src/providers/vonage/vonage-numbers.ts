import { type CountryCode, getCountryCallingCode, parsePhoneNumberFromString } from 'libphonenumber-js';
import type { Channel } from '../../domain/session.ts';
import {
  basicAuthorization,
  fieldOf,
  NUMBERS_REQUEST_TIMEOUT_MS,
  type NumbersAnswer,
  numbersFailure,
  numbersRequest,
} from '../numbers-rest.ts';
import {
  type AvailableNumber,
  MAX_PURCHASE,
  type NumberProvider,
  type NumberSearch,
  type OwnedNumber,
  ProcurementError,
} from '../procurement.ts';

/** The code Vonage's Numbers API writes in `error-code` when a purchase or a cancellation worked. */
const DONE = '200';

/**
 * Vonage's Numbers API (rest.nexmo.com, as its OpenAPI document, Numbers API 1.1.0, describes it):
 * `GET /number/search` to search, `POST /number/buy` and `POST /number/cancel` (form fields
 * `country` and `msisdn`) to buy and give back, `GET /account/numbers` to look one up. Numbers are
 * digits without `+` (msisdn), and an msisdn is Vonage's only name for a number: it is the ref.
 * Authenticated with the account's key and secret as Basic auth, which the document gives as its
 * scheme (rather than api_key/api_secret in the query, where a proxy's log would keep the secret).
 *
 * Plain fetch: the SDK's numbers client (@vonage/numbers) would bring its own stack of packages for
 * these four requests, as messages-api.ts says for the Messages API; a base URL and a time bound
 * are all Veil needs to set.
 */
export class VonageNumbers implements NumberProvider {
  private readonly authorization: string;

  constructor(
    apiKey: string,
    apiSecret: string,
    private readonly restUrl: string,
    private readonly timeoutMs = NUMBERS_REQUEST_TIMEOUT_MS,
  ) {
    this.authorization = basicAuthorization(apiKey, apiSecret);
  }

  async search(query: NumberSearch): Promise<AvailableNumber[]> {
    const params = new URLSearchParams({
      country: query.country,
      features: 'SMS,VOICE',
      size: String(Math.min(query.count, MAX_PURCHASE)),
    });
    if (query.areaCode) {
      // search_pattern 0 is "starts with", over the whole msisdn: country code, then area code.
      params.set('pattern', `${callingCode(query.country)}${query.areaCode}`);
      params.set('search_pattern', '0');
    }
    const answer = await this.get('vonage search', `/number/search?${params}`);
    const offers = list(answer.body)
      .map((n) => ({ number: `+${fieldOf(n, 'msisdn')}`, capabilities: channels(fieldOf(n, 'features')) }))
      .filter((o) => /^\+\d+$/.test(o.number) && o.capabilities.length > 0);
    const taken = await query.taken(offers.map((o) => o.number));
    return offers.filter((o) => !taken.has(o.number)).slice(0, query.count);
  }

  async buy(number: string): Promise<OwnedNumber> {
    await this.post('vonage purchase', '/number/buy', number);
    // The answer holds no features: the search's stand for the number.
    return { number, ref: msisdn(number), capabilities: [] };
  }

  async owned(number: string): Promise<OwnedNumber | undefined> {
    const params = new URLSearchParams({ pattern: msisdn(number), search_pattern: '0', size: '10' });
    const answer = await this.get('vonage lookup', `/account/numbers?${params}`);
    const found = list(answer.body).find((n) => fieldOf(n, 'msisdn') === msisdn(number));
    if (found === undefined) return undefined;
    return { number, ref: msisdn(number), capabilities: channels(fieldOf(found, 'features')) };
  }

  async release(number: OwnedNumber): Promise<void> {
    try {
      await this.post('vonage release', '/number/cancel', number.number);
    } catch (error) {
      // Vonage answers a cancellation of a number the account no longer has with a 4xx (420,
      // "action failed") like any other refusal: the account's numbers tell which it was.
      if (error instanceof ProcurementError && error.nothingBought && !(await this.owned(number.number)))
        return;
      throw error;
    }
  }

  private async get(label: string, path: string): Promise<NumbersAnswer> {
    const answer = await numbersRequest(
      label,
      this.restUrl + path,
      { method: 'GET', headers: { authorization: this.authorization } },
      this.timeoutMs,
    );
    if (answer.status !== 200) throw failure(label, answer);
    return answer;
  }

  /** A purchase or a cancellation: done only when the answer's `error-code` says so. */
  private async post(label: string, path: string, number: string): Promise<void> {
    const country = countryOf(number);
    if (!country) throw new ProcurementError(`${label} failed: the number's country is unknown`, true);
    const answer = await numbersRequest(
      label,
      this.restUrl + path,
      {
        method: 'POST',
        headers: {
          authorization: this.authorization,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ country, msisdn: msisdn(number) }).toString(),
      },
      this.timeoutMs,
    );
    if (answer.status !== 200 || String(fieldOf(answer.body, 'error-code')) !== DONE) {
      throw failure(label, answer);
    }
  }
}

/**
 * A failed answer, named by its HTTP status, or by its `error-code` when it came with a 200 (a 4xx
 * code is then a refusal like a 4xx status).
 */
function failure(label: string, answer: NumbersAnswer) {
  const code = Number(fieldOf(answer.body, 'error-code'));
  const status = answer.status === 200 && Number.isInteger(code) ? code : answer.status;
  const words = fieldOf(answer.body, 'error-code-label');
  return numbersFailure(label, status, typeof words === 'string' ? words : answer.body);
}

/** The `numbers` of a search or of the account's numbers; absent when there are none. */
function list(body: unknown): unknown[] {
  const numbers = fieldOf(body, 'numbers');
  return Array.isArray(numbers) ? numbers : [];
}

const msisdn = (number: string): string => number.replace(/^\+/, '');

function countryOf(number: string): string | undefined {
  return parsePhoneNumberFromString(number)?.country;
}

function callingCode(country: string): string {
  try {
    return getCountryCallingCode(country as CountryCode);
  } catch {
    throw new ProcurementError(`vonage search failed: no calling code for country ${country}`, true);
  }
}

/** Vonage's features (`VOICE`, `SMS`, `MMS`) as Veil's channels. */
function channels(features: unknown): Channel[] {
  const list = Array.isArray(features) ? features : [];
  const channels: Channel[] = [];
  if (list.includes('VOICE')) channels.push('voice');
  if (list.includes('SMS')) channels.push('sms');
  return channels;
}
