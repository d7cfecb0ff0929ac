import type { Logger } from '../logger.ts';
import type { BindingService } from '../services/bindings.ts';
import { startPeriodic } from './periodic.ts';

/**
 * Makes and undoes remote bindings (services/bindings.ts) every `intervalMs`, from start; nothing
 * runs when no remote-binding carrier is enabled. Safe on every instance at once: each try is
 * claimed by a guarded update of the binding's version.
 */
export function startBindingWorker(bindings: BindingService, logger: Logger, intervalMs: number) {
  if (!bindings.working) return undefined;
  return startPeriodic('binding worker', () => bindings.pass(), logger, intervalMs, { now: true });
}
