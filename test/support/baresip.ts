import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freeUdpPort } from './sip.ts';

/** Debian's baresip (package baresip-core, which `baresip` pulls in). */
export const BARESIP = '/usr/bin/baresip';
const MODULES = '/usr/lib/baresip/modules';

/** How long a test waits for anything baresip says before failing. */
export const BARESIP_WAIT_MS = 10_000;

/** Whether baresip and the modules a phone needs here are installed. */
export function baresipInstalled(): boolean {
  return (
    existsSync(BARESIP) &&
    ['ctrl_tcp', 'menu', 'account', 'g711', 'ausine', 'aubridge'].every((m) =>
      existsSync(join(MODULES, `${m}.so`)),
    )
  );
}

/** One event from baresip's control interface (ctrl_tcp), e.g. CALL_INCOMING. */
export interface BaresipEvent {
  type: string;
  class: string;
  accountaor: string;
  direction?: string;
  /** The other side's URI, as this phone sees it (for an incoming call, the From). */
  peeruri?: string;
  /** The call's SIP Call-ID, as this phone sees it. */
  id?: string;
  /** The event's detail: the peer's URI, a SIP reason (`403 Forbidden`), `audio`... */
  param?: string;
}

interface Reply {
  ok: boolean;
  data: string;
}

/**
 * A baresip phone on loopback, no sound device (a 440 Hz sine as its microphone, its speaker a
 * bridge nobody listens to), one account that never registers, driven over ctrl_tcp: netstring
 * JSON commands in, JSON events and replies out.
 */
export class Baresip {
  /** Every event it sent so far, in order. */
  readonly events: BaresipEvent[] = [];
  private readonly replies = new Map<string, (reply: Reply) => void>();
  private tokens = 0;
  private pending = Buffer.alloc(0);

  private constructor(
    /** `127.0.0.1:PORT` where its SIP listens. */
    readonly address: string,
    /** Its account's number (the From user of what it dials). */
    readonly number: string,
    private readonly child: ChildProcess,
    private readonly control: Socket,
    private readonly output: () => string,
    private readonly dir: string,
  ) {
    control.on('data', (data: Buffer) => this.read(data));
  }

  /** Starts a phone for `number` on free loopback ports; waits until its control socket answers. */
  static async start(number: string): Promise<Baresip> {
    for (let attempt = 0; ; attempt++) {
      const dir = mkdtempSync(join(tmpdir(), 'veil-baresip-'));
      const sipPort = await freeUdpPort();
      const controlPort = await freeTcpPort();
      const address = `127.0.0.1:${sipPort}`;
      writeConfig(dir, address, controlPort);
      writeFileSync(join(dir, 'accounts'), `<sip:${number}@${address}>;regint=0;answermode=manual\n`);
      let output = '';
      const child = spawn(BARESIP, ['-f', dir], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout?.on('data', (d: Buffer) => {
        output += d.toString();
      });
      child.stderr?.on('data', (d: Buffer) => {
        output += d.toString();
      });
      const control = await connectWhenListening(child, controlPort);
      if (control) return new Baresip(address, number, child, control, () => output, dir);
      await kill(child);
      rmSync(dir, { recursive: true, force: true });
      // A port taken between freeUdpPort and baresip's bind: try others.
      if (attempt >= 2) throw new Error(`baresip did not start:\n${output}`);
    }
  }

  /** Runs a command (dial, accept, hangup...); its text, or an error naming baresip's answer. */
  async command(command: string, params?: string): Promise<string> {
    const token = String(++this.tokens);
    const reply = new Promise<Reply>((done, fail) => {
      const timer = setTimeout(() => {
        this.replies.delete(token);
        fail(new Error(`baresip did not answer ${command} within ${BARESIP_WAIT_MS} ms\n${this.log()}`));
      }, BARESIP_WAIT_MS);
      this.replies.set(token, (answer) => {
        clearTimeout(timer);
        done(answer);
      });
    });
    const json = Buffer.from(JSON.stringify({ command, params, token }));
    this.control.write(Buffer.concat([Buffer.from(`${json.length}:`), json, Buffer.from(',')]));
    const { ok, data } = await reply;
    if (!ok) throw new Error(`baresip refused ${command} ${params ?? ''}: ${data}`);
    return data;
  }

  /** The first event (past or to come) that satisfies `match`; throws after `timeoutMs`. */
  async waitForEvent(
    match: (event: BaresipEvent) => boolean,
    timeoutMs = BARESIP_WAIT_MS,
    /** More to say when nothing came (the edge's log). */
    context: () => string = () => '',
  ): Promise<BaresipEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      if (Date.now() > deadline) {
        const seen = this.events.map((e) => `${e.type}(${e.param ?? ''})`).join(' | ');
        throw new Error(
          `no matching baresip event within ${timeoutMs} ms at ${this.number} (saw: ${seen || 'nothing'})\n${this.log()}\n${context()}`,
        );
      }
      await sleep(20);
    }
  }

  /** What baresip wrote, for a failing test's message. */
  log(): string {
    return this.output();
  }

  async stop(): Promise<void> {
    this.control.destroy();
    await kill(this.child);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Netstrings (`<length>:<json>,`) out of the control socket's stream. */
  private read(data: Buffer): void {
    this.pending = Buffer.concat([this.pending, data]);
    for (;;) {
      const colon = this.pending.indexOf(':');
      if (colon < 0) return;
      const length = Number(this.pending.subarray(0, colon).toString());
      if (this.pending.length < colon + 1 + length + 1) return;
      const message = JSON.parse(this.pending.subarray(colon + 1, colon + 1 + length).toString());
      this.pending = this.pending.subarray(colon + 1 + length + 1);
      if (message.event) this.events.push(message as BaresipEvent);
      else if (message.response) this.replies.get(String(message.token))?.(message as Reply);
    }
  }
}

function writeConfig(dir: string, address: string, controlPort: number): void {
  const lines = [
    `sip_listen ${address}`,
    // Its SDP names loopback, not the machine's first interface.
    'net_interface 127.0.0.1',
    'call_local_timeout 30',
    // No sound device: a sine as the microphone (48 kHz stereo only, resampled for G.711) and a
    // bridge nobody reads as the speaker and the ringer.
    'audio_source ausine,440',
    'ausrc_srate 48000',
    'ausrc_channels 2',
    'audio_player aubridge,speaker',
    'audio_alert aubridge,ringer',
    'ringback_disabled yes',
    'statmode_default off',
    // Below the ports rtpengine takes (startRtpengine: 20000 and up).
    'rtp_ports 10000-19998',
    'rtp_stats yes',
    `module_path ${MODULES}`,
    'module g711.so',
    'module ausine.so',
    'module aubridge.so',
    'module_tmp account.so',
    'module_app menu.so',
    'module_app ctrl_tcp.so',
    `ctrl_tcp_listen 127.0.0.1:${controlPort}`,
  ];
  writeFileSync(join(dir, 'config'), `${lines.join('\n')}\n`);
}

/** The control socket once baresip listens on it (5 s at most); undefined if it exited or never did. */
async function connectWhenListening(child: ChildProcess, port: number): Promise<Socket | undefined> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null || child.signalCode !== null) return undefined;
    const socket = await new Promise<Socket | undefined>((done) => {
      const attempt = connect(port, '127.0.0.1');
      attempt.once('connect', () => done(attempt));
      attempt.once('error', () => done(undefined));
    });
    if (socket) return socket;
    await sleep(50);
  }
  return undefined;
}

/** SIGTERM, then SIGKILL if it is still there after 2 s. */
async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

/** A TCP port on loopback nobody was listening on a moment ago. */
async function freeTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  if (!address || typeof address === 'string') throw new Error('no TCP port');
  return address.port;
}
