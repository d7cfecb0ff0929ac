import type { ActingKey } from '../domain/audit.ts';
import { ConflictError, InvalidRequestError, NotFoundError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import { type Page, pageOf } from '../domain/page.ts';
import { maskNumber, parsePhone } from '../domain/phone.ts';
import { assertStatusChange, type NumberStatus, type PoolNumber, retirementStatus } from '../domain/pool.ts';
import { CHANNELS, type Channel } from '../domain/session.ts';
import { type AuditRecord, recordAudit } from '../store/audit.ts';
import { asUniqueViolation } from '../store/errors.ts';
import { NumberRepository, type PoolCensus } from '../store/numbers.ts';
import type { Db } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { inTransaction } from '../store/transactions.ts';

export interface NumberInput {
  number: string;
  provider: string;
  capabilities?: Channel[];
  region?: string;
  tags?: Record<string, string>;
  maxSessions?: number | null;
}

export interface NumberChanges {
  tags?: Record<string, string>;
  maxSessions?: number | null;
  region?: string;
  capabilities?: Channel[];
  status?: NumberStatus;
}

/** What a change of a number tells the audit log. */
type NumberAudit = Pick<AuditRecord, 'action' | 'keyId' | 'detail'>;

/** The pool: adding, listing, changing and retiring proxy numbers. */
export class NumberService {
  constructor(
    private readonly store: Store,
    /** Providers whose numbers may join the pool. */
    private readonly providers: readonly string[],
    private readonly defaultCountry: string | undefined,
    private readonly clock: () => number = Date.now,
    /**
     * Told of each number this service retires (at once, or when its drain ends here), after the
     * change committed: procurement gives a bought number back to its carrier. Never throws.
     */
    private readonly onRetired: (n: PoolNumber) => Promise<void> = async () => {},
  ) {}

  async add(tenantId: string, input: NumberInput, by: ActingKey = null): Promise<PoolNumber> {
    const [added] = await this.insert(tenantId, [input], () => '', by);
    return added as PoolNumber;
  }

  /** Adds all the numbers or none: a duplicate or a bad entry names its index and adds nothing. */
  import(tenantId: string, inputs: NumberInput[], by: ActingKey = null): Promise<PoolNumber[]> {
    return this.insert(tenantId, inputs, (i) => `${i}/`, by);
  }

  /**
   * Adds one number within the caller's transaction (a purchase recorded with it), or puts a retired
   * one back; a number already in the pool is a ConflictError.
   */
  async addIn(trx: Db, tenantId: string, input: NumberInput): Promise<PoolNumber> {
    const n = this.build(tenantId, input, '', this.clock());
    await this.insertOne(new NumberRepository(trx), n, '');
    return n;
  }

  /** Which of `numbers` are in the pool (of any tenant) and not retired. */
  async inPool(numbers: readonly string[]): Promise<string[]> {
    return new NumberRepository(this.store.db).present(numbers);
  }

  /** `at(i)` is how errors name the entry: '' for a single number, `3/` for the fourth of an import. */
  private async insert(
    tenantId: string,
    inputs: NumberInput[],
    at: (i: number) => string,
    by: ActingKey,
  ): Promise<PoolNumber[]> {
    const now = this.clock();
    const numbers = inputs.map((input, i) => this.build(tenantId, input, at(i), now));
    const seen = new Set<string>();
    for (const [i, n] of numbers.entries()) {
      if (seen.has(n.number))
        throw new InvalidRequestError('the same number appears twice', `${at(i)}number`);
      seen.add(n.number);
    }
    return inTransaction(this.store, async (trx) => {
      const repo = new NumberRepository(trx);
      for (const [i, n] of numbers.entries()) {
        await this.insertOne(repo, n, at(i));
        await recordAudit(
          trx,
          {
            tenantId,
            keyId: by,
            action: 'number.added',
            targetId: n.id,
            detail: { number: maskNumber(n.number), provider: n.provider },
          },
          now,
        );
      }
      return numbers;
    });
  }

  private async insertOne(repo: NumberRepository, n: PoolNumber, at: string): Promise<void> {
    const existing = await repo.findByNumber(n.number);
    if (existing && existing.status !== 'retired') {
      throw new ConflictError(`${at ? `${at.slice(0, -1)}: ` : ''}number ${n.number} is already in the pool`);
    }
    try {
      if (existing) {
        n.id = existing.id;
        n.createdAt = existing.createdAt;
        await repo.reactivate(n);
      } else {
        await repo.insert(n);
      }
    } catch (error) {
      // Another request added the same number a moment ago.
      if (asUniqueViolation(error)) throw new ConflictError(`number ${n.number} is already in the pool`);
      throw error;
    }
  }

  private build(tenantId: string, input: NumberInput, field: string, now: number): PoolNumber {
    const phone = parsePhone(input.number, `${field}number`, this.defaultCountry);
    if (!this.providers.includes(input.provider)) {
      throw new InvalidRequestError(
        `provider must be one of ${this.providers.join(', ')}${input.provider === 'sim' ? ' (the simulator’s numbers reach nobody: refused in production)' : ''}`,
        `${field}provider`,
      );
    }
    return {
      id: newId('num', now),
      tenantId,
      number: phone.e164,
      provider: input.provider,
      country: phone.country,
      region: input.region ?? phone.region,
      capabilities: capabilities(input.capabilities, `${field}capabilities`),
      status: 'active',
      tags: input.tags ?? {},
      maxSessions: input.maxSessions ?? null,
      load: 0,
      dedicatedTo: null,
      createdAt: now,
      updatedAt: now,
    };
  }

  /** The tenant's pool number `number` (E.164), or undefined when the tenant has no such number. */
  async findByNumber(tenantId: string, number: string): Promise<PoolNumber | undefined> {
    const found = await new NumberRepository(this.store.db).findByNumber(number);
    return found?.tenantId === tenantId ? found : undefined;
  }

  async get(tenantId: string, id: string): Promise<PoolNumber> {
    const n = await new NumberRepository(this.store.db).get(tenantId, id);
    if (!n) throw new NotFoundError('number', id);
    return n;
  }

  async list(
    tenantId: string,
    query: { status?: NumberStatus; provider?: string; country?: string; cursor?: string; limit: number },
  ): Promise<Page<PoolNumber>> {
    const rows = await new NumberRepository(this.store.db).list({
      tenantId,
      status: query.status,
      provider: query.provider,
      country: query.country,
      after: query.cursor,
      limit: query.limit + 1,
    });
    return pageOf(rows, query.limit);
  }

  /** The tenant's pool by carrier, country and region: how many numbers are free, in use, draining. */
  async census(tenantId: string): Promise<PoolCensus[]> {
    const groups = await new NumberRepository(this.store.db).census(tenantId);
    return groups.sort(
      (a, b) =>
        a.country.localeCompare(b.country) ||
        a.region.localeCompare(b.region) ||
        a.provider.localeCompare(b.provider),
    );
  }

  async update(
    tenantId: string,
    id: string,
    changes: NumberChanges,
    by: ActingKey = null,
  ): Promise<PoolNumber> {
    const audit = { action: 'number.changed', keyId: by, detail: { ...changes } } as const;
    return this.changeAndRelease(tenantId, id, audit, (n) => {
      if (changes.status !== undefined) assertStatusChange(n.status, changes.status);
      const status =
        changes.status === 'retired' || (changes.status === 'draining' && n.load === 0)
          ? retirementStatus(n.load)
          : (changes.status ?? n.status);
      return {
        ...n,
        tags: changes.tags ?? n.tags,
        maxSessions: changes.maxSessions === undefined ? n.maxSessions : changes.maxSessions,
        region: changes.region ?? n.region,
        capabilities: changes.capabilities
          ? capabilities(changes.capabilities, 'capabilities')
          : n.capabilities,
        status,
      };
    });
  }

  /** Drains then retires: no new sessions now; it retires when the last open session on it ends. */
  async retire(tenantId: string, id: string, by: ActingKey = null): Promise<PoolNumber> {
    const audit = { action: 'number.retired', keyId: by, detail: null } as const;
    return this.changeAndRelease(tenantId, id, audit, (n) =>
      n.status === 'retired' ? n : { ...n, status: retirementStatus(n.load) },
    );
  }

  /** A change, and then, when it retired the number, the news of it to onRetired. */
  private async changeAndRelease(
    tenantId: string,
    id: string,
    audit: NumberAudit,
    apply: (n: PoolNumber) => PoolNumber,
  ): Promise<PoolNumber> {
    let retiredNow = false;
    const next = await this.change(tenantId, id, audit, (n) => {
      const changed = apply(n);
      retiredNow = n.status !== 'retired' && changed.status === 'retired';
      return changed;
    });
    if (retiredNow) await this.onRetired(next);
    return next;
  }

  private change(
    tenantId: string,
    id: string,
    audit: NumberAudit,
    apply: (n: PoolNumber) => PoolNumber,
  ): Promise<PoolNumber> {
    return inTransaction(this.store, async (trx: Db) => {
      const repo = new NumberRepository(trx);
      const current = await repo.get(tenantId, id);
      if (!current) throw new NotFoundError('number', id);
      const next = { ...apply(current), updatedAt: this.clock() };
      await repo.update(next);
      await recordAudit(trx, { tenantId, targetId: id, ...audit }, next.updatedAt);
      return next;
    });
  }
}

function capabilities(value: Channel[] | undefined, field: string): Channel[] {
  if (value === undefined) return [...CHANNELS];
  const list = CHANNELS.filter((c) => value.includes(c));
  if (list.length === 0) throw new InvalidRequestError('capabilities must name voice, sms or both', field);
  return list;
}
