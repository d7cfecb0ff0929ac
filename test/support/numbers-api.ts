import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What a fake numbers API received: one request. */
export interface NumbersApiRequest {
  method: string;
  /** The path, without the query. */
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  /** The raw body. */
  body: string;
  /** The body's fields, read as a form. */
  form: URLSearchParams;
  /** The body, parsed as JSON (undefined when it is not). */
  json: unknown;
}

/** What a request does at a carrier's numbers API. */
export type NumbersApiCall = 'search' | 'buy' | 'lookup' | 'release' | 'other';

/** How the fake answers the next purchase of a number: an error status, optionally after buying all the same (an answer lost). */
export interface PurchaseFailure {
  status: number;
  /** Buy the number before answering the error: the carrier did it, its answer was lost. */
  buyAnyway?: boolean;
}

/**
 * What every fake carrier numbers API shares, on 127.0.0.1: the stock it sells by country, the
 * numbers the account owns (by the carrier's ref), the requests received, the purchases and
 * releases told to fail. Each carrier's fake reads its own requests and answers in its own words.
 */
export abstract class FakeNumbersApi {
  readonly received: NumbersApiRequest[] = [];
  /** Numbers the account owns, E.164, by the carrier's ref. */
  readonly owned = new Map<string, string>();
  private readonly purchaseFailures = new Map<string, PurchaseFailure>();
  private readonly releaseFailures: number[] = [];
  private server?: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    /** Numbers on sale, by country, E.164. */
    readonly stock: Record<string, string[]>,
  ) {}

  /** The Authorization header every request must carry. */
  abstract readonly authorization: string;
  /** What a request does. */
  abstract kindOf(r: NumbersApiRequest): NumbersApiCall;
  /** Answers a request whose authorization was right. */
  protected abstract answer(r: NumbersApiRequest, response: ServerResponse): ServerResponse;
  /** Answers a request whose authorization was wrong. */
  protected abstract unauthorized(response: ServerResponse): ServerResponse;
  /** The carrier's ref for a number it sells (its id once bought). */
  protected abstract refFor(number: string): string;

  get url(): string {
    const address = this.server?.address() as AddressInfo | undefined;
    if (!address) throw new Error('the fake numbers API is not started');
    return `http://127.0.0.1:${address.port}`;
  }

  /** The next purchase of `number` fails so. */
  failPurchase(number: string, failure: PurchaseFailure): void {
    this.purchaseFailures.set(number, failure);
  }

  /** The next releases answer these statuses, in order. */
  failReleases(...statuses: number[]): void {
    this.releaseFailures.push(...statuses);
  }

  /** The requests received of one kind. */
  requests(kind: NumbersApiCall): NumbersApiRequest[] {
    return this.received.filter((r) => this.kindOf(r) === kind);
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

  /** Numbers of `country` on sale (not owned), those starting with `prefix` when given, at most `limit`. */
  protected onSale(country: string, prefix: string | null, limit: number): string[] {
    return (this.stock[country] ?? [])
      .filter((n) => !this.owns(n) && (!prefix || n.startsWith(prefix)))
      .slice(0, limit);
  }

  /**
   * A purchase of `number`: its ref when bought, or the failure to answer with (the number was
   * bought all the same when it says buyAnyway), or 'not for sale'.
   */
  protected purchase(number: string): { ref: string } | { failure: PurchaseFailure } | 'not for sale' {
    const failure = this.purchaseFailures.get(number);
    this.purchaseFailures.delete(number);
    const forSale = Object.values(this.stock).flat().includes(number) && !this.owns(number);
    if (failure) {
      if (failure.buyAnyway && forSale) this.buy(number);
      return { failure };
    }
    if (!forSale) return 'not for sale';
    return { ref: this.buy(number) };
  }

  /** A release of the number `ref` names: the status to fail with, 404 when not owned, else undefined (done). */
  protected release(ref: string): number | undefined {
    const status = this.releaseFailures.shift();
    if (status) return status;
    return this.owned.delete(ref) ? undefined : 404;
  }

  /** The ref of an owned number. */
  protected refOf(number: string): string | undefined {
    return [...this.owned].find(([, n]) => n === number)?.[0];
  }

  owns(number: string): boolean {
    return this.refOf(number) !== undefined;
  }

  private buy(number: string): string {
    const ref = this.refFor(number);
    this.owned.set(ref, number);
    return ref;
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://fake');
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = body ? JSON.parse(body) : undefined;
      } catch {
        json = undefined;
      }
      const received: NumbersApiRequest = {
        method: request.method ?? '',
        path: url.pathname,
        query: url.searchParams,
        authorization: request.headers.authorization,
        body,
        form: new URLSearchParams(body),
        json,
      };
      this.received.push(received);
      if (received.authorization === this.authorization) this.answer(received, response);
      else this.unauthorized(response);
    });
  }
}

export function json(response: ServerResponse, status: number, body: unknown): ServerResponse {
  return response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
