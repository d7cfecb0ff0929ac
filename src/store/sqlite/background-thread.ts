import Database from 'better-sqlite3';
import { serveThread } from '../../thread.ts';
import type { SqliteBackground, SqliteBackgroundData, Statement } from './background.ts';

// SQLite's background thread (background.ts): batches of writes and the checkpoints.
await serveThread<SqliteBackground>(async (data, report) => {
  const { file, checkpointIntervalMs, walRestartFrames } = data as SqliteBackgroundData;
  const db = new Database(file);
  db.pragma('busy_timeout = 5000');
  db.pragma('wal_autocheckpoint = 0');
  // A statement journal (the undo of one multi-row INSERT) past 64 KiB would go to a temporary file.
  db.pragma('temp_store = MEMORY');
  const statements = new Map<string, Database.Statement>();
  const prepare = (sql: string) => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
  const write = db.transaction((batch: readonly Statement[]) => {
    for (const s of batch) prepare(s.sql).run(s.parameters as unknown[]);
  });
  const checkpoint = () => {
    try {
      const [result] = db.pragma('wal_checkpoint(PASSIVE)') as { log: number }[];
      if (result && result.log > walRestartFrames) db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (error) {
      report(`checkpoint failed: ${error instanceof Error ? error.message : error}`);
    }
  };
  const timer = setInterval(checkpoint, checkpointIntervalMs);
  return {
    api: {
      async write(batch) {
        write.immediate(batch);
      },
    },
    close() {
      clearInterval(timer);
      checkpoint();
      db.close();
    },
  };
});
