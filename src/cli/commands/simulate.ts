import { randomBytes } from 'node:crypto';
import type { Config } from '../../config.ts';
import { InvalidRequestError } from '../../domain/errors.ts';
import { maskNumber, parsePhone } from '../../domain/phone.ts';
import type { RouteDecision } from '../../domain/routing.ts';
import type { Channel } from '../../domain/session.ts';
import { signSimRequest } from '../../providers/sim/sim-adapter.ts';
import { cliConfig } from '../core.ts';
import { CliError, EXIT, type Output } from '../output.ts';

/** How long to wait for the server's answer; a routing decision takes milliseconds. */
const TIMEOUT_MS = 10_000;

export interface SimulateOptions {
  from: string;
  to: string;
  body?: string;
  /** The extension keyed, when the number asked for one. */
  digits?: string;
  url?: string;
}

/**
 * `veil call` and `veil sms`: a call or text on the simulator carrier, sent to the running server
 * as the carrier would send it (a webhook signed with the simulator's secret), and the routing
 * decision the server answered.
 */
export async function simulate(channel: Channel, options: SimulateOptions, out: Output): Promise<void> {
  const config = cliConfig();
  const from = parsePhone(options.from, '--from', config.defaultCountry).e164;
  const to = parsePhone(options.to, '--to', config.defaultCountry).e164;
  const base = baseUrl(options.url ?? config.publicUrl);
  const secret = config.simWebhookSecret ?? (await databaseSimSecret(config));
  const secretSource = config.simWebhookSecret
    ? 'SIM_WEBHOOK_SECRET'
    : `the secret stored in ${databaseName(config)}`;
  const callId = `sim-${randomBytes(8).toString('hex')}`;
  const digits = options.digits !== undefined ? { digits: options.digits } : {};
  const rawBody = JSON.stringify(
    channel === 'sms' ? { from, to, body: options.body ?? '', callId } : { from, to, callId, ...digits },
  );
  const url = `${base}/webhooks/sim/${channel === 'voice' ? 'voice' : 'sms'}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signSimRequest(secret, rawBody) },
      body: rawBody,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    throw new CliError(
      'unreachable',
      `cannot reach the Veil server at ${base} (${reason(error)}); start it with \`veil serve\`, or point --url at it`,
      EXIT.unavailable,
    );
  }
  const text = await response.text();
  if (response.status === 403) {
    throw new CliError(
      'forbidden',
      `the server at ${base} refused the simulator signature (403): ${secretSource} is not the server’s`,
      EXIT.forbidden,
    );
  }
  if (!response.ok) {
    throw new CliError(
      'server_error',
      `the server at ${base} answered ${response.status}: ${errorMessage(text)}`,
      response.status >= 500 ? EXIT.unavailable : EXIT.failed,
    );
  }
  let decision: RouteDecision;
  try {
    decision = JSON.parse(text) as RouteDecision;
  } catch {
    throw new CliError('server_error', `the server at ${base} answered something other than JSON`);
  }
  out.result(decision, () => describeDecision(decision));
}

/**
 * The decision in plain words. The number reached is masked: the operator typed the caller and
 * the proxy, not the person at the other end. The caller id shown is a proxy number, or the
 * caller's own number when their session reveals it: either way one the operator already has.
 */
export function describeDecision(decision: RouteDecision): string {
  const where = decision.sessionId ? `session ${decision.sessionId}` : 'out of session';
  switch (decision.action) {
    case 'connect':
      return `connect → ${maskNumber(decision.to)} showing ${decision.callerId} (${where})`;
    case 'forward':
      return `forward → ${maskNumber(decision.to)} from ${decision.from}: ${JSON.stringify(decision.body)} (${where})`;
    case 'gather':
      return `gather: the caller is asked for a ${decision.numDigits}-digit extension (call again with --digits)`;
    case 'reject':
      return `reject (${decision.reason}${decision.sessionId ? `, session ${decision.sessionId}` : ''})`;
  }
}

/**
 * The secret the server keeps in its database when SIM_WEBHOOK_SECRET is not set; when there is
 * none (or no database yet), an error saying how to get one.
 */
async function databaseSimSecret(config: Config): Promise<string> {
  // Loaded here: with SIM_WEBHOOK_SECRET set, `veil call` needs no database driver at all.
  const { storedSimSecret } = await import('../../services/sim-secret.ts');
  const secret = await storedSimSecret(config);
  if (!secret) {
    throw new CliError(
      'no_simulator_secret',
      `no simulator secret: set SIM_WEBHOOK_SECRET, or run the server once on ${databaseName(config)} so that it stores one`,
    );
  }
  return secret;
}

/** The database as an operator knows it; a PostgreSQL URL is not repeated (it may hold a password). */
function databaseName(config: Config): string {
  return config.store.dialect === 'sqlite' ? config.store.file : 'the database of DATABASE_URL';
}

function baseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidRequestError('--url must be a URL such as http://127.0.0.1:3000', 'url');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidRequestError('--url must be http:// or https://', 'url');
  }
  return text.replace(/\/+$/, '');
}

/** Why fetch failed, in the system's words (ECONNREFUSED, ENOTFOUND) where it gives them. */
function reason(error: unknown): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return `no answer within ${TIMEOUT_MS / 1000} s`;
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(error);
}

function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: string } };
    if (parsed.error?.message) return parsed.error.message;
  } catch {
    // not the API's error shape: show the start of what came back
  }
  return body.slice(0, 200) || 'an empty answer';
}
