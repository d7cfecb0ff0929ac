import { PoolExhaustedError } from '../domain/errors.ts';
import { usableCarriers } from '../domain/providers.ts';
import type { Logger } from '../logger.ts';
import { NumberRepository } from '../store/numbers.ts';
import { providerFlags } from '../store/providers.ts';
import { SessionRepository } from '../store/sessions.ts';
import type { Store } from '../store/store.ts';
import type { SessionWriter } from './session-writer.ts';

/** Numbers read per look for sessions to move. */
const BATCH = 100;
/** Sessions being moved at once. */
const CONCURRENCY = 16;
/** How long sessions that could not be moved wait before they are tried again (nothing moving). */
export const STUCK_RETRY_MS = 30_000;

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
 * and is tried again at the next pass. Sessions bound at a remote-binding carrier are not moved:
 * their binding is the carrier's to undo.
 */
export class Failover {
  /** Sessions the last pass left behind (no room for them): logged when it changes, and a metric. */
  private left = 0;
  /** While sessions are stuck and nothing moves, passes before this time look at nothing. */
  private quietUntil = 0;
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
    // Each stuck session costs an allocation tried in vain: with nothing moving, they are tried
    // again after a while, or at once when another carrier goes down or comes back.
    if (String(carriers) === this.lastCarriers && this.clock() < this.quietUntil) return result;
    this.lastCarriers = String(carriers);
    result.stranded = 0;
    if (carriers.length > 0) {
      const numbers = new NumberRepository(this.store.db);
      const sessions = new SessionRepository(this.store.db);
      const tried = new Set<string>();
      // Number by number, each one's sessions: every session is tried once a pass, and one that
      // cannot move (no room in the pool) holds up no other. A page's sessions move several at a
      // time, so that SQLite's group commit (or PostgreSQL's pool) carries many in one go.
      let page = await numbers.inUse(carriers, '', BATCH);
      while (page.length > 0) {
        const due: { id: string; tenantId: string }[] = [];
        for (const numberId of page) {
          for (const session of await sessions.holding(numberId)) {
            if (tried.has(session.id)) continue;
            tried.add(session.id);
            due.push(session);
          }
        }
        const moveNext = async () => {
          for (let s = due.shift(); s; s = due.shift()) {
            if (await this.rebind(s.tenantId, s.id)) result.rebound++;
            else result.stranded++;
          }
        };
        await Promise.all(Array.from({ length: CONCURRENCY }, moveNext));
        page = await numbers.inUse(carriers, page[page.length - 1] ?? '', BATCH);
      }
    }
    this.report(result);
    this.quietUntil = result.stranded > 0 && result.rebound === 0 ? this.clock() + STUCK_RETRY_MS : 0;
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
