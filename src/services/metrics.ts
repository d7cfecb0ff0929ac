import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { FLAGS_UP, healthOf } from '../domain/providers.ts';
import { scopeName } from '../domain/replenish.ts';
import type { RouteDecision } from '../domain/routing.ts';
import type { Channel } from '../domain/session.ts';
import { DEFAULT_TENANT } from '../domain/tenants.ts';
import { enabledProviders, poolCarriers } from '../providers/registry.ts';
import { type BindingCensus, type BindingOperation, BindingRepository } from '../store/bindings.ts';
import { NumberRepository } from '../store/numbers.ts';
import { providerFlags } from '../store/providers.ts';
import { SessionRepository } from '../store/sessions.ts';
import { outboxBacklog } from '../store/webhooks.ts';
import type { Veil } from '../veil.ts';

/** The circuit states a carrier's `veil_provider_circuit_state` names, one of them 1. */
const CIRCUIT_STATES = ['closed', 'open', 'half-open'] as const;

const BINDING_OPERATIONS: readonly BindingOperation[] = ['bind', 'unbind'];

/**
 * The route-latency histogram's buckets, in seconds: a route answered from the reader takes a
 * fraction of a millisecond, one that asks the app's webhook (out-of-session `ask`, intercept)
 * up to its 3 s timeout.
 */
export const ROUTE_SECONDS_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/**
 * What became of a carrier webhook: handled (`accepted`), refused for its signature
 * (`refused_signature`) or as a replay of a request already taken (`replay`), the carrier's own
 * retry of one answered again from its receipt (`retried`), refused as malformed (`invalid`: a
 * 4xx such as a wrong media type), or failed here (`error`: a 5xx).
 */
export type WebhookResult = 'accepted' | 'refused_signature' | 'replay' | 'retried' | 'invalid' | 'error';

/** One series of a Tally: its labels, and its count so far. */
interface Tallied {
  labels: Record<string, string>;
  count: number;
}
type TallyNode = Map<string, TallyNode | Tallied>;

/**
 * Counts by label values kept as plain numbers, for the routing path: a count is a few map
 * lookups and an increment, where prom-client's `inc` hashes and checks its labels on every call.
 * The counter shows the counts when Prometheus scrapes (`publish`, from its collect). Only for
 * label values from a closed set: every tuple seen is kept for ever.
 */
class Tally {
  private readonly root: TallyNode = new Map();
  private readonly series: Tallied[] = [];

  constructor(private readonly names: readonly string[]) {}

  /** Counts one of `values`, one per label name, in order. */
  count(...values: string[]): void {
    let node = this.root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      const value = values[i] as string;
      let next = node.get(value) as TallyNode | undefined;
      if (!next) {
        next = new Map();
        node.set(value, next);
      }
      node = next;
    }
    const leaf = values[last] as string;
    let tallied = node.get(leaf) as Tallied | undefined;
    if (!tallied) {
      tallied = {
        labels: Object.fromEntries(this.names.map((name, i) => [name, values[i] as string])),
        count: 0,
      };
      node.set(leaf, tallied);
      this.series.push(tallied);
    }
    tallied.count++;
  }

  /** Sets the counter to the counts. */
  publish(counter: Counter): void {
    counter.reset();
    for (const { labels, count } of this.series) counter.inc(labels, count);
  }
}

let processMetrics: Registry | undefined;

/**
 * The process's own metrics (CPU, memory, event loop lag, GC: prom-client's defaults, under their
 * usual names), in a registry of their own made once per process: they describe the process, not
 * an app, and their collectors (an event-loop monitor, a GC observer) are better not started again
 * for every app a test builds. Not prom-client's global registry, which nothing here uses.
 */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

/**
 * Runs `read` once for all the collects of one scrape: prom-client starts every metric's collect
 * together, so those showing the same rows share one read instead of each querying.
 */
function oncePerScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | undefined;
  return () => {
    inFlight ??= read().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
}

/**
 * What `GET /metrics` shows (Prometheus text): the state the alert rules in
 * deploy/prometheus/alerts.yml and the Grafana board in deploy/grafana watch, what this instance
 * did, and the process's own metrics. The state is read from the store when Prometheus scrapes
 * (prom-client `collect` callbacks): a few aggregate reads, each over an index whose entries are
 * the rows it counts (the pool, the open sessions, the pending and failed bindings, the outbox's
 * backlog), on the store's reader, which on SQLite never waits for the writer nor holds it up.
 * What this instance did is counted as it happens: routing decisions and their time and carrier
 * webhooks by the request's one onResponse hook (http/request-log.ts), sessions and allocations
 * by the session service (session-counters.ts).
 *
 * Every Veil instance sharing a database shows the same store-wide figures (aggregate them across
 * instances with `max`), and its own counts and carriers' circuits (aggregate with `sum`). No label
 * carries a real number nor an unbounded value: the pool is counted by carrier, country and
 * region, decisions by action and reason. Each app has its own registry, so several apps in one
 * process (tests) do not collide.
 */
export class Metrics {
  readonly registry = new Registry();

  constructor(
    veil: Pick<
      Veil,
      | 'store'
      | 'health'
      | 'carriers'
      | 'binders'
      | 'config'
      | 'failover'
      | 'sessions'
      | 'sessionThread'
      | 'degraded'
    >,
  ) {
    const { store, health, failover } = veil;
    const reader = store.reader;
    // Every enabled carrier, as GET /v1/providers lists them.
    const carriers = enabledProviders(veil.carriers, veil.binders);
    // The carriers whose numbers the replenisher counts as free (services/replenisher.ts).
    const poolCarrierNames = poolCarriers(veil.carriers);
    const rules = veil.config.replenish.rules;
    const registers = [this.registry];

    const providers = oncePerScrape(async () => {
      const flags = await providerFlags(reader, carriers);
      return carriers.map((name) => {
        const f = flags.get(name) ?? FLAGS_UP;
        const circuit = health.circuit(name);
        const { errorRate } = health.stats(name);
        return { name, enabled: f.enabled, up: healthOf(circuit, errorRate, f.down) !== 'down', circuit };
      });
    });
    new Gauge({
      name: 'veil_provider_enabled',
      help: "1 while the carrier is switched on, 0 while the operator's downgrade (PATCH /v1/providers) keeps it out of new sessions",
      labelNames: ['provider'],
      registers,
      async collect() {
        this.reset();
        for (const p of await providers()) this.set({ provider: p.name }, p.enabled ? 1 : 0);
      },
    });
    new Gauge({
      name: 'veil_provider_up',
      help: 'Carrier health: 0 while it is down (its calls failing, on this instance or as another found), else 1',
      labelNames: ['provider'],
      registers,
      async collect() {
        this.reset();
        for (const p of await providers()) this.set({ provider: p.name }, p.up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'veil_provider_circuit_state',
      help: "The carrier's circuit breaker on this instance: 1 for its state (closed, open, half-open), 0 for the others",
      labelNames: ['provider', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const p of await providers()) {
          for (const state of CIRCUIT_STATES)
            this.set({ provider: p.name, state }, p.circuit === state ? 1 : 0);
        }
      },
    });

    const pool = oncePerScrape(() => new NumberRepository(reader).census(DEFAULT_TENANT));
    new Gauge({
      name: 'veil_pool_numbers',
      help: "Numbers in the installation's pool by carrier, country, region and status (active, draining); retired ones not",
      labelNames: ['provider', 'country', 'region', 'status'],
      registers,
      async collect() {
        this.reset();
        for (const { provider, country, region, active, draining } of await pool()) {
          this.set({ provider, country, region, status: 'active' }, active);
          this.set({ provider, country, region, status: 'draining' }, draining);
        }
      },
    });
    new Gauge({
      name: 'veil_pool_free_numbers',
      help: 'Active numbers that can take another session (owned by no dedicated session, under their cap), by carrier, country and region',
      labelNames: ['provider', 'country', 'region'],
      registers,
      async collect() {
        this.reset();
        for (const { provider, country, region, free } of await pool()) {
          this.set({ provider, country, region }, free);
        }
      },
    });
    new Gauge({
      name: 'veil_pool_scope_free_numbers',
      help: 'Free numbers in each scope of VEIL_REPLENISH, counted as the replenisher counts them before it writes pool.low',
      labelNames: ['scope'],
      registers,
      async collect() {
        this.reset();
        const numbers = new NumberRepository(reader);
        for (const rule of rules) {
          this.set({ scope: scopeName(rule) }, await numbers.free(DEFAULT_TENANT, rule, poolCarrierNames));
        }
      },
    });
    new Gauge({
      name: 'veil_pool_scope_min_free_numbers',
      help: "Each VEIL_REPLENISH scope's low-water mark: fewer free numbers than this is pool.low",
      labelNames: ['scope'],
      registers,
      collect() {
        this.reset();
        for (const rule of rules) this.set({ scope: scopeName(rule) }, rule.minFree);
      },
    });

    new Gauge({
      name: 'veil_degraded_parts',
      help: 'Parts of this instance that do not work now though it serves, as /readyz lists them under degraded (an order-event consumer cut off from its broker)',
      registers,
      collect() {
        this.set(veil.degraded().length);
      },
    });

    const bindings = oncePerScrape(() => new BindingRepository(reader).census());
    const bindingGauges: [string, keyof BindingCensus, string][] = [
      [
        'veil_bindings_pending',
        'pending',
        'Sessions whose binding at a remote-binding carrier waits for the worker: to bind, or to unbind once the session ended',
      ],
      [
        'veil_bindings_retrying',
        'retrying',
        'Of the pending bindings, those whose last try failed and that wait out a backoff',
      ],
      [
        'veil_bindings_failed',
        'failed',
        'Sessions whose binding was given up after every try (binding.failed): bind (the open session routes nothing) or unbind (left at the carrier until it expires)',
      ],
    ];
    for (const [name, part, help] of bindingGauges) {
      new Gauge({
        name,
        help,
        labelNames: ['operation'],
        registers,
        async collect() {
          const counts = (await bindings())[part];
          for (const operation of BINDING_OPERATIONS) this.set({ operation }, counts[operation]);
        },
      });
    }

    new Gauge({
      name: 'veil_failover_stranded_sessions',
      help: "Open sessions on a carrier down or switched off that this instance's last failover pass could not move: no number of a carrier in use fits them",
      registers,
      collect() {
        this.set(failover.stranded);
      },
    });

    const outbox = oncePerScrape(() => outboxBacklog(reader));
    new Gauge({
      name: 'veil_outbox_pending_deliveries',
      help: "Deliveries of events to the app's webhook endpoints not yet made: due, or waiting out a retry",
      registers,
      async collect() {
        this.set((await outbox()).pending);
      },
    });
    new Gauge({
      name: 'veil_outbox_oldest_undelivered_timestamp_seconds',
      help: 'When the oldest event still owed to a webhook endpoint was made (unix seconds); the time of the scrape when none is owed, so time() minus this is the outbox lag',
      registers,
      async collect() {
        const { oldestCreatedAt } = await outbox();
        this.set((oldestCreatedAt ?? Date.now()) / 1000);
      },
    });
    new Gauge({
      name: 'veil_outbox_dead_deliveries',
      help: 'Dead letters: deliveries given up after their last attempt (VEIL_WEBHOOK_MAX_ATTEMPTS), to endpoints not deleted, until redelivered',
      registers,
      async collect() {
        this.set((await outbox()).dead);
      },
    });

    for (const counter of veil.sessions.counters.all) this.registry.registerMetric(counter);
    new Gauge({
      name: 'veil_sessions_open',
      help: 'Sessions open and not yet past their expiry, of every tenant',
      registers,
      async collect() {
        this.set(await new SessionRepository(reader).countOpen(Date.now()));
      },
    });

    const { sessionThread } = veil;
    new Gauge({
      name: 'veil_sqlite_writer_queue',
      help: "SQLite writes waiting for the writer, the one running included: the group commit's units of work (group_commit), calls to the session writer thread (session_thread), interaction-log batches on the background thread (background). None on PostgreSQL",
      labelNames: ['writer'],
      registers,
      collect() {
        this.reset();
        if (store.writesWaiting) this.set({ writer: 'group_commit' }, store.writesWaiting());
        if (sessionThread) this.set({ writer: 'session_thread' }, sessionThread.pending);
        if (store.background) this.set({ writer: 'background' }, store.background.pending);
      },
    });

    const decisions = this.decisions;
    new Counter({
      name: 'veil_route_decisions_total',
      help: "Routing decisions this instance answered (POST /v1/route, carriers' voice and sms webhooks), by provider (api for /v1/route), channel, action and reason (none but for a reject)",
      labelNames: ['provider', 'channel', 'action', 'reason'],
      registers,
      collect() {
        decisions.publish(this);
      },
    });
    this.routeSeconds = new Histogram({
      name: 'veil_route_duration_seconds',
      help: 'Time from a routing request received to its decision answered, by provider (api for /v1/route)',
      labelNames: ['provider'],
      buckets: ROUTE_SECONDS_BUCKETS,
      registers,
    });
    const webhooks = this.webhooks;
    new Counter({
      name: 'veil_webhooks_total',
      help: 'Carrier webhooks answered by this instance, by carrier, path (voice, sms, status, recording) and result (accepted, refused_signature, replay, retried, invalid, error)',
      labelNames: ['provider', 'path', 'result'],
      registers,
      collect() {
        webhooks.publish(this);
      },
    });
  }

  private readonly decisions = new Tally(['provider', 'channel', 'action', 'reason']);
  private readonly webhooks = new Tally(['provider', 'path', 'result']);
  private readonly routeSeconds: Histogram;
  /** The histogram's series, one per provider, bound once. */
  private readonly routeSecondsOf = new Map<string, { observe(seconds: number): void }>();

  /**
   * Counts a routing decision and observes the time its request took (`ms`, as Fastify's
   * `elapsedTime` gives it). On the path of every call: a few map lookups, an increment and one
   * histogram observation.
   */
  routed(
    provider: string,
    channel: Channel,
    action: RouteDecision['action'],
    reason: string | null,
    ms: number,
  ): void {
    this.decisions.count(provider, channel, action, reason ?? 'none');
    let seconds = this.routeSecondsOf.get(provider);
    if (!seconds) {
      seconds = this.routeSeconds.labels(provider);
      this.routeSecondsOf.set(provider, seconds);
    }
    seconds.observe(ms / 1000);
  }

  /** Counts a carrier webhook answered. */
  webhook(provider: string, path: string, result: WebhookResult): void {
    this.webhooks.count(provider, path, result);
  }

  /** The exposition's content type (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text Prometheus scrapes: this app's metrics, then the process's. */
  render(): Promise<string> {
    return Registry.merge([this.registry, processRegistry()]).metrics();
  }
}
