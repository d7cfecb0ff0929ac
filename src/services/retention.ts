import type { Logger } from '../logger.ts';
import { RetentionRepository } from '../store/retention.ts';
import type { Store } from '../store/store.ts';
import { inTransaction } from '../store/transactions.ts';

/** Rows deleted per statement: short enough that routing's writes never wait long behind one. */
const BATCH = 500;

/** What one pass deleted. */
export interface RetentionPass {
  sessions: number;
  interactions: number;
  events: number;
}

/**
 * Forgets people after the retention period (VEIL_RETENTION_DAYS): sessions that ended before it
 * with their participants' real numbers, interactions logged before it (strangers' refused calls
 * too), and events written before it with their deliveries. What is deleted is gone: a purged
 * session answers 404. Safe on every instance at once (each delete is idempotent).
 */
export class Retention {
  constructor(
    private readonly store: Store,
    /** How long to keep them, in milliseconds; 0: for ever. */
    private readonly periodMs: number,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.periodMs > 0;
  }

  /** Deletes everything past the period, a batch at a time, until none is left. */
  async pass(): Promise<RetentionPass> {
    const done: RetentionPass = { sessions: 0, interactions: 0, events: 0 };
    if (!this.enabled) return done;
    const cutoff = this.clock() - this.periodMs;
    done.sessions = await this.drain((limit) =>
      inTransaction(this.store, (trx) => new RetentionRepository(trx).purgeSessions(cutoff, limit)),
    );
    const repo = new RetentionRepository(this.store.db);
    done.interactions = await this.drain((limit) => repo.purgeInteractions(cutoff, limit));
    done.events = await this.drain((limit) => repo.purgeEvents(cutoff, limit));
    if (done.sessions + done.interactions + done.events > 0) {
      this.logger.info({ ...done, before: new Date(cutoff).toISOString() }, 'purged data past its retention');
    }
    return done;
  }

  private async drain(batch: (limit: number) => Promise<number>): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await batch(BATCH);
      total += n;
      if (n < BATCH) return total;
    }
  }
}
