import type autocannon from 'autocannon';
import { analyzeDatabase, type BenchDatabase, checkInvariant, type InvariantCheck } from '../databases.ts';
import { API_KEY, startVeil } from '../launch.ts';
import { type LoadResult, runLoad } from '../load.ts';
import type { BenchPlan } from '../plan.ts';
import { seed } from '../seed.ts';
import { sessionBodies } from '../workload.ts';

export const SESSIONS_PATH = '/v1/sessions';
/** A short run before the measured one, on the same database, so the server's code is warm. */
const WARMUP_SECONDS = 1;

export interface CreateRow {
  store: string;
  concurrency: number;
  result: LoadResult;
  check: InvariantCheck;
}

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
 */
export async function measureCreates(
  newDatabase: () => Promise<BenchDatabase>,
  plan: BenchPlan,
  progress: (line: string) => void,
): Promise<CreateRow[]> {
  const rows: CreateRow[] = [];
  for (const concurrency of plan.createConcurrency) {
    const database = await newDatabase();
    try {
      await seed(database, { openSessions: 0 });
      const server = await startVeil(`Veil ${database.label} creates`, database);
      let result: LoadResult;
      try {
        const requests = createRequests(concurrency);
        await runLoad({ server, requests, connections: concurrency, seconds: WARMUP_SECONDS });
        // A deployment's tables are analyzed by autovacuum as they grow, which replaces the plans
        // PostgreSQL cached while they were empty. The run measures that steady state, not a new
        // database's first minute.
        await analyzeDatabase(database);
        result = await runLoad({ server, requests, connections: concurrency, seconds: plan.createSeconds });
      } finally {
        await server.stop();
      }
      const check = await checkInvariant(database);
      rows.push({ store: database.label, concurrency, result, check });
      progress(
        `${database.label} ×${concurrency}: ${Math.round(result.rps)} creates/s, ` +
          `${check.doubleAssigned} double-assigned`,
      );
    } finally {
      await database.drop();
    }
  }
  return rows;
}
