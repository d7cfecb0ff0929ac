import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
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
  /** rtpengine's control socket (`udp:IP:PORT`, see startRtpengine); `none` unless said. */
  rtpengine?: string;
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
          RTPENGINE: options.rtpengine ?? 'none',
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

export interface RunningRtpengine {
  /** Its control socket, for startEdge's `rtpengine`. */
  control: string;
  /** The address it anchors media on (what either side's SDP names). */
  mediaAddress: string;
  log(): string;
  /** The Call-IDs of the calls it anchors now (its `list` command). */
  calls(): Promise<string[]>;
  stop(): Promise<void>;
}

/** Fails, naming the package, when Debian's rtpengine is not installed (.ci/run installs it). */
export function assertRtpengineInstalled(): void {
  if (spawnSync('rtpengine', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('rtpengine is not installed: apt-get install -y rtpengine-daemon');
  }
}

/**
 * Debian's rtpengine in user space (no kernel forwarding), anchoring media on 127.0.0.3 (an
 * address neither agent uses) with its control socket on a free loopback port; waits until a
 * `ping` on that socket is answered.
 */
export async function startRtpengine(): Promise<RunningRtpengine> {
  assertRtpengineInstalled();
  const mediaAddress = '127.0.0.3';
  const control = await freeUdpPort();
  // A port range of its own, so that files running at once do not contend for ports; below the
  // kernel's ephemeral ports (32768 up), where the agents' SIP and media ports are, so that no port
  // rtpengine gives out has the number of an agent's (the tests look for those in what arrives).
  const first = 20_000 + 2 * Math.floor(Math.random() * 6_000);
  let output = '';
  const child = spawn(
    'rtpengine',
    [
      '--config-file=none',
      '--foreground',
      '--log-stderr',
      '--table=-1',
      `--interface=${mediaAddress}`,
      `--listen-ng=127.0.0.1:${control}`,
      `--port-min=${first}`,
      `--port-max=${first + 199}`,
      // A call's relay ends with its BYE, not 30 s later (the default).
      '--delete-delay=0',
      '--log-level=5',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  for (let i = 0; ; i++) {
    if (child.exitCode !== null || i === 50) {
      await stop();
      throw new Error(`rtpengine did not start:\n${output}`);
    }
    if ((await ngCommand(control, 'd7:command4:pinge', 100).catch(() => '')).includes('pong')) break;
  }
  const calls = async () => {
    const reply = await ngCommand(control, 'd7:command4:liste');
    // d5:callsl<len>:<id>...e6:result2:oke
    const list = /5:callsl(.*)e6:result/.exec(reply)?.[1] ?? '';
    const ids: string[] = [];
    for (let at = 0; at < list.length; ) {
      const colon = list.indexOf(':', at);
      const length = Number(list.slice(at, colon));
      ids.push(list.slice(colon + 1, colon + 1 + length));
      at = colon + 1 + length;
    }
    return ids;
  };
  return { control: `udp:127.0.0.1:${control}`, mediaAddress, log: () => output, calls, stop };
}

/** One command on rtpengine's control socket (bencoded); its answer, or an error once `timeoutMs` passed. */
async function ngCommand(port: number, command: string, timeoutMs = 1000): Promise<string> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((done) => socket.bind(0, '127.0.0.1', done));
    const cookie = randomBytes(4).toString('hex');
    const answer = new Promise<string>((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`rtpengine did not answer ${command}`)), timeoutMs);
      socket.on('message', (data) => {
        const text = data.toString('latin1');
        if (!text.startsWith(`${cookie} `)) return;
        clearTimeout(timer);
        done(text.slice(cookie.length + 1));
      });
    });
    socket.send(`${cookie} ${command}`, port, '127.0.0.1');
    return await answer;
  } finally {
    socket.close();
  }
}
