import pg from 'pg';
import { REVOCATION_CHANNEL, type RevocationWatch } from '../key-revocations.ts';

/** How many announcements heard are remembered for a late `heard`. */
const RECENT_TOKENS = 64;
/** Least time between two attempts to listen again after the connection was lost. */
const RECONNECT_MS = 1_000;

/**
 * The watch on PostgreSQL: a connection of its own LISTENs for the revocations of this schema, so
 * that a request asks the database nothing. Its version changes at each notification, and again
 * whenever listening (re)starts, since what was announced meanwhile was missed; while not listening
 * it answers undefined and every request verifies its key in the database.
 */
export class RevocationListener implements RevocationWatch {
  private client: pg.Client | undefined;
  private listening = false;
  private generation = 0;
  private lastAttempt = Number.NEGATIVE_INFINITY;
  private closed = false;
  /** Announcements awaited (`heard`), by token. */
  private readonly waiting = new Map<string, () => void>();
  /** The last announcements heard, for a `heard` asked after its NOTIFY already came. */
  private readonly recent: string[] = [];

  constructor(private readonly clientConfig: pg.ClientConfig) {}

  async version(): Promise<string | undefined> {
    if (this.listening) return String(this.generation);
    this.start();
    return undefined;
  }

  /** Starts listening in the background (at most once per RECONNECT_MS); a failure is tried again later. */
  private start(): void {
    const now = Date.now();
    if (this.closed || this.client || now - this.lastAttempt < RECONNECT_MS) return;
    this.lastAttempt = now;
    const client = new pg.Client(this.clientConfig);
    this.client = client;
    const lost = () => {
      if (this.client !== client) return;
      this.client = undefined;
      this.listening = false;
      this.generation++;
      client.end().catch(() => {});
    };
    client.on('error', lost);
    client.on('end', lost);
    void (async () => {
      try {
        await client.connect();
        const { rows } = await client.query<{ s: string }>('select current_schema() as s');
        const schema = rows[0]?.s;
        client.on('notification', (n) => {
          const [from, token] = (n.payload ?? '').split(' ');
          if (n.channel !== REVOCATION_CHANNEL || from !== schema) return;
          this.generation++;
          if (!token) return;
          this.recent.push(token);
          if (this.recent.length > RECENT_TOKENS) this.recent.shift();
          this.waiting.get(token)?.();
        });
        await client.query(`listen ${REVOCATION_CHANNEL}`);
        if (this.client !== client) return;
        this.generation++;
        this.listening = true;
      } catch {
        lost();
      }
    })();
  }

  async heard(token: string, timeoutMs: number): Promise<void> {
    if (!this.listening || this.recent.includes(token)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(token);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiting.set(token, done);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    this.listening = false;
    await client?.end().catch(() => {});
  }
}
