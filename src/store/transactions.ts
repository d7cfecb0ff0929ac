import { asUniqueViolation, isRetryable } from './errors.ts';
import type { Db } from './schema.ts';
import type { Store } from './store.ts';

/** Runs `work` in a transaction, again from the start (up to `attempts` times) when a retryable error ends it. */
export async function inTransaction<T>(
  store: Store,
  work: (trx: Db) => Promise<T>,
  attempts = 20,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await store.transaction(work);
    } catch (error) {
      if (attempt >= attempts || !isRetryable(error)) throw asUniqueViolation(error) ?? error;
      // Spread the retries of writers that collided so they do not collide again in step.
      await new Promise((r) => setTimeout(r, Math.random() * 2 * attempt));
    }
  }
}
