import { ConfigError } from '../config.ts';
import { maskNumbersInText } from '../domain/phone.ts';
import {
  BUDGET_WINDOW_MS,
  purchaseSize,
  type ReplenishPolicy,
  type ReplenishRule,
  scopeName,
} from '../domain/replenish.ts';
import { DEFAULT_TENANT } from '../domain/tenants.ts';
import type { Logger } from '../logger.ts';
import type { CarrierAdapter } from '../providers/carrier.ts';
import { MAX_PURCHASE } from '../providers/procurement.ts';
import { poolCarriers } from '../providers/registry.ts';
import { appendEvent } from '../store/events.ts';
import { NumberRepository } from '../store/numbers.ts';
import { PurchaseRepository } from '../store/purchases.ts';
import { changeSetting, claimLease, releaseLease } from '../store/settings.ts';
import type { Store } from '../store/store.ts';
import type { ProcurementService } from './procurement.ts';

/** Held by the instance checking the pool; longer than a pass may take (purchases included). */
const LEASE_KEY = 'replenish.lease';
const LEASE_MS = 10 * 60_000;

/** What a check found for one scope, and what it did. */
export interface ScopeReport {
  scope: string;
  free: number;
  minFree: number;
  low: boolean;
  /** Numbers bought into the scope by this check. */
  bought: number;
  /** Why it bought fewer than it needed, if it did. */
  problem?: string;
}

/** The payload of a `pool.low` event. */
export interface PoolLow {
  scope: string;
  country: string;
  region: string | null;
  free: number;
  minFree: number;
  /** The carrier buying more, or null when the rule only alerts. */
  provider: string | null;
  /** Numbers this check set out to buy. */
  buying: number;
  /** What the replenisher may still buy in the budget's 30 days. */
  budgetLeft: number;
}

/**
 * Watches the pool's free numbers against the configured low-water marks (VEIL_REPLENISH): a scope
 * that falls below its mark gets one `pool.low` event (written with the change of its state, so
 * once per fall, however many instances check), and, when its rule names a carrier, whole batches
 * of numbers bought through that carrier within the budget. One instance checks at a time (a lease
 * in the settings table), so two never buy for the same shortfall. The pool of the installation's
 * own tenant is watched.
 */
export class Replenisher {
  constructor(
    private readonly store: Store,
    private readonly procurement: Pick<ProcurementService, 'buy'>,
    private readonly policy: ReplenishPolicy,
    /** The carriers whose numbers sessions get here: only theirs count as free. */
    private readonly carriers: ReadonlyMap<string, CarrierAdapter>,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  get watching(): boolean {
    return this.policy.rules.length > 0;
  }

  /** Checks every scope once; undefined when another instance is checking now. */
  async check(): Promise<ScopeReport[] | undefined> {
    if (!this.watching) return [];
    const lease = await claimLease(this.store.db, LEASE_KEY, this.clock(), LEASE_MS);
    if (!lease) return undefined;
    try {
      const reports: ScopeReport[] = [];
      for (const rule of this.policy.rules) reports.push(await this.checkScope(rule));
      return reports;
    } finally {
      await releaseLease(this.store.db, LEASE_KEY, lease);
    }
  }

  private async checkScope(rule: ReplenishRule): Promise<ScopeReport> {
    const scope = scopeName(rule);
    const stateKey = `pool.low:${DEFAULT_TENANT}:${scope}`;
    const free = await new NumberRepository(this.store.db).free(
      DEFAULT_TENANT,
      rule,
      poolCarriers(this.carriers),
    );
    const report: ScopeReport = { scope, free, minFree: rule.minFree, low: free < rule.minFree, bought: 0 };
    if (!report.low) {
      if (await changeSetting(this.store.db, stateKey, 'ok')) {
        this.logger.info({ scope, free, minFree: rule.minFree }, 'the pool is above its low-water mark');
      }
      return report;
    }

    const budgetLeft = await this.budgetLeft();
    const buying = purchaseSize(rule, free, this.policy, budgetLeft, MAX_PURCHASE);
    const low: PoolLow = {
      scope,
      country: rule.country,
      region: rule.region ?? null,
      free,
      minFree: rule.minFree,
      provider: rule.provider ?? null,
      buying,
      budgetLeft,
    };
    const fell = await this.store.transaction(async (trx) => {
      if (!(await changeSetting(trx, stateKey, 'low'))) return false;
      await appendEvent(trx, DEFAULT_TENANT, 'pool.low', low, this.clock());
      return true;
    });
    if (fell) this.logger.warn(low, 'the pool is running low');
    if (rule.provider && buying === 0) {
      report.problem = `the replenisher's budget of ${this.policy.budget} numbers in 30 days is spent`;
      this.logger.error({ scope, free, minFree: rule.minFree }, report.problem);
    }
    if (buying === 0 || !rule.provider) return report;

    try {
      const result = await this.procurement.buy(DEFAULT_TENANT, {
        provider: rule.provider,
        country: rule.country,
        ...(rule.region ? { areaCode: rule.region } : {}),
        count: buying,
        origin: 'replenish',
      });
      report.bought = result.numbers.length;
      if (result.problem) report.problem = result.problem;
    } catch (error) {
      report.problem = maskNumbersInText(error instanceof Error ? error.message : String(error));
    }
    const log = {
      scope,
      provider: rule.provider,
      bought: report.bought,
      of: buying,
      problem: report.problem,
    };
    if (report.problem) this.logger.error(log, 'the replenisher could not buy all the numbers it needed');
    else this.logger.info(log, 'the replenisher bought numbers');
    return report;
  }

  /** Numbers the replenisher may still buy: its budget less what it bought in the last 30 days. */
  private async budgetLeft(): Promise<number> {
    const since = this.clock() - BUDGET_WINDOW_MS;
    const spent = await new PurchaseRepository(this.store.db).spent('replenish', since);
    return Math.max(0, this.policy.budget - spent);
  }
}

/** Refuses rules whose carrier cannot buy numbers here (not enabled, or no numbers API). */
export function checkReplenishRules(
  policy: ReplenishPolicy,
  carriers: ReadonlyMap<string, CarrierAdapter>,
): void {
  for (const rule of policy.rules) {
    if (rule.provider && !carriers.get(rule.provider)?.numbers) {
      throw new ConfigError(
        'VEIL_REPLENISH',
        `${scopeName(rule)} names ${rule.provider}, which ${poolCarriers(carriers).includes(rule.provider) ? 'cannot buy numbers through Veil' : 'is not enabled: its credentials are not configured'}`,
      );
    }
  }
}
