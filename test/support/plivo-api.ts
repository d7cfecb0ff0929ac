import type { ServerResponse } from 'node:http';
import { basic, FakeNumbersApi, json, type NumbersApiCall, type NumbersApiRequest } from './numbers-api.ts';

const API_ID = '978c324e-b682-11e4-b423-22000ac8a2f8';
const CALLING_CODES: Record<string, string> = { US: '1', GB: '44' };

/**
 * A local stand-in for Plivo's numbers API (v1), answering as its reference does: `GET
 * /v1/Account/{auth_id}/PhoneNumber/` (`{api_id, meta, objects: [{number, voice_enabled,
 * sms_enabled, …}]}`, `pattern` read after the country code), `POST …/PhoneNumber/{number}/` (201
 * `{status: "fulfilled", numbers: [{number, status}]}`), `GET` and `DELETE …/Number/{number}/`
 * (404 when not the account's, 204 once released). Basic auth with the Auth ID and token; a
 * number's ref is its digits.
 */
export class FakePlivoApi extends FakeNumbersApi {
  readonly authorization: string;
  private readonly base: string;

  constructor(authId: string, authToken: string, stock: Record<string, string[]>) {
    super(stock);
    this.authorization = basic(authId, authToken);
    this.base = `/v1/Account/${authId}`;
  }

  kindOf(r: NumbersApiRequest): NumbersApiCall {
    if (r.method === 'GET' && r.path === `${this.base}/PhoneNumber/`) return 'search';
    if (r.method === 'POST' && /\/PhoneNumber\/\d+\/$/.test(r.path)) return 'buy';
    if (r.method === 'GET' && /\/Number\/\d+\/$/.test(r.path)) return 'lookup';
    if (r.method === 'DELETE' && /\/Number\/\d+\/$/.test(r.path)) return 'release';
    return 'other';
  }

  protected refFor(number: string): string {
    return number.slice(1);
  }

  protected unauthorized(response: ServerResponse): ServerResponse {
    return json(response, 401, { api_id: API_ID, error: 'authentication failed' });
  }

  protected answer(r: NumbersApiRequest, response: ServerResponse): ServerResponse {
    const kind = this.kindOf(r);
    const digits = r.path.split('/').at(-2) ?? '';
    if (kind === 'search') {
      const country = r.query.get('country_iso') ?? '';
      const pattern = r.query.get('pattern');
      const limit = Number(r.query.get('limit') ?? 20);
      const offset = Number(r.query.get('offset') ?? 0);
      const prefix = pattern ? `+${CALLING_CODES[country] ?? ''}${pattern}` : null;
      const all = this.onSale(country, prefix, Number.POSITIVE_INFINITY);
      return json(response, 200, {
        api_id: API_ID,
        meta: { limit, next: null, offset, previous: null, total_count: all.length },
        objects: all.slice(offset, offset + limit).map((n) => ({
          country: 'UNITED STATES',
          lata: 722,
          monthly_rental_rate: '0.80000',
          number: n.slice(1),
          prefix: pattern ?? '',
          rate_center: 'SNFC CA',
          region: 'California, UNITED STATES',
          resource_uri: `${this.base}/PhoneNumber/${n.slice(1)}/`,
          restriction: null,
          restriction_text: null,
          setup_rate: '0.00000',
          sms_enabled: true,
          sms_rate: '0.00000',
          type: 'fixed',
          voice_enabled: true,
          voice_rate: '0.00850',
        })),
      });
    }
    if (kind === 'buy' && r.path === `${this.base}/PhoneNumber/${digits}/`) {
      const bought = this.purchase(`+${digits}`);
      if (bought === 'not for sale') return error(response, 400, 'number is not available for purchase');
      if ('failure' in bought) return error(response, bought.failure.status, 'could not buy the number');
      return json(response, 201, {
        api_id: API_ID,
        message: 'created',
        numbers: [{ number: digits, status: 'Success' }],
        status: 'fulfilled',
      });
    }
    if (kind === 'lookup' && r.path === `${this.base}/Number/${digits}/`) {
      if (!this.owns(`+${digits}`)) return error(response, 404, 'not found');
      return json(response, 200, {
        active: true,
        added_on: '2026-01-01',
        alias: null,
        api_id: API_ID,
        application: null,
        carrier: 'Plivo',
        monthly_rental_rate: '0.80000',
        number: digits,
        number_type: 'local',
        region: 'California, UNITED STATES',
        resource_uri: `${this.base}/Number/${digits}/`,
        sms_enabled: true,
        sms_rate: '0.00000',
        sub_account: null,
        voice_enabled: true,
        voice_rate: '0.00850',
      });
    }
    if (kind === 'release' && r.path === `${this.base}/Number/${digits}/`) {
      const status = this.release(digits);
      if (status === 404) return error(response, 404, 'not found');
      if (status) return error(response, status, 'internal error');
      return response.writeHead(204).end();
    }
    return error(response, 404, 'not found');
  }
}

/** An error as Plivo writes one. */
function error(response: ServerResponse, status: number, message: string): ServerResponse {
  return json(response, status, { api_id: API_ID, error: message });
}
