import type { Logger } from '../logger.ts';
import type { Retention } from '../services/retention.ts';
import { startPeriodic } from './periodic.ts';

/** How often what outlived the retention period is looked for. */
export const RETENTION_INTERVAL_MS = 60_000;

/** Purges data past its retention (services/retention.ts) every minute; off when retention is. */
export function startRetention(retention: Retention, logger: Logger, intervalMs = RETENTION_INTERVAL_MS) {
  if (!retention.enabled) return undefined;
  return startPeriodic('retention', () => retention.pass(), logger, intervalMs, { now: true });
}
