import { CompiledQuery } from 'kysely';
import type { Db } from '../schema.ts';

/** Most units of work one transaction carries, so that a queue under load still commits often. */
const MAX_BATCH = 64;
/** How long a batch waits for the write lock, polling, before its units fail as busy. */
const LOCK_WAIT_MS = 5_000;
const LOCK_POLL_MS = 1;

/**
 * Runs `begin` without SQLite's busy handler, which would sleep on the event loop while another
 * connection holds the lock: a busy database then answers SQLITE_BUSY at once.
 */
export type WithoutBusyWait = <T>(begin: () => Promise<T>) => Promise<T>;

interface Unit {
  work: (trx: Db) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for SQLite, where one write transaction runs at a time. The units of work waiting
 * for the writer run one after another in a single transaction, each inside its own savepoint: a
 * unit that fails is rolled back alone, and every unit is answered only once the transaction that
 * holds it has committed. One commit (and one begin) then pays for many creates, closes and adds.
 *
 * A unit is never delayed to wait for company: a batch holds whatever queued while the previous
 * one ran, and a single caller gets a transaction of its own at once.
 */
export class GroupCommit {
  private readonly queue: Unit[] = [];
  /** Units in the transaction now running, not yet answered. */
  private committing = 0;
  private running = false;

  constructor(
    private readonly db: Db,
    private readonly withoutBusyWait: WithoutBusyWait = (begin) => begin(),
  ) {}

  /** The units of work waiting for the writer: queued, or in the transaction now running. */
  get waiting(): number {
    return this.queue.length + this.committing;
  }

  run<T>(work: (trx: Db) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (this.running) return;
      this.running = true;
      // Started from the check phase, after the poll phase has read every request that arrived:
      // those that want the writer in this turn of the event loop then share one transaction.
      setImmediate(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        this.committing = batch.length;
        await this.commit(batch);
        this.committing = 0;
      }
    } finally {
      this.committing = 0;
      this.running = false;
    }
  }

  /**
   * Starts the batch's transaction. While another connection holds the write lock (the worker
   * thread's checkpoint syncing the file, the CLI in another process), the batch polls for it from
   * a timer: the event loop, and every routing read with it, goes on in the meantime.
   */
  private async begin() {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        return await this.withoutBusyWait(() => this.db.startTransaction().execute());
      } catch (error) {
        if ((error as { code?: string })?.code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
      }
    }
  }

  private async commit(batch: Unit[]): Promise<void> {
    const outcomes: { ok: boolean; value: unknown }[] = [];
    try {
      const trx = await this.begin();
      try {
        for (const unit of batch) outcomes.push(await runInSavepoint(trx, unit.work));
        await trx.commit().execute();
      } catch (error) {
        await trx
          .rollback()
          .execute()
          .catch(() => {});
        throw error;
      }
    } catch (error) {
      // The transaction itself failed (begin, a savepoint command, commit): nothing of it was kept.
      for (const unit of batch) unit.reject(error);
      return;
    }
    batch.forEach((unit, i) => {
      const outcome = outcomes[i] as { ok: boolean; value: unknown };
      if (outcome.ok) unit.resolve(outcome.value);
      else unit.reject(outcome.value);
    });
  }
}

// Compiled once: every unit runs two of them.
const SAVEPOINT = CompiledQuery.raw('savepoint unit');
const RELEASE = CompiledQuery.raw('release unit');
const ROLLBACK = CompiledQuery.raw('rollback to unit');

/** Runs one unit in a savepoint: kept if it returns, undone (and its error kept) if it throws. */
async function runInSavepoint(trx: Db, work: (trx: Db) => Promise<unknown>) {
  await trx.executeQuery(SAVEPOINT);
  try {
    const value = await work(trx);
    await trx.executeQuery(RELEASE);
    return { ok: true, value };
  } catch (error) {
    // When SQLite has already rolled the whole transaction back (a busy or full file), the savepoint
    // is gone too: the batch then fails with this unit's error, which says what happened.
    await trx.executeQuery(ROLLBACK).catch(() => Promise.reject(error));
    await trx.executeQuery(RELEASE);
    return { ok: false, value: error };
  }
}
