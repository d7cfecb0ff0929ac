import type autocannon from 'autocannon';
import { analyzeDatabase, type BenchDatabase, checkInvariant, type InvariantCheck } from '../databases.ts';
import { API_KEY, BASELINE, startFloor, startVeil } from '../launch.ts';
import { type LoadResult, runLoad } from '../load.ts';
import type { BenchPlan } from '../plan.ts';
import type { ServerProcess } from '../processes.ts';
import { seed } from '../seed.ts';
import { sessionBodies } from '../workload.ts';

export const SESSIONS_PATH = '/v1/sessions';
/** A short run before the measured one, on the same database, so the server's code is warm. */
const WARMUP_SECONDS = 1;

/** A run of creates: Veil's, checked afterwards, or the floor's (bench/servers/floor.ts), which keeps no invariant. */
export type CreateRow = {
  store: string;
  concurrency: number;
  result: LoadResult;
} & ({ kind: 'veil'; check: InvariantCheck } | { kind: 'floor' });

/** Requests that each open a new session (a new order) through the API. */
export function createRequests(seedValue: number): autocannon.Request[] {
  const nextBody = sessionBodies(seedValue);
  return [
    {
      method: 'POST',
      path: SESSIONS_PATH,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      setupRequest: (request) => ({ ...request, body: nextBody() }),
    },
  ];
}

/**
 * Session creates per second over HTTP with 1, 4 and 16 concurrent clients, each on a fresh
 * database holding only the pool, analyzed after a warm-up; then the invariant checked with SQL.
 * On SQLite the floor runs the same requests after Veil, on a fresh database of its own.
 */
export async function measureCreates(
  newDatabase: () => Promise<BenchDatabase>,
  plan: BenchPlan,
  progress: (line: string) => void,
): Promise<CreateRow[]> {
  const rows: CreateRow[] = [];
  for (const concurrency of plan.createConcurrency) {
    const run = (server: ServerProcess, database: BenchDatabase) =>
      measure(server, database, concurrency, plan.createSeconds);
    const veil = await onFreshDatabase(newDatabase, async (database) => {
      const result = await run(await startVeil(`Veil ${database.label} creates`, database), database);
      return {
        kind: 'veil' as const,
        store: database.label,
        concurrency,
        result,
        check: await checkInvariant(database),
      };
    });
    rows.push(veil);
    progress(
      `${veil.store} ×${concurrency}: ${Math.round(veil.result.rps)} creates/s, ` +
        `${veil.check.doubleAssigned} double-assigned`,
    );
    if (veil.store !== 'SQLite') continue;
    const floor = await onFreshDatabase(newDatabase, async (database) => ({
      kind: 'floor' as const,
      store: database.label,
      concurrency,
      result: await run(await startFloor(database), database),
    }));
    rows.push(floor);
    progress(`floor ${floor.store} ×${concurrency}: ${Math.round(floor.result.rps)} creates/s`);
    if (!BASELINE) continue;
    const baseline = await onFreshDatabase(newDatabase, async (database) => {
      const result = await run(await startVeil(`Veil (baseline) creates`, database, BASELINE), database);
      return {
        kind: 'veil' as const,
        store: `${database.label} (baseline)`,
        concurrency,
        result,
        check: await checkInvariant(database),
      };
    });
    rows.push(baseline);
    progress(`${baseline.store} ×${concurrency}: ${Math.round(baseline.result.rps)} creates/s`);
  }
  return rows;
}

/** A warm-up, then the measured run, of `concurrency` clients creating sessions; stops the server. */
async function measure(
  server: ServerProcess,
  database: BenchDatabase,
  concurrency: number,
  seconds: number,
): Promise<LoadResult> {
  try {
    const requests = createRequests(concurrency);
    await runLoad({ server, requests, connections: concurrency, seconds: WARMUP_SECONDS });
    // A deployment's tables are analyzed by autovacuum as they grow, which replaces the plans
    // PostgreSQL cached while they were empty. The run measures that steady state, not a new
    // database's first minute.
    await analyzeDatabase(database);
    return await runLoad({ server, requests, connections: concurrency, seconds });
  } finally {
    await server.stop();
  }
}

/** Work on a new database holding only the pool, dropped afterwards. */
async function onFreshDatabase<T>(
  newDatabase: () => Promise<BenchDatabase>,
  work: (database: BenchDatabase) => Promise<T>,
): Promise<T> {
  const database = await newDatabase();
  try {
    await seed(database, { openSessions: 0 });
    return await work(database);
  } finally {
    await database.drop();
  }
}
