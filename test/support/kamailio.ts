import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeUdpPort, header, SipAgent } from './sip.ts';

/** The operator's script (deploy/kamailio/start.sh). */
export const START = resolve(fileURLToPath(import.meta.url), '../../../deploy/kamailio/start.sh');

/** Fails, naming the packages, when Debian's Kamailio is not installed (.ci/run installs it). */
export function assertKamailioInstalled(): void {
  if (spawnSync('kamailio', ['-v'], { stdio: 'ignore' }).status !== 0) {
    throw new Error(
      'kamailio is not installed: apt-get install -y kamailio kamailio-utils-modules kamailio-json-modules',
    );
  }
}

export interface EdgeOptions {
  veilUrl: string;
  routeKey: string;
  /** `IP:PORT` where calls go out. */
  trunk: string;
  /** Source addresses allowed to send (IP or IP:PORT); the probe's is added. */
  allow: string[];
  /** More for start.sh: arguments it passes on to kamailio, and environment. */
  args?: string[];
  env?: Record<string, string>;
  /** Kamailio's shared memory, in MB (32 unless said). */
  shmMb?: number;
}

export interface RunningEdge {
  /** `127.0.0.1:PORT` where Kamailio listens. */
  address: string;
  /** What Kamailio wrote to stderr, for a failing test's message. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Runs deploy/kamailio/start.sh as an operator would, on a free loopback port with its runtime
 * files in a temporary directory, and waits until it answers (an OPTIONS from a probe: 405).
 */
export async function startEdge(options: EdgeOptions): Promise<RunningEdge> {
  assertKamailioInstalled();
  const runtime = mkdtempSync(join(tmpdir(), 'veil-kamailio-'));
  const probe = await SipAgent.start();
  let output = '';
  let child: ChildProcess | undefined;
  try {
    for (let attempt = 0; ; attempt++) {
      const port = await freeUdpPort();
      // Not the agents' address: topoh leaves alone what it takes for a message to itself.
      const address = `127.0.0.2:${port}`;
      output = '';
      child = spawn(START, options.args ?? [], {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin:/usr/sbin:/sbin',
          VEIL_URL: options.veilUrl,
          VEIL_ROUTE_KEY: options.routeKey,
          SIP_LISTEN: `udp:${address}`,
          SIP_TRUNK: options.trunk,
          SIP_TRUNK_ALLOW: [...options.allow, probe.address].join(','),
          SIP_RUNTIME_DIR: runtime,
          SIP_SHM_MB: String(options.shmMb ?? 32),
          ...options.env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout?.on('data', (d: Buffer) => {
        output += d.toString();
      });
      child.stderr?.on('data', (d: Buffer) => {
        output += d.toString();
      });
      const exited = new Promise<void>((done) => child?.once('exit', () => done()));
      const ready = (async () => {
        for (let i = 0; i < 100; i++) {
          if (child?.exitCode !== null) return false;
          const callId = probe.request({ method: 'OPTIONS', to: 'probe', from: 'probe', proxy: address });
          try {
            await probe.waitFor((m) => header(m, 'call-id') === callId, 100);
            return true;
          } catch {
            // not listening yet
          }
        }
        return false;
      })();
      if (await Promise.race([ready, exited.then(() => false)])) {
        const running = child;
        return {
          address,
          log: () => output,
          stop: async () => {
            if (running.exitCode === null) {
              running.kill('SIGTERM');
              await exited;
            }
            await probe.close();
            rmSync(runtime, { recursive: true, force: true });
          },
        };
      }
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      if (attempt >= 2) throw new Error(`kamailio did not start:\n${output}`);
    }
  } catch (error) {
    await probe.close();
    rmSync(runtime, { recursive: true, force: true });
    throw error;
  }
}
