import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** A delivery the receiver got, verified with the endpoint's secret. */
export interface Received {
  id: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: { id: string; type: string; createdAt: string; data: Record<string, unknown> };
  /** What it answered. */
  answered: 'ok' | 'fail' | 'hang';
}

/**
 * The app's webhook endpoint: a real HTTP server on 127.0.0.1 that verifies every request with
 * the standardwebhooks package (a request that fails verification fails the test that reads
 * `received`) and answers as told: 200, `failStatus` (500), or never (a hang), or is not there at
 * all (stopped).
 */
export class WebhookReceiver {
  readonly received: Received[] = [];
  /** Requests whose signature did not verify: each is a bug. */
  readonly forged: string[] = [];
  /** How the next requests are answered, in turn; `ok` once the list is used up. */
  script: ('ok' | 'fail' | 'hang')[] = [];
  /** How every request is answered while the script is empty. */
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  /** The status of a `fail` answer. */
  failStatus = 500;
  /** The secrets of the endpoints that point here: a request must verify with one of them. */
  readonly secrets: string[] = [];
  private server: Server | undefined;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/events`;
  }

  /** The webhook-ids received and answered 200, in order. */
  delivered(): string[] {
    return this.received.filter((r) => r.answered === 'ok').map((r) => r.id);
  }

  async start(port = 0): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const headers = request.headers;
        const verifies = (secret: string) => {
          try {
            new Webhook(secret).verify(body, headers as Record<string, string>);
            return true;
          } catch {
            return false;
          }
        };
        if (!this.secrets.some(verifies)) {
          this.forged.push(String(headers['webhook-id']));
          response.writeHead(400).end();
          return;
        }
        const answered = this.script.shift() ?? this.mode;
        this.received.push({
          id: String(headers['webhook-id']),
          headers,
          body,
          json: JSON.parse(body),
          answered,
        });
        if (answered === 'hang') return;
        response.writeHead(answered === 'ok' ? 200 : this.failStatus, { 'content-type': 'text/plain' });
        response.end(answered === 'ok' ? 'thanks' : 'oops');
      });
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Stops listening: deliveries find the port closed until `start(receiver.port)`. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
