import type { ProxyPreference } from '../../src/domain/allocation.ts';
import { PoolExhaustedError } from '../../src/domain/errors.ts';
import type { Session, SessionMode } from '../../src/domain/session.ts';
import { DEFAULT_TENANT } from '../../src/domain/tenants.ts';
import { Allocator } from '../../src/services/allocator.ts';
import { NumberService } from '../../src/services/numbers.ts';
import { StoreSessionWriter } from '../../src/services/session-writer.ts';
import { SessionService } from '../../src/services/sessions.ts';
import { InteractionLog } from '../../src/store/interactions.ts';
import type { Db } from '../../src/store/schema.ts';
import { openStore, type Store } from '../../src/store/store.ts';
import { BENCH_KEYS } from '../keys.ts';
import { randomIndex, seededRandom } from '../random.ts';

/**
 * Pool efficiency (issue 4): how many proxy numbers a workload needs, measured through the real
 * allocator (SessionService over an in-memory SQLite store), against the lower bound Δ (the most
 * sessions one person has open at once), greedy's bound 2Δ−1 for shared numbers, and one number
 * per session.
 *
 * The workload churns like a delivery platform: couriers hold several orders at once, customers a
 * few with different couriers; each step opens a session for a random courier and customer with
 * room, or closes a random open one.
 */
export interface ChurnWorkload {
  label: string;
  couriers: number;
  customers: number;
  courierCap: number;
  customerCap: number;
  steps: number;
  seed: number;
}

export interface PoolRun {
  mode: SessionMode;
  preference: ProxyPreference;
  poolSize: number;
  /** The most sessions one person had open at once. */
  delta: number;
  /** The most sessions open at once: what one number per session would need. */
  peakOpen: number;
  exhausted: number;
  creates: number;
}

export interface PoolRow {
  workload: ChurnWorkload;
  mode: SessionMode;
  preference: ProxyPreference;
  delta: number;
  peakOpen: number;
  /** Per-participant: pool of exactly Δ, and how often it ran out (must be 0). Shared: smallest pool that never ran out. */
  poolSize: number;
  exhausted: number;
}

const US_AREA = '415';
const number = (prefix: string, i: number) => `+1${US_AREA}${prefix}${String(i).padStart(6, '0')}`;

async function churn(
  workload: ChurnWorkload,
  mode: SessionMode,
  preference: ProxyPreference,
  poolSize: number,
): Promise<PoolRun> {
  const store: Store = await openStore({ dialect: 'sqlite', file: ':memory:' }, { keys: BENCH_KEYS });
  const log = new InteractionLog(store, () => {});
  // No reuse cooldown: it only reorders equally good numbers, and would blur what the preference does.
  const sessions = new SessionService(store, log, new PreferenceWriter(store, preference), {
    ttlSeconds: 86_400,
  });
  const numbers = new NumberService(store, ['sim'], undefined);
  await numbers.import(
    DEFAULT_TENANT,
    Array.from({ length: poolSize }, (_, i) => ({ number: number('7', i), provider: 'sim' })),
  );
  const random = seededRandom(workload.seed);
  const open: { id: string; courier: number; customer: number }[] = [];
  const courierLoad = new Array<number>(workload.couriers).fill(0);
  const customerLoad = new Array<number>(workload.customers).fill(0);
  let delta = 0;
  let peakOpen = 0;
  let exhausted = 0;
  let creates = 0;
  for (let step = 0; step < workload.steps; step++) {
    if (open.length > 0 && random() < 0.5) {
      const i = randomIndex(random, open.length);
      const session = open[i] as (typeof open)[number];
      open[i] = open[open.length - 1] as (typeof open)[number];
      open.pop();
      await sessions.close(DEFAULT_TENANT, session.id);
      bump(courierLoad, session.courier, -1);
      bump(customerLoad, session.customer, -1);
      continue;
    }
    const courier = randomIndex(random, workload.couriers);
    const customer = randomIndex(random, workload.customers);
    if (
      (courierLoad[courier] ?? 0) >= workload.courierCap ||
      (customerLoad[customer] ?? 0) >= workload.customerCap
    ) {
      continue;
    }
    creates++;
    try {
      const { session } = await sessions.create(DEFAULT_TENANT, {
        mode,
        participants: [{ number: number('8', courier) }, { number: number('9', customer) }],
      });
      open.push({ id: session.id, courier, customer });
      bump(courierLoad, courier, 1);
      bump(customerLoad, customer, 1);
      delta = Math.max(delta, courierLoad[courier] ?? 0, customerLoad[customer] ?? 0);
      peakOpen = Math.max(peakOpen, open.length);
    } catch (error) {
      if (!(error instanceof PoolExhaustedError)) throw error;
      exhausted++;
    }
  }
  await log.close();
  await store.close();
  return { mode, preference, poolSize, delta, peakOpen, exhausted, creates };
}

/** The session writer, allocating every session with one preference instead of its mode's, and no cooldown. */
class PreferenceWriter extends StoreSessionWriter {
  constructor(
    store: Store,
    private readonly preference: ProxyPreference,
  ) {
    super(store, { reuseCooldownSeconds: 0, carriers: ['sim'] });
  }

  protected override allocator(trx: Db, session: Session, now: number): Allocator {
    return new Allocator(
      trx,
      session.tenantId,
      session,
      now,
      { reuseCooldownSeconds: 0, carriers: ['sim'] },
      this.preference,
    );
  }
}

function bump(counts: number[], i: number, by: number): void {
  counts[i] = (counts[i] ?? 0) + by;
}

/** The smallest pool with which the workload never ran out, searched upwards from Δ. */
async function smallestPool(workload: ChurnWorkload, preference: ProxyPreference): Promise<PoolRun> {
  const bound = Math.max(workload.courierCap, workload.customerCap);
  for (let size = bound; ; size++) {
    const run = await churn(workload, 'shared', preference, size);
    if (run.exhausted === 0) return run;
  }
}

export const POOL_WORKLOADS: ChurnWorkload[] = [
  {
    label: '10 couriers ≤8 orders, 30 customers ≤4',
    couriers: 10,
    customers: 30,
    courierCap: 8,
    customerCap: 4,
    steps: 0,
    seed: 1,
  },
  {
    label: '15 couriers ≤6 orders, 30 customers ≤6',
    couriers: 15,
    customers: 30,
    courierCap: 6,
    customerCap: 6,
    steps: 0,
    seed: 2,
  },
];

export const SHARED_PREFERENCES: ProxyPreference[] = ['least-loaded', 'first-fit', 'most-loaded'];

/** Runs every workload: per-participant on a pool of exactly Δ, shared for each preference. */
export async function measurePool(steps: number, progress: (line: string) => void): Promise<PoolRow[]> {
  const rows: PoolRow[] = [];
  for (const base of POOL_WORKLOADS) {
    const workload = { ...base, steps };
    const delta = Math.max(workload.courierCap, workload.customerCap);
    const perParticipant = await churn(workload, 'per-participant', 'least-loaded', delta);
    rows.push({ workload, ...perParticipant });
    progress(
      `${workload.label}: per-participant on Δ = ${delta} numbers ran out ${perParticipant.exhausted} times`,
    );
    for (const preference of SHARED_PREFERENCES) {
      const run = await smallestPool(workload, preference);
      rows.push({ workload, ...run });
      progress(
        `${workload.label}: shared, ${preference}: never ran out with ${run.poolSize} numbers (Δ = ${run.delta})`,
      );
    }
  }
  return rows;
}

/** The markdown section for RESULTS.md. */
export function poolSection(rows: PoolRow[]): string {
  const lines = [
    '## Pool efficiency',
    '',
    'Numbers a churning courier/customer workload needs, through the real allocator. Δ = the most sessions',
    'one person had open at once (the lower bound); one number per session would need the peak of open',
    'sessions. Per-participant runs on a pool of exactly Δ and must never run out; for shared, the smallest',
    'pool that never ran out, for each way of choosing among the numbers that fit (Veil uses most-loaded).',
    '',
    '| workload | mode | choice | Δ | 2Δ−1 | pool | ran out | one per session |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.workload.label} (${r.workload.steps.toLocaleString('en-US')} steps) | ${r.mode} | ${r.preference} | ${r.delta} | ${2 * r.delta - 1} | ${r.poolSize} | ${r.exhausted} | ${r.peakOpen} |`,
    );
  }
  return lines.join('\n');
}
