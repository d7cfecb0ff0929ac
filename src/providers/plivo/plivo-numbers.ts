import type { Channel } from '../../domain/session.ts';
import {
  basicAuthorization,
  fieldOf,
  NUMBERS_REQUEST_TIMEOUT_MS,
  type NumbersAnswer,
  NumbersApiError,
  numbersFailure,
  numbersRequest,
} from '../numbers-rest.ts';
import type { AvailableNumber, NumberProvider, NumberSearch, OwnedNumber } from '../procurement.ts';

/** The most numbers one page of Plivo's search answers with. */
const SEARCH_PAGE = 20;

/**
 * Plivo's numbers API, as its API reference describes it (Phone Numbers and Numbers resources):
 * `GET /v1/Account/{auth_id}/PhoneNumber/` to search (`country_iso`, `type`, `pattern` — the
 * area code, after the country code —, `services`, `limit`, `offset`), `POST …/PhoneNumber/{number}/`
 * to buy, `GET` and `DELETE …/Number/{number}/` to look one up (404: not the account's) and give
 * it back. Numbers are digits without `+`, which name them in Plivo's URLs: the ref is those digits.
 * HTTP Basic auth with the Auth ID and Auth Token.
 *
 * Plain fetch rather than the `plivo` package: its client takes a base URL and a timeout, but its
 * errors drop the HTTP status (a 403 and a 503 both arrive as a bare Error, a timeout as a string),
 * and the status is what tells a purchase refused from one whose outcome is unknown.
 */
export class PlivoNumbers implements NumberProvider {
  private readonly authorization: string;
  private readonly account: string;

  constructor(
    authId: string,
    authToken: string,
    apiUrl: string,
    private readonly timeoutMs = NUMBERS_REQUEST_TIMEOUT_MS,
  ) {
    this.authorization = basicAuthorization(authId, authToken);
    this.account = `${apiUrl}/v1/Account/${encodeURIComponent(authId)}`;
  }

  async search(query: NumberSearch): Promise<AvailableNumber[]> {
    const offers: AvailableNumber[] = [];
    for (let offset = 0; offers.length < query.count; offset += SEARCH_PAGE) {
      const params = new URLSearchParams({
        country_iso: query.country,
        type: 'local',
        services: 'voice,sms',
        limit: String(SEARCH_PAGE),
        offset: String(offset),
      });
      if (query.areaCode) params.set('pattern', query.areaCode);
      const answer = await this.call('plivo search', 'GET', `/PhoneNumber/?${params}`);
      if (answer.status !== 200) throw failure('plivo search', answer);
      const page = fieldOf(answer.body, 'objects');
      const found = (Array.isArray(page) ? page : [])
        .map((o) => ({ number: `+${fieldOf(o, 'number')}`, capabilities: channels(o) }))
        .filter((o) => /^\+\d+$/.test(o.number) && o.capabilities.length > 0);
      const taken = await query.taken(found.map((o) => o.number));
      offers.push(...found.filter((o) => !taken.has(o.number)));
      if (!Array.isArray(page) || page.length < SEARCH_PAGE) break;
    }
    return offers.slice(0, query.count);
  }

  async buy(number: string): Promise<OwnedNumber> {
    const answer = await this.call('plivo purchase', 'POST', `/PhoneNumber/${digits(number)}/`, '{}');
    if (answer.status !== 200 && answer.status !== 201) throw failure('plivo purchase', answer);
    // `pending`: the order waits on Plivo (a number that needs verification); whether it goes
    // through is for the account's numbers to tell later.
    const status = fieldOf(answer.body, 'status');
    if (status !== 'fulfilled') {
      throw new NumbersApiError(`plivo purchase not confirmed: the order is ${String(status ?? 'unknown')}`);
    }
    return { number, ref: digits(number), capabilities: [] };
  }

  async owned(number: string): Promise<OwnedNumber | undefined> {
    const answer = await this.call('plivo lookup', 'GET', `/Number/${digits(number)}/`);
    if (answer.status === 404) return undefined;
    if (answer.status !== 200) throw failure('plivo lookup', answer);
    if (fieldOf(answer.body, 'number') !== digits(number)) return undefined;
    return { number, ref: digits(number), capabilities: channels(answer.body) };
  }

  async release(number: OwnedNumber): Promise<void> {
    const answer = await this.call('plivo release', 'DELETE', `/Number/${number.ref}/`);
    // 404: released already (in the console, or by an earlier try whose answer was lost).
    if (answer.status === 204 || answer.status === 200 || answer.status === 404) return;
    throw failure('plivo release', answer);
  }

  private call(label: string, method: string, path: string, json?: string): Promise<NumbersAnswer> {
    return numbersRequest(
      label,
      this.account + path,
      {
        method,
        headers: {
          authorization: this.authorization,
          ...(json === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(json === undefined ? {} : { body: json }),
      },
      this.timeoutMs,
    );
  }
}

/** Plivo's errors are `{"api_id", "error"}`; the error's words, else the body. */
function failure(label: string, answer: NumbersAnswer) {
  const error = fieldOf(answer.body, 'error');
  return numbersFailure(label, answer.status, typeof error === 'string' ? error : answer.body);
}

const digits = (number: string): string => number.replace(/^\+/, '');

function channels(n: unknown): Channel[] {
  const list: Channel[] = [];
  if (fieldOf(n, 'voice_enabled') === true) list.push('voice');
  if (fieldOf(n, 'sms_enabled') === true) list.push('sms');
  return list;
}
