import { createHash } from 'node:crypto';
import type { ReplayKey } from '../providers/carrier.ts';
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

/** Most answers kept for retries; past it, the oldest go first (a retry of it is then refused). */
const MAX_KEPT_ANSWERS = 10_000;

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

interface Pending {
  answer: Promise<KeptAnswer | undefined>;
  /** When the kept answer goes, once settled. */
  expiresAt: number;
}

/**
 * Each signed carrier webhook is carried out once. The first taking of a request writes a receipt
 * whose key is unique across every instance sharing the database; the same request sent again (a
 * replay: a captured request, or a body re-encoded under the same signature) finds it and is
 * refused, so it neither routes a call nor relays a text nor rewrites a report a second time, nor
 * tells the sender the number a call was put through to.
 *
 * Twilio's own retry of a request whose answer it never received is the same request, signature
 * and all: on the instance that answered it, within RETRY_WINDOW_MS, it gets that answer again
 * (nothing routed or written again), so a call is not dropped because its first answer was late;
 * on another instance, or later, it is refused like any replay, and Twilio turns to its fallback
 * URL. A request that failed (5xx) gives its receipt back: the carrier delivers it again (signed
 * anew or not), and that delivery is taken.
 */
export class ReplayGuard {
  private readonly receipts = new WebhookReceiptRepository();
  /** The answers of requests taken on this instance, oldest first, by provider and digest. */
  private readonly kept = new Map<string, Pending>();

  constructor(
    private readonly store: Store,
    private readonly clock: () => number = Date.now,
  ) {}

  async take(provider: string, replayKey: ReplayKey): Promise<Taken | Repeated> {
    const digest = createHash('sha256').update(replayKey.key).digest('base64url');
    const now = this.clock();
    const expiresAt = replayKey.until ?? now + UNTIMED_RECEIPT_MS;
    const taken = await this.store.transaction((trx) => this.receipts.take(trx, provider, digest, expiresAt));
    const id = `${provider} ${digest}`;
    if (!taken) {
      const pending = this.kept.get(id);
      // Still being answered: the retry waits for that answer, as long as the carrier would.
      const answer =
        pending && pending.expiresAt > now ? await within(pending.answer, RETRY_WINDOW_MS) : undefined;
      return answer ? { first: false, answer } : { first: false };
    }
    this.forgetExpired(now);
    if (!replayKey.resent)
      return { first: true, settle: (answer) => answer || this.release(provider, digest) };
    let resolve: (answer: KeptAnswer | undefined) => void = () => {};
    const pending: Pending = {
      answer: new Promise((r) => {
        resolve = r;
      }),
      expiresAt: Number.POSITIVE_INFINITY,
    };
    this.kept.delete(id);
    this.kept.set(id, pending);
    let settled = false;
    return {
      first: true,
      settle: (answer) => {
        if (settled) return;
        settled = true;
        resolve(answer);
        if (answer) {
          pending.expiresAt = this.clock() + RETRY_WINDOW_MS;
          return;
        }
        this.kept.delete(id);
        this.release(provider, digest);
      },
    };
  }

  /** Not carried out: the carrier's next delivery of the request is to be taken. */
  private release(provider: string, digest: string): void {
    void this.store.transaction((trx) => this.receipts.release(trx, provider, digest)).catch(() => undefined);
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

  /** Drops the kept answers whose retry window has passed, and the oldest past MAX_KEPT_ANSWERS. */
  private forgetExpired(now: number): void {
    for (const [id, pending] of this.kept) {
      if (pending.expiresAt > now && this.kept.size < MAX_KEPT_ANSWERS) break;
      this.kept.delete(id);
    }
  }
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
