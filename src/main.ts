import { ConfigError, loadConfig } from './config.ts';
import { startServer } from './server.ts';

/** `npm start`: validate the environment, start the server, print where it is, stop cleanly. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`veil: bad configuration: ${error.message}`);
      process.exit(78);
    }
    throw error;
  }
  const server = await startServer(config);
  console.log(`Veil is listening on ${server.url} (API docs at ${server.url}/docs)`);
  if (server.developmentKey) {
    console.log(`Development API key (new at every start): ${server.developmentKey}`);
    console.log(`  try: curl -H "Authorization: Bearer ${server.developmentKey}" ${server.url}/v1/numbers`);
  }
  const shutdown = async (signal: string) => {
    server.app.log.info({ signal }, 'shutting down');
    await server.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error) => {
  console.error('veil: failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
