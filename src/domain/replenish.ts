/**
 * Keeping the pool from running out: for each configured scope (a country, or one of its area
 * codes), how many numbers must stay free, and which carrier buys more when they do not.
 *
 * A number is **free** when it can take another ordinary session: active, owned by no dedicated
 * session, and under its cap (a number without a cap always is). That count is what a new session
 * in the scope can choose from; when it falls to zero, creates there fail with `pool_exhausted`.
 */
export interface ReplenishRule {
  country: string;
  /** The area code (a number's `region`); the whole country when absent. */
  region?: string;
  /** Fewer free numbers than this is low: `pool.low` is written, and the carrier buys. */
  minFree: number;
  /** The carrier that buys numbers for the scope; none: the rule only alerts. */
  provider?: string;
}

export interface ReplenishPolicy {
  rules: ReplenishRule[];
  /** Numbers are bought in multiples of this. */
  batch: number;
  /** The most numbers the replenisher may buy in any BUDGET_WINDOW_MS. */
  budget: number;
  /** How often the pool is checked. */
  intervalMs: number;
}

/** The budget is counted over the last 30 days: a number's price is monthly at every carrier. */
export const BUDGET_WINDOW_MS = 30 * 86_400_000;

/** How a scope is written in configuration, events and logs: `US` or `US/415`. */
export function scopeName(rule: Pick<ReplenishRule, 'country' | 'region'>): string {
  return rule.region ? `${rule.country}/${rule.region}` : rule.country;
}

/**
 * How many numbers to buy for a scope with `free` numbers free: whole batches enough to bring it
 * back to its minimum, within what the budget has left and what one purchase may ask for.
 */
export function purchaseSize(
  rule: ReplenishRule,
  free: number,
  policy: Pick<ReplenishPolicy, 'batch'>,
  budgetLeft: number,
  maxPurchase: number,
): number {
  const shortfall = rule.minFree - free;
  if (shortfall <= 0 || !rule.provider) return 0;
  const batches = Math.ceil(shortfall / policy.batch) * policy.batch;
  return Math.max(0, Math.min(batches, budgetLeft, maxPurchase));
}
