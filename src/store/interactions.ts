import type { InsertResult, Selectable, UpdateResult } from 'kysely';
import type { Interaction, Recording } from '../domain/interaction.ts';
import type { Channel } from '../domain/session.ts';
import { byShape, columnList, Prepared, rowNames, rowsOf } from './prepared.ts';
import { OPEN, type Schema } from './schema.ts';
import type { Store } from './store.ts';
import { type NumberVault, vaultOf } from './vault.ts';
import { insertReceipts, RECEIPT_COLUMNS } from './webhook-receipts.ts';

type InteractionRow = Selectable<Schema['interactions']>;
/**
 * An entry's row as routing writes it: all but the recording, which the carrier reports after the
 * call (updateRecording), so that the insert on the routing path binds no columns it never fills.
 */
type LoggedRow = Omit<InteractionRow, 'recording_url' | 'recording_duration_seconds' | 'recording_status'>;

/** A sliding session's new expiry, applied with the batch that logs the interaction behind it. */
export interface Slide {
  sessionId: string;
  expiresAt: number;
}

const MAX_BATCH = 250;
/**
 * At most this long between a call and its row being written. Each commit also resets the page
 * cache of the routing reader on SQLite, so fewer, larger batches make lookups cheaper too
 * (bench/HISTORY.md measures the CPU per routed call at several delays).
 */
const MAX_DELAY_MS = 100;
/** Rows per INSERT statement: batches are written in chunks of this size, each a prepared statement. */
const CHUNK = 50;
const COLUMNS = columnList<LoggedRow>()([
  'id',
  'tenant_id',
  'session_id',
  'channel',
  'from_number',
  'to_number',
  'target_number',
  'caller_id',
  'from_index',
  'action',
  'reason',
  'provider',
  'provider_call_id',
  'status',
  'duration_seconds',
  'media',
  'created_at',
  'updated_at',
]);
/** The most log entries one listing reads past its cursor (see InteractionLog.list). */
export const SCAN_WINDOW = 10_000;

/** What a listing of the log keeps: entries after an id, of one action, reason or channel. */
export interface InteractionFilter {
  after?: string;
  action?: Interaction['action'];
  reason?: string;
  channel?: Channel;
}

/** Values per row: an entry waits to be written as its row's values, in COLUMNS order. */
const WIDTH = COLUMNS.length;
/** Rows kept while the database refuses writes, before the oldest are dropped (and said so). */
const MAX_PENDING = 100_000;

/**
 * The interaction log. Routing records entries without waiting: they are written in small
 * group-committed batches (every MAX_DELAY_MS, or at MAX_BATCH rows), which takes the write off
 * the call path. Reads and status updates flush first, so they always see every entry recorded
 * before them; close() flushes what is left, so a clean shutdown loses nothing.
 *
 * The receipts of the carrier webhooks behind the entries (services/replay-guard.ts) go in the same
 * batches, in the same transaction: a receipt costs the webhook no write of its own.
 */
export class InteractionLog {
  /** The values of the rows recorded and not yet written, row after row (WIDTH each). */
  private pending: unknown[] = [];
  private slides = new Map<string, number>();
  /** The receipts recorded and not yet written, by their key (`provider digest`): their values. */
  private receipts = new Map<string, unknown[]>();
  private readonly insertReceiptsOf: ReturnType<typeof insertReceipts>;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  /** The prepared INSERT of n rows (their values row after row, in COLUMNS order), made when first needed. */
  private readonly insertOf = byShape(
    (n: number) => n,
    (n) =>
      new Prepared<Record<string, unknown>, InsertResult>(rowNames('interactions', COLUMNS, n), (v) =>
        this.store.db
          .insertInto('interactions')
          .values(rowsOf('interactions', COLUMNS, n, v))
          // A batch is written again when its first try's answer was lost (the thread that wrote it
          // died after the commit): the rows already there stay as they are.
          .onConflict((oc) => oc.column('id').doNothing()),
      ),
  );
  /** A sliding session's new expiry; never moves it back, nor revives an ended session. */
  private readonly slide: Prepared<{ expiresAt: number; sessionId: string }, UpdateResult>;
  private readonly vault: NumberVault;

  constructor(
    private readonly store: Store,
    private readonly onError: (error: unknown, dropped: number) => void,
  ) {
    this.vault = vaultOf(store.db);
    this.insertReceiptsOf = insertReceipts(store.db);
    this.slide = new Prepared(['expiresAt', 'sessionId'], (v) =>
      store.db
        .updateTable('sessions')
        .set({ expires_at: v.expiresAt })
        .where('id', '=', v.sessionId)
        .where('status', '=', OPEN)
        .where('expires_at', '<', v.expiresAt),
    );
  }

  record(interaction: Interaction, slide?: Slide): void {
    const row = rowOf(this.vault, interaction);
    for (const column of COLUMNS) this.pending.push(row[column]);
    if (slide)
      this.slides.set(slide.sessionId, Math.max(slide.expiresAt, this.slides.get(slide.sessionId) ?? 0));
    this.schedule();
  }

  /** Records a carrier webhook's receipt, written with the next batch. */
  recordReceipt(provider: string, digest: string, expiresAt: number): void {
    this.receipts.set(`${provider} ${digest}`, [provider, digest, expiresAt]);
    this.schedule();
  }

  /** Takes back a receipt not yet written; false when it was written already (or is being written). */
  withdrawReceipt(provider: string, digest: string): boolean {
    return this.receipts.delete(`${provider} ${digest}`);
  }

  private schedule(): void {
    if (this.pending.length + this.receipts.size * WIDTH >= MAX_BATCH * WIDTH) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), MAX_DELAY_MS);
  }

  /** Writes everything recorded so far; resolves when it is committed. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const values = this.pending;
    const slides = this.slides;
    const receipts = this.receipts;
    this.pending = [];
    this.slides = new Map();
    this.receipts = new Map();
    this.writing = this.writing.then(() => this.write(values, slides, receipts));
    return this.writing;
  }

  /**
   * Writes rows given as their values, row after row. The values were laid out when the entries
   * were recorded, one at a time: laying out a batch of 250 here at once held the event loop for
   * milliseconds (bench/HISTORY.md).
   */
  private async write(
    values: unknown[],
    slides: Map<string, number>,
    receipts: Map<string, unknown[]>,
  ): Promise<void> {
    if (values.length === 0 && slides.size === 0 && receipts.size === 0) return;
    const statements = [];
    for (let at = 0; at < values.length; at += CHUNK * WIDTH) {
      const chunk = values.slice(at, at + CHUNK * WIDTH);
      statements.push(this.insertOf(chunk.length / WIDTH).bind(chunk));
    }
    const receiptValues = [...receipts.values()].flat();
    const receiptChunk = CHUNK * RECEIPT_COLUMNS.length;
    for (let at = 0; at < receiptValues.length; at += receiptChunk) {
      const chunk = receiptValues.slice(at, at + receiptChunk);
      statements.push(this.insertReceiptsOf(chunk.length / RECEIPT_COLUMNS.length).bind(chunk));
    }
    for (const [sessionId, expiresAt] of slides) statements.push(this.slide.bind([expiresAt, sessionId]));
    try {
      await this.store.writeBatch(statements);
    } catch (error) {
      // Keep the rows for the next flush rather than lose them; bound what is kept.
      this.pending = [...values, ...this.pending];
      for (const [id, at] of slides) if (!this.slides.has(id)) this.slides.set(id, at);
      for (const [key, receipt] of receipts) if (!this.receipts.has(key)) this.receipts.set(key, receipt);
      for (const key of this.receipts.keys()) {
        if (this.receipts.size <= MAX_PENDING) break;
        this.receipts.delete(key);
      }
      const dropped = Math.max(0, this.pending.length / WIDTH - MAX_PENDING);
      if (dropped > 0) this.pending.splice(0, dropped * WIDTH);
      this.onError(error, dropped);
      this.timer ??= setTimeout(() => void this.flush(), 1000);
    }
  }

  /**
   * The tenant's interactions oldest first, after the id `after`, those matching the filter, at
   * most `limit`. A request reads at most SCAN_WINDOW entries of the log past `after`, whatever
   * the filter, so that a rare filter over a long log still ends quickly: `next` is where to go on
   * (the last entry answered, or the end of the window read), undefined at the log's end.
   */
  async list(
    tenantId: string,
    filter: InteractionFilter,
    limit: number,
  ): Promise<{ entries: Interaction[]; next: string | undefined }> {
    await this.flush();
    const db = this.store.db;
    const after = filter.after ?? '';
    const edge = await db
      .selectFrom('interactions')
      .select('id')
      .where('id', '>', after)
      .orderBy('id')
      .offset(SCAN_WINDOW - 1)
      .limit(1)
      .executeTakeFirst();
    let q = db
      .selectFrom('interactions')
      .selectAll()
      .where('id', '>', after)
      .where('tenant_id', '=', tenantId);
    if (edge) q = q.where('id', '<=', edge.id);
    if (filter.action !== undefined) q = q.where('action', '=', filter.action);
    if (filter.reason !== undefined) q = q.where('reason', '=', filter.reason);
    if (filter.channel !== undefined) q = q.where('channel', '=', filter.channel);
    const rows = await q.orderBy('id').limit(limit).execute();
    const entries = rows.map((r) => toInteraction(this.vault, r));
    const next = rows.length === limit ? rows.at(-1)?.id : edge?.id;
    return { entries, next };
  }

  async listForSession(
    tenantId: string,
    sessionId: string,
    after: string | undefined,
    limit: number,
  ): Promise<Interaction[]> {
    await this.flush();
    let q = this.store.db
      .selectFrom('interactions')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where('tenant_id', '=', tenantId);
    if (after) q = q.where('id', '>', after);
    const rows = await q.orderBy('id').limit(limit).execute();
    return rows.map((r) => toInteraction(this.vault, r));
  }

  /**
   * The most recent number other than `owner` that was put through in this session since `since`:
   * whom a `dedicated` owner calls back. Newest first along the session's index.
   */
  async lastCaller(sessionId: string, owner: string, since: number): Promise<string | undefined> {
    await this.flush();
    const row = await this.store.db
      .selectFrom('interactions')
      .select('from_number')
      .where('session_id', '=', sessionId)
      .where('from_index', '<>', this.vault.index(owner))
      .where('action', 'in', ['connect', 'forward'])
      .where('created_at', '>=', since)
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && this.vault.open(row.from_number);
  }

  /** Applies a carrier's status callback; undefined when no interaction has that call id. */
  async updateStatus(
    provider: string,
    providerCallId: string,
    status: string,
    durationSeconds: number | null,
    now: number,
    /** Only this tenant's call (a report made with an API key); any tenant's for a signed webhook. */
    tenantId?: string,
  ): Promise<boolean> {
    await this.flush();
    let update = this.store.db
      .updateTable('interactions')
      .set({
        status,
        ...(durationSeconds !== null ? { duration_seconds: durationSeconds } : {}),
        updated_at: now,
      })
      .where('provider', '=', provider)
      .where('provider_call_id', '=', providerCallId);
    if (tenantId !== undefined) update = update.where('tenant_id', '=', tenantId);
    const r = await update.executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Keeps a call's recording on its interaction (the carrier's latest report replaces an earlier
   * one); false when no call has that id. A text has no recording: only a call's row is touched.
   */
  async updateRecording(
    provider: string,
    providerCallId: string,
    recording: Recording,
    now: number,
  ): Promise<boolean> {
    await this.flush();
    const r = await this.store.db
      .updateTable('interactions')
      .set({
        recording_url: recording.url,
        recording_duration_seconds: recording.durationSeconds,
        recording_status: recording.status,
        updated_at: now,
      })
      .where('provider', '=', provider)
      .where('provider_call_id', '=', providerCallId)
      .where('channel', '=', 'voice')
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Flushes and stops the timer: call on shutdown. */
  async close(): Promise<void> {
    await this.flush();
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** An interaction's row as routing writes it, its people's numbers sealed. */
function rowOf(vault: NumberVault, i: Interaction): LoggedRow {
  return {
    id: i.id,
    tenant_id: i.tenantId,
    session_id: i.sessionId,
    channel: i.channel,
    from_number: vault.sealNumber(i.from),
    to_number: i.to,
    target_number: vault.sealNumberOrNull(i.target),
    caller_id: vault.sealNumberOrNull(i.callerId),
    from_index: vault.index(i.from),
    action: i.action,
    reason: i.reason,
    provider: i.provider,
    provider_call_id: i.providerCallId,
    status: i.status,
    duration_seconds: i.durationSeconds,
    // Null for the calls and plain texts that are nearly all of the log: nothing to encode.
    media: i.media.length > 0 ? JSON.stringify(i.media) : null,
    created_at: i.createdAt,
    updated_at: i.updatedAt,
  };
}

function toInteraction(vault: NumberVault, r: InteractionRow): Interaction {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    sessionId: r.session_id,
    channel: r.channel as Channel,
    from: vault.open(r.from_number),
    to: r.to_number,
    target: vault.openOrNull(r.target_number),
    callerId: vault.openOrNull(r.caller_id),
    action: r.action as Interaction['action'],
    reason: r.reason,
    provider: r.provider,
    providerCallId: r.provider_call_id,
    status: r.status,
    durationSeconds: r.duration_seconds,
    media: r.media === null ? [] : (JSON.parse(r.media) as string[]),
    recording:
      r.recording_status === null
        ? null
        : {
            url: r.recording_url,
            durationSeconds: r.recording_duration_seconds,
            status: r.recording_status,
          },
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
