import { PoolExhaustedError } from '../domain/errors.ts';
import { usableCarriers } from '../domain/providers.ts';
import type { Logger } from '../logger.ts';
import { providerFlags } from '../store/providers.ts';
import { SessionRepository } from '../store/sessions.ts';
import type { Store } from '../store/store.ts';
import type { SessionWriter } from './session-writer.ts';

/** Open participations read per look for sessions to move. */
const BATCH = 200;
/** Sessions being moved at once. */
const CONCURRENCY = 16;
/** How long after a pass that moved nothing the next one looks again (doubling, up to MAX_QUIET_MS). */
export const STUCK_RETRY_MS = 30_000;
const MAX_QUIET_MS = 600_000;

/** What one pass did: sessions moved, and sessions it could not move (the pool had no room). */
export interface FailoverPass {
  /** The carriers down or switched off, whose sessions it moved. */
  carriers: string[];
  rebound: number;
  /** Left on their carrier until a later pass: no number of a carrier in use fits them. */
  stranded: number;
}

/**
 * Moves open sessions off the carriers that are down or switched off (store/providers.ts, shared by
 * every instance): each one re-bound in its own transaction to numbers of the carriers in use, with
 * a `session.rebound` event (SessionWriter.rebind). Safe on every instance at once: the session is
 * locked and looked at again inside the transaction, so two passes never move one twice. A session
 * the pool has no room for stays where it is (its calls still route if the carrier carries them)
 * and is tried again at the next pass. A session bound at a remote-binding carrier moves too; its
 * old binding is undone by the binding worker, as at a session's end.
 */
export class Failover {
  /** Sessions the last pass left behind (no room for them): logged when it changes, and a metric. */
  private left = 0;
  /** While nothing moves, passes before this time look at nothing; `quietMs` is the wait. */
  private quietUntil = 0;
  private quietMs = 0;
  private lastCarriers = '';

  constructor(
    private readonly store: Store,
    private readonly writer: Pick<SessionWriter, 'rebind'>,
    /** Every enabled carrier that gives numbers to sessions. */
    private readonly carriers: readonly string[],
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  async pass(): Promise<FailoverPass> {
    const usable = usableCarriers(this.carriers, await providerFlags(this.store.db, this.carriers));
    const carriers = this.carriers.filter((c) => !usable.includes(c));
    const result: FailoverPass = { carriers, rebound: 0, stranded: this.left };
    const changed = String(carriers) !== this.lastCarriers;
    // A pass walks every open session: with nothing moving, the next waits longer and longer
    // (30 s, doubling up to 10 min), unless another carrier goes down or comes back.
    if (!changed && this.clock() < this.quietUntil) return result;
    this.lastCarriers = String(carriers);
    result.stranded = 0;
    if (carriers.length > 0) {
      const sessions = new SessionRepository(this.store.db);
      const tried = new Set<string>();
      // Page by page of the open sessions on those carriers, each tried once a pass (one that
      // cannot move holds up no other); a page's sessions move several at a time, so that SQLite's
      // group commit (or PostgreSQL's pool) carries many in one go.
      let after: { expiresAt: number; id: string } | undefined;
      for (;;) {
        const page = await sessions.onCarriers(carriers, after, BATCH);
        const last = page[page.length - 1];
        if (!last) break;
        after = last;
        const due = page.filter((s) => !tried.has(s.id) && tried.add(s.id));
        const moveNext = async () => {
          for (let s = due.shift(); s; s = due.shift()) {
            if (await this.rebind(s.tenantId, s.id)) result.rebound++;
            else result.stranded++;
          }
        };
        await Promise.all(Array.from({ length: CONCURRENCY }, moveNext));
      }
    }
    this.report(result);
    this.quietMs =
      changed || result.rebound > 0 ? 0 : Math.min(Math.max(this.quietMs * 2, STUCK_RETRY_MS), MAX_QUIET_MS);
    this.quietUntil = this.clock() + this.quietMs;
    return result;
  }

  /** Moves one session; false when it is left where it is. */
  private async rebind(tenantId: string, id: string): Promise<boolean> {
    try {
      return (await this.writer.rebind(tenantId, id, this.clock())) !== undefined;
    } catch (error) {
      if (!(error instanceof PoolExhaustedError)) {
        this.logger.error({ err: error, sessionId: id }, 'session could not be re-bound');
      }
      return false;
    }
  }

  private report({ carriers, rebound, stranded }: FailoverPass): void {
    if (rebound > 0) this.logger.warn({ carriers, rebound }, 'sessions re-bound off carriers down or off');
    if (stranded !== this.left) {
      this.logger[stranded > 0 ? 'error' : 'info'](
        { carriers, stranded },
        stranded > 0
          ? 'sessions left on carriers down or off: no number of a carrier in use fits them'
          : 'no session is left on a carrier down or off',
      );
    }
    this.left = stranded;
  }

  /** Sessions the last pass could not move. */
  get stranded(): number {
    return this.left;
  }
}
