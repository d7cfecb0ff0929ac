import { createHash } from 'node:crypto';
import SqliteDatabase from 'better-sqlite3';
import type { Selectable } from 'kysely';
import pg from 'pg';
import { DEFAULT_TENANT } from '../src/domain/tenants.ts';
import { NUMBER_COLUMNS } from '../src/store/numbers.ts';
import { valuesOf } from '../src/store/prepared.ts';
import type { Schema } from '../src/store/schema.ts';
import { PARTICIPANT_COLUMNS, SESSION_COLUMNS } from '../src/store/sessions.ts';
import type { NumberVault } from '../src/store/vault.ts';
import { type BenchDatabase, withStore } from './databases.ts';
import { benchVault } from './keys.ts';
import {
  areaOfPerson,
  firstPoolNumberOfArea,
  POOL_NUMBERS_PER_AREA,
  POOL_SIZE,
  personNumber,
  poolNumber,
  strangerNumber,
} from './numbering.ts';
import { randomIndex, seededRandom } from './random.ts';

/** A call to route: from a real number to a proxy number. */
export interface RoutePair {
  from: string;
  to: string;
}

/** What was seeded, and calls to route through it. */
export interface SeededData {
  openSessions: number;
  /** Calls from a participant to their own proxy: each routes to the other participant. */
  hits: RoutePair[];
  /** Calls from numbers with no session to pool numbers: each is refused. */
  strangers: RoutePair[];
}

export interface SeedOptions {
  openSessions: number;
  /** How many hits and strangers to return, drawn at random over all the sessions. */
  sampleSize?: number;
  seed?: number;
}

/** Couriers hold 1..40 open sessions each, in turn; customers 1..3: some people hold many. */
const COURIER_MAX_SESSIONS = 40;
const CUSTOMER_MAX_SESSIONS = 3;
/** Person indexes of customers start here, after every courier's (1M sessions need ~50k couriers). */
const FIRST_CUSTOMER = 1_000_000;
const SEED_TTL_SECONDS = 30 * 86_400;
/** The seeded sessions were opened over the last hour, so their ids sort as the service's would. */
const CREATED_OVER_MS = 3_600_000;
const SESSIONS_PER_BATCH = 1_000;
const BATCHES_PER_TRANSACTION = 50;
const SQLITE_ROWS_PER_INSERT = 200;
const POSTGRES_ROWS_PER_INSERT = 1_000;
const DEFAULT_SAMPLE_SIZE = 10_000;

type NumberRow = Selectable<Schema['numbers']>;
export type SessionRow = Selectable<Schema['sessions']>;
export type ParticipantRow = Selectable<Schema['participants']>;

/** The tables the seeder fills, each with the store's list of its columns (the order values are bound in). */
const COLUMNS: { [T in 'numbers' | 'sessions' | 'participants']: readonly (keyof Schema[T] & string)[] } = {
  numbers: NUMBER_COLUMNS,
  sessions: SESSION_COLUMNS,
  participants: PARTICIPANT_COLUMNS,
};
type SeededTable = keyof typeof COLUMNS;

/**
 * Fills a database the way months of service would leave it, far faster than the API could: the
 * schema from the service's own migrations, a pool of POOL_SIZE numbers, and `openSessions` open
 * per-participant sessions between couriers and customers, with the service's policy defaults.
 * Each person's proxies are distinct across their open sessions and taken from their own area,
 * as the allocator would choose them; the unique index of the invariant would refuse anything
 * else. Numbers' load counts the open sessions holding them. The outbox is left empty: no measured
 * path reads it.
 */
export async function seed(database: BenchDatabase, options: SeedOptions): Promise<SeededData> {
  await withStore(database, async () => {}); // creates the schema
  const writer =
    database.store.dialect === 'sqlite'
      ? sqliteWriter(database.store.file)
      : await postgresWriter(database.store.url);
  try {
    const now = Date.now();
    const pool = poolRows(now);
    await writer.transaction(() => writer.insert('numbers', pool));
    const poolIds = pool.map((row) => row.id);
    const plan = new SessionPlan(poolIds, now, options);
    for (let done = 0; done < options.openSessions; ) {
      await writer.transaction(async () => {
        for (let b = 0; b < BATCHES_PER_TRANSACTION && done < options.openSessions; b++) {
          const batch = plan.batch(Math.min(SESSIONS_PER_BATCH, options.openSessions - done));
          await writer.insert('sessions', batch.sessions);
          await writer.insert('participants', batch.participants);
          done += batch.sessions.length;
        }
      });
    }
    await writer.transaction(() => writer.setLoads(poolIds, plan.loads));
    // The tables filled here are analyzed, as autovacuum analyzes a live deployment's. A pool is
    // imported before its traffic starts, and autovacuum analyzes it within a minute of the import:
    // without its statistics PostgreSQL searches a region's numbers through the country's index
    // (0.6 ms a take instead of 0.2). Sessions and participants are not analyzed while empty:
    // statistics of empty tables would have PostgreSQL plan every allocation of the run for tables
    // that hold nothing; as they grow, it goes by their actual size until autovacuum analyzes them.
    await writer.analyze(options.openSessions > 0 ? undefined : ['numbers']);
    return { openSessions: options.openSessions, hits: plan.hits, strangers: plan.strangers() };
  } finally {
    await writer.close();
  }
}

/** The pool as NumberService.add leaves it: voice and SMS, active, untagged, uncapped, no load yet. */
function poolRows(now: number): NumberRow[] {
  return Array.from({ length: POOL_SIZE }, (_, i) => {
    const { number, region } = poolNumber(i);
    return {
      id: idOf('num', now, Math.random),
      tenant_id: DEFAULT_TENANT,
      number,
      provider: 'twilio',
      country: 'US',
      region,
      voice: 1,
      sms: 1,
      status: 'active',
      tags: '{}',
      max_sessions: null,
      load: 0,
      created_at: now,
      updated_at: now,
      dedicated_to: null,
    };
  });
}

/** People who take part in sessions in turn: person k holds 1 + (k mod maxSessions) of them. */
class Holders {
  private person: number;
  private nth = 0;

  constructor(
    private readonly first: number,
    private readonly maxSessions: number,
  ) {
    this.person = first;
  }

  next(): { person: number; nth: number } {
    if (this.nth >= 1 + ((this.person - this.first) % this.maxSessions)) {
      this.person++;
      this.nth = 0;
    }
    return { person: this.person, nth: this.nth++ };
  }
}

/** The pool index of a person's nth proxy: distinct for each nth, in the person's own area. */
function proxyIndex(person: number, nth: number): number {
  const spread = (person * 37) % POOL_NUMBERS_PER_AREA; // so that people of an area do not all start on one number
  return firstPoolNumberOfArea(areaOfPerson(person)) + ((spread + nth) % POOL_NUMBERS_PER_AREA);
}

/** Generates the sessions batch by batch, counting each number's load and keeping a sample of calls. */
class SessionPlan {
  readonly loads: number[] = new Array(POOL_SIZE).fill(0);
  readonly hits: RoutePair[] = [];
  private readonly couriers = new Holders(0, COURIER_MAX_SESSIONS);
  private readonly customers = new Holders(FIRST_CUSTOMER, CUSTOMER_MAX_SESSIONS);
  private readonly random: () => number;
  private readonly sampleSize: number;
  private readonly vault = benchVault();
  private made = 0;

  constructor(
    private readonly poolIds: string[],
    private readonly now: number,
    private readonly options: SeedOptions,
  ) {
    this.random = seededRandom(options.seed ?? 1);
    this.sampleSize = options.sampleSize ?? DEFAULT_SAMPLE_SIZE;
  }

  batch(count: number): { sessions: SessionRow[]; participants: ParticipantRow[] } {
    const sessions: SessionRow[] = [];
    const participants: ParticipantRow[] = [];
    for (let i = 0; i < count; i++, this.made++) {
      const createdAt =
        this.now - CREATED_OVER_MS + Math.floor((this.made * CREATED_OVER_MS) / this.options.openSessions);
      const id = idOf('ses', createdAt, this.random);
      sessions.push(sessionRow(id, createdAt, this.now + SEED_TTL_SECONDS * 1000));
      const courier = this.couriers.next();
      const customer = this.customers.next();
      const a = this.participant(id, courier, 'courier', createdAt);
      const b = this.participant(id, customer, 'customer', createdAt);
      participants.push(a.row, b.row);
      this.loads[a.proxy] = (this.loads[a.proxy] ?? 0) + 1;
      if (b.proxy !== a.proxy) this.loads[b.proxy] = (this.loads[b.proxy] ?? 0) + 1;
      this.sample(this.random() < 0.5 ? a : b);
    }
    return { sessions, participants };
  }

  /** Reservoir sampling: every session has the same chance to be among the calls routed. */
  private sample(caller: { number: string; proxyNumber: string }): void {
    const call = { from: caller.number, to: caller.proxyNumber };
    if (this.hits.length < this.sampleSize) this.hits.push(call);
    else {
      const slot = randomIndex(this.random, this.made + 1);
      if (slot < this.sampleSize) this.hits[slot] = call;
    }
  }

  /** Calls from people with no session, to random pool numbers: a tenth as many as the hits. */
  strangers(): RoutePair[] {
    return Array.from({ length: Math.ceil(this.sampleSize / 10) }, (_, i) => ({
      from: strangerNumber(i),
      to: poolNumber(randomIndex(this.random, POOL_SIZE)).number,
    }));
  }

  private participant(
    sessionId: string,
    holding: { person: number; nth: number },
    label: string,
    createdAt: number,
  ) {
    const proxy = proxyIndex(holding.person, holding.nth);
    const number = personNumber(holding.person);
    const proxyNumber = poolNumber(proxy).number;
    const row = participantRow({
      id: idOf('par', createdAt, this.random),
      sessionId,
      number,
      vault: this.vault,
      label,
      proxy: { id: this.poolIds[proxy] as string, number: proxyNumber },
      createdAt,
    });
    return { row, proxy, number, proxyNumber };
  }
}

/** The seeded sessions' ids per millisecond, for the counter part of an id. */
const idCounters = new Map<string, { ms: number; n: number }>();

/**
 * An id of the shape newId (src/domain/ids.ts) gives, `ses_<12 hex ms><4 hex counter><12 hex random>`,
 * with the random part from the seeded generator: newId's crypto call per id was a third of the
 * seeding time.
 */
function idOf(prefix: string, ms: number, random: () => number): string {
  const counter = idCounters.get(prefix);
  const n = counter && counter.ms === ms ? counter.n + 1 : 0;
  idCounters.set(prefix, { ms, n });
  const tail = (x: number) =>
    Math.floor(x * 0x1000000)
      .toString(16)
      .padStart(6, '0');
  return `${prefix}_${ms.toString(16).padStart(12, '0')}${(n & 0xffff).toString(16).padStart(4, '0')}${tail(random())}${tail(random())}`;
}

/** A session as SessionService.create writes it with no options given (the service's defaults). */
export function sessionRow(
  id: string,
  createdAt: number,
  expiresAt: number,
  externalId: string | null = null,
): SessionRow {
  return {
    id,
    tenant_id: DEFAULT_TENANT,
    external_id: externalId,
    // Shaped as Veil keys a fingerprint (store/vault.ts), so that no start takes it for an older one to key.
    fingerprint: `h:${createHash('sha256').update(id).digest('base64url')}`,
    mode: 'per-participant',
    status: 'open',
    ttl_mode: 'fixed',
    ttl_seconds: SEED_TTL_SECONDS,
    expires_at: expiresAt,
    record: 0,
    channels: 'voice,sms',
    max_call_seconds: null,
    geo_match: 'region',
    sticky: 'none',
    extension_fallback: 0,
    metadata: '{}',
    created_at: createdAt,
    updated_at: createdAt,
    closed_at: null,
    reject_message: null,
  };
}

/**
 * A participant as SessionService.create writes it with no options given: not revealed, may
 * initiate, open; its number sealed by `vault`, or written as it is where the vault is `none` (the
 * floor, which does only the database's work).
 */
export function participantRow(p: {
  id: string;
  sessionId: string;
  number: string;
  vault: NumberVault | 'none';
  label: string | null;
  proxy: { id: string; number: string };
  createdAt: number;
}): ParticipantRow {
  return {
    id: p.id,
    tenant_id: DEFAULT_TENANT,
    session_id: p.sessionId,
    number_index: p.vault === 'none' ? p.number : p.vault.index(p.number),
    number_sealed: p.vault === 'none' ? p.number : p.vault.sealNumber(p.number),
    label: p.label,
    proxy_number_id: p.proxy.id,
    proxy_number: p.proxy.number,
    reveal_number: 0,
    can_initiate: 1,
    active: 1,
    created_at: p.createdAt,
    released_at: null,
    removed_at: null,
    extension: '',
    binding: null,
    binding_version: 0,
    binding_attempts: 0,
    binding_next_at: null,
    binding_ref: null,
    binding_error: null,
  };
}

/** Multi-row inserts in big transactions, for either dialect. */
interface RowWriter {
  /** Inserts the rows, each laid out in the order of its table's column list. */
  insert<T extends SeededTable>(table: T, rows: readonly Schema[T][]): Promise<void>;
  setLoads(ids: string[], loads: number[]): Promise<void>;
  transaction(work: () => Promise<void>): Promise<void>;
  /**
   * What the database's planner needs after a bulk load (a live database has it from autovacuum):
   * of these tables, or of every table when none are named.
   */
  analyze(tables?: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** An INSERT of `rows` rows into `columns`, each value a placeholder numbered from 0 across the rows. */
export function insertText(
  table: string,
  columns: readonly string[],
  rows: number,
  placeholder: (i: number) => string,
) {
  const values: string[] = [];
  for (let r = 0; r < rows; r++) {
    values.push(`(${columns.map((_, c) => placeholder(r * columns.length + c)).join(',')})`);
  }
  return `insert into ${table} (${columns.map((c) => `"${c}"`).join(',')}) values ${values.join(',')}`;
}

function sqliteWriter(file: string): RowWriter {
  const sqlite = new SqliteDatabase(file);
  // A crash during seeding loses only the benchmark's own data; the server reopens with the service's settings.
  sqlite.pragma('synchronous = OFF');
  sqlite.pragma('foreign_keys = ON');
  const statements = new Map<string, SqliteDatabase.Statement>();
  const statement = (table: SeededTable, rows: number) => {
    const key = `${table}/${rows}`;
    let stmt = statements.get(key);
    if (!stmt) {
      stmt = sqlite.prepare(insertText(table, COLUMNS[table], rows, () => '?'));
      statements.set(key, stmt);
    }
    return stmt;
  };
  return {
    async insert(table, rows) {
      const columns = COLUMNS[table];
      for (let i = 0; i < rows.length; i += SQLITE_ROWS_PER_INSERT) {
        const chunk = rows.slice(i, i + SQLITE_ROWS_PER_INSERT);
        statement(table, chunk.length).run(chunk.flatMap((row) => valuesOf(columns, row)));
      }
    },
    async setLoads(ids, loads) {
      const update = sqlite.prepare('update numbers set "load" = ? where id = ?');
      for (const [i, id] of ids.entries()) update.run(loads[i] ?? 0, id);
    },
    async transaction(work) {
      sqlite.exec('begin');
      try {
        await work();
        sqlite.exec('commit');
      } catch (error) {
        sqlite.exec('rollback');
        throw error;
      }
    },
    // The service never runs ANALYZE on SQLite, so the benchmark does not either.
    async analyze() {},
    async close() {
      sqlite.close();
    },
  };
}

async function postgresWriter(url: string): Promise<RowWriter> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const texts = new Map<string, string>();
  const text = (table: SeededTable, rows: number) => {
    const key = `${table}/${rows}`;
    let t = texts.get(key);
    if (!t) {
      t = insertText(table, COLUMNS[table], rows, (i) => `$${i + 1}`);
      texts.set(key, t);
    }
    return t;
  };
  return {
    async insert(table, rows) {
      const columns = COLUMNS[table];
      for (let i = 0; i < rows.length; i += POSTGRES_ROWS_PER_INSERT) {
        const chunk = rows.slice(i, i + POSTGRES_ROWS_PER_INSERT);
        await client.query(
          text(table, chunk.length),
          chunk.flatMap((row) => valuesOf(columns, row)),
        );
      }
    },
    async setLoads(ids, loads) {
      await client.query(
        'update numbers set "load" = l.n from unnest($1::text[], $2::int[]) as l(id, n) where numbers.id = l.id',
        [ids, loads],
      );
    },
    async transaction(work) {
      await client.query('begin');
      try {
        await work();
        await client.query('commit');
      } catch (error) {
        await client.query('rollback');
        throw error;
      }
    },
    async analyze(tables = []) {
      await client.query(`vacuum analyze ${tables.join(', ')}`);
    },
    async close() {
      await client.end();
    },
  };
}
