import type { Logger } from '../logger.ts';
import type { ProcurementService } from '../services/procurement.ts';

export const PROCUREMENT_INTERVAL_MS = 60_000;

/**
 * Settles interrupted purchases and gives retired bought numbers back to their carriers: once at
 * start, then every interval. Safe on every instance at once: each purchase is claimed by a guarded
 * update. A pass that fails is logged and the next one tries again; `stop()` waits for a pass in
 * progress.
 */
export function startProcurementWorker(
  procurement: Pick<ProcurementService, 'settle' | 'releaseRetired'>,
  logger: Logger,
  intervalMs = PROCUREMENT_INTERVAL_MS,
) {
  let running: Promise<void> | undefined;
  const pass = async () => {
    try {
      await procurement.settle();
      await procurement.releaseRetired();
    } catch (error) {
      logger.error({ err: error }, 'procurement worker failed; will try again');
    }
  };
  const run = () => {
    running ??= pass().finally(() => {
      running = undefined;
    });
  };
  const timer = setInterval(run, intervalMs);
  timer.unref();
  run();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
