import { parentPort, Worker, workerData } from 'node:worker_threads';
import * as errors from './domain/errors.ts';
import { UnavailableError } from './domain/errors.ts';

/**
 * One thread boundary for every worker thread of Veil (the session writer, SQLite's background
 * thread). The thread serves an API, an interface of async methods; the calling side gets the same
 * interface (`thread.api`), so a method is declared once and the compiler holds both sides to it.
 *
 * Arguments cross as they are (structured clone: a batch of a few thousand values costs the event
 * loop far less than JSON would); one that cannot be sent fails its call at once, and one the
 * thread cannot read is reported and its call ends by its timeout. Answers cross as JSON text,
 * decoded inside a try block on this side, which knows the call: an answer that cannot be read
 * (too deep) fails its own call instead of raising an unattributable `messageerror`. Every call
 * has a timeout; a thread that dies fails the calls it held and is started again, with backoff
 * while it cannot be.
 */
export class Thread<Api extends object> {
  /** The thread's API: each call runs on the thread and answers here. */
  readonly api: Api;
  private worker: Worker | undefined;
  private readonly calls = new Map<number, PendingCall>();
  private nextId = 1;
  /** Why no thread runs now (it died and is starting again, or cannot start), else undefined. */
  private down: UnavailableError | undefined;
  /** While a new thread starts in place of one that died: calls wait for it rather than fail. */
  private replacing: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly options: ThreadOptions) {
    this.api = new Proxy({} as Api, {
      get: (_target, method) =>
        typeof method === 'string' ? (...args: unknown[]) => this.call(method, args) : undefined,
    });
  }

  /** Starts the thread and waits until it serves; rejects with the thread's own error if it cannot start. */
  static async start<Api extends object>(options: ThreadOptions): Promise<Thread<Api>> {
    const thread = new Thread<Api>(options);
    await thread.spawn();
    return thread;
  }

  /** Why the thread cannot take calls now (what /readyz says), or undefined while it can. */
  get failure(): string | undefined {
    return this.down?.message;
  }

  /** The calls sent to the thread and not yet answered (nor failed): its queue, the running one included. */
  get pending(): number {
    return this.calls.size;
  }

  /**
   * Ends the thread at once, as a crash would: the calls it held fail and a new thread starts.
   * For an operator or a test that must see the recovery happen.
   */
  async terminate(): Promise<void> {
    await this.worker?.terminate();
  }

  /** Lets the calls in progress finish, then stops the thread (terminated if it does not stop in time). */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearTimeout(this.restartTimer);
      const worker = this.worker;
      if (!worker) return;
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      worker.postMessage({ stop: true } satisfies Call);
      const overdue = setTimeout(
        () => void worker.terminate(),
        this.options.stopTimeoutMs ?? STOP_TIMEOUT_MS,
      );
      await exited;
      clearTimeout(overdue);
    })();
    return this.stopping;
  }

  private call(method: string, args: unknown[]): Promise<unknown> {
    const { name, callTimeoutMs } = this.options;
    if (this.stopping) return Promise.reject(new UnavailableError(`the ${name} thread is stopping`));
    if (this.replacing) return this.replacing.then(() => this.call(method, args));
    const worker = this.worker;
    if (this.down || !worker) {
      return Promise.reject(this.down ?? new UnavailableError(`the ${name} thread is not running`));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      try {
        worker.postMessage({ id, method, args } satisfies Call);
      } catch (error) {
        reject(error); // a value that cannot be cloned: nothing was sent
        return;
      }
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(
          new UnavailableError(`the ${name} thread did not answer ${method} within ${callTimeoutMs} ms`),
        );
      }, callTimeoutMs);
      this.calls.set(id, { resolve, reject, timer });
    });
  }

  private settle(answer: Extract<Answer, { id: number }>): void {
    const call = this.calls.get(answer.id);
    if (!call) return; // timed out already
    this.calls.delete(answer.id);
    clearTimeout(call.timer);
    if ('error' in answer) {
      call.reject(revive(answer.error));
      return;
    }
    try {
      call.resolve(answer.value === undefined ? undefined : JSON.parse(answer.value));
    } catch (error) {
      call.reject(error);
    }
  }

  private failAll(error: Error): void {
    for (const call of this.calls.values()) {
      clearTimeout(call.timer);
      call.reject(error);
    }
    this.calls.clear();
  }

  /** Starts a worker; resolves once it serves, rejects (and ends it) if it cannot within the start timeout. */
  private spawn(): Promise<void> {
    const { name, onError } = this.options;
    const worker = new Worker(boot(this.options.module), {
      eval: true,
      workerData: this.options.workerData,
    });
    this.worker = worker;
    let serving = false;
    return new Promise<void>((resolve, reject) => {
      const late = setTimeout(() => {
        reject(new UnavailableError(`the ${name} thread did not start within ${START_TIMEOUT_MS} ms`));
        void worker.terminate();
      }, START_TIMEOUT_MS);
      worker.on('message', (answer: Answer) => {
        if ('ready' in answer) {
          clearTimeout(late);
          serving = true;
          this.down = undefined;
          return resolve();
        }
        if ('failed' in answer) {
          reject(revive(answer.failed));
          return void worker.terminate();
        }
        if ('report' in answer) return onError(new Error(`${name} thread: ${answer.report}`));
        this.settle(answer);
      });
      // Everything crosses as text, so this is not expected; if it happens, no answer can be trusted.
      worker.on('messageerror', (error) => {
        onError(error);
        this.failAll(new UnavailableError(`an answer of the ${name} thread could not be read`));
      });
      worker.on('error', (error) => {
        if (serving) onError(error);
        else reject(error);
      });
      worker.on('exit', (code) => {
        clearTimeout(late);
        if (this.worker === worker) this.worker = undefined;
        const stopped = new UnavailableError(`the ${name} thread stopped (exit code ${code})`);
        this.failAll(stopped);
        if (!serving) return reject(stopped); // no-op when the start already failed with its reason
        if (this.stopping) return;
        this.down = stopped;
        onError(stopped);
        this.restart(0);
      });
    });
  }

  /**
   * Starts a new thread after one died, again and again with backoff while that fails. Calls made
   * while a start is under way wait for it; between tries they fail at once with the reason.
   */
  private restart(attempt: number): void {
    this.replacing = this.spawn().then(
      () => {
        this.replacing = undefined;
      },
      (failure: Error) => {
        this.replacing = undefined;
        if (this.stopping) return;
        this.down = new UnavailableError(`the ${this.options.name} thread is down: ${failure.message}`);
        this.options.onError(this.down);
        const delay = Math.min(RESTART_MAX_DELAY_MS, RESTART_FIRST_DELAY_MS * 2 ** attempt);
        this.restartTimer = setTimeout(() => this.restart(attempt + 1), delay);
        this.restartTimer.unref();
      },
    );
  }
}

export interface ThreadOptions {
  /** How errors and logs name the thread: "session writer". */
  name: string;
  /** The module the thread runs; it calls serveThread. */
  module: URL;
  /** What the module's `open` receives. */
  workerData: unknown;
  /** Longest a call may take; past it the call fails with UnavailableError (it may still complete). */
  callTimeoutMs: number;
  /** How long stop() waits for the calls in progress before it terminates the thread. */
  stopTimeoutMs?: number;
  /** Problems no caller waits for: a crash, a failed restart, what the thread reports. */
  onError(error: Error): void;
}

/** What the module of a thread opens: the API it serves, and how to close it when told to stop. */
export interface Served<Api> {
  api: Api;
  close(): Promise<void> | void;
}

/**
 * Serves an API on this worker thread (the module named in ThreadOptions calls it): `open` runs
 * first, with the workerData and a way to report problems nobody waits for; then each call runs
 * as it arrives. On stop, the calls in progress finish, `close` runs and the thread ends.
 */
export async function serveThread<Api extends object>(
  open: (data: unknown, report: (problem: string) => void) => Promise<Served<Api>>,
): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('serveThread runs on a worker thread');
  const answer = (message: Answer) => port.postMessage(message);
  let served: Served<Api>;
  try {
    served = await open(workerData, (report) => answer({ report }));
  } catch (error) {
    return answer({ failed: flatten(error) });
  }
  const running = new Set<Promise<void>>();
  port.on('message', (call: Call) => {
    if ('stop' in call) {
      void Promise.allSettled(running)
        .then(() => served.close())
        .finally(() => port.close());
      return;
    }
    const done = (async () => {
      const method = (served.api as Record<string, unknown>)[call.method];
      if (typeof method !== 'function') throw new Error(`the thread serves no method ${call.method}`);
      const value = await method.apply(served.api, call.args);
      answer({ id: call.id, value: value === undefined ? undefined : JSON.stringify(value) });
    })().catch((error: unknown) => answer({ id: call.id, error: flatten(error) }));
    running.add(done);
    void done.finally(() => running.delete(done));
  });
  // The call it held cannot be named: it ends by its timeout on the other side.
  port.on('messageerror', (error) => answer({ report: `a call could not be read: ${error.message}` }));
  answer({ ready: true });
}

const STOP_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 30_000;
const RESTART_FIRST_DELAY_MS = 250;
const RESTART_MAX_DELAY_MS = 30_000;

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout;
}

/** What crosses to the thread: a call, or the order to stop. */
type Call = { id: number; method: string; args: unknown[] } | { stop: true };
/** What crosses back. */
type Answer =
  | { id: number; value: string | undefined }
  | { id: number; error: ThrownError }
  | { ready: true }
  | { failed: ThrownError }
  | { report: string };
/** An error as it crosses the threads: its class's name and its own fields (code, field, ...). */
type ThrownError = { name: string; message: string; [field: string]: unknown };

/**
 * The code a worker starts with. Worker threads do not inherit the TypeScript loader that the
 * process was started with (`--import tsx`): the thread registers it before importing its module.
 */
function boot(module: URL): string {
  return `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => {
    tsx.register();
    return import(${JSON.stringify(module.href)});
  })`;
}

/** The error classes of the domain, by name. */
const ERROR_CLASSES: Record<string, { prototype: Error }> = { ...errors };

/** Puts an error from the other thread back together, as the class it was thrown as. */
function revive(thrown: ThrownError): Error {
  const error = Object.create((ERROR_CLASSES[thrown.name] ?? Error).prototype) as Error;
  Object.assign(error, thrown);
  return error;
}

/** The fields of an error the other thread needs: its class's name, message, code and the like. */
function flatten(error: unknown): ThrownError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  return { ...error, name: error.name, message: error.message, stack: error.stack };
}
