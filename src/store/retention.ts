import { firstIdAt } from '../domain/ids.ts';
import { ACTIVE, type Db, OPEN } from './schema.ts';

/**
 * Deletes what has outlived the retention period, a batch at a time, oldest first, each batch one
 * short statement per table so that the writer is never held long. Ids sort by creation time, so
 * each table is reached through its primary key. Every delete is idempotent: instances running the
 * same pass at once delete each row once between them.
 */
export class RetentionRepository {
  constructor(private readonly db: Db) {}

  /**
   * Sessions created and ended before `cutoff`, with their participations and interactions;
   * their number. A session whose binding is still being undone at its carrier (a participation
   * still active) waits for it. Sessions created before `cutoff` and still open are read past
   * each time: as many as are open that long.
   */
  async purgeSessions(cutoff: number, limit: number): Promise<number> {
    const ids = (
      await this.db
        .selectFrom('sessions as s')
        .select('s.id')
        .where('s.id', '<', firstIdAt('ses', cutoff))
        .where('s.status', '<>', OPEN)
        .where('s.closed_at', '<', cutoff)
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('participants as p')
                .select('p.id')
                .whereRef('p.session_id', '=', 's.id')
                .where('p.active', '=', ACTIVE),
            ),
          ),
        )
        .orderBy('s.id')
        .limit(limit)
        .execute()
    ).map((r) => r.id);
    if (ids.length === 0) return 0;
    await this.db.deleteFrom('interactions').where('session_id', 'in', ids).execute();
    await this.db.deleteFrom('participants').where('session_id', 'in', ids).execute();
    await this.db.deleteFrom('sessions').where('id', 'in', ids).execute();
    return ids.length;
  }

  /** Interactions logged before `cutoff`, of any session or none (a stranger's refused call); their number. */
  async purgeInteractions(cutoff: number, limit: number): Promise<number> {
    const r = await this.db
      .deleteFrom('interactions')
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('interactions')
          .select('id')
          .where('id', '<', firstIdAt('int', cutoff))
          .orderBy('id')
          .limit(limit),
      )
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /**
   * Events written before `cutoff` (their payloads show sessions as they were, people's numbers
   * with them) and their deliveries, once the outbox made them and none is still being tried;
   * their number.
   */
  async purgeEvents(cutoff: number, limit: number): Promise<number> {
    const ids = (
      await this.db
        .selectFrom('events as e')
        .select('e.id')
        .where('e.id', '<', firstIdAt('evt', cutoff))
        .where('e.fanned_out', '=', 1)
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('deliveries as d')
                .select('d.event_id')
                .whereRef('d.event_id', '=', 'e.id')
                .where('d.status', '=', 'pending'),
            ),
          ),
        )
        .orderBy('e.id')
        .limit(limit)
        .execute()
    ).map((r) => r.id);
    if (ids.length === 0) return 0;
    await this.db.deleteFrom('deliveries').where('event_id', 'in', ids).execute();
    await this.db.deleteFrom('events').where('id', 'in', ids).execute();
    return ids.length;
  }
}
