import type { Logger } from '../logger.ts';
import type { ProcurementService } from '../services/procurement.ts';
import type { Replenisher } from '../services/replenisher.ts';
import { startPeriodic } from './periodic.ts';

export const PROCUREMENT_INTERVAL_MS = 60_000;

/**
 * Settles interrupted purchases and gives retired bought numbers back to their carriers: once at
 * start, then every interval. Safe on every instance at once: each purchase is claimed by a guarded
 * update.
 */
export function startProcurementWorker(
  procurement: Pick<ProcurementService, 'settle' | 'releaseRetired'>,
  logger: Logger,
  intervalMs = PROCUREMENT_INTERVAL_MS,
) {
  const pass = async () => {
    await procurement.settle();
    await procurement.releaseRetired();
  };
  return startPeriodic('procurement worker', pass, logger, intervalMs, { now: true });
}

/**
 * Checks the pool against its low-water marks (VEIL_REPLENISH) once at start, then every
 * `intervalMs`; nothing runs when no rule is configured. Safe on every instance at once: one holds
 * the check's lease at a time.
 */
export function startReplenisher(replenisher: Replenisher, logger: Logger, intervalMs: number) {
  if (!replenisher.watching) return undefined;
  return startPeriodic('replenisher', () => replenisher.check(), logger, intervalMs, { now: true });
}
