import { DEFAULT_TENANT } from './domain/tenants.ts';
import type { Veil } from './veil.ts';

/**
 * The demo pool seeded on an empty database in development: simulator numbers in fictional ranges
 * (555-01xx in North America, Ofcom's drama range in London), so the tour needs no carrier.
 */
export const DEMO_POOL = [
  ...Array.from({ length: 10 }, (_, i) => `+1415555015${i}`),
  ...Array.from({ length: 5 }, (_, i) => `+1212555015${i}`),
  ...Array.from({ length: 5 }, (_, i) => `+44207946015${i}`),
];

/** Adds the demo pool when the tenant has no numbers at all; returns how many were added. */
export async function seedDemoPool(veil: Veil): Promise<number> {
  const existing = await veil.numbers.list(DEFAULT_TENANT, { limit: 1 });
  if (existing.data.length > 0) return 0;
  const added = await veil.numbers.import(
    DEFAULT_TENANT,
    DEMO_POOL.map((number) => ({ number, provider: 'sim', tags: { demo: 'true' } })),
  );
  return added.length;
}
