import type { Logger } from '../logger.ts';
import type { ProviderService } from '../services/providers.ts';
import { startPeriodic } from './periodic.ts';

/**
 * Tries the carriers found down again every `intervalMs` (services/providers.ts), so that one
 * recovers with no traffic once its wait is over. Off at 0.
 */
export function startProviderProbe(providers: ProviderService, logger: Logger, intervalMs: number) {
  if (intervalMs <= 0) return undefined;
  return startPeriodic('carrier probe', () => providers.probe(), logger, intervalMs);
}
