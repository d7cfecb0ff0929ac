import assert from 'node:assert/strict';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { type Config, loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/logger.ts';
import type { ProcurementHooks } from '../../src/services/procurement.ts';
import type { Db } from '../../src/store/schema.ts';
import { vaultOf } from '../../src/store/vault.ts';
import { createVeil, type Veil } from '../../src/veil.ts';
import { TEST_KEY_ENV, type TestStore } from './stores.ts';

export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';
export const TWILIO_TOKEN = 'twilio-test-auth-token-0123456789';
export const TWILIO_SID = `AC${'0'.repeat(32)}`;
export const SIM_SECRET = 'sim-test-secret';
export const PUBLIC_URL = 'https://veil.example.test';

/** A clock tests can move. */
export class TestClock {
  constructor(public now = Date.parse('2026-01-01T00:00:00Z')) {}
  advance(seconds: number): void {
    this.now += seconds * 1000;
  }
  read = () => this.now;
}

export interface TestApp {
  app: FastifyInstance;
  veil: Veil;
  clock: TestClock;
  /** Log lines written while the app ran (already masked, as they would reach stdout). */
  logs: string[];
  /** app.inject with the admin key and JSON body. */
  api(
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
    key?: string,
  ): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/**
 * The whole HTTP app over a test store, configured as an operator would through the environment and
 * run as `npm start` runs it (the session writer thread on a SQLite file), on a clock the test moves.
 */
export async function testApp(
  store: TestStore,
  env: Record<string, string> = {},
  options: { poolSize?: number; sessionThread?: boolean; procurementHooks?: ProcurementHooks } = {},
): Promise<TestApp> {
  const config: Config = {
    ...loadConfig({
      // Development, so that the simulator (refused in production) carries the tests' calls; a
      // test of production's rules says NODE_ENV: 'production' (with keys: TEST_KEY_ENV).
      NODE_ENV: 'development',
      VEIL_DEMO_POOL: 'false',
      VEIL_API_KEY: ADMIN_KEY,
      VEIL_PUBLIC_URL: PUBLIC_URL,
      TWILIO_ACCOUNT_SID: TWILIO_SID,
      TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
      SIM_WEBHOOK_SECRET: SIM_SECRET,
      LOG_LEVEL: 'info',
      // The same keys for every app of the process, development or production, over the same store.
      ...TEST_KEY_ENV,
      ...env,
    }),
    store: store.config,
  };
  const logs: string[] = [];
  const logger = createLogger(config.logLevel, { write: (line: string) => logs.push(line) });
  const clock = new TestClock();
  // As the server runs: on a SQLite file the sessions' writes go to their thread, on the test's clock.
  const veil = await createVeil(config, {
    logger,
    schema: store.schema,
    sessionThread: true,
    ...options,
    clock: clock.read,
  });
  await veil.keys.ensureBootstrap(ADMIN_KEY);
  const app = await buildApp(veil, logger);
  return {
    app,
    veil,
    clock,
    logs,
    api: (method, url, body, key = ADMIN_KEY) =>
      app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${key}` },
        ...(body === undefined ? {} : { payload: body as InjectOptions['payload'] }),
      }),
    async close() {
      await app.close();
      await veil.close();
    },
  };
}

/**
 * Sends a carrier webhook that must be refused (403) and returns the one warning it logged, parsed,
 * with the raw log lines: the warning names the provider and the URL the signature was checked
 * against (VEIL_PUBLIC_URL and the path, never the Host), and the carrier's secret is nowhere.
 */
export async function refusalLogged(
  t: TestApp,
  expected: { provider: string; path: string; secret: string },
  send: () => Promise<{ statusCode: number; body: string }>,
): Promise<{ warning: Record<string, unknown> & { reason: string }; raw: string }> {
  const from = t.logs.length;
  const r = await send();
  assert.equal(r.statusCode, 403, r.body);
  const raw = t.logs.slice(from).join('');
  const warnings = t.logs
    .slice(from)
    .map((l) => JSON.parse(l))
    .filter((l) => l.msg === 'webhook signature refused');
  assert.equal(warnings.length, 1, raw);
  const [warning] = warnings;
  assert.equal(warning.level, 40);
  assert.equal(warning.provider, expected.provider);
  assert.equal(warning.url, PUBLIC_URL + expected.path);
  assert.ok(!raw.includes(expected.secret), 'the secret is in the log');
  return { warning, raw };
}

/** Every interaction row, once the interaction log has written what it holds, its numbers opened. */
export async function interactionRows(t: TestApp) {
  await t.veil.interactions.flush();
  const vault = vaultOf(t.veil.store.db);
  return (await t.veil.store.db.selectFrom('interactions').selectAll().execute()).map((r) => ({
    ...r,
    from_number: vault.open(r.from_number),
    target_number: vault.openOrNull(r.target_number),
    caller_id: vault.openOrNull(r.caller_id),
  }));
}

/** An event's payload as stored (sealed), parsed. */
export function payloadOf(db: Db, payload: string) {
  return JSON.parse(vaultOf(db).open(payload));
}

/** A participant row's or a blocklist row's real number, opened. */
export function numberOf(db: Db, row: { number_sealed: string | null }): string {
  return vaultOf(db).openNumber(row.number_sealed);
}

/** Asserts that `send` is answered 403 forbidden, naming the signature, and writes no interaction. */
export async function assertWebhookRefused(
  t: TestApp,
  send: () => Promise<{ statusCode: number; json(): unknown; body: string }>,
) {
  const before = (await interactionRows(t)).length;
  const r = await send();
  assert.equal(r.statusCode, 403, r.body);
  const body = r.json() as { error: { code: string; message: string } };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, 'forbidden');
  assert.match(body.error.message, /signature/);
  assert.equal((await interactionRows(t)).length, before, 'a refused webhook wrote an interaction');
}
