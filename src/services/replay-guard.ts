import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { ReplayKey } from '../providers/carrier.ts';
import type { InteractionLog } from '../store/interactions.ts';
import type { Store } from '../store/store.ts';
import { WebhookReceiptRepository } from '../store/webhook-receipts.ts';

/**
 * How long a receipt is kept for a carrier whose signature carries no time (Twilio, Plivo): a
 * replay is refused this long after the request was first taken. Such a signature never goes stale
 * at the carrier's end, so a bound is Veil's to choose: the default life of a session, past which
 * the sessions a captured request could reach have mostly ended.
 */
export const UNTIMED_RECEIPT_MS = 86_400_000;

/**
 * How long this instance keeps the answer it gave to a webhook of a carrier that resends a request
 * with the same signature (ReplayKey.resent), for that retry: Twilio retries a request it had no
 * answer to in time, all within 15 s (its connection overrides' longest total time). Carriers that
 * sign each delivery anew (Vonage, Plivo, Telnyx) keep nothing here.
 */
export const RETRY_WINDOW_MS = 15_000;

/**
 * Most requests this instance remembers taking; past it, the oldest are forgotten (their receipts,
 * written by then, still refuse them, with one read).
 */
const MAX_SEEN = 100_000;

/** What a carrier was answered, as it can be sent again. */
export interface KeptAnswer {
  statusCode: number;
  contentType: string;
  body: string;
}

/** A webhook's first taking: settle it with the answer given (undefined when it failed, a 5xx). */
export interface Taken {
  first: true;
  settle(answer: KeptAnswer | undefined): void;
}

/** A request taken before: the answer it had, when this instance still holds it for a retry. */
export interface Repeated {
  first: false;
  answer?: KeptAnswer;
}

/** A request this instance took, or found taken, while its receipt lasts. */
interface Seen {
  /** The answer it had, for the carrier's retry (ReplayKey.resent); undefined when there is none. */
  answer?: Promise<KeptAnswer | undefined>;
  /** Until when that answer is given again: the retry window from the answer, unbounded until then. */
  answeredUntil: number;
}

/**
 * Each signed carrier webhook is carried out once. The first taking of a request leaves a receipt
 * whose key is unique across every instance sharing the database; the same request sent again (a
 * replay: a captured request, or a body re-encoded under the same signature) is refused, so it
 * neither routes a call nor relays a text nor rewrites a report a second time, nor tells the sender
 * the number a call was put through to.
 *
 * Checking costs a read, not a write: this instance remembers the requests it took (an LRU cache,
 * each entry as long as its receipt), and a request it has not seen is looked up once by the
 * receipts' primary key on the routing reader. The receipt itself is written behind the answer, in
 * the interaction log's next batch (within its MAX_DELAY_MS, 100 ms). The one gap this leaves: the
 * same request sent to another instance before that batch is committed is taken there once more.
 *
 * Twilio's own retry of a request whose answer it never received is the same request, signature
 * and all: on the instance that answered it, within RETRY_WINDOW_MS, it gets that answer again
 * (nothing routed or written again), so a call is not dropped because its first answer was late;
 * on another instance, or later, it is refused like any replay, and Twilio turns to its fallback
 * URL. A request that failed (5xx) gives its receipt back: the carrier delivers it again (signed
 * anew or not), and that delivery is taken.
 */
export class ReplayGuard {
  private readonly receipts: WebhookReceiptRepository;
  /** The requests taken (or found taken) on this instance, by provider and digest. */
  private readonly seen: LRUCache<string, Seen>;

  constructor(
    private readonly store: Store,
    private readonly log: Pick<InteractionLog, 'recordReceipt' | 'withdrawReceipt' | 'flush'>,
    private readonly clock: () => number = Date.now,
  ) {
    this.receipts = new WebhookReceiptRepository(store);
    this.seen = new LRUCache({
      max: MAX_SEEN,
      updateAgeOnGet: false,
      // Read the clock at every look-up (requests answered from the cache alone reach no timer tick).
      ttlResolution: 0,
      perf: { now: clock },
    });
  }

  async take(provider: string, replayKey: ReplayKey): Promise<Taken | Repeated> {
    const digest = createHash('sha256').update(replayKey.key).digest('base64url');
    const id = `${provider} ${digest}`;
    const now = this.clock();
    const known = this.seen.get(id);
    if (known) return repeated(known, now);

    const expiresAt = replayKey.until ?? now + UNTIMED_RECEIPT_MS;
    let resolve: (answer: KeptAnswer | undefined) => void = () => {};
    const seen: Seen = { answeredUntil: Number.POSITIVE_INFINITY };
    if (replayKey.resent)
      seen.answer = new Promise((r) => {
        resolve = r;
      });
    // Remembered before the read, so that the same request arriving meanwhile waits on this one.
    this.seen.set(id, seen, { ttl: Math.max(1, expiresAt - now) });
    let held: boolean;
    try {
      held = await this.receipts.held(provider, digest, now);
    } catch (error) {
      this.forget(id, seen);
      resolve(undefined);
      throw error;
    }
    if (held) {
      // Taken on another instance (or before a restart): a replay, as is any repeat of it here.
      resolve(undefined);
      seen.answer = undefined;
      return { first: false };
    }
    this.log.recordReceipt(provider, digest, expiresAt);
    let settled = false;
    return {
      first: true,
      settle: (answer) => {
        if (settled) return;
        settled = true;
        resolve(answer);
        if (answer) {
          seen.answeredUntil = this.clock() + RETRY_WINDOW_MS;
          return;
        }
        this.forget(id, seen);
        this.release(provider, digest);
      },
    };
  }

  /** Forgets a request taken here, unless a later taking of it replaced the entry. */
  private forget(id: string, seen: Seen): void {
    if (this.seen.peek(id) === seen) this.seen.delete(id);
  }

  /** Not carried out: the carrier's next delivery of the request is to be taken. */
  private release(provider: string, digest: string): void {
    if (this.log.withdrawReceipt(provider, digest)) return;
    // Already in a batch: once it is committed, delete the row it wrote.
    void (async () => {
      await this.log.flush();
      if (this.log.withdrawReceipt(provider, digest)) return;
      await this.store.transaction((trx) => this.receipts.release(trx, provider, digest));
    })().catch(() => undefined);
  }

  /** Removes receipts past their time, a batch at a time; how many went (the sweeper's). */
  async prune(): Promise<number> {
    const now = this.clock();
    let total = 0;
    let removed: number;
    do {
      removed = await this.store.transaction((trx) => this.receipts.prune(trx, now));
      total += removed;
    } while (removed === WebhookReceiptRepository.PRUNE_BATCH);
    return total;
  }
}

/** A request taken before: its answer again when it is the carrier's retry within the window, else refused. */
async function repeated(seen: Seen, now: number): Promise<Repeated> {
  // Still being answered: the retry waits for that answer, as long as the carrier would.
  const answer =
    seen.answer && seen.answeredUntil > now ? await within(seen.answer, RETRY_WINDOW_MS) : undefined;
  return answer ? { first: false, answer } : { first: false };
}

/** What `promise` gives within `ms`, else undefined. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
