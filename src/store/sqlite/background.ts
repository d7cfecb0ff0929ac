import { Thread } from '../../thread.ts';

/** How often the WAL is copied back into the database file. */
export const CHECKPOINT_INTERVAL_MS = 1_000;
/**
 * WAL frames (pages) past which the checkpoint also restarts the WAL. Under steady writes a PASSIVE
 * checkpoint never catches the last frames, so the WAL would grow without end; a TRUNCATE
 * checkpoint right after the PASSIVE one has little left to copy and holds writers back briefly.
 */
export const WAL_RESTART_FRAMES = 4_096;
/** Longest a batch may take on the thread before its caller is told it failed (and keeps its rows). */
const WRITE_TIMEOUT_MS = 30_000;

/** A statement as compiled by Kysely: the thread runs it as it is. */
export interface Statement {
  sql: string;
  parameters: readonly unknown[];
}

/** What SQLite's background thread serves (background-thread.ts). */
export interface SqliteBackground {
  /** Runs the statements in one transaction; resolves once committed. */
  write(batch: readonly Statement[]): Promise<void>;
}

export interface SqliteBackgroundData {
  file: string;
  checkpointIntervalMs: number;
  walRestartFrames: number;
}

/**
 * The SQLite file's background thread, with a connection of its own, for the writes nobody waits
 * for and the work that waits on the disk:
 * - batches of statements (the interaction log) run there in one transaction, so their inserts
 *   and index updates cost the event loop nothing;
 * - checkpoints: SQLite's automatic checkpoint runs inside a commit and ends with an fsync, which
 *   better-sqlite3, being synchronous, would do on the event loop. Every connection turns it off
 *   and this thread checkpoints every second instead: PASSIVE, which blocks nobody, and when the
 *   WAL has grown long, TRUNCATE to start it again from the beginning.
 * A thread that dies is started again (thread.ts): its batch fails and is written again by the next.
 */
export function startSqliteBackground(
  file: string,
  onError: (error: Error) => void,
): Promise<Thread<SqliteBackground>> {
  return Thread.start<SqliteBackground>({
    name: 'SQLite background',
    module: new URL('./background-thread.ts', import.meta.url),
    workerData: {
      file,
      checkpointIntervalMs: CHECKPOINT_INTERVAL_MS,
      walRestartFrames: WAL_RESTART_FRAMES,
    } satisfies SqliteBackgroundData,
    callTimeoutMs: WRITE_TIMEOUT_MS,
    onError,
  });
}
