import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: servers start from here, as `npm start` does. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const HEALTH_TIMEOUT_MS = 60_000;
const HEALTH_POLL_MS = 100;
const STOP_TIMEOUT_MS = 15_000;
/** Lines of a server's output kept to explain a failure. */
const OUTPUT_LINES_KEPT = 40;
/** Clock ticks per second of /proc/<pid>/stat times. */
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** A server in its own process, reachable over HTTP. */
export interface ServerProcess {
  name: string;
  url: string;
  pid: number;
  /** Resident memory now, in KiB (VmRSS). */
  rssKiB(): number;
  /** CPU time used so far by all its threads, in milliseconds. */
  cpuMs(): number;
  /** The last lines it printed. */
  output(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  name: string;
  /** The script, relative to the repository root, run with `node --import tsx`. */
  script: string;
  env: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  /** The checkout the script runs from (BENCH_BASELINE's for the baseline server); this one by default. */
  cwd?: string;
}

const children = new Set<ChildProcess>();

// Whatever ends the benchmark (an error, Ctrl-C), no server outlives it.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `node --import tsx <script>` with only the given environment (plus PATH and HOME), on a
 * free port (PORT), and waits until GET /healthz answers.
 */
export async function startServer(options: StartOptions): Promise<ServerProcess> {
  return (await spawnServer(options)).healthy();
}

/** A server process spawned, not yet known to answer. */
export interface SpawnedServer extends ServerProcess {
  /** Waits until GET /healthz answers (stopping the process if it never does). */
  healthy(): Promise<ServerProcess>;
}

/** Spawns `node --import tsx <script>` as startServer does, without waiting for it to answer. */
export async function spawnServer(options: StartOptions): Promise<SpawnedServer> {
  const port = await freePort();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', options.script], {
    cwd: options.cwd ?? ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString().split('\n').filter(Boolean));
    lines.splice(0, Math.max(0, lines.length - OUTPUT_LINES_KEPT));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  exited.then(() => children.delete(child));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${options.name}: could not start`);
  const url = `http://127.0.0.1:${port}`;
  const server: SpawnedServer = {
    name: options.name,
    url,
    pid,
    rssKiB: () => rssKiB(pid),
    cpuMs: () => cpuMs(pid),
    output: () => lines.join('\n'),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
    async healthy() {
      await waitForHealth(server, exited);
      return server;
    },
  };
  return server;
}

async function waitForHealth(server: ServerProcess, exited: Promise<void>): Promise<void> {
  let gone = false;
  exited.then(() => {
    gone = true;
  });
  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (gone) throw new Error(`${server.name} exited while starting:\n${server.output()}`);
    try {
      const response = await fetch(`${server.url}/healthz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
  }
  await server.stop();
  throw new Error(
    `${server.name} did not answer /healthz within ${HEALTH_TIMEOUT_MS / 1000} s:\n${server.output()}`,
  );
}

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
}

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at the state, field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime (14) and stime (15)
  return (ticks * 1000) / CLOCK_TICKS;
}
