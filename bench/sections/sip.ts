import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { startServer } from '../../src/server.ts';
import { startEdge } from '../../test/support/kamailio.ts';
import { header, SipAgent, type SipMessage, sdp } from '../../test/support/sip.ts';

export interface SipRow {
  edge: string;
  calls: number;
  failed: number;
  setupsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

const ADMIN_KEY = 'bench-sip-admin-key-0123456789abcdef';
const A = '+14155550123';
const B = '+14155550187';
/** Calls in flight at once, as many phones dialling together. */
const CONCURRENCY = 32;
/** Kamailio's workers (SIP_WORKERS): start.sh's default, and more of them waiting on Veil at once. */
const WORKERS = 4;
const MORE_WORKERS = 16;
/** The longest a setup may take before it counts as failed. */
const SETUP_TIMEOUT_MS = 2000;

/**
 * Call setups per second (INVITE to 200, then ACK) through Kamailio asking Veil, and through the
 * same Kamailio configuration with a fixed decision instead (start.sh -A VEIL_NOT_ASKED): what
 * asking Veil costs. Veil runs in this process on SQLite; the callee answers at once.
 */
export async function measureSip(workdir: string, seconds: number): Promise<SipRow[]> {
  const server = await startServer(
    loadConfig({
      NODE_ENV: 'development',
      DATABASE_URL: `sqlite:${join(workdir, 'sip.db')}`,
      PORT: '0',
      VEIL_API_KEY: ADMIN_KEY,
      VEIL_DEMO_POOL: 'false',
      VEIL_RATE_LIMIT_ROUTE_PER_MINUTE: '0',
      // Every call of the benchmark is in one session: its hourly cap would refuse most.
      VEIL_MAX_CALLS_PER_SESSION_HOUR: '0',
      LOG_LEVEL: 'silent',
    }),
  );
  const api = async (path: string, body: unknown) => {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as Record<string, unknown>;
  };
  const caller = await SipAgent.start();
  const callee = await SipAgent.start(true);
  caller.keep = false;
  callee.keep = false;
  try {
    for (const number of ['+14155550150', '+14155550151'])
      await api('/v1/numbers', { number, provider: 'sip' });
    const session = await api('/v1/sessions', { participants: [{ number: A }, { number: B }] });
    const [a, b] = session.participants as { proxyNumber: string }[];
    if (!a || !b) throw new Error('no participants');
    const routeKey = String((await api('/v1/keys', { name: 'sip bench', scopes: ['route'] })).key);
    const fixed = JSON.stringify({ action: 'connect', to: B, callerId: b.proxyNumber, record: false });
    const rows: SipRow[] = [];
    for (const [label, args, workers] of [
      [`Kamailio asking Veil, ${WORKERS} workers`, [], WORKERS],
      [`Kamailio alone (fixed decision), ${WORKERS} workers`, ['-A', 'VEIL_NOT_ASKED'], WORKERS],
      [`Kamailio asking Veil, ${MORE_WORKERS} workers`, [], MORE_WORKERS],
    ] as const) {
      const edge = await startEdge({
        veilUrl: server.url,
        routeKey,
        trunk: callee.address,
        allow: [caller.address, callee.address],
        args: [...args],
        env: { VEIL_FIXED_DECISION: fixed, SIP_WORKERS: String(workers) },
        // Transactions stay in shared memory for seconds after their 200, a few thousand a second.
        shmMb: 1024,
      });
      try {
        await calls(caller, edge.address, a.proxyNumber, 1); // warm-up: connections, caches
        rows.push({ edge: label, ...(await calls(caller, edge.address, a.proxyNumber, seconds)) });
      } finally {
        await edge.stop();
      }
    }
    return rows;
  } finally {
    await caller.close();
    await callee.close();
    await server.stop();
  }
}

/** Dials for `seconds` with CONCURRENCY calls in flight; each setup's time from INVITE to 200. */
async function calls(caller: SipAgent, proxy: string, dialled: string, seconds: number) {
  const waiting = new Map<string, (m: SipMessage) => void>();
  caller.onMessage = (m) => {
    if ((m.status ?? 0) < 200) return;
    const callId = header(m, 'call-id') ?? '';
    waiting.get(callId)?.(m);
    waiting.delete(callId);
  };
  const times: number[] = [];
  let failed = 0;
  const until = Date.now() + seconds * 1000;
  const dialler = async () => {
    while (Date.now() < until) {
      const started = performance.now();
      const body = sdp(A, caller.mediaPort);
      let callId = '';
      const answer = new Promise<SipMessage | undefined>((done) => {
        callId = caller.request({ method: 'INVITE', from: A, to: dialled, proxy, body });
        waiting.set(callId, done);
        setTimeout(() => done(undefined), SETUP_TIMEOUT_MS).unref();
      });
      const final = await answer;
      waiting.delete(callId);
      if (final?.status === 200) {
        times.push(performance.now() - started);
        caller.ack(final, proxy);
      } else {
        failed++;
      }
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, dialler));
  const elapsed = (Date.now() - started) / 1000;
  caller.onMessage = undefined;
  times.sort((x, y) => x - y);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
  return {
    calls: times.length,
    failed,
    setupsPerSecond: Math.round(times.length / elapsed),
    p50Ms: Number(at(0.5).toFixed(1)),
    p99Ms: Number(at(0.99).toFixed(1)),
  };
}

/** The section of RESULTS.md. */
export function sipSection(rows: SipRow[], seconds: number): string {
  const lines = [
    '## SIP edge: call setups through Kamailio',
    '',
    `INVITE to 200 OK (then ACK) over UDP on loopback, ${CONCURRENCY} calls in flight for ${seconds} s; Veil in`,
    "the benchmark's process on SQLite; the same Kamailio configuration with a fixed decision instead",
    "of asking Veil is the baseline. Each of Kamailio's workers (SIP_WORKERS) waits for its HTTP query.",
    '',
    '| edge | setups/s | p50 ms | p99 ms | calls | failed |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) => `| ${r.edge} | ${r.setupsPerSecond} | ${r.p50Ms} | ${r.p99Ms} | ${r.calls} | ${r.failed} |`,
    ),
  ];
  const [veil, alone, more] = rows;
  if (veil && alone && more && alone.setupsPerSecond > 0) {
    const ratio = (row: SipRow) => (row.setupsPerSecond / alone.setupsPerSecond).toFixed(2);
    lines.push(
      '',
      `Asking Veil keeps ${ratio(veil)}× the setups of Kamailio alone with ${WORKERS} workers, ${ratio(more)}× with ${MORE_WORKERS}.`,
    );
  }
  return lines.join('\n');
}
