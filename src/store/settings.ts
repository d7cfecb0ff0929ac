import type { Db } from './schema.ts';

/** Installation-wide values kept in the database (so the CLI and every instance see the same). */
export async function getSetting(db: Db, key: string): Promise<string | undefined> {
  const row = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
  return row?.value;
}

/**
 * Stores `value` unless the key already has one; returns the value that is kept. Read first: once
 * set, it takes no write lock (every process opening the store ensures a few).
 */
export async function ensureSetting(db: Db, key: string, value: string): Promise<string> {
  const kept = await getSetting(db, key);
  if (kept !== undefined) return kept;
  await db
    .insertInto('settings')
    .values({ key, value })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  return (await getSetting(db, key)) ?? value;
}

/** Sets `key` to `value`; true when that changed it (a new key, or another value before). */
export async function changeSetting(db: Db, key: string, value: string): Promise<boolean> {
  const result = await db
    .insertInto('settings')
    .values({ key, value })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value }).where('settings.value', '<>', value))
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

/**
 * Takes the lease `key` until `now + ttlMs` when nobody holds it (or their lease ran out): one
 * instance at a time does what it guards. Returns the lease to give back, or undefined.
 */
export async function claimLease(
  db: Db,
  key: string,
  now: number,
  ttlMs: number,
): Promise<string | undefined> {
  const until = leaseValue(now + ttlMs);
  const result = await db
    .insertInto('settings')
    .values({ key, value: until })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet({ value: until }).where('settings.value', '<=', leaseValue(now)),
    )
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0 ? until : undefined;
}

/** Gives a lease back before it runs out, unless another instance has taken it since. */
export async function releaseLease(db: Db, key: string, lease: string): Promise<void> {
  await db
    .updateTable('settings')
    .set({ value: leaseValue(0) })
    .where('key', '=', key)
    .where('value', '=', lease)
    .execute();
}

/** A lease's end as text that sorts as the time does (fixed width). */
function leaseValue(until: number): string {
  return String(until).padStart(16, '0');
}
