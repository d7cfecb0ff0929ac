import type { ServerResponse } from 'node:http';
import { basic, FakeNumbersApi, json, type NumbersApiCall, type NumbersApiRequest } from './numbers-api.ts';

const FAILED = 'method failed';

/**
 * A local stand-in for Vonage's Numbers API (rest.nexmo.com), answering as its OpenAPI document
 * does: `GET /number/search` (`{count, numbers: [{country, msisdn, type, cost, features}]}`, no
 * `numbers` when there are none), `POST /number/buy` and `/number/cancel` (form `country`,
 * `msisdn`; `{"error-code": "200"}`, 420 when the action failed) and `GET /account/numbers`. Basic
 * auth with the API key and secret; a number's ref is its msisdn.
 */
export class FakeVonageApi extends FakeNumbersApi {
  readonly authorization: string;

  constructor(apiKey: string, apiSecret: string, stock: Record<string, string[]>) {
    super(stock);
    this.authorization = basic(apiKey, apiSecret);
  }

  kindOf(r: NumbersApiRequest): NumbersApiCall {
    if (r.method === 'GET' && r.path === '/number/search') return 'search';
    if (r.method === 'POST' && r.path === '/number/buy') return 'buy';
    if (r.method === 'GET' && r.path === '/account/numbers') return 'lookup';
    if (r.method === 'POST' && r.path === '/number/cancel') return 'release';
    return 'other';
  }

  protected refFor(number: string): string {
    return number.slice(1);
  }

  protected unauthorized(response: ServerResponse): ServerResponse {
    return json(response, 401, { 'error-code': '401', 'error-code-label': 'authentication failed' });
  }

  protected answer(r: NumbersApiRequest, response: ServerResponse): ServerResponse {
    const kind = this.kindOf(r);
    if (kind === 'search') {
      const country = r.query.get('country') ?? '';
      const pattern = r.query.get('pattern');
      const prefix = pattern && (r.query.get('search_pattern') ?? '0') === '0' ? `+${pattern}` : null;
      const offered = this.onSale(country, prefix, Number(r.query.get('size') ?? 10));
      if (offered.length === 0) return json(response, 200, { count: 0 });
      return json(response, 200, {
        count: offered.length,
        numbers: offered.map((n) => ({
          country,
          msisdn: n.slice(1),
          type: 'landline',
          cost: '0.90',
          initialPrice: '0.00',
          features: ['VOICE', 'SMS'],
        })),
      });
    }
    if (kind === 'buy') {
      const bought = this.purchase(`+${r.form.get('msisdn')}`);
      if (bought === 'not for sale') return done(response, 420, FAILED);
      if ('failure' in bought) return done(response, bought.failure.status, FAILED);
      return done(response, 200, 'success');
    }
    if (kind === 'lookup') {
      const pattern = r.query.get('pattern') ?? '';
      const list = [...this.owned.values()].filter((n) => n.slice(1).startsWith(pattern));
      return json(response, 200, {
        count: list.length,
        numbers: list.map((n) => ({
          country: 'US',
          msisdn: n.slice(1),
          type: 'landline',
          features: ['VOICE', 'SMS'],
        })),
      });
    }
    if (kind === 'release') {
      const status = this.release(r.form.get('msisdn') ?? '');
      if (status === 404) return done(response, 420, FAILED);
      if (status) return done(response, status, 'internal error');
      return done(response, 200, 'success');
    }
    return json(response, 404, {
      type: 'https://developer.nexmo.com/api-errors#not-found',
      title: 'Not Found',
    });
  }
}

/** An answer to a purchase or a cancellation, as Vonage writes one. */
function done(response: ServerResponse, status: number, label: string): ServerResponse {
  return json(response, status, { 'error-code': String(status), 'error-code-label': label });
}
