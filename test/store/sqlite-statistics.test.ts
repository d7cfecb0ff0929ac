import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { openStore } from '../../src/store/store.ts';
import { TEST_KEYS } from '../support/stores.ts';

describe('SQLite statistics', () => {
  it('per-value statistics left by a hand-run ANALYZE are dropped at start; per-index counts stay', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'veil-stat4-'));
    const config = { dialect: 'sqlite' as const, file: join(dir, 'veil.db') };
    const count = async (db: Awaited<ReturnType<typeof openStore>>['db'], table: string) =>
      Number(
        (await sql<{ n: number }>`select count(*) as n from ${sql.table(table)}`.execute(db)).rows[0]?.n,
      );
    try {
      const first = await openStore(config, { keys: TEST_KEYS });
      await first.db
        .insertInto('settings')
        .values(Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: 'v' })))
        .execute();
      await sql`analyze`.execute(first.db);
      assert.ok((await count(first.db, 'sqlite_stat4')) > 0, 'ANALYZE wrote per-value statistics');
      await first.close();

      const again = await openStore(config, { keys: TEST_KEYS });
      try {
        assert.equal(await count(again.db, 'sqlite_stat4'), 0);
        assert.ok((await count(again.db, 'sqlite_stat1')) > 0);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
