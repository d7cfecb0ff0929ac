import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type Config, ConfigError, loadConfig } from '../src/config.ts';
import { DEFAULT_TENANT } from '../src/domain/tenants.ts';
import { createLogger } from '../src/logger.ts';
import { type RunningServer, startServer } from '../src/server.ts';
import { createVeil } from '../src/veil.ts';
import { databaseUrl, storeKinds, TEST_KEY_ENV, type TestStore } from './support/stores.ts';

const PROJECT = resolve(fileURLToPath(import.meta.url), '../..');
const OPERATOR_KEY = 'operator-key-0123456789abcdef';
/** EX_CONFIG: what `veil serve` exits with on a configuration it cannot start with. */
const EXIT_CONFIG = 78;

/** A key stored in the database beforehand (as `POST /v1/keys` on an earlier run would). */
async function storeKey(store: TestStore): Promise<{ id: string; secret: string }> {
  const config = { ...loadConfig({ LOG_LEVEL: 'silent', ...TEST_KEY_ENV }), store: store.config };
  const veil = await createVeil(config, { logger: createLogger('silent'), schema: store.schema });
  try {
    const { key, secret } = await veil.keys.create(DEFAULT_TENANT, 'operations', ['admin']);
    return { id: key.id, secret };
  } finally {
    await veil.close();
  }
}

/** A port on which nothing listens. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  assert.ok(address && typeof address === 'object');
  return address.port;
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      done(false);
    });
    socket.once('error', () => done(true));
  });
}

/** The files of this process open on the store's SQLite database (Linux's /proc; none elsewhere). */
function openFiles(store: TestStore): string[] {
  if (store.config.dialect !== 'sqlite') return [];
  const file = store.config.file;
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return [];
  }
  return fds
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((target) => target.startsWith(file));
}

/**
 * Waits (a little: a closed pool's sockets finish closing just after) until this process holds
 * no more handles than `before`: no thread (MessagePort), no socket, no listening server.
 */
async function assertNothingLeft(before: string[]): Promise<void> {
  const extra = () => {
    const left = [...process.getActiveResourcesInfo()];
    for (const resource of before) {
      const i = left.indexOf(resource);
      if (i >= 0) left.splice(i, 1);
    }
    return left.filter((resource) => resource !== 'Timeout' && resource !== 'TTYWrap');
  };
  for (let i = 0; i < 40 && extra().length > 0; i++) await sleep(50);
  assert.deepEqual(extra(), [], 'a failed start left these running');
}

function assertNoWayIn(error: unknown): true {
  assert.ok(error instanceof ConfigError, `not a ConfigError: ${error}`);
  assert.equal(error.key, 'VEIL_API_KEY');
  assert.match(error.message, /^VEIL_API_KEY: /);
  return true;
}

for (const kind of storeKinds()) {
  describe(`startServer in production (${kind.name})`, () => {
    let store: TestStore;
    let server: RunningServer | undefined;
    beforeEach(async () => {
      store = await kind.create();
    });
    afterEach(async () => {
      try {
        await stop();
      } finally {
        await store.drop();
      }
    });

    const production = (env: Record<string, string> = {}) =>
      loadConfig({
        NODE_ENV: 'production',
        ...TEST_KEY_ENV,
        DATABASE_URL: databaseUrl(store),
        PORT: '0',
        LOG_LEVEL: 'silent',
        ...env,
      });

    /** startServer, keeping what started for afterEach to stop, should it start when it must not. */
    const start = async (config: Config) => {
      server = await startServer(config);
      return server;
    };

    const stop = async () => {
      await server?.stop();
      server = undefined;
    };

    const request = (method: string, path: string, key: string) =>
      fetch(`${server?.url}${path}`, { method, headers: { authorization: `Bearer ${key}` } });
    const get = (path: string, key: string) => request('GET', path, key);

    it('refuses to start with no VEIL_API_KEY and no stored key, and leaves nothing running', async () => {
      const before = process.getActiveResourcesInfo();
      const port = await freePort();
      await assert.rejects(start(production({ PORT: String(port) })), (error) => {
        assertNoWayIn(error);
        assert.match((error as Error).message, /is required in production/);
        return true;
      });
      await assertNothingLeft(before);
      assert.deepEqual(openFiles(store), [], 'the database is still open');
      assert.ok(await refusesConnections(port), `something listens on ${port}`);
    });

    it('starts with a stored unrevoked key and no VEIL_API_KEY; that key opens the API', async () => {
      const { secret } = await storeKey(store);
      const running = await start(production());
      assert.equal(running.developmentKey, undefined);
      assert.equal((await get('/v1/numbers', secret)).status, 200);
    });

    it('refuses again once the only stored key is revoked through the API', async () => {
      const { id, secret } = await storeKey(store);
      await start(production());
      assert.equal((await request('DELETE', `/v1/keys/${id}`, secret)).status, 204);
      await stop();
      await assert.rejects(start(production()), assertNoWayIn);
    });

    it('starts with VEIL_API_KEY on an empty database, and refuses once that key is revoked', async () => {
      await start(production({ VEIL_API_KEY: OPERATOR_KEY }));
      const keys = await request('GET', '/v1/keys', OPERATOR_KEY);
      assert.equal(keys.status, 200);
      const [bootstrap] = ((await keys.json()) as { data: { id: string }[] }).data;
      assert.ok(bootstrap);
      assert.equal((await request('DELETE', `/v1/keys/${bootstrap.id}`, OPERATOR_KEY)).status, 204);
      await stop();
      // A revoked key does not come back by being configured again: nothing would open the API.
      await assert.rejects(start(production({ VEIL_API_KEY: OPERATOR_KEY })), (error) => {
        assertNoWayIn(error);
        assert.match((error as Error).message, /revoked/);
        assert.ok(!(error as Error).message.includes(OPERATOR_KEY), 'the message echoes the key');
        return true;
      });
    });

    it('in development, starts on an empty database with a development key (the control)', async () => {
      const running = await start(production({ NODE_ENV: 'development', VEIL_DEMO_POOL: 'false' }));
      assert.ok(running.developmentKey);
      assert.equal((await get('/v1/numbers', running.developmentKey)).status, 200);
    });
  });

  describe(`npm start in production (${kind.name})`, () => {
    let store: TestStore;
    beforeEach(async () => {
      store = await kind.create();
    });
    afterEach(async () => {
      await store.drop();
    });

    /** `npm start` as a child process; resolves when it exits, or once it prints `until` (then stopped). */
    function npmStart(env: Record<string, string>, until?: RegExp) {
      return new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>(
        (done, fail) => {
          const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
            cwd: PROJECT,
            env: {
              PATH: process.env.PATH,
              NODE_ENV: 'production',
              ...TEST_KEY_ENV,
              DATABASE_URL: databaseUrl(store),
              PORT: '0',
              HOST: '127.0.0.1',
              LOG_LEVEL: 'warn',
              ...env,
            },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let stdout = '';
          let stderr = '';
          let stopping = false;
          child.stdout.on('data', (chunk) => {
            stdout += chunk;
            // Once: a second SIGTERM while it shuts down would kill it outright.
            if (!stopping && until?.test(stdout)) {
              stopping = true;
              child.kill('SIGTERM');
            }
          });
          child.stderr.on('data', (chunk) => {
            stderr += chunk;
          });
          const timer = setTimeout(() => {
            child.kill('SIGKILL');
            fail(new Error(`still running after 20 s; stdout: ${stdout}; stderr: ${stderr}`));
          }, 20_000);
          child.on('error', fail);
          child.on('exit', (code, signal) => {
            clearTimeout(timer);
            done({ code, signal, stdout, stderr });
          });
        },
      );
    }

    it('exits non-zero with a message naming VEIL_API_KEY when no key would let anyone in', async () => {
      const { code, stdout, stderr } = await npmStart({});
      assert.equal(code, EXIT_CONFIG, stderr);
      assert.match(stderr, /VEIL_API_KEY/);
      assert.doesNotMatch(stdout, /listening/i);
    });

    it('starts when a stored key is unrevoked (the control)', async () => {
      await storeKey(store);
      const { code, signal, stdout, stderr } = await npmStart({}, /listening/);
      assert.match(stdout, /Veil is listening on http:\/\/127\.0\.0\.1:\d+/, stderr);
      assert.equal(code, 0, `signal ${signal}; stdout: ${stdout}; stderr: ${stderr}`);
    });
  });
}

// A timeout: a socket left open for ever fails the suite rather than hangs it.
describe('startServer: HTTP timeouts (sqlite)', { timeout: 30_000 }, () => {
  const timeouts = { headersMs: 300, requestMs: 600, keepAliveMs: 5000, silenceMs: 5000 };
  let store: TestStore;
  let server: RunningServer;
  before(async () => {
    const [sqlite] = storeKinds();
    assert.ok(sqlite);
    store = await sqlite.create();
    const config = loadConfig({
      NODE_ENV: 'production',
      ...TEST_KEY_ENV,
      DATABASE_URL: databaseUrl(store),
      VEIL_API_KEY: OPERATOR_KEY,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
    });
    server = await startServer(config, { timeouts });
  });
  after(async () => {
    await server?.stop();
    await store?.drop();
  });

  /**
   * Connects, then `send`s on the socket; resolves once the server closes it, with what it sent
   * back and how long after connecting.
   */
  function exchange(send: (socket: Socket) => void): Promise<{ answer: string; ms: number }> {
    const { hostname, port } = new URL(server.url);
    const started = performance.now();
    const socket = createConnection(Number(port), hostname, () => send(socket));
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', () => {});
    return new Promise((done) => socket.on('close', () => done({ answer, ms: performance.now() - started })));
  }

  // With a valid key: without one the request is answered 401 before its body is awaited.
  const POST_HEAD = [
    'POST /v1/route HTTP/1.1',
    'Host: veil',
    `Authorization: Bearer ${OPERATOR_KEY}`,
    'Content-Type: application/json',
    'Content-Length: 100',
    '',
    '',
  ].join('\r\n');

  /** Answered 408 and closed once `timeoutMs` has passed (Node looks every `headersMs` at most). */
  function assertTimedOut({ answer, ms }: { answer: string; ms: number }, timeoutMs: number) {
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.ok(ms >= timeoutMs - 50 && ms < timeoutMs + 1000, `closed after ${Math.round(ms)} ms`);
  }

  it('answers a request sent in full (the control)', async () => {
    const { answer } = await exchange((socket) =>
      socket.write('GET /healthz HTTP/1.1\r\nHost: veil\r\nConnection: close\r\n\r\n'),
    );
    assert.match(answer, /^HTTP\/1\.1 200 /);
  });

  it('answers 408 and closes a connection that sends nothing, once the headers timeout passes', async () => {
    assertTimedOut(await exchange(() => {}), timeouts.headersMs);
  });

  it('answers 408 and closes a request whose body stops halfway, once the request timeout passes', async () => {
    assertTimedOut(await exchange((socket) => socket.write(`${POST_HEAD}{"from":`)), timeouts.requestMs);
  });

  it('answers 408 and closes a body sent a byte at a time (slowloris) once the request timeout passes', async () => {
    let trickle: NodeJS.Timeout | undefined;
    const result = await exchange((socket) => {
      socket.write(POST_HEAD);
      trickle = setInterval(() => socket.writable && socket.write(' '), 50);
    });
    clearInterval(trickle);
    assertTimedOut(result, timeouts.requestMs);
  });
});
