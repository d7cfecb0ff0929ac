import { FLAGS_UP, type ProviderFlags } from '../domain/providers.ts';
import type { Db } from './schema.ts';
import { changeSetting } from './settings.ts';

/** The settings keys of a carrier's flags; a key absent reads as the flag's default (FLAGS_UP). */
const KEYS: Record<keyof ProviderFlags, string> = { enabled: 'provider.enabled:', down: 'provider.down:' };

/** Each named carrier's flags, as every instance sees them (one read of the settings table). */
export async function providerFlags(db: Db, names: readonly string[]): Promise<Map<string, ProviderFlags>> {
  const flags = new Map<string, ProviderFlags>(names.map((name) => [name, { ...FLAGS_UP }]));
  if (names.length === 0) return flags;
  const keys = names.flatMap((name) => [KEYS.enabled + name, KEYS.down + name]);
  const rows = await db.selectFrom('settings').select(['key', 'value']).where('key', 'in', keys).execute();
  for (const { key, value } of rows) {
    const flag = key.startsWith(KEYS.enabled) ? 'enabled' : 'down';
    const entry = flags.get(key.slice(KEYS[flag].length));
    if (entry) entry[flag] = value === 'true';
  }
  return flags;
}

/** Sets one flag of a carrier; true when that changed it (call within the transaction of its event). */
export async function setProviderFlag(
  db: Db,
  name: string,
  flag: keyof ProviderFlags,
  value: boolean,
): Promise<boolean> {
  const current = (await providerFlags(db, [name])).get(name) ?? FLAGS_UP;
  if (current[flag] === value) return false;
  // Guarded again by the write itself: of two instances setting it at once, one changes it.
  return changeSetting(db, KEYS[flag] + name, String(value));
}
