import { type ActingKey, blockedTarget } from '../domain/audit.ts';
import type { BlocklistEntry } from '../domain/blocklist.ts';
import { ConflictError, NotFoundError } from '../domain/errors.ts';
import type { Page } from '../domain/page.ts';
import { maskNumber, parsePhone } from '../domain/phone.ts';
import { recordAudit } from '../store/audit.ts';
import { BlocklistRepository } from '../store/blocklist.ts';
import type { Store } from '../store/store.ts';
import { inTransaction } from '../store/transactions.ts';

export interface BlocklistInput {
  number: string;
  reason?: string;
}

/**
 * The blocklist: numbers a tenant never connects. Routing reads it (src/store/route-lookup.ts);
 * this adds, lists and removes its entries. Numbers are parsed as everywhere else (E.164, or the
 * default country's national form) and errors name the field, never the number.
 */
export class BlocklistService {
  constructor(
    private readonly store: Store,
    private readonly defaultCountry: string | undefined,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Blocks a number. Idempotent: a number already on the tenant's blocklist stays as it is (its
   * first reason kept) and is answered with `added: false`.
   */
  async add(
    tenantId: string,
    input: BlocklistInput,
    by: ActingKey = null,
  ): Promise<{ entry: BlocklistEntry; added: boolean }> {
    const number = parsePhone(input.number, 'number', this.defaultCountry).e164;
    const entry: BlocklistEntry = { tenantId, number, reason: input.reason ?? null, createdAt: this.clock() };
    return inTransaction(this.store, async (trx) => {
      const repo = new BlocklistRepository(trx);
      if (await repo.insert(entry)) {
        await recordAudit(
          trx,
          { tenantId, keyId: by, action: 'blocklist.added', targetId: blockedTarget(number), detail: null },
          entry.createdAt,
        );
        return { entry, added: true };
      }
      const existing = await repo.get(tenantId, number);
      // Only a removal committed between the two statements (PostgreSQL) finds none: try again.
      if (!existing)
        throw new ConflictError(`${maskNumber(number)} was removed from the blocklist meanwhile`);
      return { entry: existing, added: false };
    });
  }

  /** The tenant's blocklist `limit` at a time, in the order of the blind indexes (which shows nothing of the numbers). */
  async list(tenantId: string, query: { cursor?: string; limit: number }): Promise<Page<BlocklistEntry>> {
    const rows = await new BlocklistRepository(this.store.db).list(tenantId, query.cursor, query.limit + 1);
    const data = rows.slice(0, query.limit);
    const next = rows.length > query.limit ? data.at(-1)?.cursor : undefined;
    return { data: data.map(({ cursor: _, ...entry }) => entry), nextCursor: next ?? null };
  }

  /** Unblocks a number, answering it in E.164; NotFoundError when the tenant had not blocked it. */
  async remove(tenantId: string, input: string, by: ActingKey = null): Promise<string> {
    const number = parsePhone(input, 'number', this.defaultCountry).e164;
    const removed = await inTransaction(this.store, async (trx) => {
      if (!(await new BlocklistRepository(trx).remove(tenantId, number))) return false;
      await recordAudit(
        trx,
        { tenantId, keyId: by, action: 'blocklist.removed', targetId: blockedTarget(number), detail: null },
        this.clock(),
      );
      return true;
    });
    if (!removed) throw new NotFoundError('blocklist entry', maskNumber(number));
    return number;
  }
}
