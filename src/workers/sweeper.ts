import type { Logger } from '../logger.ts';
import type { ReplayGuard } from '../services/replay-guard.ts';
import type { SessionService } from '../services/sessions.ts';
import { startPeriodic } from './periodic.ts';

export const SWEEP_INTERVAL_MS = 5_000;

/**
 * Expires sessions past their expiry, releasing their proxies, and removes the receipts of carrier
 * webhooks a carrier would now refuse as stale (`replays`). Safe on every instance at once:
 * ending a session is a guarded update, so two sweepers never end one twice, and a receipt goes
 * once. Routing does not wait for it (an expired session routes nothing from the moment it expires).
 */
export function startSweeper(
  sessions: Pick<SessionService, 'expireDue'>,
  logger: Logger,
  intervalMs = SWEEP_INTERVAL_MS,
  replays?: Pick<ReplayGuard, 'prune'>,
) {
  const sweep = async () => {
    let ended: number;
    do {
      ended = await sessions.expireDue();
      if (ended > 0) logger.info({ ended }, 'expired sessions');
    } while (ended > 0);
    await replays?.prune();
  };
  return startPeriodic('sweeper', sweep, logger, intervalMs);
}
