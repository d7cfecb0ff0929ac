import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';

/** One SIP message as an agent received it: the raw text, its first line, headers and body. */
export interface SipMessage {
  raw: string;
  /** `INVITE sip:...@... SIP/2.0` or `SIP/2.0 200 OK`. */
  startLine: string;
  /** The request's method, or the response's CSeq method. */
  method: string;
  /** A response's status code; undefined for a request. */
  status?: number;
  /** Header values by lower-case name, in order. */
  headers: Map<string, string[]>;
  body: string;
}

/** Compact header forms (RFC 3261 §7.3.3) as their full lower-case names. */
const COMPACT: Record<string, string> = {
  v: 'via',
  f: 'from',
  t: 'to',
  i: 'call-id',
  m: 'contact',
  l: 'content-length',
  c: 'content-type',
  k: 'supported',
};

export function parseSip(raw: string): SipMessage {
  const split = raw.indexOf('\r\n\r\n');
  const head = split >= 0 ? raw.slice(0, split) : raw;
  const body = split >= 0 ? raw.slice(split + 4) : '';
  const [startLine = '', ...lines] = head.split('\r\n');
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const short = line.slice(0, colon).trim().toLowerCase();
    const name = COMPACT[short] ?? short;
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  const response = /^SIP\/2\.0 (\d{3})/.exec(startLine);
  const cseqMethod = headers.get('cseq')?.[0]?.split(/\s+/)[1] ?? '';
  return {
    raw,
    startLine,
    method: response ? cseqMethod : (startLine.split(' ')[0] ?? ''),
    status: response ? Number(response[1]) : undefined,
    headers,
    body,
  };
}

/** A header's first value. */
export function header(message: SipMessage, name: string): string | undefined {
  return message.headers.get(name.toLowerCase())?.[0];
}

export interface RequestOptions {
  method: 'INVITE' | 'MESSAGE' | 'OPTIONS';
  /** The R-URI's user part (the dialled number). */
  to: string;
  /** From's user part (the caller's number); null leaves the From header out. */
  from: string | null;
  /** `IP:PORT` the request is addressed to (Kamailio). */
  proxy: string;
  headers?: string[];
  body?: string;
  contentType?: string;
}

/**
 * One side's view of a call (RFC 3261 §12): where its in-dialog requests go (the remote target,
 * through the route set), its From and To, and the CSeq it numbered its last request with.
 */
export interface Dialog {
  callId: string;
  /** The request URI: the other side's Contact. */
  target: string;
  /** Route headers, in the order they are sent. */
  routes: string[];
  /** This side's From (with its tag) and To (with the other side's). */
  from: string;
  to: string;
  cseq: number;
}

/** The caller's view, from an answer to its INVITE (a 2xx, or a reliable 18x). */
export function callerDialog(answer: SipMessage): Dialog {
  return {
    callId: header(answer, 'call-id') ?? '',
    target: /<([^>]+)>/.exec(header(answer, 'contact') ?? '')?.[1] ?? '',
    routes: (answer.headers.get('record-route') ?? []).slice().reverse(),
    from: header(answer, 'from') ?? '',
    to: header(answer, 'to') ?? '',
    cseq: Number((header(answer, 'cseq') ?? '1').split(/\s+/)[0]),
  };
}

export interface InDialogOptions {
  /** The CSeq number (an ACK's is its INVITE's); the dialog's next otherwise. */
  cseq?: number;
  headers?: string[];
  /** An SDP (application/sdp). */
  body?: string;
}

/**
 * A SIP user agent over UDP on loopback, small enough to read: it sends requests as a trunk would
 * and records every message its socket receives. As a callee it answers requests by itself
 * (INVITE: 180 then 200 with SDP, or a reliable 183 with SDP first; a re-INVITE: 200 with SDP;
 * MESSAGE, BYE, PRACK, ACK-less others: 200), as a phone on the far side of a trunk would.
 */
export class SipAgent {
  readonly received: SipMessage[] = [];
  /** Called with every message received (the benchmark's caller, which keeps none). */
  onMessage?: (message: SipMessage) => void;
  /** False: received messages are not kept in `received` (a long benchmark). */
  keep = true;
  /**
   * How an answering agent answers an INVITE: picks up, `ring` (180 and nothing more), `early`
   * (a 183 with SDP sent reliably, RFC 3262, then the 200 once it is PRACKed), or e.g.
   * `486 Busy Here`.
   */
  inviteAnswer = '200 OK';
  /** Headers an answering agent adds to its answers (what a callee's carrier may add). */
  replyHeaders: string[] = [];
  /** The port its SDP names for media (nothing listens there unless a test binds it). */
  mediaPort: number;
  /** The INVITEs this agent sent, by Call-ID (start line, Via, From, To), for CANCEL. */
  private readonly sent = new Map<string, string[]>();
  /** The INVITEs this agent rings for (inviteAnswer `ring`), by Call-ID, to end on CANCEL. */
  private readonly ringing = new Map<string, SipMessage>();
  /** The INVITEs this agent sent a reliable 183 for (inviteAnswer `early`), by Call-ID, until PRACKed. */
  private readonly early = new Map<string, SipMessage>();
  /** The callee's view of each call it answered, by Call-ID. */
  private readonly dialogs = new Map<string, Dialog>();
  /** The To tag this agent answered each Call-ID with. */
  private readonly tags = new Map<string, string>();
  private constructor(
    private readonly socket: Socket,
    readonly port: number,
    private readonly answers: boolean,
  ) {
    this.mediaPort = port + 1000;
    socket.on('message', (data, from) => {
      const message = parseSip(data.toString('utf8'));
      if (this.keep) this.received.push(message);
      this.onMessage?.(message);
      if (this.answers && message.status === undefined && message.method !== 'ACK') {
        this.answer(message, from.address, from.port);
      }
    });
  }

  /** An agent on a free loopback port; `answers` makes it pick up what reaches it. */
  static async start(answers = false): Promise<SipAgent> {
    const socket = createSocket('udp4');
    await new Promise<void>((done) => socket.bind(0, '127.0.0.1', done));
    return new SipAgent(socket, socket.address().port, answers);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Sends raw bytes to `IP:PORT`. */
  sendRaw(text: string, to: string): void {
    const [host = '', port = ''] = to.split(':');
    this.socket.send(Buffer.from(text, 'utf8'), Number(port), host);
  }

  /** Sends a new out-of-dialog request; returns its Call-ID. */
  request(options: RequestOptions): string {
    const callId = `${randomBytes(8).toString('hex')}@${this.address}`;
    const body = options.body ?? '';
    const lines = [
      `${options.method} sip:${options.to}@${options.proxy} SIP/2.0`,
      `Via: SIP/2.0/UDP ${this.address};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
      'Max-Forwards: 70',
      ...(options.from === null
        ? []
        : [
            `From: "${options.from}" <sip:${options.from}@${this.address}>;tag=${randomBytes(4).toString('hex')}`,
          ]),
      `To: <sip:${options.to}@${options.proxy}>`,
      `Call-ID: ${callId}`,
      `CSeq: 1 ${options.method}`,
      `Contact: <sip:${options.from ?? 'anonymous'}@${this.address}>`,
      ...(options.headers ?? []),
      ...(body ? [`Content-Type: ${options.contentType ?? 'application/sdp'}`] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
    ];
    this.sendRaw(`${lines.join('\r\n')}\r\n\r\n${body}`, options.proxy);
    if (options.method === 'INVITE')
      this.sent.set(callId, [lines[0], lines[1], lines[3], lines[4]].map(String));
    return callId;
  }

  /** Cancels an INVITE this agent sent (RFC 3261 §9.1: same R-URI, Via, From, To and Call-ID). */
  cancel(callId: string, proxy: string): void {
    const [startLine = '', via = '', from = '', to = ''] = this.sent.get(callId) ?? [];
    const lines = [
      startLine.replace(/^INVITE/, 'CANCEL'),
      via,
      'Max-Forwards: 70',
      from,
      to,
      `Call-ID: ${callId}`,
      'CSeq: 1 CANCEL',
      'Content-Length: 0',
    ];
    this.sendRaw(`${lines.join('\r\n')}\r\n\r\n`, proxy);
  }

  /**
   * Sends a request within a call: to the other side's Contact, through the route set its
   * Record-Route built (here, the edge at `proxy`). Returns the CSeq number it used.
   */
  sendInDialog(dialog: Dialog, method: string, proxy: string, options: InDialogOptions = {}): number {
    const cseq = options.cseq ?? ++dialog.cseq;
    const body = options.body ?? '';
    const lines = [
      `${method} ${dialog.target} SIP/2.0`,
      `Via: SIP/2.0/UDP ${this.address};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
      'Max-Forwards: 70',
      ...dialog.routes.map((r) => `Route: ${r}`),
      `From: ${dialog.from}`,
      `To: ${dialog.to}`,
      `Call-ID: ${dialog.callId}`,
      `CSeq: ${cseq} ${method}`,
      `Contact: <sip:${this.address}>`,
      ...(options.headers ?? []),
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
    ];
    this.sendRaw(`${lines.join('\r\n')}\r\n\r\n${body}`, proxy);
    return cseq;
  }

  /**
   * Acknowledges a 2xx to an INVITE as a phone would, with the SDP answer when the 2xx carried
   * the offer (a late offer).
   */
  ack(ok: SipMessage, proxy: string, body?: string): void {
    const dialog = callerDialog(ok);
    this.sendInDialog(dialog, 'ACK', proxy, { cseq: dialog.cseq, body });
  }

  /** The callee's view of a call this agent answered (its INVITE's Call-ID as it came). */
  calleeDialog(invite: SipMessage): Dialog {
    const callId = header(invite, 'call-id') ?? '';
    let dialog = this.dialogs.get(callId);
    if (!dialog) {
      dialog = {
        callId,
        target: /<([^>]+)>/.exec(header(invite, 'contact') ?? '')?.[1] ?? '',
        routes: invite.headers.get('record-route') ?? [],
        from: `${header(invite, 'to')};tag=${this.tags.get(callId)}`,
        to: header(invite, 'from') ?? '',
        cseq: 0,
      };
      this.dialogs.set(callId, dialog);
    }
    return dialog;
  }

  /**
   * Hangs up a call this agent answered, as the callee's phone would: a BYE to the caller's Contact
   * through the route set of the INVITE's Record-Route (here, the edge at `proxy`).
   */
  hangUp(invite: SipMessage, proxy: string): void {
    this.sendInDialog(this.calleeDialog(invite), 'BYE', proxy);
  }

  /** Answers a request this agent received from `proxy` (a re-INVITE, by the test's hand). */
  reply(request: SipMessage, status: string, proxy: string, body = ''): void {
    const [host = '', port = ''] = proxy.split(':');
    this.respond(request, host, Number(port), status, body);
  }

  /** Waits until a received message satisfies `match`; throws after `timeoutMs`. */
  async waitFor(
    match: (m: SipMessage) => boolean,
    timeoutMs = 3000,
    /** More to say when nothing came (the edge's log). */
    context: () => string = () => '',
  ): Promise<SipMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(match);
      if (found) return found;
      if (Date.now() > deadline) {
        const seen = this.received.map((m) => m.startLine).join(' | ');
        throw new Error(
          `no matching SIP message within ${timeoutMs} ms (received: ${seen || 'nothing'})\n${context()}`,
        );
      }
      await sleep(10);
    }
  }

  /** The final response (≥ 200) to the request with this Call-ID. */
  finalResponse(callId: string, timeoutMs = 3000): Promise<SipMessage> {
    return this.waitFor((m) => (m.status ?? 0) >= 200 && header(m, 'call-id') === callId, timeoutMs);
  }

  close(): Promise<void> {
    return new Promise((done) => this.socket.close(() => done()));
  }

  /** Answers a request: `status` when given (487 to an INVITE a CANCEL ended), else as a phone. */
  private answer(request: SipMessage, host: string, port: number, status?: string): void {
    const callId = header(request, 'call-id') ?? '';
    const reply = (status: string, body = '', headers: string[] = []) =>
      this.respond(request, host, port, status, body, headers);
    const offer = sdp('callee', this.mediaPort);
    if (status) {
      reply(status);
    } else if (request.method === 'INVITE' && /;tag=/.test(header(request, 'to') ?? '')) {
      reply('200 OK', offer);
    } else if (request.method === 'INVITE') {
      reply('180 Ringing');
      if (this.inviteAnswer === '200 OK') reply('200 OK', offer);
      else if (this.inviteAnswer === 'ring') this.ringing.set(callId, request);
      else if (this.inviteAnswer === 'early') {
        this.early.set(callId, request);
        reply('183 Session Progress', offer, ['Require: 100rel', 'RSeq: 1']);
      } else reply(this.inviteAnswer);
    } else {
      reply('200 OK');
      const rung = request.method === 'CANCEL' ? this.ringing.get(callId) : undefined;
      if (rung) {
        this.ringing.delete(callId);
        this.answer(rung, host, port, '487 Request Terminated');
      }
      const early = request.method === 'PRACK' ? this.early.get(callId) : undefined;
      if (early) {
        this.early.delete(callId);
        this.respond(early, host, port, '200 OK', offer);
      }
    }
  }

  /** Sends a response to `request` (its Via, From, Call-ID, CSeq and Record-Route copied, To tagged). */
  private respond(
    request: SipMessage,
    host: string,
    port: number,
    status: string,
    body = '',
    headers: string[] = [],
  ): void {
    const copy = ['via', 'from', 'call-id', 'cseq', 'record-route'].flatMap((name) =>
      (request.headers.get(name) ?? []).map(
        (value) => `${name === 'call-id' ? 'Call-ID' : cap(name)}: ${value}`,
      ),
    );
    const callId = header(request, 'call-id') ?? '';
    const tag = this.tags.get(callId) ?? randomBytes(4).toString('hex');
    this.tags.set(callId, tag);
    const to = header(request, 'to') ?? '';
    const lines = [
      `SIP/2.0 ${status}`,
      ...copy,
      `To: ${/;tag=/.test(to) ? to : `${to};tag=${tag}`}`,
      `Contact: <sip:callee@${this.address}>`,
      ...this.replyHeaders,
      ...headers,
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ];
    this.socket.send(Buffer.from(lines.join('\r\n')), port, host);
  }
}

function cap(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());
}

/** A minimal audio offer, its o= line naming `user` as phones often do. */
export function sdp(user: string, mediaPort: number): string {
  return [
    'v=0',
    `o=${user} 1 1 IN IP4 127.0.0.1`,
    's=call',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${mediaPort} RTP/AVP 0`,
    'a=rtpmap:0 PCMU/8000',
    '',
  ].join('\r\n');
}

/** A UDP port on loopback nobody was bound to a moment ago. */
export async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((done) => socket.bind(0, '127.0.0.1', done));
  const { port } = socket.address();
  await new Promise<void>((done) => socket.close(() => done()));
  return port;
}
