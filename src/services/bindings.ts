import {
  type Backoff,
  backoffMs,
  canMove,
  DEFAULT_BACKOFF,
  MAX_BINDING_ERROR,
  stateOnSuccess,
} from '../domain/binding.ts';
import { maskNumbersInText } from '../domain/phone.ts';
import type { Logger } from '../logger.ts';
import type { Binder } from '../providers/binder.ts';
import { BindingRepository, type BindingWork, type DueBinding, type Expected } from '../store/bindings.ts';
import { appendEvent } from '../store/events.ts';
import type { Store } from '../store/store.ts';
import { inTransaction } from '../store/transactions.ts';

/** The payload of a `binding.failed` event: no number, the session names the people. */
export interface BindingFailed {
  sessionId: string;
  /** What was given up: making the binding (the session routes nothing) or undoing it. */
  operation: 'bind' | 'unbind';
  provider: string;
  attempts: number;
  /** The last try's error: the carrier's code, or `timeout`, `unreachable`, `status 503`. */
  error: string;
}

export interface BindingOptions {
  /** Tries before a binding is given up (VEIL_BINDING_MAX_ATTEMPTS). */
  maxAttempts: number;
  backoff?: Backoff;
  /**
   * How long a claimed try keeps other workers off: past the carrier client's time bound, so that
   * only a worker that died on the way has its try taken over.
   */
  leaseMs?: number;
  /** Sessions taken per pass (their carrier calls run side by side). */
  batch?: number;
  clock?: () => number;
  /** [0, 1), for the backoff's jitter. */
  random?: () => number;
}

export const DEFAULT_LEASE_MS = 30_000;
const DEFAULT_BATCH = 20;

/** What one try did: bound, unbound, retried later, failed, or nothing (another worker had it). */
export type BindingOutcome = 'bound' | 'unbound' | 'retry' | 'failed' | 'skipped';

/**
 * Makes and undoes sessions' bindings at remote-binding carriers, asynchronously: each pass takes
 * the due ones, asks the carrier, and moves each binding on only if nobody changed it meanwhile
 * (the version it claimed): a late answer, a second worker or a session closed during the call
 * never overwrite a newer state. A failed try waits a backoff with full jitter; after
 * `maxAttempts` the binding is `failed`, with a `binding.failed` event in the same transaction.
 * Safe on every instance at once.
 */
export class BindingService {
  private readonly clock: () => number;
  private readonly random: () => number;
  private readonly backoff: Backoff;
  private readonly leaseMs: number;
  private readonly batch: number;

  constructor(
    private readonly store: Store,
    private readonly binders: ReadonlyMap<string, Binder>,
    private readonly logger: Logger,
    private readonly options: BindingOptions,
  ) {
    this.clock = options.clock ?? Date.now;
    this.random = options.random ?? Math.random;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.batch = options.batch ?? DEFAULT_BATCH;
  }

  /** Whether there is any remote-binding carrier to work for. */
  get working(): boolean {
    return this.binders.size > 0;
  }

  /** One pass: the due bindings' tries, side by side; what each did. */
  async pass(): Promise<BindingOutcome[]> {
    const due = await new BindingRepository(this.store.db).due(this.clock(), this.batch);
    return Promise.all(due.map((d) => this.attempt(d)));
  }

  /** One try of one due binding. */
  async attempt(due: DueBinding): Promise<BindingOutcome> {
    const repo = new BindingRepository(this.store.db);
    const read: Expected = { state: due.state, version: due.version };
    if (!(await repo.claim(due, read, this.clock() + this.leaseMs))) return 'skipped';
    const claimed: Expected = { state: due.state, version: due.version + 1 };
    const work = await repo.work(due, claimed);
    if (!work) return 'skipped';
    const binder = this.binders.get(work.provider);
    try {
      if (!binder) throw new Error(`${work.provider} is not enabled: its credentials are not configured`);
      if (due.state === 'binding') return await this.bind(binder, due, claimed, work);
      const { ref } = work;
      // A binding the carrier never confirmed has no id: there is nothing there to undo.
      if (ref !== null) await binder.unbind(ref, work.proxyNumber);
      return (await this.settle(due, claimed)) ? 'unbound' : 'skipped';
    } catch (error) {
      return this.failed(due, claimed, work, error);
    }
  }

  private async bind(
    binder: Binder,
    due: DueBinding,
    claimed: Expected,
    work: BindingWork,
  ): Promise<BindingOutcome> {
    const [a, b] = work.people;
    if (!a || !b) throw new Error('the session has not two participants');
    const { ref } = await binder.bind({
      people: [a, b],
      proxyNumber: work.proxyNumber,
      expiresAt: work.expiresAt,
      record: work.record,
    });
    if (await this.settle(due, claimed, ref)) return 'bound';
    // The binding changed while the carrier answered (the session closed, or this try's lease ran
    // out and another took over): what the carrier made here is nobody's, and is undone.
    this.logger.warn(
      { sessionId: due.sessionId, provider: binder.name },
      'a binding answered after it changed; undoing what the carrier made',
    );
    try {
      await binder.unbind(ref, work.proxyNumber);
    } catch (error) {
      this.logger.warn(
        { sessionId: due.sessionId, provider: binder.name, reason: describe(error) },
        'could not undo a binding the carrier made late; it ends at its expiry',
      );
    }
    return 'skipped';
  }

  private settle(due: DueBinding, claimed: Expected, ref?: string): Promise<boolean> {
    const to = stateOnSuccess(due.state);
    if (!canMove(due.state, to)) return Promise.resolve(false);
    return new BindingRepository(this.store.db).settle(due, claimed, to, ref);
  }

  private async failed(
    due: DueBinding,
    claimed: Expected,
    work: BindingWork,
    error: unknown,
  ): Promise<BindingOutcome> {
    const reason = describe(error);
    const attempts = due.attempts + 1;
    const log = { sessionId: due.sessionId, provider: work.provider, attempts, reason };
    const operation = due.state === 'binding' ? 'bind' : 'unbind';
    if (attempts < this.options.maxAttempts) {
      const nextAt = this.clock() + backoffMs(attempts - 1, this.backoff, this.random);
      const kept = await new BindingRepository(this.store.db).retryLater(
        due,
        claimed,
        attempts,
        reason,
        nextAt,
      );
      if (kept) this.logger.warn(log, `could not ${operation} at the carrier; will try again`);
      return kept ? 'retry' : 'skipped';
    }
    const gaveUp = await inTransaction(this.store, async (trx) => {
      if (!(await new BindingRepository(trx).giveUp(due, claimed, attempts, reason))) return false;
      const payload: BindingFailed = {
        sessionId: due.sessionId,
        operation,
        provider: work.provider,
        attempts,
        error: reason,
      };
      await appendEvent(trx, due.tenantId, 'binding.failed', payload, this.clock());
      return true;
    });
    if (gaveUp) this.logger.error(log, `gave up trying to ${operation} at the carrier`);
    return gaveUp ? 'failed' : 'skipped';
  }
}

/** An error as a binding keeps it: short, and with any number masked (a carrier's message may quote one). */
function describe(error: unknown): string {
  return maskNumbersInText(error instanceof Error ? error.message : String(error)).slice(
    0,
    MAX_BINDING_ERROR,
  );
}
