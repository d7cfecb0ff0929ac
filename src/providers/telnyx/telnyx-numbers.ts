import Telnyx, { APIConnectionTimeoutError, APIError } from 'telnyx';
import { maskNumbersInText } from '../../domain/phone.ts';
import type { Channel } from '../../domain/session.ts';
import { NUMBERS_REQUEST_TIMEOUT_MS, NumbersApiError } from '../numbers-rest.ts';
import {
  type AvailableNumber,
  type NumberProvider,
  type NumberSearch,
  type OwnedNumber,
  ProcurementError,
} from '../procurement.ts';

/** A number in one of these states is not the account's: its purchase failed, or it is gone. */
const NOT_OWNED = new Set(['purchase-failed', 'deleted', 'ported-out', 'port-failed']);

/**
 * Telnyx's numbers API (API v2, as its reference documents Number Search, Number Orders and Phone
 * Numbers) through the official client: `GET /available_phone_numbers` with `filter[…]` to search,
 * `POST /number_orders {phone_numbers: [{phone_number}]}` to buy, `GET /phone_numbers
 * ?filter[phone_number]=` to look one up and `DELETE /phone_numbers/{id}` to give it back; the ref
 * is the phone number's id. Bearer API key. The client sends a list filter comma-separated
 * (`filter[features]=sms,voice`), as Telnyx's generated clients all do.
 *
 * An order is taken at once and fulfilled after (`pending`): the number is then listed among the
 * account's, `purchase-pending`, with the id it keeps. A purchase is done when it is listed; an
 * order that failed bought nothing.
 */
export class TelnyxNumbers implements NumberProvider {
  private readonly client: Telnyx;

  constructor(apiKey: string, apiUrl: string, timeoutMs = NUMBERS_REQUEST_TIMEOUT_MS) {
    this.client = new Telnyx({
      apiKey,
      publicKey: null,
      baseURL: `${apiUrl}/v2`,
      timeout: timeoutMs,
      // A retried order whose first answer was lost is for the purchase journal to settle.
      maxRetries: 0,
      // The package's own log would write request bodies, numbers and all.
      logLevel: 'off',
    });
  }

  async search(query: NumberSearch): Promise<AvailableNumber[]> {
    const answer = await call('search', () =>
      this.client.availablePhoneNumbers.list({
        filter: {
          country_code: query.country,
          ...(query.areaCode ? { national_destination_code: query.areaCode } : {}),
          features: ['sms', 'voice'],
          limit: query.count,
        },
      }),
    );
    const offers = (answer.data ?? [])
      .map((o) => ({ number: o.phone_number ?? '', capabilities: channels(o.features) }))
      .filter((o) => o.number && o.capabilities.length > 0);
    const taken = await query.taken(offers.map((o) => o.number));
    return offers.filter((o) => !taken.has(o.number)).slice(0, query.count);
  }

  async buy(number: string): Promise<OwnedNumber> {
    const order = await call('purchase', () =>
      this.client.numberOrders.create({ phone_numbers: [{ phone_number: number }] }),
    );
    const status = order.data?.status;
    if (status === 'failure') throw new ProcurementError('telnyx purchase failed: the order failed', true);
    let owned: OwnedNumber | undefined;
    try {
      owned = await this.owned(number);
    } catch (error) {
      // The order was taken: whatever the lookup's answer, the purchase's outcome is unknown.
      throw new ProcurementError(`telnyx purchase not confirmed: ${(error as Error).message}`);
    }
    if (!owned)
      throw new ProcurementError(`telnyx purchase not confirmed: the order is ${status ?? 'unknown'}`);
    return owned;
  }

  async owned(number: string): Promise<OwnedNumber | undefined> {
    const page = await call('lookup', () =>
      this.client.phoneNumbers.list({ filter: { phone_number: number } }),
    );
    const found = page.data.find((n) => n.phone_number === number && !NOT_OWNED.has(n.status));
    // The account's numbers carry no features: the search's stand for the number.
    return found && { number, ref: found.id, capabilities: [] };
  }

  async release(number: OwnedNumber): Promise<void> {
    try {
      await call('release', () => this.client.phoneNumbers.delete(number.ref));
    } catch (error) {
      // Released already (in the portal, or by an earlier try whose answer was lost).
      if (error instanceof NumbersApiError && error.status === 404) return;
      throw error;
    }
  }
}

/** Runs an API call, turning its failure into a NumbersApiError that names what failed and why. */
async function call<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof APIConnectionTimeoutError)
      throw new NumbersApiError(`telnyx ${what} failed: timeout`);
    if (error instanceof APIError && error.status !== undefined) {
      throw new NumbersApiError(
        `telnyx ${what} failed: HTTP ${error.status}, ${maskNumbersInText(detail(error.error))}`,
        error.status,
      );
    }
    throw new NumbersApiError(`telnyx ${what} failed: no answer`);
  }
}

/** The first of Telnyx's `errors` (`{code, title, detail}`), in words. */
function detail(body: unknown): string {
  const errors = (body as { errors?: { title?: unknown; detail?: unknown }[] } | undefined)?.errors;
  const first = Array.isArray(errors) ? errors[0] : undefined;
  const words = [first?.title, first?.detail].filter((w) => typeof w === 'string' && w);
  return words.join(': ').slice(0, 200) || 'no detail';
}

function channels(features: readonly { name?: string }[] | undefined): Channel[] {
  const names = new Set((features ?? []).map((f) => f.name));
  const list: Channel[] = [];
  if (names.has('voice')) list.push('voice');
  if (names.has('sms')) list.push('sms');
  return list;
}
