import type { ActingKey } from '../domain/audit.ts';
import { NotFoundError } from '../domain/errors.ts';
import { FLAGS_UP, healthOf, type ProviderFlags, type ProviderHealth } from '../domain/providers.ts';
import { DEFAULT_TENANT } from '../domain/tenants.ts';
import type { Logger } from '../logger.ts';
import type { NumberProvider } from '../providers/procurement.ts';
import { recordAudit } from '../store/audit.ts';
import { appendEvent } from '../store/events.ts';
import { providerFlags, setProviderFlag } from '../store/providers.ts';
import type { Db } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { inTransaction } from '../store/transactions.ts';
import type { CarrierHealth } from './carrier-health.ts';

/** A carrier as `GET /v1/providers` shows it. */
export interface ProviderView {
  name: string;
  /** The operator's switch: false while downgraded, its numbers going to no new session. */
  enabled: boolean;
  health: ProviderHealth;
  /** Of its recent calls on this instance (API calls and webhooks): the share failed, 0 with none. */
  errorRate: number;
  /** The median time of its recent successful calls on this instance, in ms; null with none. */
  latencyMs: number | null;
  /** How many recent calls the two figures above are read from (at most 100). */
  calls: number;
}

/** A number looked up by the health probe: a read of the account that buys nothing. */
export const PROBE_NUMBER = '+15005550006';

/**
 * The enabled carriers as the operator sees and switches them: health from each instance's circuit
 * breakers (CarrierHealth) and the flags every instance shares (store/providers.ts). A carrier off
 * or down gives numbers to no new session (domain/providers.ts); each change writes
 * `provider.down` or `provider.up` with it.
 */
export class ProviderService {
  constructor(
    private readonly store: Store,
    /** Every enabled carrier's name, and its numbers API where it has one (probed). */
    private readonly carriers: ReadonlyMap<string, NumberProvider | undefined>,
    private readonly health: CarrierHealth,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  async list(): Promise<ProviderView[]> {
    const names = [...this.carriers.keys()];
    const flags = await providerFlags(this.store.db, names);
    return names.map((name) => this.view(name, flags.get(name) ?? FLAGS_UP));
  }

  /** The one-click downgrade (false) and its recovery (true). Setting it as it is changes nothing. */
  async setEnabled(name: string, enabled: boolean, by: ActingKey = null): Promise<ProviderView> {
    if (!this.carriers.has(name)) throw new NotFoundError('provider', name);
    await this.change(name, 'enabled', enabled, enabled ? 'enabled' : 'disabled', (trx, now) =>
      recordAudit(
        trx,
        {
          tenantId: DEFAULT_TENANT,
          keyId: by,
          action: enabled ? 'provider.enabled' : 'provider.disabled',
          targetId: name,
          detail: null,
        },
        now,
      ),
    );
    const flags = await providerFlags(this.store.db, [name]);
    return this.view(name, flags.get(name) ?? FLAGS_UP);
  }

  /**
   * Writes what an instance's circuit found: down (its calls failing) or up again. Called from the
   * breaker's events, so a failure here is logged, not thrown.
   */
  async markDown(name: string, down: boolean): Promise<void> {
    try {
      await this.change(name, 'down', down, down ? 'failing' : 'recovered');
      this.logger[down ? 'error' : 'info']({ provider: name }, down ? 'carrier down' : 'carrier up');
    } catch (error) {
      this.logger.error({ err: error, provider: name }, 'carrier health could not be written');
    }
  }

  /**
   * Tries each carrier found down (here, or by another instance) again: a lookup of one number
   * through its circuit, which buys nothing and is not made while the circuit's wait runs. A
   * success closes it and clears the shared finding. A carrier up is not probed: a deployment whose
   * carrier needs no API (Twilio answered by TwiML) may not reach that API at all, and its calls
   * still connect.
   */
  async probe(): Promise<void> {
    const flags = await providerFlags(this.store.db, [...this.carriers.keys()]);
    for (const [name, numbers] of this.carriers) {
      const down = flags.get(name)?.down ?? false;
      if (!numbers || (!down && this.health.circuit(name) === 'closed')) continue;
      try {
        await this.health.run(name, () => numbers.owned(PROBE_NUMBER));
      } catch {
        continue; // counted by the circuit; an open circuit is tried when its wait is over
      }
      if (down && this.health.circuit(name) === 'closed') await this.markDown(name, false);
    }
  }

  private async change(
    name: string,
    flag: keyof ProviderFlags,
    value: boolean,
    reason: string,
    /** What else the change writes in its transaction (the operator's audit entry). */
    alsoWrite?: (trx: Db, now: number) => Promise<void>,
  ): Promise<void> {
    await inTransaction(this.store, async (trx) => {
      if (!(await setProviderFlag(trx, name, flag, value))) return;
      await alsoWrite?.(trx, this.clock());
      const up = flag === 'enabled' ? value : !value;
      await appendEvent(
        trx,
        DEFAULT_TENANT,
        up ? 'provider.up' : 'provider.down',
        { provider: name, reason },
        this.clock(),
      );
    });
  }

  private view(name: string, flags: ProviderFlags): ProviderView {
    const stats = this.health.stats(name);
    return {
      name,
      enabled: flags.enabled,
      health: healthOf(this.health.circuit(name), stats.errorRate, flags.down),
      errorRate: Math.round(stats.errorRate * 1000) / 1000,
      latencyMs: stats.latencyMs,
      calls: stats.calls,
    };
  }
}
