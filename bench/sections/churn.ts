import type autocannon from 'autocannon';
import { type BenchDatabase, checkInvariant, type InvariantCheck } from '../databases.ts';
import { API_KEY, startVeil } from '../launch.ts';
import { runLoad } from '../load.ts';
import type { BenchPlan } from '../plan.ts';
import { seed } from '../seed.ts';
import { sessionBodies } from '../workload.ts';
import { SESSIONS_PATH } from './creates.ts';

export interface RssSample {
  /** Create and close operations done when the sample was taken. */
  ops: number;
  rssKiB: number;
  /** Milliseconds since the churn started. */
  atMs: number;
}

export interface ChurnResult {
  rssAtStartKiB: number;
  samples: RssSample[];
  ops: number;
  failed: number;
  seconds: number;
  check: InvariantCheck;
}

interface ChurnContext {
  sessionId?: string;
}

/** Each connection opens a session, then closes it, and again: the load of a platform's order flow. */
function churnRequests(): autocannon.Request[] {
  const nextBody = sessionBodies(99);
  return [
    {
      method: 'POST',
      path: SESSIONS_PATH,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      setupRequest: (request) => ({ ...request, body: nextBody() }),
      onResponse: (status, body, context) => {
        if (status === 201) (context as ChurnContext).sessionId = JSON.parse(body).id;
      },
    },
    {
      method: 'DELETE',
      headers: { authorization: `Bearer ${API_KEY}` },
      setupRequest: (request, context) => ({
        ...request,
        path: `${SESSIONS_PATH}/${(context as ChurnContext).sessionId ?? 'none'}`,
      }),
    },
  ];
}

/**
 * The server's resident memory over a long create/close churn, sampled every churnOps/churnSamples
 * operations (or churnMaxSeconds/churnSamples seconds, whichever comes first). Memory that grows with the number of sessions ever made (a cache without bound, a
 * leak) shows as a rising line; a flat one is what a long-running service needs.
 */
export async function measureChurn(database: BenchDatabase, plan: BenchPlan): Promise<ChurnResult> {
  await seed(database, { openSessions: 0 });
  const server = await startVeil(`Veil ${database.label} churn`, database);
  // By operations, or by time when the churn is slow enough to reach its time limit first.
  const every = Math.max(1, Math.floor(plan.churnOps / plan.churnSamples));
  const everyMs = (plan.churnMaxSeconds * 1000) / plan.churnSamples;
  const rssAtStartKiB = server.rssKiB();
  const samples: RssSample[] = [];
  const started = Date.now();
  try {
    const result = await runLoad({
      server,
      requests: churnRequests(),
      connections: plan.churnConnections,
      amount: plan.churnOps,
      maxSeconds: plan.churnMaxSeconds,
      onResponse: (ops) => {
        const atMs = Date.now() - started;
        if (ops % every === 0 || atMs - (samples.at(-1)?.atMs ?? 0) >= everyMs) {
          samples.push({ ops, rssKiB: server.rssKiB(), atMs });
        }
      },
    });
    await server.stop();
    return {
      rssAtStartKiB,
      samples,
      ops: result.ok + result.failed,
      failed: result.failed,
      seconds: result.seconds,
      check: await checkInvariant(database),
    };
  } finally {
    await server.stop();
  }
}
