import type { Logger } from '../logger.ts';
import type { ProviderService } from '../services/providers.ts';
import { startPeriodic } from './periodic.ts';

/**
 * Probes every carrier with a numbers API every `intervalMs` (services/providers.ts): an outage is
 * found with no traffic, and a carrier found down is tried again once its wait is over. Off at 0.
 */
export function startProviderProbe(providers: ProviderService, logger: Logger, intervalMs: number) {
  if (intervalMs <= 0) return undefined;
  return startPeriodic('carrier probe', () => providers.probe(), logger, intervalMs);
}
