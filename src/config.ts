import { resolve } from 'node:path';
import { isSupportedCountry } from 'libphonenumber-js';
import { type Static, type TSchema, Type } from 'typebox';
import { Value } from 'typebox/value';
import { DEFAULT_GATHER_PROMPT, type OutOfSession } from './domain/routing.ts';
import { DEFAULT_TTL_SECONDS } from './domain/session.ts';

export const DEFAULT_PORT = 3000;
export const DEFAULT_SQLITE_FILE = './data/veil.db';
export const DEFAULT_REUSE_COOLDOWN_SECONDS = 3600;
export const DEFAULT_CALLBACK_WINDOW_SECONDS = 86_400;
/** Where Vonage's REST APIs (the Messages API, which relays texts) are reached. */
export const DEFAULT_VONAGE_API_URL = 'https://api.nexmo.com';
const MAX_SECONDS = 31_536_000;

/**
 * Two annotations of our own on a variable's schema: `secret` (its value never appears in an
 * error) and `expected` (what a pattern means, in words an operator reads).
 */
interface Annotations {
  secret?: true;
  expected?: string;
}

/**
 * The environment of DESIGN §6, declared once: each variable's type, allowed values, bounds,
 * default and meaning (a variable with a default is never missing once read). Values arrive as text; `loadConfig` reads integers and booleans strictly,
 * checks the result against this schema and derives `Config` from it. Defaults that depend on
 * NODE_ENV (HOST, VEIL_DEMO_POOL) or on other variables (VEIL_PUBLIC_URL) are applied after.
 */
export const Environment = Type.Object({
  NODE_ENV: Type.Optional(
    Type.String({
      description:
        '`production` turns off the demo pool and the printed development key; anything else is development',
    }),
  ),
  PORT: Type.Integer({
    minimum: 0,
    maximum: 65_535,
    default: DEFAULT_PORT,
    description: 'the port the HTTP server listens on (0: any free port)',
  }),
  HOST: Type.Optional(
    Type.String({
      description: 'the address the HTTP server listens on; 127.0.0.1 in development, 0.0.0.0 in production',
    }),
  ),
  DATABASE_URL: Type.String({
    default: `sqlite:${DEFAULT_SQLITE_FILE}`,
    secret: true,
    description: '`postgres://...` for PostgreSQL, `sqlite:path` or a file path for SQLite',
  }),
  VEIL_API_KEY: Type.Optional(
    Type.String({
      minLength: 16,
      secret: true,
      description:
        'bootstrap admin API key, ensured at start; generated and printed in development, required in production unless a usable key is stored',
    }),
  ),
  VEIL_DEMO_POOL: Type.Optional(
    Type.Boolean({
      description:
        '`false` skips seeding the demo sim pool on an empty database; true in development, false in production',
    }),
  ),
  VEIL_PUBLIC_URL: Type.Optional(
    Type.String({
      description:
        'the public http(s) base URL carriers call; webhook signatures are checked against it, never against Host; default http://HOST:PORT',
    }),
  ),
  VEIL_DEFAULT_COUNTRY: Type.Optional(
    Type.String({
      pattern: '^[A-Z]{2}$',
      expected: 'an ISO country code like US',
      description: 'ISO country used to parse numbers not in E.164; unset: non-E.164 numbers are refused',
    }),
  ),
  VEIL_DEFAULT_TTL_SECONDS: Type.Integer({
    minimum: 1,
    maximum: MAX_SECONDS,
    default: DEFAULT_TTL_SECONDS,
    description: 'session life in seconds when a request gives none',
  }),
  VEIL_REUSE_COOLDOWN_SECONDS: Type.Integer({
    minimum: 0,
    maximum: MAX_SECONDS,
    default: DEFAULT_REUSE_COOLDOWN_SECONDS,
    description: "how long, in seconds, a person's released proxy number is avoided for them",
  }),
  VEIL_OUT_OF_SESSION: Type.String({
    pattern: '^(reject|forward:\\+[1-9]\\d{6,14}|ask:.+)$',
    default: 'reject',
    expected: 'reject, forward:+E164 or ask:https://URL',
    description:
      'what a call outside any session meets: `reject`, `forward:+E164` to a support line, or `ask:https://URL`, the app’s webhook, which answers where it goes',
  }),
  VEIL_CALLBACK_WINDOW_SECONDS: Type.Integer({
    minimum: 0,
    maximum: MAX_SECONDS,
    default: DEFAULT_CALLBACK_WINDOW_SECONDS,
    description: 'how long, in seconds, a dedicated number’s owner can call back the most recent caller',
  }),
  VEIL_EXTENSION_FALLBACK: Type.Boolean({
    default: false,
    description:
      'whether a session that gives no extensionFallback may share a number with an extension code when none is free',
  }),
  VEIL_GATHER_PROMPT: Type.String({
    minLength: 1,
    maxLength: 500,
    default: DEFAULT_GATHER_PROMPT,
    description: 'what a caller hears on a number shared by extension, before keying their code',
  }),
  VEIL_INTERCEPT_URL: Type.Optional(
    Type.String({
      description:
        'the app’s webhook that may veto each call or text about to be connected (https:// in production)',
    }),
  ),
  TWILIO_ACCOUNT_SID: Type.Optional(
    Type.String({
      pattern: '^AC[0-9a-fA-F]{32}$',
      expected: 'AC followed by 32 hex digits',
      description: 'Twilio account SID; with TWILIO_AUTH_TOKEN it enables the twilio provider',
    }),
  ),
  TWILIO_AUTH_TOKEN: Type.Optional(
    Type.String({ secret: true, description: 'Twilio auth token; verifies X-Twilio-Signature on webhooks' }),
  ),
  VONAGE_API_KEY: Type.Optional(
    Type.String({
      description:
        'Vonage API key; with VONAGE_API_SECRET and VONAGE_SIGNATURE_SECRET it enables the vonage provider',
    }),
  ),
  VONAGE_API_SECRET: Type.Optional(
    Type.String({
      secret: true,
      description: 'Vonage API secret; authenticates the Messages API requests that relay texts',
    }),
  ),
  VONAGE_SIGNATURE_SECRET: Type.Optional(
    Type.String({
      secret: true,
      description: 'Vonage signature secret; verifies the signed JWT (Authorization: Bearer) on webhooks',
    }),
  ),
  VONAGE_API_URL: Type.String({
    default: DEFAULT_VONAGE_API_URL,
    description:
      'base URL of Vonage’s REST API, where texts are relayed (POST /v1/messages); https:// in production but for a loopback host',
  }),
  SIM_WEBHOOK_SECRET: Type.Optional(
    Type.String({
      secret: true,
      description:
        'HMAC secret the simulator signs its webhooks with; generated and kept in the database when unset',
    }),
  ),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    default: 'info',
    description: 'pino log level',
  }),
});
export type Environment = Static<typeof Environment>;
type Key = keyof Environment;

export type StoreConfig = { dialect: 'sqlite'; file: string } | { dialect: 'postgres'; url: string };

/** The environment, checked and typed (its types are the schema's): what the rest of Veil reads. */
export interface Config {
  production: boolean;
  port: Environment['PORT'];
  host: string;
  store: StoreConfig;
  /** Bootstrap admin key; in development one is generated when absent. */
  apiKey?: Environment['VEIL_API_KEY'];
  demoPool: boolean;
  /** Base URL carriers call; webhook signatures are checked against it, never against Host. */
  publicUrl: string;
  defaultCountry?: Environment['VEIL_DEFAULT_COUNTRY'];
  defaultTtlSeconds: Environment['VEIL_DEFAULT_TTL_SECONDS'];
  reuseCooldownSeconds: Environment['VEIL_REUSE_COOLDOWN_SECONDS'];
  outOfSession: OutOfSession;
  callbackWindowSeconds: Environment['VEIL_CALLBACK_WINDOW_SECONDS'];
  extensionFallback: Environment['VEIL_EXTENSION_FALLBACK'];
  gatherPrompt: Environment['VEIL_GATHER_PROMPT'];
  /** The app's webhook that may veto each call or text about to be connected. */
  interceptUrl?: string;
  twilio?: { accountSid: string; authToken: string };
  vonage?: VonageConfig;
  /** Secret the simulator signs webhooks with; undefined in development means "generate and keep". */
  simWebhookSecret?: Environment['SIM_WEBHOOK_SECRET'];
  logLevel: Environment['LOG_LEVEL'];
}

/** The Vonage account: its key and secret send texts, its signature secret verifies webhooks. */
export interface VonageConfig {
  apiKey: string;
  apiSecret: string;
  signatureSecret: string;
  /** Base URL of the REST API, without a trailing slash. */
  apiUrl: string;
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

/**
 * Reads and validates the environment of DESIGN §6, once. Throws a ConfigError naming the first
 * bad variable and what it allows (echoing the value only when it is not a secret).
 */
export function loadConfig(env: Env = process.env): Config {
  const e = environment(env);
  const production = e.NODE_ENV === 'production';
  const host = e.HOST ?? (production ? '0.0.0.0' : '127.0.0.1');
  return {
    production,
    port: e.PORT,
    host,
    store: storeConfig(e.DATABASE_URL),
    apiKey: e.VEIL_API_KEY,
    demoPool: e.VEIL_DEMO_POOL ?? !production,
    publicUrl: publicUrl(e.VEIL_PUBLIC_URL, host, e.PORT),
    defaultCountry: defaultCountry(e.VEIL_DEFAULT_COUNTRY),
    defaultTtlSeconds: e.VEIL_DEFAULT_TTL_SECONDS,
    reuseCooldownSeconds: e.VEIL_REUSE_COOLDOWN_SECONDS,
    outOfSession: outOfSession(e.VEIL_OUT_OF_SESSION, production),
    interceptUrl:
      e.VEIL_INTERCEPT_URL === undefined
        ? undefined
        : hookUrl('VEIL_INTERCEPT_URL', e.VEIL_INTERCEPT_URL, production),
    callbackWindowSeconds: e.VEIL_CALLBACK_WINDOW_SECONDS,
    extensionFallback: e.VEIL_EXTENSION_FALLBACK,
    gatherPrompt: e.VEIL_GATHER_PROMPT,
    twilio: twilioConfig(e),
    vonage: vonageConfig(e, production),
    simWebhookSecret: e.SIM_WEBHOOK_SECRET,
    logLevel: e.LOG_LEVEL,
  };
}

/** The variables of the schema, read from text, with the schema's defaults applied, checked. */
function environment(env: Env): Environment {
  const values: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(Environment.properties)) {
    const text = env[key];
    // An empty value counts as unset, as shells and compose files write them.
    if (text !== undefined && text !== '') values[key] = fromText(schema, text);
  }
  const read = Value.Default(Environment, values);
  const error = Value.Errors(Environment, read)[0];
  if (error) {
    const key = error.instancePath.slice(1) as Key;
    throw new ConfigError(key, problem(Environment.properties[key], error.keyword, env[key] ?? ''));
  }
  return read as Environment;
}

/** Integers and booleans read strictly: text that is neither stays text, and fails the check. */
function fromText(schema: TSchema, text: string): unknown {
  if (Type.IsInteger(schema)) return /^\d+$/.test(text) ? Number(text) : text;
  if (Type.IsBoolean(schema)) return BOOLEAN_WORDS[text] ?? text;
  return text;
}

type VariableSchema = TSchema & Annotations & { minimum?: number; maximum?: number; minLength?: number };

const BOOLEAN_WORDS: Record<string, boolean> = { true: true, '1': true, false: false, '0': false };

/** What the schema allows, in words, for the check that failed. */
function problem(schema: VariableSchema, keyword: string, text: string): string {
  const { minimum, maximum, minLength, secret, expected } = schema;
  const got = secret ? '' : `, got "${text}"`;
  if (Type.IsInteger(schema)) return `must be an integer from ${minimum} to ${maximum}${got}`;
  if (Type.IsBoolean(schema)) return `must be true or false${got}`;
  if (Type.IsEnum(schema)) return `must be one of ${schema.enum.join(', ')}${got}`;
  if (keyword === 'minLength') return `must be at least ${minLength} characters`;
  return `must be ${expected ?? 'valid'}${got}`;
}

function storeConfig(url: string): StoreConfig {
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
  if (!value) return localUrl(host, port);
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

function defaultCountry(code: string | undefined): string | undefined {
  // Shaped like a country (the schema checked that) but unknown to libphonenumber: every national
  // number would fail to parse.
  if (code !== undefined && !isSupportedCountry(code)) {
    throw new ConfigError('VEIL_DEFAULT_COUNTRY', `must be an ISO country code like US, got "${code}"`);
  }
  return code;
}

function outOfSession(value: string, production: boolean): OutOfSession {
  if (value.startsWith('forward:')) return { action: 'forward', to: value.slice('forward:'.length) };
  if (value.startsWith('ask:')) {
    return { action: 'ask', url: hookUrl('VEIL_OUT_OF_SESSION', value.slice('ask:'.length), production) };
  }
  return { action: 'reject' };
}

/**
 * The URL of one of the app's webhooks, which are sent real numbers: https in production (http
 * only in development, for an app on the same machine). The value is not echoed: a URL may carry
 * a token.
 */
function hookUrl(key: string, value: string, production: boolean): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(key, 'is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(key, 'must be an https:// URL');
  }
  if (production && url.protocol !== 'https:') {
    throw new ConfigError(key, 'must be an https:// URL in production: it is sent real numbers');
  }
  // fetch refuses such a URL at the first call; say so at start instead.
  if (url.username || url.password) throw new ConfigError(key, 'must not carry a user name or password');
  return value;
}

function twilioConfig(e: Environment): Config['twilio'] {
  const accountSid = e.TWILIO_ACCOUNT_SID;
  const authToken = e.TWILIO_AUTH_TOKEN;
  if (!accountSid && !authToken) return undefined;
  if (!accountSid) {
    throw new ConfigError('TWILIO_ACCOUNT_SID', 'is required when TWILIO_AUTH_TOKEN is set');
  }
  if (!authToken) throw new ConfigError('TWILIO_AUTH_TOKEN', 'is required when TWILIO_ACCOUNT_SID is set');
  return { accountSid, authToken };
}

/** The Vonage variables that enable it, all or none, in the order a message names the missing one. */
const VONAGE_CREDENTIALS = ['VONAGE_API_KEY', 'VONAGE_API_SECRET', 'VONAGE_SIGNATURE_SECRET'] as const;

function vonageConfig(e: Environment, production: boolean): Config['vonage'] {
  const given = VONAGE_CREDENTIALS.filter((key) => e[key]);
  if (given.length === 0) return undefined;
  const missing = VONAGE_CREDENTIALS.find((key) => !e[key]);
  if (missing)
    throw new ConfigError(
      missing,
      `is required when ${given.join(' and ')} ${given.length > 1 ? 'are' : 'is'} set`,
    );
  return {
    apiKey: e.VONAGE_API_KEY as string,
    apiSecret: e.VONAGE_API_SECRET as string,
    signatureSecret: e.VONAGE_SIGNATURE_SECRET as string,
    apiUrl: vonageApiUrl(e.VONAGE_API_URL, production),
  };
}

/**
 * The REST API's base URL. Every request to it carries the API secret, so in production it is
 * https, but for a loopback host (a local relay or a test double).
 */
function vonageApiUrl(value: string, production: boolean): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError('VONAGE_API_URL', `is not a URL, got "${value}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError('VONAGE_API_URL', 'must be an https:// URL');
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (production && url.protocol !== 'https:' && !loopback) {
    throw new ConfigError(
      'VONAGE_API_URL',
      'must be an https:// URL in production: it is sent the API secret',
    );
  }
  if (url.username || url.password) {
    throw new ConfigError('VONAGE_API_URL', 'must not carry a user name or password');
  }
  if (url.search || url.hash) throw new ConfigError('VONAGE_API_URL', 'must not carry a query or fragment');
  return value.replace(/\/+$/, '');
}
