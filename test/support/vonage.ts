import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import type { TestApp } from './app.ts';
import { vonageToken as signVonageToken } from './signatures.ts';

export const VONAGE_API_KEY = 'vonage-key-1';
export const VONAGE_API_SECRET = 'vonage-api-secret-0123456789';
export const VONAGE_SIGNATURE_SECRET = 'vonage-signature-secret-0123456789abcdef';

export type VonageBody = Record<string, unknown>;

/** How a webhook is signed: by default as Vonage signs it, now, over the body sent. */
export interface VonageSigning {
  secret?: string;
  /** When the token was issued, in ms (default: now). */
  at?: number;
  /** The token's expiry, in ms; none by default, as Vonage sends none. */
  expires?: number;
  /** The body the payload_hash is of (default: the one sent); null for no payload_hash claim. */
  signedBody?: string | null;
  /** The header as sent, from the token (default: `Bearer <token>`). */
  header?: (token: string) => string;
  alg?: 'HS256' | 'HS512' | 'none';
}

/** A JWT as Vonage signs its webhooks (signatures.ts), with the test account's secret unless told otherwise. */
export function vonageToken(rawBody: string, signing: VonageSigning = {}): string {
  return signVonageToken(rawBody, {
    ...signing,
    secret: signing.secret ?? VONAGE_SIGNATURE_SECRET,
    apiKey: VONAGE_API_KEY,
  });
}

/** A webhook as Vonage sends it: JSON, signed with a Bearer JWT unless 'unsigned'. */
export function postVonage(
  t: TestApp,
  path: string,
  body: VonageBody,
  signing: VonageSigning | 'unsigned' = {},
): Promise<LightMyRequestResponse> {
  const raw = JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (signing !== 'unsigned') {
    const token = vonageToken(raw, signing);
    headers.authorization = signing.header ? signing.header(token) : `Bearer ${token}`;
  }
  return t.app.inject({ method: 'POST', url: path, headers, payload: raw });
}

/** Vonage's digits for an E.164 number. */
export const digits = (number: string) => number.replace(/^\+/, '');

/** The answer webhook of an inbound call, as Vonage POSTs it. */
export const answerBody = (from: string, to: string, uuid: string): VonageBody => ({
  from: digits(from),
  to: digits(to),
  uuid,
  conversation_uuid: `CON-${uuid}`,
  region_url: 'https://api-us-3.vonage.com',
  custom_data: {},
});

/** An inbound SMS in the Messages API's format. */
export const inboundSms = (from: string, to: string, text: string, messageUuid: string): VonageBody => ({
  channel: 'sms',
  message_uuid: messageUuid,
  to: digits(to),
  from: digits(from),
  timestamp: '2026-01-01T00:00:00Z',
  text,
  sms: { num_messages: '1', count_total: '1' },
  message_type: 'text',
});

/** What the fake Messages API received: one request. */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  json: Record<string, unknown>;
}

/** How the fake answers the next request: a status, or no answer within `hangMs`. */
export type FakeAnswer = { status: number; body?: string } | { hangMs: number };

/**
 * A local stand-in for Vonage's Messages API on 127.0.0.1: it answers POST /v1/messages as
 * documented (202 `{"message_uuid"}`) unless told otherwise, and keeps what it received.
 */
export class FakeMessagesApi {
  readonly received: ReceivedRequest[] = [];
  private readonly answers: FakeAnswer[] = [];
  private server?: Server;
  private readonly sockets = new Set<import('node:net').Socket>();

  get url(): string {
    const address = this.server?.address() as AddressInfo | undefined;
    if (!address) throw new Error('the fake Messages API is not started');
    return `http://127.0.0.1:${address.port}`;
  }

  /** Answers the next requests so, in order; after them, 202 again. */
  answerNext(...answers: FakeAnswer[]): void {
    this.answers.push(...answers);
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
      const body = Buffer.concat(chunks).toString('utf8');
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(body);
      } catch {}
      this.received.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body,
        json,
      });
      const answer = this.answers.shift() ?? { status: 202 };
      if ('hangMs' in answer) {
        setTimeout(() => response.destroyed || this.accept(response), answer.hangMs).unref();
        return;
      }
      if (request.method !== 'POST' || request.url !== '/v1/messages') {
        response.writeHead(404, { 'content-type': 'application/json' }).end('{"title":"Not Found"}');
        return;
      }
      if (answer.status === 202) return this.accept(response);
      response
        .writeHead(answer.status, { 'content-type': 'application/problem+json' })
        .end(
          answer.body ?? JSON.stringify({ type: 'https://developer.vonage.com/api-errors', title: 'Error' }),
        );
    });
  }

  private accept(response: ServerResponse): void {
    response
      .writeHead(202, { 'content-type': 'application/json' })
      .end(JSON.stringify({ message_uuid: randomUUID() }));
  }
}
