import type { Selectable } from 'kysely';
import type { Channel } from '../domain/session.ts';
import type { Db, PurchaseOrigin, PurchaseStatus, Schema } from './schema.ts';

type PurchaseRow = Selectable<Schema['purchases']>;

/** One entry of the purchase journal. */
export interface Purchase {
  id: string;
  tenantId: string;
  provider: string;
  number: string;
  status: PurchaseStatus;
  carrierRef: string | null;
  capabilities: Channel[];
  releaseAttempts: number;
  origin: PurchaseOrigin;
  createdAt: number;
  updatedAt: number;
}

/** The purchase journal: each number bought through a carrier, from intent to release. */
export class PurchaseRepository {
  constructor(private readonly db: Db) {}

  /** Writes an intent; a unique violation means the number is being bought or is held already. */
  async insert(p: Purchase): Promise<void> {
    await this.db.insertInto('purchases').values(toRow(p)).execute();
  }

  async get(id: string): Promise<Purchase | undefined> {
    const row = await this.db.selectFrom('purchases').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toPurchase(row);
  }

  /** The purchase that holds `number` bought, if Veil bought it. */
  async bought(number: string): Promise<Purchase | undefined> {
    const row = await this.db
      .selectFrom('purchases')
      .selectAll()
      .where('number', '=', number)
      .where('status', '=', 'bought')
      .executeTakeFirst();
    return row && toPurchase(row);
  }

  /** Which of `numbers` have a purchase under way or held. */
  async held(numbers: readonly string[]): Promise<string[]> {
    if (numbers.length === 0) return [];
    const rows = await this.db
      .selectFrom('purchases')
      .select('number')
      .where('number', 'in', numbers)
      .where('status', 'in', ['buying', 'bought', 'releasing'])
      .execute();
    return rows.map((r) => r.number);
  }

  /** Intents last touched at or before `before`: purchases whose end nobody recorded. */
  async unsettled(before: number, provider?: string): Promise<Purchase[]> {
    let q = this.db
      .selectFrom('purchases')
      .selectAll()
      .where('status', '=', 'buying')
      .where('updated_at', '<=', before);
    if (provider) q = q.where('provider', '=', provider);
    const rows = await q.orderBy('id').limit(100).execute();
    return rows.map(toPurchase);
  }

  /**
   * Bought numbers that retired in the pool and are still held at the carrier, with those whose
   * release began at or before `staleBefore` and never ended (a crash mid-release).
   */
  async retired(staleBefore: number): Promise<Purchase[]> {
    const rows = await this.db
      .selectFrom('purchases')
      .innerJoin('numbers', 'numbers.number', 'purchases.number')
      .selectAll('purchases')
      .where('numbers.status', '=', 'retired')
      .where((eb) =>
        eb.or([
          eb('purchases.status', '=', 'bought'),
          eb.and([eb('purchases.status', '=', 'releasing'), eb('purchases.updated_at', '<=', staleBefore)]),
        ]),
      )
      .orderBy('purchases.id')
      .limit(100)
      .execute();
    return rows.map(toPurchase);
  }

  /**
   * Moves the purchase from `from` (as last written at `seen`, when given) to `to`; false when
   * another writer moved it first.
   */
  async move(
    id: string,
    from: PurchaseStatus,
    to: PurchaseStatus,
    now: number,
    more: { carrierRef?: string; releaseAttempts?: number; seen?: number } = {},
  ): Promise<boolean> {
    let q = this.db
      .updateTable('purchases')
      .set({
        status: to,
        updated_at: now,
        ...(more.carrierRef === undefined ? {} : { carrier_ref: more.carrierRef }),
        ...(more.releaseAttempts === undefined ? {} : { release_attempts: more.releaseAttempts }),
      })
      .where('id', '=', id)
      .where('status', '=', from);
    if (more.seen !== undefined) q = q.where('updated_at', '=', more.seen);
    const result = await q.executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /**
   * How many numbers purchases of `origin` hold or held since `since`: every purchase that reached
   * the carrier (bought, given back since, or not yet settled) counts, since it was paid for.
   */
  async spent(origin: PurchaseOrigin, since: number): Promise<number> {
    const row = await this.db
      .selectFrom('purchases')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('origin', '=', origin)
      .where('created_at', '>=', since)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Drops an intent the carrier never carried out. */
  async drop(id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('purchases')
      .where('id', '=', id)
      .where('status', '=', 'buying')
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}

function toRow(p: Purchase): PurchaseRow {
  return {
    id: p.id,
    tenant_id: p.tenantId,
    provider: p.provider,
    number: p.number,
    status: p.status,
    carrier_ref: p.carrierRef,
    capabilities: JSON.stringify(p.capabilities),
    release_attempts: p.releaseAttempts,
    origin: p.origin,
    created_at: p.createdAt,
    updated_at: p.updatedAt,
  };
}

function toPurchase(row: PurchaseRow): Purchase {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    provider: row.provider,
    number: row.number,
    status: row.status,
    carrierRef: row.carrier_ref,
    capabilities: JSON.parse(row.capabilities),
    releaseAttempts: Number(row.release_attempts),
    origin: row.origin,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
