import { randomBytes } from 'node:crypto';
import { telnyxKeyPair } from '../test/support/signatures.ts';
import type { BenchDatabase } from './databases.ts';
import { BENCH_KEY_ENV } from './keys.ts';
import { type ServerProcess, startServer } from './processes.ts';

/** Credentials every Veil server of a run shares: the clients sign and authenticate with them. */
export const API_KEY = `bench_${randomBytes(24).toString('hex')}`;
/** Where carriers would reach the server (behind a proxy): Twilio signs this URL, not the socket's. */
export const PUBLIC_URL = 'https://veil.bench.example';
export const TWILIO_AUTH_TOKEN = randomBytes(16).toString('hex');
const TWILIO_ACCOUNT_SID = `AC${randomBytes(16).toString('hex')}`;
const SIM_WEBHOOK_SECRET = randomBytes(24).toString('hex');

/** The other carriers' credentials, for the server §5 signs their webhooks to (`withCarriers`). */
export const VONAGE_API_KEY = randomBytes(4).toString('hex');
export const VONAGE_SIGNATURE_SECRET = randomBytes(24).toString('hex');
export const PLIVO_AUTH_TOKEN = randomBytes(20).toString('hex');
/** The account's Ed25519 key pair: the bench signs with the private key, Veil verifies with the public one. */
export const TELNYX_KEYS = telnyxKeyPair();

/**
 * The environment that enables Vonage, Plivo and Telnyx beside Twilio. Their API URLs keep their
 * defaults: a voice webhook calls no carrier API.
 */
export function withCarriers(): Record<string, string> {
  return {
    VONAGE_API_KEY,
    VONAGE_API_SECRET: randomBytes(16).toString('hex'),
    VONAGE_SIGNATURE_SECRET,
    PLIVO_AUTH_ID: `MA${randomBytes(9).toString('hex').toUpperCase()}`,
    PLIVO_AUTH_TOKEN,
    TELNYX_API_KEY: `KEY${randomBytes(16).toString('hex')}`,
    TELNYX_PUBLIC_KEY: TELNYX_KEYS.publicKey,
  };
}

/** The baseline server (bench/servers/bare.ts). */
export function startBare(): Promise<ServerProcess> {
  return startServer({
    name: 'bare Fastify',
    script: 'bench/servers/bare.ts',
    env: { NODE_ENV: 'production' },
  });
}

/** The floor (bench/servers/floor.ts) over a SQLite file a Veil server has opened and migrated. */
export function startFloor(database: BenchDatabase): Promise<ServerProcess> {
  if (database.store.dialect !== 'sqlite') throw new Error('the floor reads a SQLite file');
  return startServer({
    name: `floor on ${database.label}`,
    script: 'bench/servers/floor.ts',
    env: { NODE_ENV: 'production', DATABASE_FILE: database.store.file },
  });
}

/**
 * Another checkout of Veil to measure beside this one (`BENCH_BASELINE=/path/to/checkout`, with its
 * dependencies installed): its server runs over the same SQLite databases, interleaved with the
 * others, so that a change's before and after are read in one run. Its schema must be this one's.
 */
export const BASELINE = process.env.BENCH_BASELINE || undefined;

/**
 * A Veil server in its own process, started as an operator starts it (`node --import tsx src/main.ts`),
 * from this checkout or from `cwd` (the baseline's), with Twilio enabled and `env` besides.
 */
export function startVeil(
  name: string,
  database: BenchDatabase,
  cwd?: string,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const profileDir = process.env.BENCH_CPU_PROF;
  return startServer({
    name,
    cwd,
    script: 'src/main.ts',
    nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    env: veilEnv(database, env),
  });
}

/** The abuse limits of every Veil server of a run: their highest, so that they count and never refuse. */
const BENCH_LIMITS = {
  VEIL_RATE_LIMIT_PER_MINUTE: '10000000',
  VEIL_RATE_LIMIT_ROUTE_PER_MINUTE: '10000000',
  VEIL_MAX_SESSIONS_PER_MINUTE: '10000000',
  VEIL_MAX_CALLS_PER_SESSION_HOUR: '10000000',
};

/** The environment of every Veil server of a run over `database`: production, Twilio enabled, `env` besides. */
export function veilEnv(database: BenchDatabase, env: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: database.url,
    VEIL_API_KEY: API_KEY,
    VEIL_PUBLIC_URL: PUBLIC_URL,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    SIM_WEBHOOK_SECRET,
    VEIL_DEMO_POOL: 'false',
    LOG_LEVEL: 'warn',
    ...BENCH_KEY_ENV,
    // One key and a few sessions carry the whole load: the limits are counted as in production,
    // but set past what a run reaches, so that no request is refused (README "Abuse limits").
    ...BENCH_LIMITS,
    ...env,
  };
}
