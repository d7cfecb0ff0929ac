import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often the WAL is copied back into the database file. */
export const CHECKPOINT_INTERVAL_MS = 1_000;
/**
 * WAL frames (pages) past which the checkpoint also restarts the WAL. Under steady writes a PASSIVE
 * checkpoint never catches the last frames, so the WAL would grow without end (gigabytes in a
 * churn benchmark); a TRUNCATE checkpoint right after the PASSIVE one has little left to copy and
 * holds writers back for a moment only.
 */
export const WAL_RESTART_FRAMES = 4_096;

/** A statement as compiled by Kysely: the worker runs it as it is. */
export interface Statement {
  sql: string;
  parameters: readonly unknown[];
}

// The worker is plain CommonJS given as text, so it needs no TypeScript loader of its own.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
db.pragma('wal_autocheckpoint = 0');
// A statement journal (the undo of one multi-row INSERT) past 64 KiB would go to a temporary file:
// a batch of interactions touches that many index pages, and its writes were a quarter of this thread.
db.pragma('temp_store = MEMORY');
const statements = new Map();
const prepare = (sql) => {
  let stmt = statements.get(sql);
  if (!stmt) { stmt = db.prepare(sql); statements.set(sql, stmt); }
  return stmt;
};
const write = db.transaction((batch) => { for (const s of batch) prepare(s.sql).run(s.parameters); });
const checkpoint = () => {
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    if (result && result.log > workerData.restartFrames) db.pragma('wal_checkpoint(TRUNCATE)');
  } catch (error) { parentPort.postMessage({ error: String(error) }); }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message.stop) { clearInterval(timer); checkpoint(); db.close(); parentPort.postMessage({ stopped: true }); return; }
  try { write.immediate(message.batch); parentPort.postMessage({ id: message.id }); }
  catch (error) { parentPort.postMessage({ id: message.id, error: String(error) }); }
});
`;

/**
 * The SQLite file's background thread, with a connection of its own, for the writes nobody waits
 * for and the work that waits on the disk:
 * - batches of statements (the interaction log) run there in one transaction, so their inserts
 *   and index updates cost the event loop nothing;
 * - checkpoints: SQLite's automatic checkpoint runs inside a commit and ends with an fsync, which
 *   better-sqlite3, being synchronous, would do on the event loop. Every connection turns it off
 *   and this thread checkpoints every second instead: PASSIVE, which blocks nobody, and when the
 *   WAL has grown long, TRUNCATE to start it again from the beginning.
 */
export class SqliteWorker {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve(): void; reject(error: Error): void }>();
  private nextId = 1;
  private stopped: Promise<void> | undefined;

  constructor(file: string, onError: (message: string) => void) {
    this.worker = new Worker(WORKER, {
      eval: true,
      workerData: {
        file,
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        intervalMs: CHECKPOINT_INTERVAL_MS,
        restartFrames: WAL_RESTART_FRAMES,
      },
    });
    this.worker.unref();
    this.worker.on('message', (message: { id?: number; error?: string }) => {
      const waiter = message.id === undefined ? undefined : this.waiting.get(message.id);
      if (!waiter) {
        if (message.error) onError(message.error);
        return;
      }
      this.waiting.delete(message.id as number);
      if (message.error) waiter.reject(new Error(message.error));
      else waiter.resolve();
    });
    this.worker.on('error', (error) => onError(String(error)));
  }

  /** Runs the statements in one transaction on the worker's connection; resolves once committed. */
  write(batch: readonly Statement[]): Promise<void> {
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, batch });
    });
  }

  /** Checkpoints a last time and closes the worker's connection. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      this.worker.once('exit', () => resolve());
      this.worker.on('message', (message: { stopped?: boolean }) => {
        if (message.stopped) void this.worker.terminate();
      });
      this.worker.postMessage({ stop: true });
    });
    return this.stopped;
  }
}
