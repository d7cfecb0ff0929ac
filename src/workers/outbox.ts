import type { Logger } from '../logger.ts';
import type { Outbox } from '../services/outbox.ts';
import { startPeriodic } from './periodic.ts';

/**
 * Delivers the outbox's events to the app's webhook endpoints once at start, then every
 * `intervalMs`. Safe on every instance at once: each delivery is claimed under a lease.
 */
export function startOutboxWorker(outbox: Outbox, logger: Logger, intervalMs: number) {
  return startPeriodic('webhook outbox', () => outbox.pass(), logger, intervalMs, { now: true });
}
