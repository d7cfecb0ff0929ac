import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often the WAL is copied back into the database file. */
export const CHECKPOINT_INTERVAL_MS = 1_000;

// The worker is plain CommonJS given as text, so it needs no TypeScript loader of its own.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
const checkpoint = () => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (error) { parentPort.postMessage(String(error)); }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', () => { clearInterval(timer); checkpoint(); db.close(); parentPort.postMessage('closed'); });
`;

/**
 * Checkpoints a SQLite database from a worker thread. SQLite's automatic checkpoint runs inside a
 * commit and ends with an fsync, which better-sqlite3, being synchronous, would do on the event
 * loop: every request in flight would wait for the disk. The main connection turns the automatic
 * checkpoint off and this worker, on its own connection, does it every second instead (PASSIVE:
 * it never blocks readers or writers).
 */
export function startCheckpointer(
  file: string,
  onError: (message: string) => void,
): { stop(): Promise<void> } {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: {
      file,
      driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      intervalMs: CHECKPOINT_INTERVAL_MS,
    },
  });
  worker.unref();
  worker.on('message', (message) => {
    if (message !== 'closed') onError(String(message));
  });
  worker.on('error', (error) => onError(String(error)));
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        worker.once('message', () => resolve());
        worker.once('exit', () => resolve());
        worker.postMessage('stop');
      }).then(() => worker.terminate().then(() => undefined)),
  };
}
