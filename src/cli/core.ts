import { type Config, loadConfig } from '../config.ts';
import type { Veil } from '../veil.ts';

/** The environment's configuration, read when a command runs (so `veil --help` works with a bad one). */
export function cliConfig(): Config {
  return loadConfig(process.env);
}

/**
 * Opens the core on the database of DATABASE_URL, runs `work` and closes it again, whether or not
 * the work succeeded. A running server on the same SQLite file is no obstacle (WAL, busy timeout).
 * Logs go to stderr, so that stdout holds only the command's result.
 */
export async function withVeil<T>(config: Config, work: (veil: Veil) => Promise<T>): Promise<T> {
  // Loaded only now: input refused before this point costs no database driver start-up.
  const [{ createVeil }, { createLogger }] = await Promise.all([
    import('../veil.ts'),
    import('../logger.ts'),
  ]);
  const veil = await createVeil(config, { logger: createLogger(config.logLevel, process.stderr) });
  try {
    return await work(veil);
  } finally {
    await veil.close();
  }
}
