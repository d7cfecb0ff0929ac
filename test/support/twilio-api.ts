import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the fake REST API received: one request. */
export interface TwilioApiRequest {
  method: string;
  /** The path, without the query. */
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  /** The form body's fields (a POST). */
  form: URLSearchParams;
}

/** How the fake answers the next purchase: an error status, optionally after buying all the same (an answer lost). */
export interface PurchaseFailure {
  status: number;
  /** Buy the number before answering the error: the carrier did it, its answer was lost. */
  buyAnyway?: boolean;
}

interface Owned {
  sid: string;
  phoneNumber: string;
}

/**
 * A local stand-in for Twilio's REST API (2010-04-01) on 127.0.0.1, answering as documented:
 * AvailablePhoneNumbers/{country}/Local.json (`available_phone_numbers`), IncomingPhoneNumbers.json
 * (create 201, list filtered by PhoneNumber) and IncomingPhoneNumbers/{sid}.json (delete 204). It
 * sells the numbers of `stock` for each country (narrowed by AreaCode), checks HTTP Basic auth, and
 * keeps what it received.
 */
export class FakeTwilioApi {
  readonly received: TwilioApiRequest[] = [];
  /** Numbers the account owns, by sid. */
  readonly owned = new Map<string, Owned>();
  private readonly purchaseFailures = new Map<string, PurchaseFailure>();
  private readonly deleteFailures: number[] = [];
  private server?: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly accountSid: string,
    private readonly authToken: string,
    /** Numbers on sale, by country. */
    readonly stock: Record<string, string[]>,
  ) {}

  get url(): string {
    const address = this.server?.address() as AddressInfo | undefined;
    if (!address) throw new Error('the fake Twilio API is not started');
    return `http://127.0.0.1:${address.port}`;
  }

  /** The next purchase of `phoneNumber` fails so. */
  failPurchase(phoneNumber: string, failure: PurchaseFailure): void {
    this.purchaseFailures.set(phoneNumber, failure);
  }

  /** The next releases answer these statuses, in order. */
  failDeletes(...statuses: number[]): void {
    this.deleteFailures.push(...statuses);
  }

  /** The requests received of one kind. */
  requests(kind: 'search' | 'create' | 'lookup' | 'delete'): TwilioApiRequest[] {
    return this.received.filter((r) => kindOf(r) === kind);
  }

  async start(): Promise<void> {
    this.server = createServer((request, response) => this.handle(request, response));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://fake');
      const received: TwilioApiRequest = {
        method: request.method ?? '',
        path: url.pathname,
        query: url.searchParams,
        authorization: request.headers.authorization,
        form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')),
      };
      this.received.push(received);
      const expected = `Basic ${Buffer.from(`${this.accountSid}:${this.authToken}`).toString('base64')}`;
      if (received.authorization === expected) this.answer(received, response);
      else error(response, 401, 20003, 'Authenticate');
    });
  }

  private answer(r: TwilioApiRequest, response: ServerResponse): ServerResponse {
    const base = `/2010-04-01/Accounts/${this.accountSid}`;
    const kind = kindOf(r);
    if (kind === 'search' && r.path.startsWith(`${base}/AvailablePhoneNumbers/`)) {
      const country = r.path.split('/')[5] ?? '';
      const area = r.query.get('AreaCode');
      const size = Number(r.query.get('PageSize') ?? 50);
      const owned = new Set([...this.owned.values()].map((o) => o.phoneNumber));
      const offered = (this.stock[country] ?? [])
        .filter((n) => !owned.has(n) && (!area || n.startsWith(`+1${area}`)))
        .slice(0, size);
      return json(response, 200, {
        available_phone_numbers: offered.map((n) => ({
          friendly_name: n,
          phone_number: n,
          lata: '722',
          locality: 'San Francisco',
          rate_center: 'SNFC CA',
          latitude: '37.77',
          longitude: '-122.41',
          region: 'CA',
          postal_code: '94105',
          iso_country: country,
          address_requirements: 'none',
          beta: false,
          capabilities: { voice: true, SMS: true, MMS: true },
        })),
        uri: r.path,
      });
    }
    if (kind === 'create' && r.path === `${base}/IncomingPhoneNumbers.json`) {
      const phoneNumber = r.form.get('PhoneNumber') ?? '';
      const failure = this.purchaseFailures.get(phoneNumber);
      this.purchaseFailures.delete(phoneNumber);
      const onSale = Object.values(this.stock).flat().includes(phoneNumber) && !this.owns(phoneNumber);
      if (failure) {
        if (failure.buyAnyway && onSale) this.buy(phoneNumber);
        return error(response, failure.status, 21422, 'PhoneNumber is not available');
      }
      if (!onSale) return error(response, 400, 21422, 'PhoneNumber is not available');
      return json(response, 201, resource(this.accountSid, this.buy(phoneNumber)));
    }
    if (kind === 'lookup' && r.path === `${base}/IncomingPhoneNumbers.json`) {
      const wanted = r.query.get('PhoneNumber');
      const list = [...this.owned.values()].filter((o) => !wanted || o.phoneNumber === wanted);
      return json(response, 200, {
        incoming_phone_numbers: list.map((o) => resource(this.accountSid, o)),
        uri: r.path,
        page: 0,
        page_size: 50,
        next_page_uri: null,
      });
    }
    if (kind === 'delete' && r.path.startsWith(`${base}/IncomingPhoneNumbers/`)) {
      const sid = r.path.slice(`${base}/IncomingPhoneNumbers/`.length).replace(/\.json$/, '');
      const status = this.deleteFailures.shift();
      if (status) return error(response, status, 20500, 'Internal Server Error');
      if (!this.owned.delete(sid)) return error(response, 404, 20404, 'The requested resource was not found');
      return response.writeHead(204).end();
    }
    return error(response, 404, 20404, 'The requested resource was not found');
  }

  private owns(phoneNumber: string): boolean {
    return [...this.owned.values()].some((o) => o.phoneNumber === phoneNumber);
  }

  private buy(phoneNumber: string): Owned {
    const owned = { sid: `PN${randomBytes(16).toString('hex')}`, phoneNumber };
    this.owned.set(owned.sid, owned);
    return owned;
  }
}

function kindOf(r: TwilioApiRequest): 'search' | 'create' | 'lookup' | 'delete' | 'other' {
  if (r.method === 'GET' && r.path.includes('/AvailablePhoneNumbers/')) return 'search';
  if (r.method === 'POST' && r.path.endsWith('/IncomingPhoneNumbers.json')) return 'create';
  if (r.method === 'GET' && r.path.endsWith('/IncomingPhoneNumbers.json')) return 'lookup';
  if (r.method === 'DELETE' && r.path.includes('/IncomingPhoneNumbers/')) return 'delete';
  return 'other';
}

function resource(accountSid: string, o: Owned) {
  return {
    sid: o.sid,
    account_sid: accountSid,
    friendly_name: o.phoneNumber,
    phone_number: o.phoneNumber,
    status: 'in-use',
    capabilities: { voice: true, sms: true, mms: true, fax: false },
    date_created: 'Thu, 01 Jan 2026 00:00:00 +0000',
    date_updated: 'Thu, 01 Jan 2026 00:00:00 +0000',
    api_version: '2010-04-01',
    uri: `/2010-04-01/Accounts/${accountSid}/IncomingPhoneNumbers/${o.sid}.json`,
  };
}

function json(response: ServerResponse, status: number, body: unknown): ServerResponse {
  return response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** An error as Twilio writes one. */
function error(response: ServerResponse, status: number, code: number, message: string): ServerResponse {
  return json(response, status, {
    code,
    message,
    more_info: `https://www.twilio.com/docs/errors/${code}`,
    status,
  });
}
