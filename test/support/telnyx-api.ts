import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { FakeNumbersApi, json, type NumbersApiCall, type NumbersApiRequest } from './numbers-api.ts';

const CREATED = '2026-01-01T00:00:00.000Z';

/**
 * A local stand-in for Telnyx's numbers API (v2), answering as its reference does: `GET
 * /v2/available_phone_numbers` (`filter[country_code]`, `filter[national_destination_code]`,
 * `filter[features]`, `filter[limit]`; `{data: [{phone_number, features: [{name}]}], meta}`), `POST
 * /v2/number_orders` (`{data: {id, status: "pending", phone_numbers}}`; the number is then the
 * account's, `purchase-pending`), `GET /v2/phone_numbers?filter[phone_number]=` and `DELETE
 * /v2/phone_numbers/{id}`. Bearer API key; a number's ref is its phone number id.
 */
export class FakeTelnyxApi extends FakeNumbersApi {
  readonly authorization: string;
  private nextId = 1293384261075731000n;

  constructor(apiKey: string, stock: Record<string, string[]>) {
    super(stock);
    this.authorization = `Bearer ${apiKey}`;
  }

  kindOf(r: NumbersApiRequest): NumbersApiCall {
    if (r.method === 'GET' && r.path === '/v2/available_phone_numbers') return 'search';
    if (r.method === 'POST' && r.path === '/v2/number_orders') return 'buy';
    if (r.method === 'GET' && r.path === '/v2/phone_numbers') return 'lookup';
    if (r.method === 'DELETE' && r.path.startsWith('/v2/phone_numbers/')) return 'release';
    return 'other';
  }

  protected refFor(): string {
    this.nextId += 1n;
    return String(this.nextId);
  }

  protected unauthorized(response: ServerResponse): ServerResponse {
    return error(response, 401, '10009', 'Authentication failed');
  }

  protected answer(r: NumbersApiRequest, response: ServerResponse): ServerResponse {
    const kind = this.kindOf(r);
    if (kind === 'search') {
      const country = r.query.get('filter[country_code]') ?? '';
      const area = r.query.get('filter[national_destination_code]');
      const features = (r.query.get('filter[features]') ?? '').split(',').filter(Boolean);
      if (features.some((f) => f !== 'sms' && f !== 'voice'))
        return json(response, 200, { data: [], meta: {} });
      const offered = this.onSale(
        country,
        area ? `+1${area}` : null,
        Number(r.query.get('filter[limit]') ?? 50),
      );
      return json(response, 200, {
        data: offered.map((n) => ({
          record_type: 'available_phone_number',
          phone_number: n,
          vanity_format: '',
          best_effort: false,
          quickship: true,
          reservable: true,
          region_information: [{ region_type: 'country_code', region_name: country }],
          cost_information: { upfront_cost: '1.00', monthly_cost: '1.00', currency: 'USD' },
          features: [{ name: 'sms' }, { name: 'voice' }, { name: 'emergency' }],
        })),
        meta: { total_results: offered.length, best_effort_results: 0 },
      });
    }
    if (kind === 'buy') {
      const wanted = (r.json as { phone_numbers?: { phone_number?: string }[] } | undefined)?.phone_numbers;
      const number = wanted?.[0]?.phone_number ?? '';
      if (wanted?.length !== 1) return error(response, 422, '10015', 'Bad Request');
      const bought = this.purchase(number);
      if (bought === 'not for sale') return error(response, 422, '85001', 'Number not available');
      if ('failure' in bought) return error(response, bought.failure.status, '10007', 'Unexpected error');
      return json(response, 200, {
        data: {
          id: randomUUID(),
          record_type: 'number_order',
          phone_numbers_count: 1,
          status: 'pending',
          requirements_met: true,
          created_at: CREATED,
          updated_at: CREATED,
          phone_numbers: [
            {
              id: randomUUID(),
              record_type: 'number_order_phone_number',
              phone_number: number,
              status: 'pending',
              requirements_met: true,
              regulatory_requirements: [],
            },
          ],
        },
      });
    }
    if (kind === 'lookup') {
      const wanted = r.query.get('filter[phone_number]');
      const list = [...this.owned].filter(([, n]) => !wanted || n === wanted);
      return json(response, 200, {
        data: list.map(([id, n]) => phoneNumber(id, n, 'purchase-pending')),
        meta: { total_pages: 1, total_results: list.length, page_number: 1, page_size: 20 },
      });
    }
    if (kind === 'release') {
      const id = r.path.slice('/v2/phone_numbers/'.length);
      const number = this.owned.get(id);
      const status = this.release(id);
      if (status === 404) return error(response, 404, '10005', 'Resource not found');
      if (status) return error(response, status, '10007', 'Unexpected error');
      return json(response, 200, { data: phoneNumber(id, number ?? '', 'deleted') });
    }
    return error(response, 404, '10005', 'Resource not found');
  }
}

function phoneNumber(id: string, number: string, status: string) {
  return {
    id,
    record_type: 'phone_number',
    phone_number: number,
    status,
    tags: [],
    external_pin: null,
    connection_id: null,
    country_iso_alpha2: 'US',
    phone_number_type: 'local',
    deletion_lock_enabled: false,
    purchased_at: CREATED,
    created_at: CREATED,
  };
}

/** An error as Telnyx writes one. */
function error(response: ServerResponse, status: number, code: string, title: string): ServerResponse {
  return json(response, status, { errors: [{ code, title, detail: title }] });
}
