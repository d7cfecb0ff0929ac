import type { InsertResult } from 'kysely';
import { byShape, columnList, Prepared, rowNames, rowsOf } from './prepared.ts';
import type { Db, Schema } from './schema.ts';
import type { Store } from './store.ts';

type ReceiptRow = Schema['webhook_receipts'];

/** A receipt's columns, in the order its values are laid out for the batched INSERT. */
export const RECEIPT_COLUMNS = columnList<ReceiptRow>()(['provider', 'digest', 'expires_at']);

/**
 * The webhook_receipts table: the carrier webhooks Veil has taken, one row per signed request, by a
 * digest of what makes it that request (never the signature or the body itself). Receipts are
 * written behind the answer, in the interaction log's batches (insertReceipts); a request is looked
 * up by the primary key on the routing reader (held).
 */
export class WebhookReceiptRepository {
  /** Most receipts removed per statement when pruning, so that no one delete holds the writer long. */
  static readonly PRUNE_BATCH = 1000;

  private readonly lookup: Prepared<{ provider: string; digest: string; now: number }, { held: number }>;

  constructor(private readonly store: Store) {
    this.lookup = new Prepared(['provider', 'digest', 'now'], (v) =>
      store.reader
        .selectFrom('webhook_receipts')
        .select((eb) => eb.lit(1).as('held'))
        .where('provider', '=', v.provider)
        .where('digest', '=', v.digest)
        .where('expires_at', '>', v.now),
    );
  }

  /** True when a receipt of this request, still in its time, is written: one probe of the primary key. */
  async held(provider: string, digest: string, now: number): Promise<boolean> {
    const rows = await this.store.readRows(this.lookup.bind([provider, digest, now]));
    return rows.length > 0;
  }

  /** Gives a receipt back: the request was not carried out (it failed), and the carrier may send it again. */
  async release(db: Db, provider: string, digest: string): Promise<void> {
    await db
      .deleteFrom('webhook_receipts')
      .where('provider', '=', provider)
      .where('digest', '=', digest)
      .execute();
  }

  /** Removes up to PRUNE_BATCH receipts whose request a carrier would refuse as stale by `now`; how many went. */
  async prune(db: Db, now: number): Promise<number> {
    const result = await db
      .deleteFrom('webhook_receipts')
      .where(({ eb, selectFrom }) =>
        eb(
          'digest',
          'in',
          selectFrom('webhook_receipts')
            .select('digest')
            .where('expires_at', '<=', now)
            .limit(WebhookReceiptRepository.PRUNE_BATCH),
        ),
      )
      .where('expires_at', '<=', now)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

/**
 * The INSERT of n receipts (their values row after row, in RECEIPT_COLUMNS order), made when first
 * needed. A receipt already there stays: another instance took the same request within the batch
 * delay, or a batch is written again after its first try's answer was lost.
 */
export function insertReceipts(db: Db): (rows: number) => Prepared<Record<string, unknown>, InsertResult> {
  return byShape(
    (n: number) => n,
    (n) =>
      new Prepared<Record<string, unknown>, InsertResult>(
        rowNames('webhook_receipts', RECEIPT_COLUMNS, n),
        (v) =>
          db
            .insertInto('webhook_receipts')
            .values(rowsOf('webhook_receipts', RECEIPT_COLUMNS, n, v))
            .onConflict((oc) => oc.columns(['provider', 'digest']).doNothing()),
      ),
  );
}
