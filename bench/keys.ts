import { createHash } from 'node:crypto';
import { type DataKeys, NumberVault } from '../src/store/vault.ts';

/**
 * The keys every process of a run seals real numbers with (the seeder, the floor, each Veil
 * server): derived from fixed words, since a benchmark's numbers are made up and its processes
 * must agree without talking.
 */
const derive = (words: string) => createHash('sha256').update(words).digest();
export const BENCH_KEYS: DataKeys = {
  indexKey: derive('veil bench index key'),
  dataKeys: [{ id: 'bench', key: derive('veil bench data key') }],
};

/** BENCH_KEYS as a Veil server reads them from its environment. */
export const BENCH_KEY_ENV = {
  VEIL_DATA_KEYS: `bench:${Buffer.from(BENCH_KEYS.dataKeys[0]?.key ?? []).toString('base64')}`,
  VEIL_INDEX_KEY: Buffer.from(BENCH_KEYS.indexKey).toString('base64'),
};

/** A vault over BENCH_KEYS, for what the harness writes to or reads from a database itself. */
export const benchVault = (): NumberVault => new NumberVault(BENCH_KEYS);
