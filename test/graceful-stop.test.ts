import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config.ts';
import { HTTP_TIMEOUTS, type HttpTimeouts } from '../src/http/app.ts';
import { createLogger } from '../src/logger.ts';
import { type RunningServer, STOP_GRACE_MS, startServer } from '../src/server.ts';
import { createVeil } from '../src/veil.ts';
import { databaseUrl, storeKinds, TEST_KEY_ENV, type TestStore } from './support/stores.ts';

const PROJECT = resolve(fileURLToPath(import.meta.url), '../..');
const API_KEY = 'graceful-stop-key-0123456789';
/** A stranger calling a number no pool holds: answered `reject`, and logged as an interaction. */
const ROUTE_BODY = JSON.stringify({ from: '+14155550101', to: '+14155550150', channel: 'voice' });
const ROUTE_HEAD = [
  'POST /v1/route HTTP/1.1',
  'Host: veil',
  `Authorization: Bearer ${API_KEY}`,
  'Content-Type: application/json',
  `Content-Length: ${ROUTE_BODY.length}`,
  '',
  '',
].join('\r\n');

/** Interactions the store holds: one per routing decision the server made and logged. */
async function interactionCount(store: TestStore): Promise<number> {
  const config = { ...loadConfig({ LOG_LEVEL: 'silent', ...TEST_KEY_ENV }), store: store.config };
  const veil = await createVeil(config, { logger: createLogger('silent'), schema: store.schema });
  try {
    const rows = await veil.store.db.selectFrom('interactions').select('id').execute();
    return rows.length;
  } finally {
    await veil.close();
  }
}

interface RawConnection {
  socket: Socket;
  /** All the server sent back so far. */
  answer(): string;
  /** performance.now() when the server closed it; Infinity while open. */
  closedAt: number;
}

/** A raw connection to `url`, to send requests in pieces and see exactly what comes back. */
function rawConnection(url: string): RawConnection {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let answer = '';
  const connection = { socket, answer: () => answer, closedAt: Number.POSITIVE_INFINITY };
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    answer += chunk;
  });
  socket.on('close', () => {
    connection.closedAt = performance.now();
  });
  socket.on('error', () => {});
  return connection;
}

interface Outcome {
  /** performance.now() when the whole request had been handed to the socket. */
  writtenAt?: number;
  answeredAt?: number;
  status?: number;
  body?: string;
  error?: string;
}

/** POST /v1/route on `agent`'s connections; never rejects, the outcome says what happened. */
function route(url: string, agent: http.Agent): Promise<Outcome> {
  return new Promise((done) => {
    const outcome: Outcome = {};
    const request = http.request(`${url}/v1/route`, {
      method: 'POST',
      agent,
      headers: {
        authorization: `Bearer ${API_KEY}`,
        'content-type': 'application/json',
        'content-length': ROUTE_BODY.length,
      },
    });
    request.on('finish', () => {
      outcome.writtenAt = performance.now();
    });
    request.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('close', () => {
        // A response cut short is no answer.
        if (response.complete) {
          outcome.status = response.statusCode;
          outcome.answeredAt = performance.now();
          outcome.body = body;
        } else outcome.error = 'incomplete response';
        done(outcome);
      });
    });
    request.on('error', (error: NodeJS.ErrnoException) => {
      outcome.error ??= error.code ?? error.message;
      done(outcome);
    });
    request.end(ROUTE_BODY);
  });
}

for (const kind of storeKinds()) {
  describe(`SIGTERM under load (${kind.name})`, () => {
    let store: TestStore;
    before(async () => {
      store = await kind.create();
    });
    after(() => store.drop());

    it('answers every request written before the signal, closes keep-alive connections and exits 0', async () => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: PROJECT,
        env: {
          PATH: process.env.PATH,
          NODE_ENV: 'production',
          ...TEST_KEY_ENV,
          DATABASE_URL: databaseUrl(store),
          VEIL_API_KEY: API_KEY,
          PORT: '0',
          HOST: '127.0.0.1',
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
      });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
      });
      const exited = new Promise<{ code: number | null; at: number }>((done) =>
        child.on('exit', (code) => done({ code, at: performance.now() })),
      );
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      try {
        const url = await new Promise<string>((done, fail) => {
          child.stdout.on('data', () => {
            const found = /Veil is listening on (http:\S+)/.exec(stdout);
            if (found?.[1]) done(found[1]);
          });
          child.on('exit', () => fail(new Error(`exited before listening: ${stdout} ${stderr}`)));
        });

        // 16 clients, each sending its next request as soon as the last is answered, on 16
        // keep-alive connections, until a request fails: once the server stops listening, the
        // connection a client needs next is refused.
        const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
        const outcomes: Outcome[] = [];
        const client = async () => {
          for (let i = 0; i < 5000; i++) {
            const outcome = await route(url, agent);
            outcomes.push(outcome);
            if (outcome.error) return;
          }
        };
        const load = Promise.all(Array.from({ length: 16 }, client));
        while (outcomes.length < 300 && !outcomes.some((o) => o.error)) {
          await sleep(10);
        }
        const signalledAt = performance.now();
        child.kill('SIGTERM');
        await load;
        // The agent keeps its idle connections open, as a load balancer would: the server closes them.
        const { code, at } = await exited;
        agent.destroy();

        assert.equal(code, 0, `stdout: ${stdout}; stderr: ${stderr}`);
        assert.ok(
          at - signalledAt < STOP_GRACE_MS,
          `stopped ${Math.round(at - signalledAt)} ms after SIGTERM`,
        );
        assert.doesNotMatch(stdout, /still in flight/, 'the stop had to cut connections');
        assert.match(stdout, /"msg":"shutting down"/);
        assert.match(stdout, /"msg":"stopped"/);

        // libuv runs signal handlers after the I/O that was ready with them, so a request written
        // before the signal has been read when the stop begins: each is answered, none is 503.
        const beforeSignal = outcomes.filter((o) => o.writtenAt !== undefined && o.writtenAt < signalledAt);
        assert.deepEqual(
          beforeSignal.filter((o) => o.status !== 200 || !o.body?.includes('"action"')),
          [],
          'requests written before the signal and not answered 200',
        );
        assert.ok(
          beforeSignal.some((o) => (o.answeredAt ?? 0) > signalledAt),
          'no request was in flight at the signal: the test proves nothing',
        );
        // A request sent after the stop began is answered as usual (with `Connection: close`) when
        // the server reads it; on a new connection it is refused; sent just as its idle connection
        // closes, it is reset unread. Refused or reset, nothing was done: a retry is safe.
        const afterSignal = outcomes.filter((o) => !beforeSignal.includes(o));
        for (const o of afterSignal) {
          assert.ok(
            o.status === 200 || ['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(o.error ?? ''),
            `after the signal: ${JSON.stringify(o)}`,
          );
        }
        // Every decision made was answered and is in the interaction log, flushed at the stop.
        const answered = outcomes.filter((o) => o.status === 200).length;
        assert.equal(await interactionCount(store), answered);
      } finally {
        clearTimeout(killer);
        child.kill('SIGKILL');
      }
    });
  });
}

// A timeout: a stop that waits for ever fails rather than hangs.
describe('stop() with connections in every state (sqlite, in process)', { timeout: 30_000 }, () => {
  const graceMs = 2500;
  let store: TestStore;
  let server: RunningServer;
  let stopBegan = 0;
  let stopTook = 0;
  let idle: RawConnection;
  let inFlight: RawConnection;
  let slow: RawConnection;
  let stalled: RawConnection;
  let refused: string | undefined;
  let timeouts: HttpTimeouts;

  before(async () => {
    const [sqlite] = storeKinds();
    assert.ok(sqlite);
    store = await sqlite.create();
    const config = loadConfig({
      NODE_ENV: 'production',
      ...TEST_KEY_ENV,
      DATABASE_URL: databaseUrl(store),
      VEIL_API_KEY: API_KEY,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
    });
    server = await startServer(config, { stopGraceMs: graceMs });
    const { url, app } = server;
    timeouts = {
      headersMs: app.server.headersTimeout,
      requestMs: app.server.requestTimeout,
      keepAliveMs: app.server.keepAliveTimeout,
      silenceMs: app.server.timeout,
    };

    // Answered once, then idle on keep-alive.
    idle = rawConnection(url);
    idle.socket.write(`${ROUTE_HEAD}${ROUTE_BODY}`);
    // Headers and part of the body: read, its handler waiting for the rest.
    slow = rawConnection(url);
    slow.socket.write(`${ROUTE_HEAD}${ROUTE_BODY.slice(0, 10)}`);
    stalled = rawConnection(url);
    stalled.socket.write(`${ROUTE_HEAD}${ROUTE_BODY.slice(0, 10)}`);
    while (!idle.answer().includes('"action"')) await sleep(10);

    // The stop begins the moment the server has read this request, its handler still to run.
    let stopped: Promise<void> | undefined;
    app.server.once('request', () => {
      stopBegan = performance.now();
      stopped = server.stop();
    });
    inFlight = rawConnection(url);
    inFlight.socket.write(`${ROUTE_HEAD}${ROUTE_BODY}`);
    while (!stopped) await sleep(5);

    await sleep(100);
    refused = await new Promise<string | undefined>((done) => {
      const { hostname, port } = new URL(url);
      connect(Number(port), hostname)
        .on('connect', function (this: Socket) {
          this.destroy();
          done(undefined);
        })
        .on('error', (error: NodeJS.ErrnoException) => done(error.code));
    });
    // The rest of the body, and a second request on the same connection.
    slow.socket.write(`${ROUTE_BODY.slice(10)}${ROUTE_HEAD}${ROUTE_BODY}`);
    await stopped;
    stopTook = performance.now() - stopBegan;
  });
  after(async () => {
    await server?.stop();
    await store?.drop();
  });

  it('ran with the fixed timeouts of production', () => {
    assert.deepEqual(timeouts, HTTP_TIMEOUTS);
  });

  it('closes an idle keep-alive connection as the stop begins', () => {
    assert.match(idle.answer(), /^HTTP\/1\.1 200 /);
    assert.ok(idle.closedAt - stopBegan < 500, `closed ${Math.round(idle.closedAt - stopBegan)} ms after`);
  });

  it('answers a request read as the stop begins, then closes its connection, not after keep-alive', () => {
    assert.match(inFlight.answer(), /^HTTP\/1\.1 200 [\s\S]*"action":"reject"/);
    // Within the stop grace, not the keep-alive timeout (72 s) the stop would otherwise wait for.
    const closed = inFlight.closedAt - stopBegan;
    assert.ok(closed < graceMs - 200, `closed ${Math.round(closed)} ms after the stop began`);
  });

  it('refuses a new connection once the stop began', () => {
    assert.equal(refused, 'ECONNREFUSED');
  });

  it('answers a request whose body arrives after the stop began, and the next one, with Connection: close', () => {
    const answers = slow.answer().split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 2, slow.answer());
    assert.match(answers[0] ?? '', /^HTTP\/1\.1 200 /);
    // Read after the stop began: processed as usual, not 503, and the connection is not kept.
    assert.match(
      answers[1] ?? '',
      /^HTTP\/1\.1 200 [\s\S]*\r\nConnection: close\r\n[\s\S]*"action":"reject"/i,
    );
  });

  it('cuts a request still arriving when the grace ends, unanswered, and ends the stop then', () => {
    assert.equal(stalled.answer(), '', 'a request never read in full was answered');
    assert.ok(stalled.closedAt - stopBegan >= graceMs - 20);
    assert.ok(
      stopTook >= graceMs - 20 && stopTook < graceMs + 1000,
      `stopped after ${Math.round(stopTook)} ms`,
    );
  });
});
