import type { IncomingHttpHeaders } from 'node:http';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the app received: its path, headers and raw body. */
export interface HookCall {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: Record<string, unknown>;
}

/**
 * How the app answers: a status (200) and a body, after `delayMs`, sent `chunked` (without a
 * Content-Length) if asked, or `unfinished` (the body begun, never ended); or never (the request
 * hangs until the app closes).
 */
export type HookReply =
  | {
      status?: number;
      body?: string;
      headers?: Record<string, string>;
      delayMs?: number;
      chunked?: boolean;
      unfinished?: boolean;
    }
  | 'never';

/**
 * The app at the other end of Veil's ask and intercept webhooks: a real HTTP server on 127.0.0.1,
 * recording every request and answering as the test sets `reply` (per path; JSON bodies given as
 * values are sent as JSON).
 */
export class HookApp {
  readonly calls: HookCall[] = [];
  private readonly replies = new Map<string, (call: HookCall) => HookReply>();
  private server: Server | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private port = 0;

  /** Answers requests to `path` with `reply` from now on. */
  reply(path: string, reply: HookReply | ((call: HookCall) => HookReply)): void {
    this.replies.set(path, typeof reply === 'function' ? reply : () => reply);
  }

  /** Answers `path` with this JSON, 200. */
  answer(path: string, json: unknown): void {
    this.reply(path, { body: JSON.stringify(json) });
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** The requests received on `path`. */
  callsTo(path: string): HookCall[] {
    return this.calls.filter((c) => c.path === path);
  }

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(body);
        } catch {
          // recorded as it came
        }
        const call = { path: request.url ?? '', headers: request.headers, body, json };
        this.calls.push(call);
        const reply = this.replies.get(call.path)?.(call) ?? { status: 404, body: '' };
        if (reply === 'never') return;
        const send = () => {
          response.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
          if (reply.chunked || reply.unfinished) response.write(reply.body ?? '');
          if (!reply.unfinished) response.end(reply.chunked ? undefined : (reply.body ?? ''));
        };
        if (!reply.delayMs) return send();
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          send();
        }, reply.delayMs);
        this.timers.add(timer);
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    for (const timer of this.timers) clearTimeout(timer);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
