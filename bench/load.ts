import autocannon from 'autocannon';
import type { ServerProcess } from './processes.ts';

/** One load run against one server. */
export interface LoadOptions {
  server: ServerProcess;
  requests: autocannon.Request[];
  connections: number;
  pipelining?: number;
  /** Run for this long, or until `amount` requests when that is given. */
  seconds?: number;
  amount?: number;
  /** Stop early after this long even when `amount` is not reached. */
  maxSeconds?: number;
  /** Called after every response, with the number of responses so far. */
  onResponse?: (responses: number) => void;
}

export interface LoadResult {
  /** 2xx responses. */
  ok: number;
  /** Other statuses, socket errors and timeouts. */
  failed: number;
  seconds: number;
  /** 2xx responses per second. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** The server's CPU time (all threads) per response, in microseconds: steadier than req/s on a busy machine. */
  cpuUsPerRequest: number;
  /** autocannon's own CPU time per response: when it nears the server's, the client limits the rate. */
  clientCpuUsPerRequest: number;
}

/**
 * Runs autocannon against a server. Latencies come from autocannon's per-response timings rather
 * than its histogram, which counts whole milliseconds and would read a 0.8 ms p50 as 0.
 */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const pipelining = options.pipelining ?? 1;
  const shares = pipelining === 1 ? spread(options.requests, options.connections) : undefined;
  let clients = 0;
  const cpuBefore = options.server.cpuMs();
  const clientBefore = process.cpuUsage();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.server.url,
        connections: options.connections,
        pipelining,
        ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.seconds ?? 10 }),
        requests: shares?.[0] ?? options.requests,
        ...(shares
          ? { setupClient: (client) => client.setRequests(shares[clients++ % shares.length] ?? []) }
          : {}),
      },
      (error, result) => {
        clearTimeout(timer);
        if (error) return reject(error);
        const cpuMs = options.server.cpuMs() - cpuBefore;
        const client = process.cpuUsage(clientBefore);
        const responses = latencies.length;
        const ok = result['2xx'];
        latencies.sort((a, b) => a - b);
        resolve({
          ok,
          failed: result.non2xx + result.errors + result.timeouts,
          seconds: result.duration,
          rps: ok / result.duration,
          p50Ms: percentile(latencies, 0.5),
          p99Ms: percentile(latencies, 0.99),
          cpuUsPerRequest: (cpuMs * 1000) / responses,
          clientCpuUsPerRequest: (client.user + client.system) / responses,
        });
      },
    );
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      latencies.push(responseTime);
      options.onResponse?.(latencies.length);
    });
    const timer = options.maxSeconds
      ? setTimeout(() => instance.stop(), options.maxSeconds * 1000)
      : undefined;
  });
}

/**
 * Deals the requests out to the connections, so that each goes through its own share of them: with
 * one shared list, every connection would start at its head and they would all ask for the same
 * sessions at once. undefined when there are too few to deal (autocannon then cycles the one list).
 */
function spread(requests: autocannon.Request[], connections: number): autocannon.Request[][] | undefined {
  if (requests.length < 2 * connections) return undefined;
  const shares: autocannon.Request[][] = Array.from({ length: connections }, () => []);
  requests.forEach((request, i) => {
    shares[i % connections]?.push(request);
  });
  return shares;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

/** A server under test with the load it is given. */
export interface Target {
  name: string;
  run(seconds: number): Promise<LoadResult>;
}

/**
 * Runs every target `rounds` times, interleaved: the order goes forward in even rounds and
 * backward in odd ones (A B C, C B A, ...), so a machine that speeds up or slows down during the
 * run weighs on every target alike. A warm-up run of each target, not counted, comes first.
 * Returns each target's results, round by round.
 */
export async function interleave(
  targets: readonly Target[],
  options: { rounds: number; seconds: number; warmupSeconds: number; onRun?: (line: string) => void },
): Promise<LoadResult[][]> {
  for (const target of targets) await target.run(options.warmupSeconds);
  const results: LoadResult[][] = targets.map(() => []);
  for (let round = 0; round < options.rounds; round++) {
    const order = targets.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) {
      const target = targets[i] as Target;
      const result = await target.run(options.seconds);
      results[i]?.push(result);
      options.onRun?.(`round ${round + 1}: ${target.name} ${Math.round(result.rps)} req/s`);
    }
  }
  return results;
}

/** The medians of a target's rounds. */
export interface Summary {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerRequest: number;
  clientCpuUsPerRequest: number;
  failed: number;
  rounds: number;
}

export function summarize(results: readonly LoadResult[]): Summary {
  return {
    rps: median(results.map((r) => r.rps)),
    p50Ms: median(results.map((r) => r.p50Ms)),
    p99Ms: median(results.map((r) => r.p99Ms)),
    cpuUsPerRequest: median(results.map((r) => r.cpuUsPerRequest)),
    clientCpuUsPerRequest: median(results.map((r) => r.clientCpuUsPerRequest)),
    failed: results.reduce((sum, r) => sum + r.failed, 0),
    rounds: results.length,
  };
}

/** The median over rounds of a target's req/s divided by the baseline's in the same round. */
export function medianRatio(results: readonly LoadResult[], baseline: readonly LoadResult[]): number {
  return median(results.map((r, i) => r.rps / (baseline[i]?.rps ?? Number.NaN)));
}
