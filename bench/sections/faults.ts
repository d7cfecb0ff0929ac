import {
  type KillFigures,
  killUnderCreates,
  type ReceiverDownFigures,
  receiverDown,
  type TwoInstancesFigures,
  twoInstances,
} from '../../test/crash/faults.ts';
import type { BenchDatabase } from '../databases.ts';
import type { BenchPlan } from '../plan.ts';
import { integer, table } from '../report.ts';

/**
 * Crashes and faults (issue 18), the scenarios of test/crash/ run longer: more SIGKILLs under a
 * stream of creates, a receiver down for minutes, and two processes on one PostgreSQL database.
 * BENCH_FAULT_KILLS (default 100; 20 with BENCH_QUICK), BENCH_FAULT_DOWN_SECONDS (120; 10) and
 * BENCH_FAULT_RETRY_MAX_SECONDS (30: the outbox's longest wait between attempts while the receiver
 * is down) change them.
 */
export interface FaultSettings {
  kills: number;
  killConnections: number;
  /** The kill falls this long after the round's first answered create (ms, uniform). */
  killRunMs: [number, number];
  downSeconds: number;
  retryMaxSeconds: number;
  downClients: number;
  downPauseMs: number;
  twoInstanceCreates: number;
  twoInstanceConnections: number;
}

export function faultSettings(
  plan: BenchPlan,
  env: Record<string, string | undefined> = process.env,
): FaultSettings {
  const positive = (name: string, fallback: number) => {
    const value = Number(env[name]);
    return Number.isFinite(value) && value > 0 ? value : fallback;
  };
  return {
    kills: positive('BENCH_FAULT_KILLS', plan.quick ? 20 : 100),
    killConnections: 8,
    killRunMs: [200, 1500],
    downSeconds: positive('BENCH_FAULT_DOWN_SECONDS', plan.quick ? 10 : 120),
    retryMaxSeconds: positive('BENCH_FAULT_RETRY_MAX_SECONDS', 30),
    downClients: 4,
    downPauseMs: 200,
    twoInstanceCreates: plan.quick ? 1_000 : 5_000,
    twoInstanceConnections: 16,
  };
}

export interface FaultResults {
  settings: FaultSettings;
  kills: KillFigures[];
  down: ReceiverDownFigures[];
  /** PostgreSQL only. */
  twoInstances: TwoInstancesFigures[];
}

/** Each scenario on a new database of each kind `newDatabases` makes, dropped afterwards. */
export async function measureFaults(
  newDatabases: (() => Promise<BenchDatabase>)[],
  settings: FaultSettings,
  progress: (line: string) => void,
): Promise<FaultResults> {
  const results: FaultResults = { settings, kills: [], down: [], twoInstances: [] };
  const onNew = async <T>(
    newDatabase: () => Promise<BenchDatabase>,
    work: (d: BenchDatabase) => Promise<T>,
  ) => {
    const database = await newDatabase();
    try {
      return await work(database);
    } finally {
      await database.drop();
    }
  };
  for (const newDatabase of newDatabases) {
    const kill = await onNew(newDatabase, (database) =>
      killUnderCreates(database, {
        kills: settings.kills,
        connections: settings.killConnections,
        runMs: settings.killRunMs,
        drainTimeoutMs: 120_000,
        progress: (line) => progress(`${database.label}: ${line}`),
      }),
    );
    results.kills.push(kill);
    progress(
      `${kill.store}: ${kill.kills} kills, ${kill.acknowledged} acknowledged, ${kill.lost.length} lost, ` +
        `${kill.doubleAssigned} double-assigned, ${kill.undelivered.length} undelivered, drained in ${seconds(kill.drainMs)} s`,
    );
    const down = await onNew(newDatabase, (database) =>
      receiverDown(database, {
        downMs: settings.downSeconds * 1000,
        clients: settings.downClients,
        pauseMs: settings.downPauseMs,
        retryMaxSeconds: settings.retryMaxSeconds,
        drainTimeoutMs: 900_000,
        progress: (line) => progress(`${database.label}: ${line}`),
      }),
    );
    results.down.push(down);
    progress(
      `${down.store}: receiver down ${seconds(down.downMs)} s, ${down.events} events, ${down.lost.length} lost, ` +
        `${down.outOfOrder.length} out of order, drained in ${seconds(down.drainMs)} s`,
    );
    const two = await onNew(newDatabase, async (database) =>
      database.store.dialect === 'postgres'
        ? twoInstances(database, {
            creates: settings.twoInstanceCreates,
            connections: settings.twoInstanceConnections,
            drainTimeoutMs: 300_000,
          })
        : undefined,
    );
    if (two) {
      results.twoInstances.push(two);
      progress(
        `${two.store}, two processes: ${two.doubleAssigned} double-assigned, ${two.delivered} of ${two.events} delivered, ` +
          `${two.receivedTwice.length} received twice`,
      );
    }
  }
  return results;
}

const seconds = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(1) : '–');

export function faultsSection(results: FaultResults): string {
  const s = results.settings;
  const kills = table(
    [
      'store',
      'kills',
      'creates sent',
      'acknowledged',
      'unanswered: found / made by a retry',
      'lost',
      'half-written',
      'double-assigned',
      'load mismatches',
      'session.created undelivered',
      'duplicates at the receiver',
      'drain s',
      'run s',
    ],
    results.kills.map((k) => [
      k.store,
      String(k.kills),
      integer(k.attempts),
      integer(k.acknowledged),
      `${k.unanswered}: ${k.retriedFound} / ${k.retriedMade}`,
      String(k.lost.length),
      String(k.halfWritten.length),
      String(k.doubleAssigned),
      String(k.loadMismatches),
      String(k.undelivered.length),
      String(k.duplicates),
      seconds(k.drainMs),
      k.seconds.toFixed(0),
    ]),
  );
  const down = table(
    [
      'store',
      'down s',
      'sessions',
      'events',
      'attempts answered 503',
      'attempts refused',
      'lost',
      'dead',
      'out of order',
      'duplicates',
      'drain s after it was back',
    ],
    results.down.map((d) => [
      d.store,
      seconds(d.downMs),
      integer(d.sessions),
      integer(d.events),
      integer(d.failed503),
      integer(d.refused),
      String(d.lost.length),
      String(d.dead),
      String(d.outOfOrder.length),
      String(d.duplicates),
      seconds(d.drainMs),
    ]),
  );
  const two = table(
    [
      'store',
      'acknowledged by A + B',
      'double-assigned',
      'load mismatches',
      'events (created, updated)',
      'delivered',
      'webhook-ids received more than once',
      'out of order',
      'drain s',
    ],
    results.twoInstances.map((t) => [
      t.store,
      `${integer(t.acknowledged[0])} + ${integer(t.acknowledged[1])}`,
      String(t.doubleAssigned),
      String(t.loadMismatches),
      integer(t.events),
      integer(t.delivered),
      String(t.receivedTwice.length),
      String(t.outOfOrder.length),
      seconds(t.drainMs),
    ]),
  );
  return [
    '## Crashes and faults (issue 18)',
    '',
    `Veil started as \`npm start\` starts it (in development: the test receiver is plain http on loopback), the benchmark's pool, a webhook endpoint at a local receiver that verifies every Standard Webhooks signature. **SIGKILL under creates**: ${s.killConnections} clients create sessions; ${s.kills} times the server is killed at a random moment ${s.killRunMs[0]}–${s.killRunMs[1]} ms after the round's first answer and restarted on the same database (the next process loads its code meanwhile: bench/servers/spare.ts). Then the creates left unanswered are retried with their externalId and body (found: 200, made: 201), and once the outbox has drained every acknowledged session is read back (same proxies), every session checked through the API and in the store (its two participants, their proxies, one session.created), the invariant counted in SQL, and every acknowledged create's session.created looked for at the receiver. Drain: from the last restart until nothing is pending; a delivery in flight at a kill waits for its lease (the attempt's timeout, 2 s, and 30 s). Duplicates: deliveries that reached the receiver but not the database before a kill, sent again under the same webhook-id.`,
    '',
    kills,
    '',
    `**Receiver down**: ${s.downClients} clients each take a session through create, a participant's label changed (session.updated) and close, every ${s.downPauseMs} ms, while the receiver answers 503 for half the time, then refuses connections; retries wait up to ${s.retryMaxSeconds} s (VEIL_WEBHOOK_RETRY_MAX_SECONDS; base 1 s). Out of order: an event that reached the receiver while an earlier one of its session was not yet delivered.`,
    '',
    down,
    ...(results.twoInstances.length > 0
      ? [
          '',
          `**Two processes on one PostgreSQL database**, both running the outbox worker, ${integer(s.twoInstanceCreates)} creates from ${s.twoInstanceConnections} clients, half to each, each session's participant then relabelled through the other process (session.updated); the receiver answers 200 at once.`,
          '',
          two,
        ]
      : ['', 'Two processes on one database: PostgreSQL only, not run (no TEST_DATABASE_URL).']),
  ].join('\n');
}
