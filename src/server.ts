import type { FastifyInstance } from 'fastify';
import { type Config, ConfigError, localUrl } from './config.ts';
import { seedDemoPool } from './demo.ts';
import { buildApp, HTTP_TIMEOUTS, type HttpTimeouts } from './http/app.ts';
import { createLogger, type Logger } from './logger.ts';
import type { OrderConsumer } from './services/order-events.ts';
import { createVeil, type Veil } from './veil.ts';
import { startBindingWorker } from './workers/binding.ts';
import { startFailover } from './workers/failover.ts';
import { startOutboxWorker } from './workers/outbox.ts';
import type { Periodic } from './workers/periodic.ts';
import { startProcurementWorker, startReplenisher } from './workers/procurement.ts';
import { startProviderProbe } from './workers/providers.ts';
import { startRetention } from './workers/retention.ts';
import { startSweeper } from './workers/sweeper.ts';

/** How long a stop lets requests in flight finish before it cuts their connections. */
export const STOP_GRACE_MS = 10_000;

/** While stopping, how long a connection whose answer went out may stay idle (Node adds a second). */
const STOP_KEEP_ALIVE_MS = 500;

/** For tests: shorter timeouts and grace than production's. */
export interface ServerOptions {
  timeouts?: HttpTimeouts;
  stopGraceMs?: number;
}

export interface RunningServer {
  app: FastifyInstance;
  veil: Veil;
  url: string;
  /** The development key printed at start, when one was generated. */
  developmentKey?: string;
  /**
   * Stops gracefully, within the stop grace: no new connection is accepted, every request already
   * read is answered, idle connections are closed; then the core closes (flushing the interaction log).
   */
  stop(): Promise<void>;
}

/**
 * Starts Veil as `npm start` and `veil serve` do: database, keys, demo pool, workers, HTTP. In
 * production it refuses (a ConfigError naming VEIL_API_KEY) to start when no unrevoked key would
 * let anyone in; whenever it fails, it leaves nothing open or running behind.
 */
export async function startServer(
  config: Config,
  { timeouts = HTTP_TIMEOUTS, stopGraceMs = STOP_GRACE_MS }: ServerOptions = {},
): Promise<RunningServer> {
  // Readable by a person in development on a terminal; JSON lines otherwise (a collector reads them).
  const logger = createLogger(config.logLevel, process.stdout, {
    pretty: !config.production && process.stdout.isTTY === true,
  });
  const veil = await createVeil(config, { logger, sessionThread: true });
  let developmentKey: string | undefined;
  let app: FastifyInstance | undefined;
  // The background workers, each stopped (its pass in progress awaited) with the server.
  const workers: (Periodic | undefined)[] = [];
  const stopWorkers = () => Promise.all(workers.map((w) => w?.stop()));
  try {
    if (config.apiKey) await veil.keys.ensureBootstrap(config.apiKey);
    if (config.production && !(await veil.keys.hasUsableKey())) throw noWayIn(config);
    developmentKey =
      !config.production && !config.apiKey ? await veil.keys.rotateDevelopmentKey() : undefined;
    if (config.demoPool) {
      const seeded = await seedDemoPool(veil);
      if (seeded > 0) logger.info({ numbers: seeded }, 'seeded the demo pool of simulator numbers');
    }
    app = await buildApp(veil, logger, timeouts);
    workers.push(
      startSweeper(veil.sessions, logger, undefined, veil.replays),
      startProcurementWorker(veil.procurement, logger),
      startReplenisher(veil.replenisher, logger, config.replenish.intervalMs),
      startBindingWorker(veil.bindings, logger, config.binding.intervalMs),
      startProviderProbe(veil.providers, logger, config.health.probeIntervalMs),
      startFailover(veil.failover, logger, config.health.failoverIntervalMs),
      startOutboxWorker(veil.outbox, logger, config.outbox.intervalMs),
      startRetention(veil.retention, logger),
      ...(await startOrderConsumers(veil, logger)),
    );
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    // The port is taken, say: leave nothing running or open behind (the session writer thread
    // would keep the process alive).
    await stopWorkers();
    await app?.close();
    await veil.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = localUrl(config.host, port);
  let stopping: Promise<void> | undefined;
  return {
    app,
    veil,
    url,
    developmentKey,
    stop() {
      stopping ??= (async () => {
        await Promise.all([stopWorkers(), closeHttp(app, stopGraceMs)]);
        await veil.close();
      })();
      return stopping;
    },
  };
}

/**
 * Closes HTTP within `graceMs`: stop listening, close idle connections, answer the requests in
 * flight and close each connection once idle; what is left when the grace ends is cut.
 */
async function closeHttp(app: FastifyInstance, graceMs: number): Promise<void> {
  // Node closes the connections idle when close begins; one that goes idle later (its answer sent)
  // would stay open until the keep-alive timeout. Its client gets a moment to send one last request
  // (answered with `Connection: close`): closed sooner, it might send it just as the connection
  // closes, and have it reset unanswered.
  app.server.keepAliveTimeout = STOP_KEEP_ALIVE_MS;
  const cut = setTimeout(() => {
    app.log.warn('requests still in flight after the stop grace; closing their connections');
    app.server.closeAllConnections();
  }, graceMs);
  try {
    await app.close();
  } finally {
    clearTimeout(cut);
  }
}

/**
 * The consumers of order events the configuration asks for (NATS JetStream, Kafka), each reported
 * by /readyz while it cannot consume, and no longer once stopped.
 */
async function startOrderConsumers(veil: Veil, logger: Logger): Promise<OrderConsumer[]> {
  const { nats, kafka } = veil.config.orders;
  // Each broker's client is loaded only when its broker is configured.
  const consumers: OrderConsumer[] = [];
  if (nats)
    consumers.push((await import('./workers/nats-orders.ts')).startNatsOrders(veil.orders, logger, nats));
  if (kafka)
    consumers.push((await import('./workers/kafka-orders.ts')).startKafkaOrders(veil.orders, logger, kafka));
  return consumers.map((consumer) => {
    const unwatch = veil.watch(consumer);
    return {
      unready: () => consumer.unready(),
      stop: () => consumer.stop().finally(unwatch),
    };
  });
}

/** Why production will not start: with no usable key, nothing could be managed through the API. */
function noWayIn(config: Config): ConfigError {
  return new ConfigError(
    'VEIL_API_KEY',
    config.apiKey
      ? 'this key was revoked and no other API key is usable; set VEIL_API_KEY to a new secret (at least 16 characters)'
      : 'is required in production while no usable API key is stored; set it to a secret of at least 16 characters (it becomes the admin key)',
  );
}
