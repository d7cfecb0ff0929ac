import { existsSync } from 'node:fs';
import type { Config } from '../config.ts';
import { generateSecret } from '../domain/ids.ts';
import type { Db } from '../store/schema.ts';
import { ensureSetting, getSetting } from '../store/settings.ts';
import { openStore } from '../store/store.ts';

/** The setting that holds the simulator's webhook secret when SIM_WEBHOOK_SECRET is not set. */
const SIM_SECRET_SETTING = 'sim_webhook_secret';

/**
 * The simulator secret kept in the database, a new one stored first if there is none. The core
 * signs and checks the simulator's webhooks with it, so that `veil call` can sign as it does.
 */
export function ensureSimSecret(db: Db): Promise<string> {
  return ensureSetting(db, SIM_SECRET_SETTING, generateSecret());
}

/**
 * The simulator secret a server on this database keeps there, or undefined when none is kept.
 * It only reads: a SQLite database that does not exist yet is not created just to find it empty.
 */
export async function storedSimSecret(config: Config): Promise<string | undefined> {
  const { store: where } = config;
  if (where.dialect === 'sqlite' && where.file !== ':memory:' && !existsSync(where.file)) return undefined;
  const store = await openStore(where);
  try {
    return await getSetting(store.db, SIM_SECRET_SETTING);
  } finally {
    await store.close();
  }
}
