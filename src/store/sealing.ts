import { type RawBuilder, sql } from 'kysely';
import { ConfigError } from '../config.ts';
import type { Db } from './schema.ts';
import { ensureSetting, getSetting } from './settings.ts';
import type { Store } from './store.ts';
import { KEYED_FINGERPRINT, type NumberVault, vaultOf } from './vault.ts';

/**
 * What to seal: `legacy` is what was written before migration 0015 (numbers in clear), sealed when
 * a store opens; `rotate` is also every value sealed under a data key other than the current one
 * (`veil keys rotate-data`).
 */
export type SealingMode = 'legacy' | 'rotate';

/** The tables that hold real numbers, in the order they are sealed. */
export const SEALED_TABLES = ['participants', 'blocklist', 'interactions', 'events', 'sessions'] as const;
export type SealedTable = (typeof SEALED_TABLES)[number];

export type SealingProgress = (table: SealedTable, done: number) => void;

const BATCH = 500;

/**
 * Seals, a batch at a time, each value `mode` names, and answers how many rows it changed per
 * table. Each batch is one short transaction; a row changed by someone else meanwhile (another
 * instance sealing too) is left to them, and a row deleted meanwhile (retention) is simply gone.
 * Throws SealedValueError when a value is sealed under a key this vault does not have.
 */
export async function sealAll(
  store: Store,
  mode: SealingMode,
  onProgress: SealingProgress = () => {},
): Promise<Record<SealedTable, number>> {
  const vault = vaultOf(store.db);
  const done = { participants: 0, blocklist: 0, interactions: 0, events: 0, sessions: 0 };
  for (const table of SEALED_TABLES) {
    let after = '';
    for (;;) {
      const batch = await SEALERS[table](store, vault, mode, after);
      if (batch.rows === 0) break;
      done[table] += batch.changed;
      after = batch.last;
      onProgress(table, done[table]);
    }
  }
  return done;
}

/** What the key checks seal and index: no number, so that the settings hold nobody's. */
const KEY_CHECK_TEXT = 'veil key check';
const INDEX_CHECK_SETTING = 'index_key_check';
const DATA_CHECK_SETTING = 'data_key_check:';

/**
 * Refuses keys other than those the database's numbers were indexed and sealed under. A wrong
 * index key would fail nothing: every lookup would simply find nobody (a blocked number would
 * connect, every call be refused, a person be given a proxy they already hold). A key id reused
 * for another key would fail only when a value is read. So the first open records the index of a
 * fixed text and, per data key, that text sealed under it; every open compares.
 */
export async function checkKeys(store: Store): Promise<void> {
  const vault = vaultOf(store.db);
  const index = vault.index(KEY_CHECK_TEXT);
  if ((await ensureSetting(store.db, INDEX_CHECK_SETTING, index)) !== index) {
    throw new ConfigError(
      'VEIL_INDEX_KEY',
      "is not the key this database's numbers are indexed under: with it no number would be found (blocked numbers would connect, calls be refused). Set the key the database was first opened with.",
    );
  }
  await ensureSetting(store.db, `${DATA_CHECK_SETTING}${vault.currentKeyId}`, vault.seal(KEY_CHECK_TEXT));
  const checks = await store.db
    .selectFrom('settings')
    .select(['key', 'value'])
    .where('key', 'like', `${DATA_CHECK_SETTING}%`)
    .execute();
  for (const check of checks) {
    const keyId = check.key.slice(DATA_CHECK_SETTING.length);
    if (!vault.hasKey(keyId)) continue;
    let opened: string | undefined;
    try {
      opened = vault.open(check.value);
    } catch {
      // told below
    }
    if (opened !== KEY_CHECK_TEXT) {
      throw new ConfigError(
        'VEIL_DATA_KEYS',
        `the key with id "${keyId}" is not the one this database's values under "${keyId}" were sealed with: give each key a new id, never reuse one`,
      );
    }
  }
}

/** The setting that says what older Veils left in clear has been sealed: later opens skip the walk. */
const SEALED_SETTING = 'numbers_sealed';

/**
 * Seals what an older Veil left in clear, once per database: every later open finds the setting
 * and skips the walk (which reads each table through). Once migration 0015 has run, no older Veil
 * can write to the database, so nothing in clear can appear after it.
 */
export async function sealLegacy(store: Store): Promise<void> {
  if ((await getSetting(store.db, SEALED_SETTING)) !== undefined) return;
  await sealAll(store, 'legacy');
  await ensureSetting(store.db, SEALED_SETTING, String(Date.now()));
}

/** One batch of a table: how many rows were read and changed, and the key of the last one read. */
type Sealer = (
  store: Store,
  vault: NumberVault,
  mode: SealingMode,
  after: string,
) => Promise<{ rows: number; changed: number; last: string }>;

/** A column's value is sealed under another key than the current one (and is sealed at all). */
function underOtherKey(vault: NumberVault, column: string): RawBuilder<boolean> {
  const prefix = `${vault.currentKeyId}:`;
  return sql<boolean>`substr(${sql.ref(column)}, 1, ${prefix.length}) <> ${prefix}`;
}

const SEALERS: Record<SealedTable, Sealer> = {
  async participants(store, vault, mode, after) {
    const rows = await store.db
      .selectFrom('participants')
      .select(['id', 'number_index', 'number_sealed'])
      .where('id', '>', after)
      .where((eb) =>
        mode === 'legacy'
          ? eb('number_sealed', 'is', null)
          : eb.or([eb('number_sealed', 'is', null), underOtherKey(vault, 'number_sealed')]),
      )
      .orderBy('id')
      .limit(BATCH)
      .execute();
    const changed = await inBatch(store, rows, (trx, row) => {
      const number = row.number_sealed === null ? row.number_index : vault.open(row.number_sealed);
      return trx
        .updateTable('participants')
        .set({ number_index: vault.index(number), number_sealed: vault.sealNumber(number) })
        .where('id', '=', row.id)
        .where((eb) =>
          row.number_sealed === null
            ? eb('number_sealed', 'is', null)
            : eb('number_sealed', '=', row.number_sealed),
        );
    });
    return { rows: rows.length, changed, last: rows.at(-1)?.id ?? after };
  },

  // Keyed by (tenant, index), which sealing changes: each batch reads what is still to seal, from the start.
  async blocklist(store, vault, mode) {
    const rows = await store.db
      .selectFrom('blocklist')
      .select(['tenant_id', 'number_index', 'number_sealed'])
      .where((eb) =>
        mode === 'legacy'
          ? eb('number_sealed', 'is', null)
          : eb.or([eb('number_sealed', 'is', null), underOtherKey(vault, 'number_sealed')]),
      )
      .limit(BATCH)
      .execute();
    const changed = await inBatch(store, rows, (trx, row) => {
      const number = row.number_sealed === null ? row.number_index : vault.open(row.number_sealed);
      return trx
        .updateTable('blocklist')
        .set({ number_index: vault.index(number), number_sealed: vault.sealNumber(number) })
        .where('tenant_id', '=', row.tenant_id)
        .where('number_index', '=', row.number_index);
    });
    // A row another instance changed first stays to read again: stop once a batch changes nothing.
    return { rows: changed, changed, last: '' };
  },

  async interactions(store, vault, mode, after) {
    const rows = await store.db
      .selectFrom('interactions')
      .select(['id', 'from_number', 'target_number', 'caller_id', 'from_index'])
      .where('id', '>', after)
      .where((eb) =>
        mode === 'legacy'
          ? eb('from_index', 'is', null)
          : eb.or([eb('from_index', 'is', null), underOtherKey(vault, 'from_number')]),
      )
      .orderBy('id')
      .limit(BATCH)
      .execute();
    const changed = await inBatch(store, rows, (trx, row) => {
      const clear = row.from_index === null;
      const read = (value: string | null) => (clear || value === null ? value : vault.open(value));
      const from = read(row.from_number) as string;
      return trx
        .updateTable('interactions')
        .set({
          from_number: vault.sealNumber(from),
          target_number: vault.sealNumberOrNull(read(row.target_number)),
          caller_id: vault.sealNumberOrNull(read(row.caller_id)),
          from_index: vault.index(from),
        })
        .where('id', '=', row.id)
        .where('from_number', '=', row.from_number);
    });
    return { rows: rows.length, changed, last: rows.at(-1)?.id ?? after };
  },

  async events(store, vault, mode, after) {
    // A payload in clear is JSON: it starts with a brace or a bracket, which no sealed value does.
    const clear = sql<boolean>`substr(payload, 1, 1) in ('{', '[')`;
    const rows = await store.db
      .selectFrom('events')
      .select(['id', 'payload'])
      .where('id', '>', after)
      .where((eb) => (mode === 'legacy' ? clear : eb.or([clear, underOtherKey(vault, 'payload')])))
      .orderBy('id')
      .limit(BATCH)
      .execute();
    const changed = await inBatch(store, rows, (trx, row) => {
      const payload = /^[{[]/.test(row.payload) ? row.payload : vault.open(row.payload);
      return trx
        .updateTable('events')
        .set({ payload: vault.seal(payload) })
        .where('id', '=', row.id)
        .where('payload', '=', row.payload);
    });
    return { rows: rows.length, changed, last: rows.at(-1)?.id ?? after };
  },

  // A request's fingerprint, kept as a plain hash before migration 0015, is keyed (store/vault.ts).
  // It depends on the index key alone: rotating data keys leaves it as it is.
  async sessions(store, vault, _mode, after) {
    const plain = sql<boolean>`substr(fingerprint, 1, ${KEYED_FINGERPRINT.length}) <> ${KEYED_FINGERPRINT}`;
    const rows = await store.db
      .selectFrom('sessions')
      .select(['id', 'fingerprint'])
      .where('id', '>', after)
      .where(plain)
      .orderBy('id')
      .limit(BATCH)
      .execute();
    const changed = await inBatch(store, rows, (trx, row) =>
      trx
        .updateTable('sessions')
        .set({ fingerprint: vault.fingerprint(row.fingerprint) })
        .where('id', '=', row.id)
        .where('fingerprint', '=', row.fingerprint),
    );
    return { rows: rows.length, changed, last: rows.at(-1)?.id ?? after };
  },
};

/** Runs one update per row in one transaction; how many rows they changed. */
async function inBatch<Row>(
  store: Store,
  rows: readonly Row[],
  update: (trx: Db, row: Row) => { executeTakeFirst(): Promise<{ numUpdatedRows: bigint }> },
): Promise<number> {
  if (rows.length === 0) return 0;
  return store.transaction(async (trx) => {
    let changed = 0;
    for (const row of rows) changed += Number((await update(trx, row).executeTakeFirst()).numUpdatedRows);
    return changed;
  });
}
