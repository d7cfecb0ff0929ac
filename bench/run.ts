import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BenchDatabase, dropAllDatabases, postgresDatabase, sqliteDatabase } from './databases.ts';
import { BASELINE, startBare, startFloor, startVeil } from './launch.ts';
import { type BenchPlan, benchPlan } from './plan.ts';
import { ROOT, type ServerProcess } from './processes.ts';
import {
  carriersSection,
  churnSection,
  createsSection,
  growthSection,
  header,
  routeSection,
  targetsSection,
} from './report.ts';
import { type CarrierRow, measureCarriers } from './sections/carriers.ts';
import { measureChurn } from './sections/churn.ts';
import { type CreateRow, measureCreates } from './sections/creates.ts';
import { type FailoverRow, failoverSection, failoverSettings, measureFailover } from './sections/failover.ts';
import { type FaultResults, faultSettings, faultsSection, measureFaults } from './sections/faults.ts';
import { measurePool, poolSection } from './sections/pool.ts';
import { measureRouting, type RouteFixture, type RouteRow } from './sections/route.ts';
import { measureSip, sipSection } from './sections/sip.ts';
import { type SeededData, seed } from './seed.ts';

/**
 * `npm run bench`: routing against bare Fastify (§1, §3), session creates (§2), memory over a
 * churn (§4), each carrier's webhook beside the API's route (§5), pool efficiency, and crashes
 * and faults (SIGKILLs under creates, a receiver down, two processes on one PostgreSQL), printed as they finish and written to bench/RESULTS.md. BENCH_QUICK=1 for a smoke run;
 * TEST_DATABASE_URL adds PostgreSQL; BENCH_CPU_PROF=<dir> profiles every Veil server; BENCH_OUT=<file>
 * writes the results elsewhere.
 */

/** Where the results go; BENCH_OUT moves them, so that a smoke run need not replace a full run's. */
const RESULTS_FILE = process.env.BENCH_OUT || join(ROOT, 'bench', 'RESULTS.md');

function progress(line: string): void {
  console.log(`  · ${line}`);
}

async function step<T>(label: string, work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  console.log(`→ ${label}`);
  const result = await work();
  console.log(`  done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

/** The command that reproduces this run, with any password in the database URL hidden. */
function command(plan: BenchPlan, postgresUrl: string | undefined): string {
  const env: string[] = [];
  if (plan.quick) env.push('BENCH_QUICK=1');
  if (postgresUrl) {
    const url = new URL(postgresUrl);
    if (url.password) url.password = '***';
    env.push(`TEST_DATABASE_URL=${url.href}`);
  }
  if (process.env.BENCH_CPU_PROF) env.push(`BENCH_CPU_PROF=${process.env.BENCH_CPU_PROF}`);
  return [...env, 'npm run bench'].join(' ');
}

/** Seeds a database and starts a Veil server over it, and on SQLite the floor. */
async function routeFixtures(
  database: BenchDatabase,
  openSessions: number,
  servers: ServerProcess[],
): Promise<RouteFixture[]> {
  const label = `${openSessions.toLocaleString('en-US')} open sessions on ${database.label}`;
  const data = await step(`seeding ${label}`, () => seed(database, { openSessions }));
  const server = await startVeil(`Veil ${label}`, database);
  servers.push(server);
  if (database.store.dialect !== 'sqlite') return [{ store: database.label, openSessions, server, data }];
  const floor = await startFloor(database);
  servers.push(floor);
  const fixtures: RouteFixture[] = [{ store: database.label, openSessions, server, floor, data }];
  if (BASELINE) {
    const baseline = await startVeil(`Veil (baseline) ${label}`, database, BASELINE);
    servers.push(baseline);
    fixtures.push({ store: `${database.label} (baseline)`, openSessions, server: baseline, data });
  }
  return fixtures;
}

/** What §1 shows: every PostgreSQL server, and the SQLite ones of the headline sizes. */
function headline(plan: BenchPlan): (fixture: RouteFixture) => boolean {
  return (f) => !f.store.startsWith('SQLite') || plan.headlineSizes.includes(f.openSessions);
}

/** §5 on a database seeded for §1 (or for §5 alone), its Veil server started with every carrier. */
function carrierWebhooks(plan: BenchPlan, database: BenchDatabase, data: SeededData): Promise<CarrierRow[]> {
  return step(`each carrier's voice webhook beside POST /v1/route on ${database.label}`, () =>
    measureCarriers(database, data, plan, progress),
  );
}

/**
 * §1 and §3: every routing server is up at once, so that their runs can be interleaved; then §5,
 * when asked, over the SQLite database of plan.carrierSessions.
 */
async function routing(
  plan: BenchPlan,
  workdir: string,
  postgresUrl: string | undefined,
  carriers: boolean,
): Promise<{ json: RouteRow[]; form: RouteRow[]; carriers?: CarrierRow[] }> {
  const servers: ServerProcess[] = [];
  const databases: BenchDatabase[] = [];
  try {
    const bare = await startBare();
    servers.push(bare);
    const fixtures: RouteFixture[] = [];
    let carrierFixture: { database: BenchDatabase; data: SeededData } | undefined;
    for (const size of plan.routeSizes) {
      const database = sqliteDatabase(workdir, `route-${size}`);
      databases.push(database);
      const made = await routeFixtures(database, size, servers);
      fixtures.push(...made);
      if (size === plan.carrierSessions && made[0]) carrierFixture = { database, data: made[0].data };
    }
    if (postgresUrl) {
      const database = await postgresDatabase(postgresUrl);
      databases.push(database);
      fixtures.push(...(await routeFixtures(database, plan.postgresRouteSize, servers)));
    }
    const json = await step('routing POST /v1/route, interleaved with bare Fastify', () =>
      measureRouting('json', bare, fixtures, plan, progress),
    );
    const form = await step('routing POST /webhooks/twilio/voice, interleaved with bare Fastify', () =>
      measureRouting('form', bare, fixtures.filter(headline(plan)), plan, progress),
    );
    if (!carriers) return { json, form };
    if (!carrierFixture) throw new Error(`no SQLite database of ${plan.carrierSessions} sessions for §5`);
    return {
      json,
      form,
      carriers: await carrierWebhooks(plan, carrierFixture.database, carrierFixture.data),
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await Promise.all(databases.map((d) => d.drop()));
  }
}

/** §5 alone: a SQLite database of its own, seeded as §1's of that size. */
async function carriersAlone(plan: BenchPlan, workdir: string): Promise<CarrierRow[]> {
  const database = sqliteDatabase(workdir, `carriers-${plan.carrierSessions}`);
  try {
    const label = `${plan.carrierSessions.toLocaleString('en-US')} open sessions on ${database.label}`;
    const data = await step(`seeding ${label}`, () => seed(database, { openSessions: plan.carrierSessions }));
    return await carrierWebhooks(plan, database, data);
  } finally {
    await database.drop();
  }
}

/** For each store, SQLite and PostgreSQL when there is one: a maker of fresh databases. */
function freshDatabases(
  workdir: string,
  name: string,
  postgresUrl: string | undefined,
): (() => Promise<BenchDatabase>)[] {
  let made = 0;
  const stores = [() => Promise.resolve(sqliteDatabase(workdir, `${name}-${++made}`))];
  if (postgresUrl) stores.push(() => postgresDatabase(postgresUrl));
  return stores;
}

/** §2 on SQLite, and on PostgreSQL when there is one. */
async function sessionCreates(
  plan: BenchPlan,
  workdir: string,
  postgresUrl: string | undefined,
): Promise<CreateRow[]> {
  const rows: CreateRow[] = [];
  for (const newDatabase of freshDatabases(workdir, 'creates', postgresUrl)) {
    rows.push(...(await step('session creates', () => measureCreates(newDatabase, plan, progress))));
  }
  return rows;
}

/** Crashes and faults on SQLite, and on PostgreSQL when there is one (bench/sections/faults.ts). */
function faults(plan: BenchPlan, workdir: string, postgresUrl: string | undefined): Promise<FaultResults> {
  const settings = faultSettings(plan);
  return step(`crashes and faults: ${settings.kills} kills, a receiver down ${settings.downSeconds} s`, () =>
    measureFaults(freshDatabases(workdir, 'faults', postgresUrl), settings, progress),
  );
}

/** Carrier faults on SQLite, and on PostgreSQL when there is one. */
async function carrierFaults(
  plan: BenchPlan,
  workdir: string,
  postgresUrl: string | undefined,
): Promise<string> {
  const settings = failoverSettings(plan);
  const rows: FailoverRow[] = [];
  for (const newDatabase of freshDatabases(workdir, 'failover', postgresUrl)) {
    rows.push(
      ...(await step('carrier faults: time to failover', () =>
        measureFailover(newDatabase, settings, progress),
      )),
    );
  }
  return failoverSection(rows, settings);
}

function show(markdown: string): void {
  console.log(`\n${markdown}\n`);
}

/**
 * BENCH_ONLY=creates (or route, carriers, churn, pool, faults, failover, sip; comma-separated) runs just those sections and
 * prints them, for trying a change: RESULTS.md is written by complete runs only. With route,
 * carriers runs over route's database.
 */
async function someSections(
  names: Set<string>,
  plan: BenchPlan,
  workdir: string,
  postgresUrl: string | undefined,
): Promise<void> {
  if (names.has('route')) {
    const route = await routing(plan, workdir, postgresUrl, names.has('carriers'));
    show(routeSection([...route.json, ...route.form]));
    if (route.carriers) show(carriersSection(route.carriers));
  } else if (names.has('carriers')) {
    show(carriersSection(await carriersAlone(plan, workdir)));
  }
  if (names.has('creates')) show(createsSection(await sessionCreates(plan, workdir, postgresUrl)));
  if (names.has('churn')) {
    const database = sqliteDatabase(workdir, 'churn');
    show(churnSection(await step('create/close churn', () => measureChurn(database, plan))));
    await database.drop();
  }
  if (names.has('pool'))
    show(poolSection(await step('pool efficiency', () => measurePool(plan.poolSteps, progress))));
  if (names.has('faults')) show(faultsSection(await faults(plan, workdir, postgresUrl)));
  if (names.has('failover')) show(await carrierFaults(plan, workdir, postgresUrl));
  if (names.has('sip')) show(await sipEdge(plan, workdir));
}

/** §SIP: call setups through Kamailio asking Veil against Kamailio alone. */
async function sipEdge(plan: BenchPlan, workdir: string): Promise<string> {
  const seconds = plan.quick ? 3 : 10;
  return sipSection(
    await step('SIP call setups through Kamailio', () => measureSip(workdir, seconds)),
    seconds,
  );
}

async function main(): Promise<void> {
  const plan = benchPlan();
  const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : undefined;
  const postgresUrl = process.env.TEST_DATABASE_URL || undefined;
  const startedAt = new Date();
  const loadAtStart = loadavg();
  const workdir = mkdtempSync(join(tmpdir(), 'veil-bench-'));
  const interrupted = async () => {
    await dropAllDatabases();
    rmSync(workdir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', () => void interrupted());
  process.once('SIGTERM', () => void interrupted());
  console.log(
    `Veil benchmark (${plan.quick ? 'quick' : 'full'})${postgresUrl ? ' on SQLite and PostgreSQL' : ' on SQLite'}\n`,
  );
  try {
    if (only) {
      await someSections(only, plan, workdir, postgresUrl);
      return;
    }
    const route = await routing(plan, workdir, postgresUrl, true);
    const carriers = route.carriers ?? [];
    const shown = headline(plan);
    const routeRows = [...route.json.filter((r) => !r.fixture || shown(r.fixture)), ...route.form];
    show(routeSection(routeRows));
    show(growthSection(route.json));
    show(carriersSection(carriers));
    const creates = await sessionCreates(plan, workdir, postgresUrl);
    show(createsSection(creates));
    const churnDatabase = sqliteDatabase(workdir, 'churn');
    const churn = await step(
      `create/close churn of ${plan.churnOps.toLocaleString('en-US')} operations`,
      () => measureChurn(churnDatabase, plan),
    );
    await churnDatabase.drop();
    show(churnSection(churn));
    const pool = await step(
      `pool efficiency over ${plan.poolSteps.toLocaleString('en-US')} steps a workload`,
      () => measurePool(plan.poolSteps, progress),
    );
    show(poolSection(pool));
    const faultResults = await faults(plan, workdir, postgresUrl);
    show(faultsSection(faultResults));
    const failover = await carrierFaults(plan, workdir, postgresUrl);
    show(failover);
    const sip = await sipEdge(plan, workdir);
    show(sip);
    const targets = targetsSection(routeRows, route.json, creates, churn);
    show(targets);
    const info = {
      plan,
      startedAt,
      finishedAt: new Date(),
      command: command(plan, postgresUrl),
      loadAtStart,
      loadAtEnd: loadavg(),
    };
    const sections = [
      header(info),
      targets,
      routeSection(routeRows),
      createsSection(creates),
      growthSection(route.json),
      churnSection(churn),
      carriersSection(carriers),
      poolSection(pool),
      faultsSection(faultResults),
      failover,
      sip,
    ];
    writeFileSync(RESULTS_FILE, `${sections.join('\n\n')}\n`);
    console.log(`Written to ${RESULTS_FILE}`);
  } finally {
    await dropAllDatabases();
    rmSync(workdir, { recursive: true, force: true });
  }
}

main().catch(async (error) => {
  console.error(error instanceof Error ? error.stack : error);
  await dropAllDatabases();
  process.exit(1);
});
