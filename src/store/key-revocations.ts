import { randomUUID } from 'node:crypto';
import { type CompiledQuery, sql } from 'kysely';
import { dialectOf } from './dialect.ts';
import type { Db } from './schema.ts';

/** The settings row counting revocations and rotations of API keys, installation wide. */
const COUNTER_KEY = 'key_revocations';
/** PostgreSQL's channel on which a revocation is announced; the payload is the schema's name and a token. */
export const REVOCATION_CHANNEL = 'veil_key_revoked';

/**
 * How an instance learns that an API key was revoked or rotated anywhere (another instance, the
 * CLI), so that it stops trusting the verifications it cached. The key service asks `version()` on
 * every request and drops its cache when the answer changed.
 */
export interface RevocationWatch {
  /**
   * A value that changes whenever a key is revoked or rotated anywhere; undefined while this
   * instance cannot tell (its PostgreSQL listener is down), when nothing may be served from cache.
   */
  version(): Promise<string | undefined>;
  /**
   * Resolves once this instance has heard the announcement `token` (PostgreSQL: its own NOTIFY
   * came back, so the other listeners have had it too), or after `timeoutMs`. A revocation waits
   * for it before answering, so that the client's next request finds every instance told.
   */
  heard(token: string, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Announces a revocation or rotation, within its transaction: the counter every SQLite instance
 * reads, and on PostgreSQL a NOTIFY (sent at commit, so never for a change rolled back).
 */
export async function announceRevocation(db: Db): Promise<string> {
  const token = randomUUID();
  await db
    .insertInto('settings')
    .values({ key: COUNTER_KEY, value: '1' })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet({ value: sql<string>`cast(cast(settings.value as bigint) + 1 as text)` }),
    )
    .execute();
  if (dialectOf(db).notifies) {
    await sql`select pg_notify(${REVOCATION_CHANNEL}, current_schema() || ' ' || ${token})`.execute(db);
  }
  return token;
}

/**
 * The watch of a SQLite file, which every instance opens in its own process: the counter, read on
 * each request. The statement is prepared once and runs in the process on the reading connection
 * (a few microseconds), so it adds no round trip to the routing path (bench/HISTORY.md). It is
 * read as one value (`readValue`), without the row objects of a query's rows.
 */
export function counterWatch(
  db: Db,
  readValue: <Value>(q: CompiledQuery) => Value | undefined,
): RevocationWatch {
  const query = db.selectFrom('settings').select('value').where('key', '=', COUNTER_KEY).compile();
  return {
    async version() {
      return readValue<string>(query) ?? '0';
    },
    // Read on every request: the next one sees the counter the revocation committed.
    async heard() {},
    async close() {},
  };
}
