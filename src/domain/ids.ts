import { randomBytes } from 'node:crypto';

let lastMs = 0;
let counter = 0;

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
  return `${prefix}_${time}${seq}${randomBytes(6).toString('hex')}`;
}
