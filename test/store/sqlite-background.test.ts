import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { interactionOf } from '../../src/domain/interaction.ts';
import { CHECKPOINT_INTERVAL_MS, type SqliteBackground } from '../../src/store/sqlite/background.ts';
import { openStore } from '../../src/store/store.ts';
import type { Thread } from '../../src/thread.ts';
import { testApp } from '../support/app.ts';
import { storeKinds, TEST_KEYS, type TestStoreKind } from '../support/stores.ts';

describe('SQLite checkpoints', () => {
  it('happen on the background thread, not in commits: the database file grows only after the interval', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'veil-checkpoint-'));
    const file = join(dir, 'veil.db');
    const store = await openStore({ dialect: 'sqlite', file }, { keys: TEST_KEYS });
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

/** How many calls the thread holds: what it was asked and has not answered. */
const callsHeld = (thread: Thread<SqliteBackground>) =>
  (thread as unknown as { calls: Map<number, unknown> }).calls.size;

describe('SQLite background thread that dies (sqlite)', () => {
  it('fails its batch loudly, says so on /readyz, starts again and loses no interaction', {
    timeout: 60_000,
  }, async () => {
    const store = await (storeKinds()[0] as TestStoreKind).create();
    const t = await testApp(store);
    const file = (store.config as { file: string }).file;
    try {
      for (const number of ['+14155550150', '+14155550151']) {
        assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
      }
      const session = (
        await t.api('POST', '/v1/sessions', {
          participants: [{ number: '+14155550123' }, { number: '+14155550187' }],
        })
      ).json();
      const [a] = session.participants;
      const background = t.veil.store.background;
      assert.ok(background, 'a SQLite file has a background thread');

      // A call routed through the API, then many entries, in batches that queue behind each other.
      const routed = await t.api('POST', '/v1/route', {
        from: a.number,
        to: a.proxyNumber,
        channel: 'voice',
      });
      assert.equal(routed.json().action, 'connect');
      const total = 5_000;
      for (let i = 0; i < total; i++) {
        t.veil.interactions.record(
          interactionOf(
            `int_${String(i).padStart(6, '0')}`,
            { from: '+14155550199', to: '+14155550150', channel: 'voice' },
            { action: 'reject', reason: 'no_session', sessionId: null },
            'default',
            'sim',
            `call-${i}`,
            t.clock.now,
          ),
        );
      }
      // The first batch is in the middle of its transaction when the thread dies: another
      // connection holds the write lock, so it cannot have committed. The lock is let go soon
      // after the thread is told to end, so that the batch's wait for it ends in success inside
      // the ending thread, which runs no more of the batch. (Held until the thread is gone, the
      // wait would end in SQLITE_BUSY, and better-sqlite3 throwing inside an ending thread can
      // abort the whole process: V8's "ToLocalChecked Empty MaybeLocal".)
      // /readyz, asked again and again from before the thread dies: a new thread may be up again
      // within milliseconds (on Node 26 it was, before one request after the crash could ask).
      const readiness: { status: number; body: string }[] = [];
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          const r = await t.api('GET', '/readyz');
          readiness.push({ status: r.statusCode, body: r.body });
          await sleep(0);
        }
      })();
      const blocker = new Database(file);
      blocker.exec('begin immediate');
      try {
        while (callsHeld(background) === 0) await sleep(1);
        const ended = background.terminate();
        await sleep(50);
        blocker.exec('rollback');
        await ended;
      } finally {
        if (blocker.inTransaction) blocker.exec('rollback');
        blocker.close();
      }
      // A new thread starts; the log writes what failed again, and readers see every entry.
      let again = await t.api('GET', '/readyz');
      for (let i = 0; i < 100 && again.statusCode !== 200; i++) {
        await sleep(50);
        again = await t.api('GET', '/readyz');
      }
      watching = false;
      await watcher;
      assert.equal(again.statusCode, 200, again.body);
      const down = readiness.find((r) => r.status === 503);
      assert.ok(down, `/readyz never said 503 (asked ${readiness.length} times)`);
      assert.match(JSON.parse(down.body).status, /SQLite background thread stopped/);
      assert.ok(t.logs.some((l) => l.includes('SQLite background thread failed')));
      assert.ok(t.logs.some((l) => l.includes('interaction log write failed; will retry')));
      const log = await t.api('GET', `/v1/sessions/${session.id}/interactions`);
      assert.equal(log.statusCode, 200, log.body);
      assert.equal(log.json().data.length, 1);
      await t.veil.interactions.flush();
      const rows = await t.veil.store.db.selectFrom('interactions').select('id').execute();
      assert.equal(rows.length, total + 1);
      assert.equal(new Set(rows.map((r) => r.id)).size, total + 1);
    } finally {
      await t.close();
      await store.drop();
    }
  });

  it('writes a batch whose answer was lost once: the rows committed before the thread died stay single', async () => {
    const store = await (storeKinds()[0] as TestStoreKind).create();
    const t = await testApp(store);
    try {
      const entry = (i: number) =>
        interactionOf(
          `int_twice_${i}`,
          { from: '+14155550199', to: '+14155550150', channel: 'voice' },
          { action: 'reject', reason: 'no_session', sessionId: null },
          'default',
          'sim',
          null,
          t.clock.now,
        );
      t.veil.interactions.record(entry(1));
      await t.veil.interactions.flush();
      // The same row again (as a retried batch would carry it), with a new one.
      t.veil.interactions.record(entry(1));
      t.veil.interactions.record(entry(2));
      await t.veil.interactions.flush();
      const rows = await t.veil.store.db.selectFrom('interactions').select('id').orderBy('id').execute();
      assert.deepEqual(
        rows.map((r) => r.id),
        ['int_twice_1', 'int_twice_2'],
      );
    } finally {
      await t.close();
      await store.drop();
    }
  });
});
