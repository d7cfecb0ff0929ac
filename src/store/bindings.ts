import { sql } from 'kysely';
import { type BindingState, type PendingState, stateAtEnd } from '../domain/binding.ts';
import type { Db } from './schema.ts';
import { vaultOf } from './vault.ts';

/**
 * A binding: the rows of one session on one proxy. A session has one at a time, and more only
 * after a rebind moved it off a carrier that was down, while the old binding is being undone.
 */
export interface BindingKey {
  sessionId: string;
  proxyNumberId: string;
}

/** A binding waiting for the worker: its state and the version it was read at. */
export interface DueBinding extends BindingKey {
  tenantId: string;
  state: PendingState;
  version: number;
  /** Failed tries so far. */
  attempts: number;
}

/** What the carrier is asked: the two people, their one proxy and its carrier, until when. */
export interface BindingWork {
  people: string[];
  proxyNumber: string;
  provider: string;
  expiresAt: number;
  record: boolean;
  /** The carrier's id for the binding, once bound. */
  ref: string | null;
}

/** The state a change starts from: it is made only if the rows are still there (optimistic locking). */
export interface Expected {
  state: BindingState;
  version: number;
}

/** The terms of the due-work index's predicate, so that it is the index used. */
const PENDING = sql<boolean>`binding in ('binding', 'unbinding')`;
/** The terms of the failed bindings' index (migration 0013), likewise. */
const FAILED = sql<boolean>`binding = 'failed'`;

/** What the carrier is asked of a binding: to make it (`binding`), or to undo it (`unbinding`). */
export type BindingOperation = 'bind' | 'unbind';

/** Sessions by the state of their remote binding, as /metrics shows them, by operation. */
export interface BindingCensus {
  /** Waiting for the worker: to be bound, or undone after the session ended. */
  pending: Record<BindingOperation, number>;
  /** Of those, the ones whose last try failed (waiting out a backoff). */
  retrying: Record<BindingOperation, number>;
  /** Given up after every try (`binding.failed`). */
  failed: Record<BindingOperation, number>;
}

/**
 * Remote bindings, kept on the participant rows of their session: both rows of a session carry the
 * same state and version and change together, each change guarded by the version it read.
 */
export class BindingRepository {
  constructor(private readonly db: Db) {}

  /**
   * Sessions with a binding or unbinding due by `now`, soonest first: one probe of the due-work
   * index, whose entries are the pending bindings only.
   */
  async due(now: number, limit: number): Promise<DueBinding[]> {
    const rows = await this.db
      .selectFrom('participants')
      .select([
        'session_id',
        'proxy_number_id',
        'tenant_id',
        'binding',
        'binding_version',
        'binding_attempts',
      ])
      .where(PENDING)
      .where('binding_next_at', '<=', now)
      .orderBy('binding_next_at')
      .limit(limit * 2)
      .execute();
    const due = new Map<string, DueBinding>();
    for (const r of rows) {
      const key = `${r.session_id} ${r.proxy_number_id}`;
      if (due.has(key) || due.size >= limit) continue;
      due.set(key, {
        sessionId: r.session_id,
        proxyNumberId: r.proxy_number_id,
        tenantId: r.tenant_id,
        state: r.binding as PendingState,
        version: r.binding_version,
        attempts: r.binding_attempts,
      });
    }
    return [...due.values()];
  }

  /**
   * Takes a due binding for one try: bumps its version and holds it off for `leaseUntil` (another
   * worker takes it again only after that, should this one die on the way). False when another
   * worker, or a change of the session, got there first.
   */
  async claim(key: BindingKey, expected: Expected, leaseUntil: number): Promise<boolean> {
    const r = await this.guarded(key, expected)
      .set({ binding_version: expected.version + 1, binding_next_at: leaseUntil })
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** What the carrier is to be asked for a binding, as it is in the state `expected`. */
  async work(key: BindingKey, expected: Expected): Promise<BindingWork | undefined> {
    const rows = await this.db
      .selectFrom('participants as p')
      .innerJoin('numbers as n', 'n.id', 'p.proxy_number_id')
      .innerJoin('sessions as s', 's.id', 'p.session_id')
      .select([
        'p.number_sealed',
        'p.proxy_number',
        'p.binding_ref',
        'n.provider',
        's.expires_at',
        's.record',
      ])
      .where('p.session_id', '=', key.sessionId)
      .where('p.proxy_number_id', '=', key.proxyNumberId)
      .where('p.binding', '=', expected.state)
      .where('p.binding_version', '=', expected.version)
      .orderBy('p.created_at')
      .orderBy('p.id')
      .execute();
    const [first] = rows;
    if (!first) return undefined;
    return {
      people: rows.map((r) => vaultOf(this.db).openNumber(r.number_sealed)),
      proxyNumber: first.proxy_number,
      provider: first.provider,
      expiresAt: first.expires_at,
      record: first.record === 1,
      ref: first.binding_ref,
    };
  }

  /**
   * Moves the binding on after the carrier's yes (`bound` with its id, or `unbound`, which lets go
   * of the proxy for its people). False when it changed since it was claimed.
   */
  async settle(key: BindingKey, expected: Expected, to: BindingState, ref?: string): Promise<boolean> {
    const r = await this.guarded(key, expected)
      .set({
        binding: to,
        binding_version: expected.version + 1,
        binding_attempts: 0,
        binding_next_at: null,
        binding_error: null,
        ...(ref !== undefined ? { binding_ref: ref } : {}),
        ...(to === 'unbound' ? { active: 0 } : {}),
      })
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Records a failed try, to be tried again at `nextAt`. False when it changed since it was claimed. */
  async retryLater(
    key: BindingKey,
    expected: Expected,
    attempts: number,
    error: string,
    nextAt: number,
  ): Promise<boolean> {
    const r = await this.guarded(key, expected)
      .set({
        binding_version: expected.version + 1,
        binding_attempts: attempts,
        binding_next_at: nextAt,
        binding_error: error,
      })
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Gives up: `failed`. A session that ended lets go of the proxy (the carrier's binding ends at
   * its own expiry); an open one keeps it and routes nothing. False when it changed since claimed.
   */
  async giveUp(key: BindingKey, expected: Expected, attempts: number, error: string): Promise<boolean> {
    const r = await this.guarded(key, expected)
      .set({
        binding: 'failed',
        binding_version: expected.version + 1,
        binding_attempts: attempts,
        binding_next_at: null,
        binding_error: error,
        ...(expected.state === 'unbinding' ? { active: 0 } : {}),
      })
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * The end of a binding, inside the transaction that ended it (its session's end, or a rebind
   * that retired its participations), after its rows were released: a bound binding turns
   * `unbinding`, due at once, and its rows stay active (the invariant's index keeps the proxy from
   * its people until the carrier let go); any other is over (`unbound`). `ids` are its rows.
   */
  async end(ids: readonly string[], now: number): Promise<void> {
    if (ids.length === 0) return;
    const rows = await this.db
      .selectFrom('participants')
      .select(['binding', 'binding_version'])
      .where('id', 'in', ids)
      .where('binding', 'is not', null)
      .execute();
    const [first] = rows;
    if (!first?.binding) return;
    const to = stateAtEnd(first.binding);
    if (to === first.binding) return;
    await this.db
      .updateTable('participants')
      .set({
        binding: to,
        binding_version: first.binding_version + 1,
        binding_attempts: 0,
        binding_next_at: to === 'unbinding' ? now : null,
        binding_error: null,
        active: to === 'unbinding' ? 1 : 0,
      })
      .where('id', 'in', ids)
      .where('binding', '=', first.binding)
      .where('binding_version', '=', first.binding_version)
      .execute();
  }

  /**
   * How many sessions' bindings wait for the worker, by state, with how many of them failed a try
   * already, and how many were given up: a bind's (its session open, routing nothing) or an
   * unbind's (left at the carrier until its expiry). Each is read from a partial index whose
   * entries are those rows only, so it costs what is pending or failed, not the table.
   */
  async census(): Promise<BindingCensus> {
    const census: BindingCensus = {
      pending: { bind: 0, unbind: 0 },
      retrying: { bind: 0, unbind: 0 },
      failed: { bind: 0, unbind: 0 },
    };
    const pending = await this.db
      .selectFrom('participants')
      .select((eb) => [
        'binding',
        eb.fn.count<number | string>('session_id').distinct().as('sessions'),
        eb.fn
          .count<number | string>(eb.case().when('binding_attempts', '>', 0).then(eb.ref('session_id')).end())
          .distinct()
          .as('retrying'),
      ])
      .where(PENDING)
      .groupBy('binding')
      .execute();
    for (const r of pending) {
      const operation = (r.binding as PendingState) === 'binding' ? 'bind' : 'unbind';
      census.pending[operation] = Number(r.sessions);
      census.retrying[operation] = Number(r.retrying);
    }
    const failed = await this.db
      .selectFrom('participants')
      .select((eb) => ['active', eb.fn.count<number | string>('session_id').distinct().as('sessions')])
      .where(FAILED)
      .groupBy('active')
      .execute();
    // A failed bind keeps its session's proxy (active); a failed unbind has let go of it.
    for (const r of failed) census.failed[r.active === 1 ? 'bind' : 'unbind'] = Number(r.sessions);
    return census;
  }

  private guarded(key: BindingKey, expected: Expected) {
    return this.db
      .updateTable('participants')
      .where('session_id', '=', key.sessionId)
      .where('proxy_number_id', '=', key.proxyNumberId)
      .where('binding', '=', expected.state)
      .where('binding_version', '=', expected.version);
  }
}
