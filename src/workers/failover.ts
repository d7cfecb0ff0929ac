import type { Logger } from '../logger.ts';
import type { Failover } from '../services/failover.ts';
import { startPeriodic } from './periodic.ts';

/**
 * Looks every `intervalMs` for open sessions on carriers down or switched off and moves them to
 * carriers in use (services/failover.ts). A pass with no carrier down reads one settings row per
 * carrier and stops. Off at 0.
 */
export function startFailover(failover: Failover, logger: Logger, intervalMs: number) {
  if (intervalMs <= 0) return undefined;
  return startPeriodic('failover', () => failover.pass(), logger, intervalMs);
}
