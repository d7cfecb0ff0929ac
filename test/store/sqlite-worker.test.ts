import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStore } from '../../src/store/db.ts';
import { CHECKPOINT_INTERVAL_MS } from '../../src/store/sqlite-worker.ts';

describe('SQLite checkpoints', () => {
  it('happen on the worker, not in commits: the database file grows only after the interval', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'veil-checkpoint-'));
    const file = join(dir, 'veil.db');
    const store = await openStore({ dialect: 'sqlite', file });
    try {
      await new Promise((r) => setTimeout(r, CHECKPOINT_INTERVAL_MS * 1.5)); // migrations checkpointed
      const before = statSync(file).size;
      const rows = Array.from({ length: 2000 }, (_, i) => ({ key: `k${i}`, value: 'x'.repeat(1000) }));
      for (let i = 0; i < rows.length; i += 200)
        await store.db
          .insertInto('settings')
          .values(rows.slice(i, i + 200))
          .execute();
      assert.equal(statSync(file).size, before, 'a commit wrote into the database file itself');
      assert.ok(statSync(`${file}-wal`).size > 2_000_000, 'the rows are in the WAL');
      await sleep(CHECKPOINT_INTERVAL_MS * 2);
      assert.ok(statSync(file).size > before + 2_000_000, 'the worker copied the WAL into the database');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
