import type { Logger } from '../logger.ts';
import type { SessionService } from '../services/sessions.ts';

export const SWEEP_INTERVAL_MS = 5_000;

/**
 * Expires sessions past their expiry, releasing their proxies. Safe on every instance at once:
 * ending a session is a guarded update, so two sweepers never end one twice. Routing does not
 * wait for it (an expired session routes nothing from the moment it expires). A sweep that fails
 * is logged and the next interval tries again; `stop()` waits for a sweep in progress.
 */
export function startSweeper(
  sessions: Pick<SessionService, 'expireDue'>,
  logger: Logger,
  intervalMs = SWEEP_INTERVAL_MS,
) {
  let running: Promise<void> | undefined;
  const sweep = async () => {
    try {
      let ended: number;
      do {
        ended = await sessions.expireDue();
        if (ended > 0) logger.info({ ended }, 'expired sessions');
      } while (ended > 0);
    } catch (error) {
      logger.error({ err: error }, 'sweeper failed; will try again');
    }
  };
  const timer = setInterval(() => {
    running ??= sweep().finally(() => {
      running = undefined;
    });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
