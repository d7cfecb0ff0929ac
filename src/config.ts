import { resolve } from 'node:path';
import { isSupportedCountry } from 'libphonenumber-js';
import type { OutOfSession } from './domain/routing.ts';
import { DEFAULT_TTL_SECONDS } from './domain/session.ts';

export const DEFAULT_PORT = 3000;
export const DEFAULT_SQLITE_FILE = './data/veil.db';
export const DEFAULT_REUSE_COOLDOWN_SECONDS = 3600;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

export type StoreConfig = { dialect: 'sqlite'; file: string } | { dialect: 'postgres'; url: string };

export interface Config {
  production: boolean;
  port: number;
  host: string;
  store: StoreConfig;
  /** Bootstrap admin key; in development one is generated when absent. */
  apiKey?: string;
  demoPool: boolean;
  /** Base URL carriers call; webhook signatures are checked against it, never against Host. */
  publicUrl: string;
  defaultCountry?: string;
  defaultTtlSeconds: number;
  reuseCooldownSeconds: number;
  outOfSession: OutOfSession;
  twilio?: { accountSid: string; authToken: string };
  /** Secret the simulator signs webhooks with; undefined in development means "generate and keep". */
  simWebhookSecret?: string;
  logLevel: LogLevel;
}

/** A bad value in the environment, named, so that start-up fails with a message an operator can act on. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`${key}: ${problem}`);
  }
}

type Env = Record<string, string | undefined>;

/** Reads and validates the environment of DESIGN §6, once, failing on the first bad value. */
export function loadConfig(env: Env = process.env): Config {
  const production = env.NODE_ENV === 'production';
  const port = integer(env, 'PORT', DEFAULT_PORT, 0, 65_535);
  const host = env.HOST || (production ? '0.0.0.0' : '127.0.0.1');
  const twilio = twilioConfig(env);
  return {
    production,
    port,
    host,
    store: storeConfig(env.DATABASE_URL),
    apiKey: optional(env, 'VEIL_API_KEY', (v) => {
      if (v.length < 16) throw new ConfigError('VEIL_API_KEY', 'must be at least 16 characters');
      return v;
    }),
    demoPool: boolean(env, 'VEIL_DEMO_POOL', !production),
    publicUrl: publicUrl(env.VEIL_PUBLIC_URL, host, port),
    defaultCountry: optional(env, 'VEIL_DEFAULT_COUNTRY', (v) => {
      if (!/^[A-Z]{2}$/.test(v) || !isSupportedCountry(v)) {
        throw new ConfigError('VEIL_DEFAULT_COUNTRY', `must be an ISO country code like US, got "${v}"`);
      }
      return v;
    }),
    defaultTtlSeconds: integer(env, 'VEIL_DEFAULT_TTL_SECONDS', DEFAULT_TTL_SECONDS, 1, 31_536_000),
    reuseCooldownSeconds: integer(
      env,
      'VEIL_REUSE_COOLDOWN_SECONDS',
      DEFAULT_REUSE_COOLDOWN_SECONDS,
      0,
      31_536_000,
    ),
    outOfSession: outOfSession(env.VEIL_OUT_OF_SESSION),
    twilio,
    simWebhookSecret: env.SIM_WEBHOOK_SECRET || undefined,
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
  };
}

function storeConfig(url: string | undefined): StoreConfig {
  if (!url) return { dialect: 'sqlite', file: resolve(DEFAULT_SQLITE_FILE) };
  if (/^postgres(ql)?:\/\//.test(url)) {
    try {
      new URL(url);
    } catch {
      throw new ConfigError('DATABASE_URL', 'is not a valid postgres:// URL');
    }
    return { dialect: 'postgres', url };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.startsWith('sqlite:')) {
    throw new ConfigError('DATABASE_URL', 'must be postgres://..., sqlite:path or a file path');
  }
  const file = url.replace(/^sqlite:(\/\/)?/, '');
  if (!file) throw new ConfigError('DATABASE_URL', 'sqlite: needs a file path');
  return { dialect: 'sqlite', file: file === ':memory:' ? file : resolve(file) };
}

/** The URL at which this host is reached locally: wildcard addresses become loopback, IPv6 is bracketed. */
export function localUrl(host: string, port: number): string {
  const callable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${callable.includes(':') ? `[${callable}]` : callable}:${port}`;
}

function publicUrl(value: string | undefined, host: string, port: number): string {
  const fallback = localUrl(host, port);
  if (!value) return fallback;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError('VEIL_PUBLIC_URL', 'is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('VEIL_PUBLIC_URL', 'must be http:// or https://');
  }
  return value.replace(/\/+$/, '');
}

function outOfSession(value: string | undefined): OutOfSession {
  if (!value || value === 'reject') return { action: 'reject' };
  const forward = /^forward:(\+[1-9]\d{6,14})$/.exec(value);
  if (forward?.[1]) return { action: 'forward', to: forward[1] };
  throw new ConfigError('VEIL_OUT_OF_SESSION', 'must be reject or forward:+E164');
}

function twilioConfig(env: Env): Config['twilio'] {
  const accountSid = env.TWILIO_ACCOUNT_SID;
  const authToken = env.TWILIO_AUTH_TOKEN;
  if (!accountSid && !authToken) return undefined;
  if (!accountSid || !/^AC[0-9a-fA-F]{32}$/.test(accountSid)) {
    throw new ConfigError(
      'TWILIO_ACCOUNT_SID',
      'must be AC followed by 32 hex digits when TWILIO_AUTH_TOKEN is set',
    );
  }
  if (!authToken) throw new ConfigError('TWILIO_AUTH_TOKEN', 'is required when TWILIO_ACCOUNT_SID is set');
  return { accountSid, authToken };
}

function optional<T>(env: Env, key: string, parse: (v: string) => T): T | undefined {
  const v = env[key];
  return v === undefined || v === '' ? undefined : parse(v);
}

function integer(env: Env, key: string, fallback: number, min: number, max: number): number {
  return (
    optional(env, key, (v) => {
      const n = Number(v);
      if (!/^\d+$/.test(v) || n < min || n > max) {
        throw new ConfigError(key, `must be an integer from ${min} to ${max}, got "${v}"`);
      }
      return n;
    }) ?? fallback
  );
}

function boolean(env: Env, key: string, fallback: boolean): boolean {
  return (
    optional(env, key, (v) => {
      if (v === 'true' || v === '1') return true;
      if (v === 'false' || v === '0') return false;
      throw new ConfigError(key, `must be true or false, got "${v}"`);
    }) ?? fallback
  );
}

function oneOf<T extends string>(env: Env, key: string, values: readonly T[], fallback: T): T {
  return (
    optional(env, key, (v) => {
      if (!values.includes(v as T))
        throw new ConfigError(key, `must be one of ${values.join(', ')}, got "${v}"`);
      return v as T;
    }) ?? fallback
  );
}
