import { ConfigError } from '../../config.ts';
import { type RunningServer, startServer } from '../../server.ts';
import { cliConfig } from '../core.ts';
import { CliError, EXIT, type Output } from '../output.ts';

/** `veil serve`: the server exactly as `npm start` runs it, until SIGTERM or SIGINT. */
export async function serve(out: Output): Promise<void> {
  const config = cliConfig();
  let server: RunningServer;
  try {
    server = await startServer(config);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new CliError(
      'failed_to_start',
      `failed to start: ${error instanceof Error ? error.message : error}`,
    );
  }
  const shutdown = async (signal: string) => {
    const { log } = server.app;
    log.info({ signal }, 'shutting down');
    try {
      await server.stop();
    } catch (error) {
      log.error({ err: error }, 'failed to stop cleanly');
      process.exit(EXIT.software);
    }
    log.info('stopped');
    process.exit(0);
  };
  // Before announcing: whoever reads "listening" may signal at once, and a signal with no
  // handler yet would kill the process without closing the database. Once only: a second signal
  // kills the process at once, for an operator who will not wait for the stop grace.
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  announce(server, out);
}

/** Where the server listens and, in development, the key to try it with: what `npm start` prints. */
export function announce(server: RunningServer, out: Output): void {
  const { url, developmentKey } = server;
  out.result({ url, docs: `${url}/docs`, ...(developmentKey ? { developmentKey } : {}) }, () => [
    `Veil is listening on ${url} (API docs at ${url}/docs)`,
    ...(developmentKey
      ? [
          `Development API key (new at every start): ${developmentKey}`,
          `  try: curl -H "Authorization: Bearer ${developmentKey}" ${url}/v1/numbers`,
        ]
      : []),
  ]);
}
