import { bindsRemotely } from '../domain/binding.ts';
import { InvalidRequestError, PoolExhaustedError, UnavailableError, VeilError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import { maskNumber, maskNumbersInText } from '../domain/phone.ts';
import type { PoolNumber } from '../domain/pool.ts';
import type { Logger } from '../logger.ts';
import type { CarrierAdapter } from '../providers/carrier.ts';
import {
  MAX_PURCHASE,
  type NumberProvider,
  type OwnedNumber,
  ProcurementError,
} from '../providers/procurement.ts';
import { SIP_EDGE } from '../providers/registry.ts';
import { asUniqueViolation } from '../store/errors.ts';
import { NumberRepository } from '../store/numbers.ts';
import { type Purchase, PurchaseRepository } from '../store/purchases.ts';
import type { PurchaseOrigin } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { inTransaction } from '../store/transactions.ts';
import type { CarrierHealth } from './carrier-health.ts';
import type { NumberService } from './numbers.ts';

/**
 * How long a purchase may stay `buying` before it is settled by asking the carrier. Longer than any
 * carrier call may take (their clients time out well within it), so an intent this old belongs to
 * no purchase still running, on this instance or another: asked too soon, the carrier could still
 * be buying the number, and dropping the intent then would lose it.
 */
export const SETTLE_AFTER_MS = 120_000;
/** Tries to give a retired number back before giving up (and logging an error). */
export const MAX_RELEASE_ATTEMPTS = 5;

/**
 * A purchase: `count` numbers of `provider` in `country`, in `areaCode` when given, asked for by an
 * operator (`import`, the default) or by the replenisher.
 */
export interface PurchaseOrder {
  provider: string;
  country: string;
  areaCode?: string;
  count: number;
  origin?: PurchaseOrigin;
}

/** What a purchase added to the pool, of how many asked, and why it stopped short, if it did. */
export interface PurchaseResult {
  numbers: PoolNumber[];
  requested: number;
  problem?: string;
}

/** For tests: what runs between the carrier's answer and the pool's insert (a crash, injected). */
export interface ProcurementHooks {
  afterBuy?(number: string): Promise<void> | void;
}

/**
 * Buying numbers through a carrier's API into the pool, and giving retired ones back. Every purchase
 * is journalled (the purchases table): an intent is written before the carrier is asked, and turns
 * `bought` in the transaction that adds the number to the pool. An intent left `buying` (a crash in
 * between, an answer lost) is settled later by asking the carrier whether the account owns the
 * number: owned, it joins the pool; not, the intent is dropped. So no number is bought and lost,
 * and none is bought twice.
 */
export class ProcurementService {
  constructor(
    private readonly store: Store,
    private readonly numbers: NumberService,
    private readonly carriers: ReadonlyMap<string, CarrierAdapter>,
    /** Providers whose numbers may join the pool (the simulator's not in production). */
    private readonly accepted: readonly string[],
    private readonly logger: Logger,
    /** Each carrier's circuit: its numbers API is called through it. */
    private readonly health: CarrierHealth,
    private readonly clock: () => number = Date.now,
    private readonly hooks: ProcurementHooks = {},
  ) {}

  /** Carrier `provider`'s numbers API, called through its circuit; undefined when it has none. */
  private api(provider: string): NumberProvider | undefined {
    const numbers = this.carriers.get(provider)?.numbers;
    return numbers && this.health.guard(provider, numbers);
  }

  /**
   * Buys up to `order.count` numbers, adding each to the pool as soon as it is bought; `onBought`
   * hears of each. Bad input is an InvalidRequestError and buys nothing. When the carrier has none,
   * or fails before the first purchase, nothing is added and the error says so (503); when it fails
   * later, what was bought is kept and the result says why it stopped.
   */
  async buy(
    tenantId: string,
    order: PurchaseOrder,
    onBought?: (n: PoolNumber, done: number, requested: number) => void,
  ): Promise<PurchaseResult> {
    const api = this.check(order);
    const { provider, country, areaCode, count } = order;
    await this.settle(provider);
    const where = `${country}${areaCode ? ` area code ${areaCode}` : ''}`;
    let offers: Awaited<ReturnType<NumberProvider['search']>>;
    try {
      offers = await api.search({ country, areaCode, count, taken: (list) => this.taken(list) });
    } catch (error) {
      if (error instanceof VeilError) throw error; // the search itself was refused (the simulator's ranges)
      throw this.unavailable(error, `${provider} did not answer the search for numbers in ${where}`);
    }

    const added: PoolNumber[] = [];
    let problem: string | undefined;
    let failure: string | undefined;
    for (const offer of offers) {
      if (added.length === count) break;
      const intent = await this.intend(tenantId, order, offer.number, offer.capabilities);
      if (!intent) continue; // another purchase has it
      let owned: OwnedNumber;
      try {
        owned = await api.buy(offer.number);
      } catch (error) {
        failure = await this.failed(intent, error);
        break;
      }
      await this.hooks.afterBuy?.(offer.number);
      const n = await this.record(intent, owned);
      if (!n) continue;
      added.push(n);
      this.logger.info({ provider, number: maskNumber(n.number), id: n.id }, 'bought a number into the pool');
      onBought?.(n, added.length, count);
    }
    if (failure) {
      if (added.length === 0) throw new UnavailableError(failure);
      problem = `${failure}; bought ${added.length} of the ${count} numbers asked for`;
    } else if (added.length < count) {
      problem = `${provider} had ${added.length === 0 ? 'no' : `only ${added.length} of the ${count}`} numbers for sale in ${where}`;
      if (added.length === 0) throw new PoolExhaustedError(problem);
    }
    return { numbers: added, requested: count, ...(problem ? { problem } : {}) };
  }

  /**
   * Settles purchases left `buying` for longer than SETTLE_AFTER_MS (all providers', or one's):
   * owned at the carrier, the number joins the pool; not, the intent is dropped. A carrier that
   * cannot answer now leaves its intents for the next time. Safe on every instance at once.
   */
  async settle(provider?: string): Promise<{ added: number; dropped: number }> {
    const due = await new PurchaseRepository(this.store.db).unsettled(
      this.clock() - SETTLE_AFTER_MS,
      provider,
    );
    const result = { added: 0, dropped: 0 };
    for (const p of due) {
      const api = this.api(p.provider);
      if (!api) continue; // not enabled here: settled where it is
      try {
        const owned = await api.owned(p.number);
        if (owned) {
          if (await this.record(p, owned)) result.added++;
        } else if (await this.store.transaction((trx) => new PurchaseRepository(trx).drop(p.id))) {
          result.dropped++;
        }
        this.logger.warn(
          { provider: p.provider, number: maskNumber(p.number), owned: owned !== undefined },
          owned ? 'an interrupted purchase was completed' : 'an interrupted purchase bought nothing; dropped',
        );
      } catch (error) {
        this.logger.warn(
          { provider: p.provider, number: maskNumber(p.number), err: describe(error) },
          'could not settle an interrupted purchase; will try again',
        );
      }
    }
    return result;
  }

  /**
   * Gives back to their carriers the bought numbers that retired (a drain that ended with its last
   * session), and retries those whose release failed or was interrupted. Returns how many went back.
   */
  async releaseRetired(): Promise<number> {
    const due = await new PurchaseRepository(this.store.db).retired(this.clock() - SETTLE_AFTER_MS);
    let released = 0;
    for (const p of due) if (await this.release(p)) released++;
    return released;
  }

  /** Gives `n` back to its carrier if Veil bought it; a failure is logged, the number stays retired. */
  async releaseNumber(n: PoolNumber): Promise<void> {
    try {
      const p = await new PurchaseRepository(this.store.db).bought(n.number);
      if (p) await this.release(p);
    } catch (error) {
      this.logger.error(
        { provider: n.provider, number: maskNumber(n.number), err: describe(error) },
        'could not release a retired number at its carrier',
      );
    }
  }

  private check(order: PurchaseOrder): NumberProvider {
    const { provider, country, areaCode, count } = order;
    if (!Number.isInteger(count) || count < 1 || count > MAX_PURCHASE) {
      throw new InvalidRequestError(`count must be a whole number from 1 to ${MAX_PURCHASE}`, 'count');
    }
    const buyers = this.accepted.filter((name) => this.carriers.get(name)?.numbers);
    if (!this.accepted.includes(provider)) {
      throw new InvalidRequestError(
        `provider must be one of ${buyers.join(', ')}${provider === 'sim' ? ' (the simulator’s numbers reach nobody: refused in production)' : ''}`,
        'provider',
      );
    }
    if (bindsRemotely(provider)) {
      throw new InvalidRequestError(
        `provider ${provider} binds numbers at the carrier and cannot buy them through Veil: buy them in its console and add them with POST /v1/numbers`,
        'provider',
      );
    }
    if (provider === SIP_EDGE) {
      throw new InvalidRequestError(
        'provider sip: the numbers of a SIP trunk are the DIDs its provider gives you; add them with POST /v1/numbers',
        'provider',
      );
    }
    const api = this.api(provider);
    if (!this.carriers.has(provider)) {
      throw new InvalidRequestError(
        `provider ${provider} is not enabled: its credentials are not configured`,
        'provider',
      );
    }
    if (!api) {
      throw new InvalidRequestError(
        `provider ${provider} cannot buy numbers through Veil yet; buyers here: ${buyers.join(', ')}`,
        'provider',
      );
    }
    if (!/^[A-Z]{2}$/.test(country)) {
      throw new InvalidRequestError('country must be an ISO country code such as US', 'country');
    }
    if (areaCode !== undefined && !/^\d{1,6}$/.test(areaCode)) {
      throw new InvalidRequestError('areaCode must be digits, such as 415', 'areaCode');
    }
    return api;
  }

  /** Which of `list` Veil holds already or is buying: never offered again. */
  private async taken(list: readonly string[]): Promise<ReadonlySet<string>> {
    const [pool, buying] = await Promise.all([
      this.numbers.inPool(list),
      new PurchaseRepository(this.store.db).held(list),
    ]);
    return new Set([...pool, ...buying]);
  }

  /** Writes the intent to buy `number`; undefined when another purchase holds it. */
  private async intend(
    tenantId: string,
    { provider, origin = 'import' }: PurchaseOrder,
    number: string,
    capabilities: Purchase['capabilities'],
  ): Promise<Purchase | undefined> {
    const now = this.clock();
    const intent: Purchase = {
      id: newId('pur', now),
      tenantId,
      provider,
      number,
      status: 'buying',
      carrierRef: null,
      capabilities,
      releaseAttempts: 0,
      origin,
      createdAt: now,
      updatedAt: now,
    };
    try {
      await this.store.transaction((trx) => new PurchaseRepository(trx).insert(intent));
      return intent;
    } catch (error) {
      if (asUniqueViolation(error)) return undefined;
      throw error;
    }
  }

  /**
   * Adds a bought number to the pool and marks its purchase bought, in one transaction. Undefined
   * when it was recorded already (settled by another instance), or when the number is in the pool
   * already (added by hand meanwhile): then the purchase is only marked bought.
   */
  private record(p: Purchase, owned: OwnedNumber): Promise<PoolNumber | undefined> {
    return inTransaction(this.store, async (trx) => {
      const journal = new PurchaseRepository(trx);
      const current = await journal.get(p.id);
      if (current?.status === 'bought') return undefined;
      const now = this.clock();
      const mark = async () => {
        if (current) await journal.move(p.id, 'buying', 'bought', now, { carrierRef: owned.ref });
        // Dropped meanwhile, by a settle that asked before the carrier's purchase went through.
        else await journal.insert({ ...p, status: 'bought', carrierRef: owned.ref, updatedAt: now });
      };
      const existing = await new NumberRepository(trx).findByNumber(p.number);
      if (existing && existing.status !== 'retired') {
        await mark();
        return undefined;
      }
      const capabilities = owned.capabilities.length > 0 ? owned.capabilities : p.capabilities;
      const n = await this.numbers.addIn(trx, p.tenantId, {
        number: p.number,
        provider: p.provider,
        ...(capabilities.length > 0 ? { capabilities } : {}),
      });
      await mark();
      return n;
    });
  }

  /**
   * A purchase the carrier did not confirm: when it said no, the intent is dropped; when its answer
   * is unknown (no answer, a server error), the intent stays for settle() to ask about later.
   */
  private async failed(intent: Purchase, error: unknown): Promise<string> {
    const refused = error instanceof ProcurementError && error.nothingBought;
    if (refused) await this.store.transaction((trx) => new PurchaseRepository(trx).drop(intent.id));
    this.logger.warn(
      { provider: intent.provider, number: maskNumber(intent.number), err: describe(error) },
      refused ? 'the carrier refused a purchase' : 'a purchase went unanswered; it will be settled later',
    );
    return `${intent.provider} ${refused ? 'refused a purchase' : 'did not confirm a purchase (checked again later)'}: ${describe(error)}`;
  }

  /** Claims the release of a purchase, gives the number back, and records how that went. */
  private async release(p: Purchase): Promise<boolean> {
    const now = this.clock();
    const claimed = await this.store.transaction((trx) =>
      new PurchaseRepository(trx).move(p.id, p.status, 'releasing', now, { seen: p.updatedAt }),
    );
    if (!claimed) return false; // another instance is at it
    const where = { provider: p.provider, number: maskNumber(p.number) };
    try {
      const api = this.api(p.provider);
      if (!api) throw new ProcurementError(`provider ${p.provider} is not enabled here`);
      const ref = p.carrierRef ?? (await api.owned(p.number))?.ref;
      if (ref) await api.release({ number: p.number, ref, capabilities: p.capabilities });
      await this.store.transaction((trx) =>
        new PurchaseRepository(trx).move(p.id, 'releasing', 'released', this.clock()),
      );
      this.logger.info(where, 'released a retired number at its carrier');
      return true;
    } catch (error) {
      const attempts = p.releaseAttempts + 1;
      const giveUp = attempts >= MAX_RELEASE_ATTEMPTS;
      await this.store.transaction((trx) =>
        new PurchaseRepository(trx).move(
          p.id,
          'releasing',
          giveUp ? 'release_failed' : 'bought',
          this.clock(),
          {
            releaseAttempts: attempts,
          },
        ),
      );
      const log = { ...where, attempts, err: describe(error) };
      if (giveUp) this.logger.error(log, 'gave up releasing a retired number at its carrier');
      else this.logger.warn(log, 'could not release a retired number at its carrier; will try again');
      return false;
    }
  }

  private unavailable(error: unknown, what: string): Error {
    this.logger.warn({ err: describe(error) }, what);
    return new UnavailableError(`${what}: ${describe(error)}`);
  }
}

/** An error's message, masked: carriers' messages may quote the number. */
function describe(error: unknown): string {
  return maskNumbersInText(error instanceof Error ? error.message : String(error));
}
