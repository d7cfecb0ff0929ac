/** How much the benchmark does: the full run (~25 min) or the smoke run (BENCH_QUICK=1, ~2 min). */
export interface BenchPlan {
  quick: boolean;
  /** Open sessions of the databases routed through (§3 "cost per route as sessions grow"). */
  routeSizes: number[];
  /** The sizes §1 reports against the bare endpoints. */
  headlineSizes: number[];
  /** Open sessions of the PostgreSQL database routed through, when TEST_DATABASE_URL is set. */
  postgresRouteSize: number;
  routeRounds: number;
  routeSeconds: number;
  /** Open sessions of the SQLite database §5 routes carriers' webhooks through (one of routeSizes). */
  carrierSessions: number;
  /** Rounds of §5 and the seconds of each run (five endpoints a round): §5 stays under ~1.5 min. */
  carrierRounds: number;
  carrierSeconds: number;
  warmupSeconds: number;
  /** Same for every server: autocannon's connections and pipelining. */
  connections: number;
  pipelining: number;
  createConcurrency: number[];
  createSeconds: number;
  /** Create/close operations of the memory churn, and the time it may take at most. */
  churnOps: number;
  churnMaxSeconds: number;
  churnConnections: number;
  /** RSS samples taken over the churn. */
  churnSamples: number;
  /** Steps of each pool-efficiency workload (bench/sections/pool.ts). */
  poolSteps: number;
}

const QUICK: BenchPlan = {
  quick: true,
  routeSizes: [10_000, 100_000],
  headlineSizes: [100_000],
  postgresRouteSize: 100_000,
  routeRounds: 2,
  routeSeconds: 3,
  carrierSessions: 100_000,
  carrierRounds: 2,
  carrierSeconds: 3,
  warmupSeconds: 1,
  connections: 10,
  pipelining: 1,
  createConcurrency: [1, 4, 16],
  createSeconds: 3,
  churnOps: 20_000,
  churnMaxSeconds: 20,
  churnConnections: 16,
  churnSamples: 10,
  poolSteps: 3_000,
};

const FULL: BenchPlan = {
  ...QUICK,
  quick: false,
  routeSizes: [10_000, 100_000, 1_000_000],
  headlineSizes: [100_000, 1_000_000],
  routeRounds: 5,
  routeSeconds: 6,
  warmupSeconds: 3,
  // Three rounds, so that a median is a middle round and not the lower of two.
  carrierRounds: 3,
  carrierSeconds: 4,
  createSeconds: 10,
  // A million sessions opened and closed: two million operations.
  churnOps: 2_000_000,
  churnMaxSeconds: 900,
  churnSamples: 20,
  poolSteps: 12_000,
};

export function benchPlan(env: Record<string, string | undefined> = process.env): BenchPlan {
  return env.BENCH_QUICK === '1' || env.BENCH_QUICK === 'true' ? QUICK : FULL;
}
