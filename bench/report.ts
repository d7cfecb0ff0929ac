import { cpus, totalmem } from 'node:os';
import type { BenchPlan } from './plan.ts';
import type { CarrierRow } from './sections/carriers.ts';
import type { ChurnResult } from './sections/churn.ts';
import type { CreateRow } from './sections/creates.ts';
import { type RouteRow, rowName } from './sections/route.ts';

/** Targets of issue 4. */
export const TARGETS = {
  routeRatio: 0.6,
  routeP99Ms: 5,
  createsPerSecond: { SQLite: 5_000, PostgreSQL: 1_000 } as Record<string, number>,
  /** A route on the largest database may cost at most this many times one on the smallest to count as flat. */
  flatCostGrowth: 1.25,
  /** RSS at the end of the churn may exceed the first sample by at most this share to count as flat. */
  flatMemoryGrowth: 0.1,
};

export const integer = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const mib = (kib: number) => fixed(kib / 1024, 1);
const verdict = (met: boolean) => (met ? 'yes' : '**no**');

export function table(headers: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

export interface RunInfo {
  plan: BenchPlan;
  startedAt: Date;
  finishedAt: Date;
  command: string;
  loadAtStart: number[];
  loadAtEnd: number[];
}

export function header(info: RunInfo): string {
  const cpu = cpus();
  const minutes = (info.finishedAt.getTime() - info.startedAt.getTime()) / 60_000;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  return [
    `# Veil benchmark results (${info.plan.quick ? 'quick smoke run' : 'full run'})`,
    '',
    `- Date: ${info.startedAt.toISOString()} (took ${minutes.toFixed(1)} min)`,
    `- Command: \`${info.command}\``,
    `- Node ${process.version}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM`,
    `- Load average (1/5/15 min) at start ${load(info.loadAtStart)}, at end ${load(info.loadAtEnd)}: the machine is shared, so absolute figures move from run to run; the ratios, measured side by side, are what to compare.`,
    `- Every server runs in its own process (\`node --import tsx\`); autocannon runs in the parent with ${info.plan.connections} connections, pipelining ${info.plan.pipelining}, for every server alike.`,
    `- Routing: ${info.plan.routeRounds} rounds of ${info.plan.routeSeconds} s per server after a ${info.plan.warmupSeconds} s warm-up, interleaved (bare, Veil…, then in reverse); figures are medians over rounds, a ratio is the median of each round's Veil/bare. CPU µs/req is the server process's CPU time (all threads) per response, client CPU µs/req autocannon's; "CPU ratio" is bare's CPU per request over Veil's, a second view of the same ratio that a busy neighbour disturbs less. When the machine has CPU to spare the server is the bottleneck and the two ratios agree; when the client's CPU per request nears the server's, or the machine is oversubscribed, req/s ratios are squeezed towards 1 or scattered and the CPU ratio is the one to read.`,
  ].join('\n');
}

export function routeSection(rows: RouteRow[]): string {
  const body = rows.map((r) => {
    const veil = r.kind === 'veil';
    return [
      endpointName(r),
      rowName(r),
      integer(r.summary.rps),
      fixed(r.summary.p50Ms),
      fixed(r.summary.p99Ms),
      fixed(r.summary.cpuUsPerRequest, 0),
      fixed(r.summary.clientCpuUsPerRequest, 0),
      r.kind === 'bare' ? '1' : fixed(r.ratio),
      r.kind === 'bare' ? '1' : fixed(r.cpuRatio),
      integer(r.summary.failed),
      veil ? verdict(r.ratio >= TARGETS.routeRatio) : '',
      veil ? verdict(r.summary.p99Ms < TARGETS.routeP99Ms) : '',
    ];
  });
  return [
    '## 1. Routing over HTTP against bare Fastify',
    '',
    "Calls rotate over sessions drawn at random from the whole database: 10 in 11 from a participant to their proxy (connected), 1 in 11 from a stranger (refused). The bare endpoints parse a body of the same shape and answer a small JSON object or TwiML document, with no schema, auth or database. The floor is the bare endpoints plus the one read no route can skip: Veil's lookup query, prepared once and run by better-sqlite3 in the handler on the same file as Veil's server of that size, with no API key, schema, number parsing, signature, interaction log or events. A route that reads this database can come near the floor but not pass it: the floor's ratio is the most this machine allows.",
    '',
    table(
      [
        'endpoint',
        'server',
        'req/s',
        'p50 ms',
        'p99 ms',
        'CPU µs/req',
        'client CPU µs/req',
        'ratio vs bare',
        'CPU ratio',
        'failed',
        `ratio ≥ ${TARGETS.routeRatio}`,
        `p99 < ${TARGETS.routeP99Ms} ms`,
      ],
      body,
    ),
  ].join('\n');
}

function endpointName(row: RouteRow): string {
  return row.endpoint === 'json' ? '`POST /v1/route` (JSON)' : '`POST /webhooks/twilio/voice` (form)';
}

export function createsSection(rows: CreateRow[]): string {
  const body = rows.map((r) => {
    const target = TARGETS.createsPerSecond[r.store] ?? Number.NaN;
    const checked =
      r.kind === 'veil'
        ? [integer(r.check.openSessions), String(r.check.doubleAssigned), String(r.check.loadMismatches)]
        : ['–', '–', '–'];
    return [
      r.kind === 'veil' ? `Veil ${r.store}` : `floor: bare Fastify + a session's rows, ${r.store}`,
      String(r.concurrency),
      integer(r.result.rps),
      fixed(r.result.p50Ms),
      fixed(r.result.p99Ms),
      integer(r.result.cpuUsPerRequest),
      integer(r.result.failed),
      ...checked,
      r.kind === 'veil' ? `${verdict(r.result.rps >= target)} (≥ ${integer(target)})` : '',
    ];
  });
  return [
    '## 2. Session creates over HTTP',
    '',
    "POST /v1/sessions with an order id as externalId and two participants: a courier drawn so that the busiest hold hundreds of open sessions at once, and a customer. A fresh database per row with a pool of 2,000 numbers in 20 area codes; after each run, SQL counts (real number, proxy) pairs held by more than one open participation (double-assigned, must be 0) and numbers whose load differs from the open sessions holding them. The floor is bare Fastify writing only the rows a session leaves (the session, its two participants, the two numbers' load), the creates of a turn in one transaction as Veil's group commit does, with no key, schema, number parsing, proxy search, invariant, expiry, cooldown or event: no create that keeps Veil's promises can pass its rate on this machine.",
    '',
    table(
      [
        'server',
        'clients',
        'creates/s',
        'p50 ms',
        'p99 ms',
        'CPU µs/create',
        'failed',
        'open sessions after',
        'double-assigned',
        'load mismatches',
        'target met',
      ],
      body,
    ),
  ].join('\n');
}

export function growthSection(rows: RouteRow[]): string {
  const veil = sqliteJson(rows, 'veil');
  const floors = sqliteJson(rows, 'floor');
  const floorAt = (r: RouteRow) => floors.find((f) => f.fixture?.openSessions === r.fixture?.openSessions);
  const smallest = veil[0];
  const cpu = (r: RouteRow | undefined) => r?.summary.cpuUsPerRequest ?? Number.NaN;
  const body = veil.map((r) => [
    integer(r.fixture?.openSessions ?? Number.NaN),
    integer(r.summary.rps),
    fixed(r.ratio),
    fixed(r.summary.p99Ms),
    fixed(cpu(r), 0),
    fixed(r.summary.rps / (smallest?.summary.rps ?? Number.NaN)),
    fixed(cpu(r) / cpu(smallest)),
    fixed(cpu(floorAt(r)), 0),
    fixed(cpu(floorAt(r)) / cpu(floors[0])),
  ]);
  const rate = (veil.at(-1)?.summary.rps ?? Number.NaN) / (smallest?.summary.rps ?? Number.NaN);
  const cost = costGrowth(rows);
  return [
    '## 3. Cost per route as open sessions grow (SQLite, `POST /v1/route`)',
    '',
    'The same interleaved runs as §1, one database per size, with the floor over each: how much of the growth the lookup alone shows (its pages are read from the file once the file outgrows the page cache).',
    '',
    table(
      [
        'open sessions',
        'req/s',
        'ratio vs bare',
        'p99 ms',
        'CPU µs/req',
        'req/s vs smallest',
        'CPU/req vs smallest',
        'floor CPU µs/req',
        'floor CPU/req vs smallest',
      ],
      body,
    ),
    '',
    `Largest vs smallest: ${fixed(rate)}× the rate, ${fixed(cost.veil)}× the server CPU per route (the floor: ${fixed(cost.floor)}×) — ${cost.veil <= TARGETS.flatCostGrowth ? 'flat' : '**not flat**'} (flat: the CPU cost of a route grows by at most ${TARGETS.flatCostGrowth}×; the cost is judged on CPU per route, which neighbours on a shared machine disturb less than req/s).`,
  ].join('\n');
}

/** The SQLite rows of POST /v1/route of one kind, smallest database first. */
function sqliteJson(rows: RouteRow[], kind: RouteRow['kind']): RouteRow[] {
  return rows.filter((r) => r.endpoint === 'json' && r.kind === kind && r.fixture?.store === 'SQLite');
}

/** The share by which the last RSS sample exceeds the first. */
function memoryGrowth(churn: ChurnResult): number {
  const first = churn.samples[0]?.rssKiB ?? Number.NaN;
  return ((churn.samples.at(-1)?.rssKiB ?? Number.NaN) - first) / first;
}

/** The CPU cost of a route at the largest SQLite database over the smallest's, Veil's and the floor's. */
function costGrowth(json: RouteRow[]): { veil: number; floor: number } {
  const growth = (rows: RouteRow[]) =>
    (rows.at(-1)?.summary.cpuUsPerRequest ?? Number.NaN) / (rows[0]?.summary.cpuUsPerRequest ?? Number.NaN);
  return { veil: growth(sqliteJson(json, 'veil')), floor: growth(sqliteJson(json, 'floor')) };
}

/** Issue 4's targets, one line each, met or not. */
export function targetsSection(
  routeRows: RouteRow[],
  json: RouteRow[],
  creates: CreateRow[],
  churn: ChurnResult,
): string {
  const rows: string[][] = [];
  for (const r of routeRows.filter((row) => row.kind === 'floor')) {
    rows.push([
      `(the ceiling: ${rowName(r)}, ${endpointName(r)})`,
      `${fixed(r.ratio)}× (CPU ${fixed(r.cpuRatio)}×), p99 ${fixed(r.summary.p99Ms)} ms`,
      '–',
    ]);
  }
  for (const r of routeRows.filter((row) => row.kind === 'veil')) {
    const what = `${r.endpoint === 'json' ? '/v1/route' : 'Twilio voice webhook'}, ${rowName(r)}`;
    rows.push([
      `${what}: ≥ ${TARGETS.routeRatio}× bare`,
      `${fixed(r.ratio)}× (CPU ${fixed(r.cpuRatio)}×)`,
      verdict(r.ratio >= TARGETS.routeRatio),
    ]);
    rows.push([
      `${what}: p99 < ${TARGETS.routeP99Ms} ms`,
      `${fixed(r.summary.p99Ms)} ms`,
      verdict(r.summary.p99Ms < TARGETS.routeP99Ms),
    ]);
  }
  const best = (kind: CreateRow['kind'], store: string) =>
    Math.max(...creates.filter((c) => c.kind === kind && c.store === store).map((c) => c.result.rps));
  for (const store of [...new Set(creates.filter((c) => c.kind === 'floor').map((c) => c.store))]) {
    rows.push([
      `(the ceiling: floor creates on ${store}, best of 1, 4, 16 clients)`,
      `${integer(best('floor', store))}/s`,
      '–',
    ]);
  }
  for (const store of [...new Set(creates.map((c) => c.store))]) {
    const target = TARGETS.createsPerSecond[store] ?? Number.NaN;
    rows.push([
      `${store} creates ≥ ${integer(target)}/s (best of 1, 4, 16 clients)`,
      `${integer(best('veil', store))}/s`,
      verdict(best('veil', store) >= target),
    ]);
  }
  const doubles = creates.reduce(
    (sum, c) => sum + (c.kind === 'veil' ? c.check.doubleAssigned : 0),
    churn.check.doubleAssigned,
  );
  rows.push(['zero double-assigned proxies after every run', String(doubles), verdict(doubles === 0)]);
  const cost = costGrowth(json);
  rows.push([
    `cost per route flat as sessions grow (≤ ${TARGETS.flatCostGrowth}×)`,
    `${fixed(cost.veil)}× (the floor's lookup: ${fixed(cost.floor)}×)`,
    verdict(cost.veil <= TARGETS.flatCostGrowth),
  ]);
  const memory = memoryGrowth(churn);
  rows.push([
    `RSS flat over the churn (≤ +${TARGETS.flatMemoryGrowth * 100}% first to last sample)`,
    `${memory >= 0 ? '+' : ''}${fixed(memory * 100, 1)}% over ${integer(churn.ops)} operations`,
    verdict(memory <= TARGETS.flatMemoryGrowth),
  ]);
  return ['## Targets (issue 4)', '', table(['target', 'measured', 'met'], rows)].join('\n');
}

export function churnSection(churn: ChurnResult): string {
  const body = churn.samples.map((s, i) => {
    const previous = churn.samples[i - 1] ?? { ops: 0, atMs: 0 };
    const rate = ((s.ops - previous.ops) * 1000) / Math.max(1, s.atMs - previous.atMs);
    return [integer(s.ops), mib(s.rssKiB), integer(rate)];
  });
  const rss = churn.samples.map((s) => s.rssKiB);
  const first = rss[0] ?? Number.NaN;
  const last = rss.at(-1) ?? Number.NaN;
  return [
    '## 4. Memory over a create/close churn (SQLite)',
    '',
    `Each connection opens a session and closes it, again and again: ${integer(churn.ops)} operations (creates and closes) in ${fixed(churn.seconds, 0)} s, ${integer(churn.failed)} failed. VmRSS of the server process, sampled as the operations went by. After the churn: open sessions left ${churn.check.openSessions}, double-assigned ${churn.check.doubleAssigned}, load mismatches ${churn.check.loadMismatches}.`,
    '',
    table(['operations', 'RSS MiB', 'ops/s since previous'], body),
    '',
    `RSS at start ${mib(churn.rssAtStartKiB)} MiB; first sample ${mib(first)}, last ${mib(last)}, max ${mib(Math.max(...rss))} MiB (last − first: ${mib(last - first)} MiB).`,
  ].join('\n');
}

export function carriersSection(rows: CarrierRow[]): string {
  const body = rows.map((r) => {
    const route = r.endpoint === 'route';
    return [
      route ? '`POST /v1/route` (JSON, API key)' : `\`POST ${r.path}\``,
      integer(r.summary.rps),
      fixed(r.summary.p50Ms),
      fixed(r.summary.p99Ms),
      fixed(r.summary.cpuUsPerRequest, 0),
      fixed(r.summary.clientCpuUsPerRequest, 0),
      route ? '1' : fixed(r.ratio),
      route ? '1' : fixed(r.cpuRatio),
      route ? '–' : `${r.extraCpuUs >= 0 ? '+' : ''}${fixed(r.extraCpuUs, 0)}`,
      r.verifyUs === undefined ? '–' : fixed(r.verifyUs, 1),
      integer(r.summary.failed),
    ];
  });
  return [
    '## 5. Carrier webhooks beside `POST /v1/route` (SQLite)',
    '',
    "One Veil server with every carrier enabled, over the SQLite database §1 routes through; each row's calls are the same 3,000 calls from a participant to their proxy, all connected, interleaved round by round with the others. A webhook is the carrier's own request (Twilio and Plivo form-encoded, signed over the URL and parameters; Vonage JSON with a Bearer HS256 JWT whose payload_hash is the body's; Telnyx TeXML form signed with Ed25519 over `timestamp|body`), each with a call id of its own and signed just before its run, so that no timestamp ages past its window. Before the load, 20 calls of each are checked to be answered with a connect to the callee /v1/route names. Ratio: the median of each round's req/s over /v1/route's; CPU ratio: /v1/route's server CPU per request over the webhook's, the steadier of the two on a busy machine; extra CPU: the server's CPU per request less /v1/route's; signature check: the adapter's `verify` alone, in a loop in the benchmark's process, over requests signed as the load's.",
    '',
    table(
      [
        'endpoint',
        'req/s',
        'p50 ms',
        'p99 ms',
        'CPU µs/req',
        'client CPU µs/req',
        'ratio vs /v1/route',
        'CPU ratio',
        'extra CPU µs/req',
        'signature check µs',
        'failed',
      ],
      body,
    ),
  ].join('\n');
}
