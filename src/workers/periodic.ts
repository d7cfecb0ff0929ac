import type { Logger } from '../logger.ts';

/** A worker started by startPeriodic: `stop()` ends its timer and waits for a pass in progress. */
export interface Periodic {
  stop(): Promise<void>;
}

/**
 * Runs `pass` every `intervalMs` (and at once when `now`), never two at a time: a tick that finds
 * a pass still running is skipped. A pass that throws is logged as `what` failed, and the next tick
 * tries again. The timer does not keep the process alive.
 */
export function startPeriodic(
  what: string,
  pass: () => Promise<unknown>,
  logger: Logger,
  intervalMs: number,
  options: { now?: boolean } = {},
): Periodic {
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= pass()
      .then(
        () => undefined,
        (error: unknown) => logger.error({ err: error }, `${what} failed; will try again`),
      )
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(run, intervalMs);
  timer.unref();
  if (options.now) run();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
