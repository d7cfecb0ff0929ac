import { randomBytes } from 'node:crypto';

let lastMs = 0;
let counter = 0;

// Random bytes drawn in bulk: one randomBytes call per id costs more than the rest of newId.
const POOL_BYTES = 6 * 1024;
let pool = randomBytes(POOL_BYTES);
let offset = 0;

function random6(): string {
  if (offset + 6 > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  offset += 6;
  return pool.toString('hex', offset - 6, offset);
}

/**
 * A prefixed id that sorts by creation time (`ses_0193c1f2a4b0_9f3a...`): 12 hex digits of
 * milliseconds, 4 of a per-millisecond counter, then 12 random hex digits. Lists page on it.
 */
export function newId(prefix: string, now = Date.now()): string {
  if (now === lastMs) counter++;
  else {
    lastMs = now;
    counter = 0;
  }
  const time = now.toString(16).padStart(12, '0');
  const seq = (counter & 0xffff).toString(16).padStart(4, '0');
  return `${prefix}_${time}${seq}${random6()}`;
}

/** A random secret (an API key, the simulator's signing secret): 24 random bytes, base64url. */
export function generateSecret(prefix = ''): string {
  return prefix + randomBytes(24).toString('base64url');
}

/**
 * A Standard Webhooks signing secret: `whsec_` and 32 random bytes in standard base64 (the form
 * the `standardwebhooks` packages of every language read).
 */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/**
 * The least id `newId(prefix, ms)` can make: every id of that prefix made before `ms` sorts below
 * it, so a primary key finds the rows older than a moment with no index of their time.
 */
export function firstIdAt(prefix: string, ms: number): string {
  return `${prefix}_${Math.max(0, ms).toString(16).padStart(12, '0')}`;
}
