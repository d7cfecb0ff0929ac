import { statement } from './prepared.ts';
import type { Db } from './schema.ts';

/** The receipt of one carrier webhook, unless that provider has one with this digest already. */
const take = statement<{ provider: string; digest: string; expiresAt: number }, never>(
  ['provider', 'digest', 'expiresAt'],
  (db, v) =>
    db
      .insertInto('webhook_receipts')
      .values({ provider: v.provider, digest: v.digest, expires_at: v.expiresAt })
      .onConflict((oc) => oc.columns(['provider', 'digest']).doNothing()),
);

/**
 * The webhook_receipts table: the carrier webhooks Veil has taken, one row per signed request, by a
 * digest of what makes it that request (never the signature or the body itself). Its primary key
 * makes a request's first taking a single winner across every instance sharing the database.
 */
export class WebhookReceiptRepository {
  /** Most receipts removed per statement when pruning, so that no one delete holds the writer long. */
  static readonly PRUNE_BATCH = 1000;

  /** True when the receipt was taken now; false when the provider had one with this digest. */
  async take(db: Db, provider: string, digest: string, expiresAt: number): Promise<boolean> {
    const result = await take.run(db, [provider, digest, expiresAt]);
    return result.numAffectedRows === 1n;
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
