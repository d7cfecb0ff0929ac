import { Worker } from 'node:worker_threads';
import type { StoreConfig } from '../config.ts';
import * as errors from '../domain/errors.ts';
import type { Store } from '../store/db.ts';
import type { InteractionLog } from '../store/interactions.ts';
import { SessionService, type SessionServiceOptions } from './sessions.ts';

/** The methods of SessionService that write: on a SQLite file they run on the writer thread. */
export const WRITES = [
  'createNormalized',
  'update',
  'close',
  'addParticipant',
  'removeParticipant',
  'expireDue',
] as const;
export type Write = (typeof WRITES)[number];

/** What crosses between the threads. */
export type Call = { id: number; method: Write; args: unknown[] } | { stop: true };
export type Answer =
  | { id: number; value: unknown }
  | { id: number; error: ThrownError }
  | { ready: true }
  | { failed: ThrownError };
/** An error as it crosses the threads: its class's name and its own fields (code, field, ...). */
export type ThrownError = { name: string; message: string; [field: string]: unknown };

export interface WriterOptions {
  store: Extract<StoreConfig, { dialect: 'sqlite' }>;
  sessions: SessionServiceOptions;
}

/**
 * The session writer thread. better-sqlite3 runs every statement on the thread that calls it, so
 * on SQLite a session's allocation (its transaction, the proxy searches, the inserts, the commit)
 * took the event loop that also parses HTTP and routes calls. Here the writes of SessionService
 * run on a thread of their own, with their own connection to the file: the server uses both cores.
 * Reads stay on the calling thread, and SQLite's one-writer lock keeps the two connections apart.
 */
export class SessionThread {
  private worker!: Worker;
  /** Resolves when the current worker has exited. */
  private exited: Promise<void> = Promise.resolve();
  private readonly waiting = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private nextId = 1;
  private stopping: Promise<void> | undefined;
  /** Set when a replacement thread could not start: writes then fail at once, and /readyz says so. */
  private down: Error | undefined;

  private constructor(
    private readonly options: WriterOptions,
    private readonly onError: (error: Error) => void,
  ) {}

  /** Starts the thread and waits until its connection is open. */
  static async start(options: WriterOptions, onError: (error: Error) => void): Promise<SessionThread> {
    const thread = new SessionThread(options, onError);
    await thread.spawn();
    return thread;
  }

  /** Why the thread cannot take writes, or undefined while it can. */
  get failure(): Error | undefined {
    return this.down;
  }

  call(method: Write, args: unknown[]): Promise<unknown> {
    if (this.stopping) return Promise.reject(new Error('the session writer thread is stopping'));
    if (this.down) return Promise.reject(this.down);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, method, args } satisfies Call);
    });
  }

  /** Lets the writes in progress finish, then closes the thread's connection. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.worker.postMessage({ stop: true } satisfies Call);
      await this.exited;
    })();
    return this.stopping;
  }

  /**
   * Starts a thread; resolves once its connection is open. A thread that dies after that (an
   * uncaught error, out of memory) fails the calls it held and is replaced at once: its open
   * transaction was never committed, so nothing it did is half-kept.
   */
  private spawn(): Promise<void> {
    // Worker threads do not inherit the TypeScript loader (`--import tsx`): the thread registers it
    // before it imports its module.
    const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => {
      tsx.register();
      return import(${JSON.stringify(new URL('./session-thread-worker.ts', import.meta.url).href)});
    })`;
    const worker = new Worker(boot, { eval: true, workerData: this.options });
    this.worker = worker;
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    let ready = false;
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (answer: Answer) => {
        if ('ready' in answer) {
          ready = true;
          return resolve();
        }
        if ('failed' in answer) return reject(revive(answer.failed));
        if (!('id' in answer)) return;
        const waiter = this.waiting.get(answer.id);
        this.waiting.delete(answer.id);
        if ('error' in answer) waiter?.reject(revive(answer.error));
        else waiter?.resolve(answer.value);
      });
      worker.on('error', (error) => {
        if (ready) this.onError(error);
        else reject(error);
      });
      worker.on('exit', (code) => {
        const error = new Error(`the session writer thread stopped (exit code ${code})`);
        for (const waiter of this.waiting.values()) waiter.reject(error);
        this.waiting.clear();
        if (!ready) return reject(error);
        if (this.stopping) return;
        this.onError(error);
        this.spawn().catch((failure: Error) => {
          this.down = new Error(`the session writer thread is down: ${failure.message}`);
          this.onError(this.down);
        });
      });
    });
  }
}

/** The error classes of the domain, by name. */
const ERROR_CLASSES: Record<string, { prototype: Error }> = { ...errors };

/** Puts an error from the writer thread back together, as the class it was thrown as. */
export function revive(thrown: ThrownError): Error {
  const error = Object.create((ERROR_CLASSES[thrown.name] ?? Error).prototype) as Error;
  Object.assign(error, thrown);
  return error;
}

/** The fields of an error that the other thread needs: its class's name, message, code and the like. */
export function flatten(error: unknown): ThrownError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  return { ...error, name: error.name, message: error.message, stack: error.stack };
}

/**
 * SessionService whose writes (WRITES, the list the thread dispatches on too) run on a
 * SessionThread; reads run here.
 */
export class ThreadedSessionService extends SessionService {
  constructor(
    store: Store,
    log: InteractionLog,
    options: SessionServiceOptions,
    readonly thread: SessionThread,
  ) {
    super(store, log, options);
    for (const method of WRITES) {
      Object.defineProperty(this, method, { value: (...args: unknown[]) => thread.call(method, args) });
    }
  }
}
