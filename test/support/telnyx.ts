import type { KeyObject } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import type { TestApp } from './app.ts';
import { telnyxKeyPair, telnyxSignature } from './signatures.ts';

export { telnyxKeyPair, telnyxSignature };

export const TELNYX_API_KEY = 'KEY0123456789ABCDEF_telnyx-test-api-key';

/** The key pair the test app's TELNYX_PUBLIC_KEY belongs to. */
export const TELNYX_KEYS = telnyxKeyPair();
/** A key pair of some other account. */
export const OTHER_TELNYX_KEYS = telnyxKeyPair();

export interface TelnyxSigning {
  /** The private key to sign with (default: the test account's). */
  key?: KeyObject;
  /** When it was signed, in ms (default: now); the telnyx-timestamp header says the same unless `timestamp` is given. */
  at?: number;
  /** The telnyx-timestamp header sent, when it is not the one signed. */
  timestamp?: string;
  /** The body signed, when it is not the one sent. */
  signedBody?: string;
  /** Headers sent beside (or instead of) the signature's. */
  headers?: Record<string, string | string[]>;
}

/** The telnyx-timestamp and telnyx-signature-ed25519 headers for `rawBody`, as Telnyx signs it. */
export function signTelnyx(rawBody: string, signing: TelnyxSigning = {}): Record<string, string> {
  const signedAt = String(Math.floor((signing.at ?? Date.now()) / 1000));
  return {
    'telnyx-timestamp': signing.timestamp ?? signedAt,
    'telnyx-signature-ed25519': telnyxSignature(
      signing.key ?? TELNYX_KEYS.privateKey,
      signedAt,
      signing.signedBody ?? rawBody,
    ),
  };
}

/** A webhook as Telnyx sends it: the raw body with its content type, signed unless 'unsigned'. */
export function postTelnyx(
  t: TestApp,
  path: string,
  body: { form: Record<string, string> } | { json: unknown } | { raw: string; contentType?: string },
  signing: TelnyxSigning | 'unsigned' = {},
): Promise<LightMyRequestResponse> {
  const [payload, contentType] =
    'form' in body
      ? [new URLSearchParams(body.form).toString(), 'application/x-www-form-urlencoded']
      : 'json' in body
        ? [JSON.stringify(body.json), 'application/json']
        : [body.raw, body.contentType];
  const headers: Record<string, string | string[]> = contentType ? { 'content-type': contentType } : {};
  if (signing !== 'unsigned') Object.assign(headers, signTelnyx(payload, signing), signing.headers);
  return t.app.inject({ method: 'POST', url: path, headers, payload });
}

/** A `message.received` event as the messaging profile's webhook delivers it. */
export function messageReceived(text: {
  id: string;
  from: string;
  to: string;
  body: string;
  media?: string[];
}): unknown {
  return {
    data: {
      event_type: 'message.received',
      id: `evt-${text.id}`,
      occurred_at: new Date().toISOString(),
      payload: {
        id: text.id,
        record_type: 'message',
        direction: 'inbound',
        type: text.media?.length ? 'MMS' : 'SMS',
        from: { phone_number: text.from, carrier: 'Test Mobile', line_type: 'Wireless' },
        to: [{ phone_number: text.to, status: 'webhook_delivered' }],
        text: text.body,
        media: (text.media ?? []).map((url) => ({ url, content_type: 'image/jpeg', size: 1024 })),
      },
      record_type: 'event',
    },
    meta: { attempt: 1, delivered_to: 'https://veil.example.test/webhooks/telnyx/sms' },
  };
}

/** One request the fake Messaging API received. */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  /** When it was received (Date.now()), and how it was answered. */
  at: number;
  behaviour: FakeBehaviour;
}

/**
 * How the fake answers the next sends: as Telnyx does, with an error status, not at all (hang), or
 * by dropping the connection (reset).
 */
export type FakeBehaviour =
  | { answer: 'ok' }
  | { answer: 'status'; status: number }
  | { answer: 'hang' }
  | { answer: 'reset' };

/**
 * A local stand-in for the Telnyx Messaging API on 127.0.0.1: POST /v2/messages answers 200 with
 * the documented `{"data": {...}}` (or as `behaviour` says), and every request is kept in
 * `received` for the test to read.
 */
export class FakeMessagingApi {
  readonly received: ReceivedRequest[] = [];
  behaviour: FakeBehaviour = { answer: 'ok' };
  private server?: Server;
  private hanging = new Set<() => void>();

  get url(): string {
    const address = this.server?.address() as AddressInfo | null;
    if (!address) throw new Error('the fake Messaging API is not started');
    return `http://127.0.0.1:${address.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      let raw = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => {
        raw += chunk;
      });
      request.on('end', () => {
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(raw);
        } catch {}
        const behaviour = this.behaviour;
        this.received.push({
          method: request.method ?? '',
          url: request.url ?? '',
          headers: request.headers,
          body,
          at: Date.now(),
          behaviour,
        });
        if (behaviour.answer === 'hang') {
          this.hanging.add(() => response.destroy());
          return;
        }
        if (behaviour.answer === 'reset') {
          request.socket.resetAndDestroy();
          return;
        }
        response.setHeader('content-type', 'application/json');
        if (behaviour.answer === 'status') {
          response.statusCode = behaviour.status;
          response.end(
            JSON.stringify({
              errors: [{ code: '40310', title: 'Invalid to number', detail: `bad to ${String(body.to)}` }],
            }),
          );
          return;
        }
        response.end(
          JSON.stringify({
            data: {
              record_type: 'message',
              direction: 'outbound',
              id: `msg-${this.received.length}`,
              type: Array.isArray(body.media_urls) ? 'MMS' : 'SMS',
              from: { phone_number: body.from },
              to: [{ phone_number: body.to, status: 'queued' }],
              text: body.text,
              media: (Array.isArray(body.media_urls) ? body.media_urls : []).map((url) => ({ url })),
            },
          }),
        );
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
  }

  async stop(): Promise<void> {
    for (const hang of this.hanging) hang();
    this.hanging.clear();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  /** The sends (POST /v2/messages) received since `from`. */
  sendsSince(from: number): ReceivedRequest[] {
    return this.received.slice(from).filter((r) => r.method === 'POST' && r.url === '/v2/messages');
  }
}
