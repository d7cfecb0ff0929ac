import type { StoreConfig } from '../config.ts';
import type { DataKeys } from '../store/vault.ts';
import { Thread } from '../thread.ts';
import type { AllocationSettings } from './allocator.ts';
import type { SessionWriter } from './session-writer.ts';

/** What the session writer thread opens (session-thread-worker.ts). */
export interface SessionThreadData {
  store: Extract<StoreConfig, { dialect: 'sqlite' }>;
  /** The keys that seal real numbers: the thread writes participants too. */
  keys: DataKeys;
  allocation: AllocationSettings;
}

/**
 * Longest a write waits for the thread: past the group commit's wait for the write lock (5 s) and
 * its retries, so that only a thread that is stuck answers a request with 503.
 */
const WRITE_TIMEOUT_MS = 15_000;

/**
 * The session writer thread. better-sqlite3 runs every statement on the thread that calls it, so on
 * a SQLite file a session's allocation (its transaction, the proxy searches, the inserts, the
 * commit) would take the event loop that also parses HTTP and routes calls. The SessionWriter runs
 * on a thread of its own instead, with its own connection to the file: the server uses both
 * cores. Reads stay on the calling thread; SQLite's one-writer lock keeps the connections apart.
 * A thread that dies took its open transaction with it (never committed), so nothing it did is
 * half-kept; its calls fail and a new thread starts.
 */
export function startSessionThread(
  data: SessionThreadData,
  onError: (error: Error) => void,
): Promise<Thread<SessionWriter>> {
  return Thread.start<SessionWriter>({
    name: 'session writer',
    module: new URL('./session-thread-worker.ts', import.meta.url),
    workerData: data,
    callTimeoutMs: WRITE_TIMEOUT_MS,
    onError,
  });
}
