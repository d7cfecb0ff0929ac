import type { Config } from './config.ts';
import { EXTENSION_DIGITS } from './domain/session.ts';
import { DEFAULT_TENANT } from './domain/tenants.ts';
import type { Logger } from './logger.ts';
import type { Binder } from './providers/binder.ts';
import type { CarrierAdapter } from './providers/carrier.ts';
import { acceptedProviders, createBinders, createCarriers, enabledProviders } from './providers/registry.ts';
import { createRouteHooks } from './services/app-hooks.ts';
import { AuditService } from './services/audit.ts';
import { BindingService } from './services/bindings.ts';
import { BlocklistService } from './services/blocklist.ts';
import { CarrierHealth } from './services/carrier-health.ts';
import { loadDataKeys } from './services/data-keys.ts';
import { Failover } from './services/failover.ts';
import { KeyService } from './services/keys.ts';
import { NumberService } from './services/numbers.ts';
import { OrderEvents } from './services/order-events.ts';
import { Outbox } from './services/outbox.ts';
import { type ProcurementHooks, ProcurementService } from './services/procurement.ts';
import { ProviderService } from './services/providers.ts';
import { ReplayGuard } from './services/replay-guard.ts';
import { checkReplenishRules, Replenisher } from './services/replenisher.ts';
import { Retention } from './services/retention.ts';
import { Router } from './services/routing.ts';
import { startSessionThread } from './services/session-thread.ts';
import { type SessionWriter, StoreSessionWriter } from './services/session-writer.ts';
import { SessionService } from './services/sessions.ts';
import { ensureSimSecret } from './services/sim-secret.ts';
import { TenantService } from './services/tenants.ts';
import { WebhookService } from './services/webhooks.ts';
import { BlocklistRepository } from './store/blocklist.ts';
import { InteractionLog } from './store/interactions.ts';
import { RouteLookup } from './store/route-lookup.ts';
import { openStore, ping, type Store } from './store/store.ts';
import type { Thread } from './thread.ts';

/** The core: one store and the services over it, shared by the HTTP server, the CLI and the workers. */
export interface Veil {
  config: Config;
  store: Store;
  sessions: SessionService;
  numbers: NumberService;
  /** Buying numbers through carriers' APIs, and giving retired ones back. */
  procurement: ProcurementService;
  /** Keeps the pool above its low-water marks (VEIL_REPLENISH): `pool.low`, and numbers bought. */
  replenisher: Replenisher;
  blocklist: BlocklistService;
  /** The app's webhook endpoints and the event log. */
  webhooks: WebhookService;
  /** Delivers the events to the app's webhook endpoints (its worker: workers/outbox.ts). */
  outbox: Outbox;
  router: Router;
  /** Carries out each signed carrier webhook once: the same request again is refused. */
  replays: ReplayGuard;
  keys: KeyService;
  /** The installation's tenants (managed by its admin). */
  tenants: TenantService;
  /** The admin actions' log. */
  audit: AuditService;
  carriers: Map<string, CarrierAdapter>;
  /** The enabled remote-binding carriers (Alibaba PNS): they connect calls themselves. */
  binders: Map<string, Binder>;
  /** The carriers as the operator sees and switches them (GET/PATCH /v1/providers). */
  providers: ProviderService;
  /** Each carrier's circuit and recent calls, on this instance. */
  health: CarrierHealth;
  /** Moves open sessions off carriers down or switched off (its worker: workers/failover.ts). */
  failover: Failover;
  /** Purges what outlived VEIL_RETENTION_DAYS (its worker: workers/retention.ts). */
  retention: Retention;
  /** Makes and undoes sessions' bindings at those carriers (the binding worker's passes). */
  bindings: BindingService;
  interactions: InteractionLog;
  /** Order events from a broker, carried out on the installation's sessions (workers/*-orders.ts). */
  orders: OrderEvents;
  /** The session writer thread, when the sessions' writes run on one (a SQLite file, in the server). */
  sessionThread?: Thread<SessionWriter>;
  /** Why this instance cannot serve (what /readyz answers with a 503), or undefined when it can. */
  unready(): Promise<string | undefined>;
  /** What does not work now though the instance serves: the watched parts' reasons (/readyz lists them). */
  degraded(): string[];
  /**
   * Lists `part`'s reason under /readyz's `degraded` while it gives one (an order-event broker out
   * of reach, say); returns what undoes it. Such a part never makes the instance unready: calls
   * and the API do not need it, and every instance shares it, so a balancer taking instances out
   * for it would take them all.
   */
  watch(part: ReadinessPart): () => void;
  /** Flushes the interaction log and closes the database. */
  close(): Promise<void>;
}

/** A part of the instance outside the core that can keep it from serving (see Veil.watch). */
export interface ReadinessPart {
  /** Why it cannot work now, named for an operator (`NATS ...`), or undefined when it can. */
  unready(): string | undefined;
}

export interface VeilOptions {
  logger: Logger;
  clock?: () => number;
  /** For tests: the randomness of the outbox's retry jitter. */
  random?: () => number;
  /** For tests: a PostgreSQL schema to use instead of the default search_path. */
  schema?: string;
  /** For tests: most PostgreSQL connections (several instances share one server's limit). */
  poolSize?: number;
  /**
   * On a SQLite file, run the sessions' writes on a thread of their own (services/session-thread.ts),
   * as the server does. A short-lived process (the CLI) writes in its own thread.
   */
  sessionThread?: boolean;
  /** For tests: a crash injected between a carrier's purchase and the pool's insert. */
  procurementHooks?: ProcurementHooks;
}

export async function createVeil(config: Config, options: VeilOptions): Promise<Veil> {
  const { logger } = options;
  const clock = options.clock ?? Date.now;
  const keys = loadDataKeys(config.dataKeys, logger);
  const store = await openStore(config.store, {
    keys,
    schema: options.schema,
    poolSize: options.poolSize,
    onBackgroundError: (error) => logger.error({ err: error }, 'SQLite background thread failed'),
  });
  // The simulator's secret is kept in the database when not configured, so `veil call` can sign too.
  const simSecret = config.simWebhookSecret ?? (await ensureSimSecret(store.db));
  const interactions = new InteractionLog(store, (error, dropped) =>
    logger.error({ err: error, dropped }, 'interaction log write failed; will retry'),
  );
  const carriers = await createCarriers(config, simSecret);
  const binders = await createBinders(config);
  try {
    checkReplenishRules(config.replenish, carriers);
  } catch (error) {
    await store.close();
    throw error;
  }
  const hooks = await createRouteHooks(config, store, logger);
  // Every carrier whose numbers sessions get, the SIP edge always (it needs no credentials).
  const names = enabledProviders(carriers, binders);
  // Each carrier's circuit tells the providers when it goes down or comes back, which writes it.
  const health = new CarrierHealth(names, config.health, (name, down) => void providers.markDown(name, down));
  const providers = new ProviderService(
    store,
    new Map(names.map((name) => [name, carriers.get(name)?.numbers])),
    health,
    logger,
    clock,
  );
  const allocation = {
    reuseCooldownSeconds: config.reuseCooldownSeconds,
    carriers: names,
    weights: config.carrierWeights,
  };
  // Started last, once nothing else here can fail: a thread left running would keep the process alive.
  const thread =
    options.sessionThread && config.store.dialect === 'sqlite' && config.store.file !== ':memory:'
      ? await startSessionThread({ store: config.store, keys, allocation }, (error) =>
          logger.error({ err: error }, 'session writer thread failed'),
        )
      : undefined;
  const writer = thread?.api ?? new StoreSessionWriter(store, allocation);
  const sessions = new SessionService(
    store,
    interactions,
    writer,
    {
      ttlSeconds: config.defaultTtlSeconds,
      defaultCountry: config.defaultCountry,
      extensionFallback: config.extensionFallback,
    },
    clock,
    config.limits.sessionsPerMinute,
  );
  const router = new Router(
    new RouteLookup(store),
    new BlocklistRepository(store.reader),
    interactions,
    {
      outOfSession: config.outOfSession,
      callbackWindowSeconds: config.callbackWindowSeconds,
      gather: { numDigits: EXTENSION_DIGITS, prompt: config.gatherPrompt, message: config.gather },
      rejectMessage: config.rejectMessage,
      callsPerSessionHour: config.limits.callsPerSessionHour,
    },
    clock,
    hooks,
  );
  const accepted = acceptedProviders(config);
  // Each knows the other: a number retired is given back to its carrier if Veil bought it.
  const numbers: NumberService = new NumberService(store, accepted, config.defaultCountry, clock, (n) =>
    procurement.releaseNumber(n),
  );
  const procurement = new ProcurementService(
    store,
    numbers,
    carriers,
    accepted,
    logger,
    health,
    clock,
    options.procurementHooks,
  );
  const replenisher = new Replenisher(store, procurement, config.replenish, carriers, logger, clock);
  const watched = new Set<ReadinessPart>();
  return {
    config,
    store,
    sessions,
    numbers,
    procurement,
    replenisher,
    blocklist: new BlocklistService(store, config.defaultCountry, clock),
    webhooks: new WebhookService(store, config.production, clock),
    outbox: new Outbox(store, config.outbox, logger, clock, options.random),
    router,
    replays: new ReplayGuard(store, interactions, clock),
    keys: new KeyService(store, clock),
    tenants: new TenantService(store, clock),
    audit: new AuditService(store),
    carriers,
    binders,
    providers,
    failover: new Failover(store, writer, names, logger, clock),
    retention: new Retention(store, config.retentionDays * 86_400_000, logger, clock),
    health,
    bindings: new BindingService(store, guardedBinders(binders, health), logger, {
      maxAttempts: config.binding.maxAttempts,
      clock,
    }),
    interactions,
    // The installation's own tenant: a broker's messages carry no API key to name another.
    orders: new OrderEvents(sessions, { tenantId: DEFAULT_TENANT, defaultCountry: config.defaultCountry }),
    sessionThread: thread,
    async unready() {
      if (!(await ping(store))) return 'database unreachable';
      return store.unready() ?? thread?.failure;
    },
    degraded() {
      return [...watched].flatMap((part) => part.unready() ?? []);
    },
    watch(part) {
      watched.add(part);
      return () => watched.delete(part);
    },
    async close() {
      await thread?.stop();
      await interactions.close();
      await store.close();
    },
  };
}

/** The remote-binding carriers, each one's calls through its circuit. */
function guardedBinders(binders: ReadonlyMap<string, Binder>, health: CarrierHealth): Map<string, Binder> {
  return new Map([...binders].map(([name, binder]) => [name, health.guardBinder(binder)]));
}
