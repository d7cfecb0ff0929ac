import assert from 'node:assert/strict';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { migrate, migrateTo } from '../../src/store/migrations.ts';
import { openStore } from '../../src/store/store.ts';
import { describeStores, TEST_KEYS, type TestStore } from '../support/stores.ts';

/** A bare Kysely over the test store, migrated by hand. */
function bare(store: TestStore): Kysely<unknown> {
  if (store.config.dialect === 'sqlite') {
    return new Kysely({ dialect: new SqliteDialect({ database: new Database(store.config.file) }) });
  }
  const pool = new pg.Pool({ connectionString: store.config.url, options: `-c search_path=${store.schema}` });
  return new Kysely({ dialect: new PostgresDialect({ pool }) });
}

describeStores('migration 0010_bindings', { perTest: true }, (store) => {
  it('adds the binding columns to participants written at 0009, as ordinary ones (no binding, version 0)', async () => {
    const db = bare(store());
    const now = Date.parse('2026-01-01T00:00:00Z');
    try {
      await migrateTo(db, '0009_purchase_origin', store().schema);
      await sql`insert into numbers (id, tenant_id, number, provider, country, region, voice, sms, status, tags, max_sessions, load, created_at, updated_at)
        values ('num_1', 'default', '+14155550100', 'sim', 'US', '415', 1, 1, 'active', '{}', null, 1, ${now}, ${now})`.execute(
        db,
      );
      await sql`insert into sessions (id, tenant_id, external_id, fingerprint, mode, status, ttl_mode, ttl_seconds, expires_at, record, channels, max_call_seconds, geo_match, sticky, extension_fallback, metadata, created_at, updated_at, closed_at)
        values ('ses_1', 'default', null, 'f', 'shared', 'open', 'fixed', 60, ${now + 60_000}, 0, 'voice,sms', null, 'region', 'none', 0, '{}', ${now}, ${now}, null)`.execute(
        db,
      );
      for (const [id, number] of [
        ['par_1', '+14155550101'],
        ['par_2', '+14155550102'],
      ]) {
        await sql`insert into participants (id, tenant_id, session_id, number, label, proxy_number_id, proxy_number, reveal_number, can_initiate, active, created_at)
          values (${id}, 'default', 'ses_1', ${number}, null, 'num_1', '+14155550100', 0, 1, 1, ${now})`.execute(
          db,
        );
      }
      await migrate(db, store().schema);
      const rows = await sql<
        Record<string, unknown>
      >`select id, binding, binding_version, binding_attempts, binding_next_at, binding_ref, binding_error from participants order by id`.execute(
        db,
      );
      assert.deepEqual(
        rows.rows.map((r) => ({
          ...r,
          binding_version: Number(r.binding_version),
          binding_attempts: Number(r.binding_attempts),
        })),
        ['par_1', 'par_2'].map((id) => ({
          id,
          binding: null,
          binding_version: 0,
          binding_attempts: 0,
          binding_next_at: null,
          binding_ref: null,
          binding_error: null,
        })),
      );
    } finally {
      await db.destroy();
    }
    // The store opens the migrated database, and its sessions read as before (no binding: bound).
    const opened = await openStore(store().config, {
      keys: TEST_KEYS,
      schema: store().schema,
      background: false,
    });
    try {
      const participants = await opened.db.selectFrom('participants').select(['id', 'binding']).execute();
      assert.equal(participants.length, 2);
      assert.ok(participants.every((p) => p.binding === null));
    } finally {
      await opened.close();
    }
  });
});
