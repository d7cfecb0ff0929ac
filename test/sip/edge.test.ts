import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type RunningEdge,
  type RunningRtpengine,
  START,
  startEdge,
  startRtpengine,
} from '../support/kamailio.ts';
import { callerDialog, header, SipAgent, type SipMessage, sdp } from '../support/sip.ts';
import { type Participant, type SipVeil, startSipVeil } from '../support/sip-veil.ts';

const A = '+14155550123';
const B = '+14155550187';
const STRANGER = '+14155550199';

/** Where an SDP says its media goes: the c= address and the m=audio port. */
function mediaOf(body: string): { address: string; port: number } {
  const address = /^c=IN IP4 ([0-9.]+)\r?$/m.exec(body)?.[1];
  const port = /^m=audio ([0-9]+) /m.exec(body)?.[1];
  assert.ok(address && port, `no media in the SDP:\n${body}`);
  return { address, port: Number(port) };
}

/** The URI in a From, To or Contact value. */
function uriOf(value: string | undefined): string {
  return /<([^>]+)>/.exec(value ?? '')?.[1] ?? '';
}

/** A phone's media socket: sends RTP packets (PCMU, 20 ms) and tells who it heard from. */
class RtpSocket {
  private sequence = 0;
  private constructor(
    private readonly socket: Socket,
    readonly port: number,
  ) {}

  static async open(): Promise<RtpSocket> {
    const socket = createSocket('udp4');
    await new Promise<void>((done) => socket.bind(0, '127.0.0.1', done));
    return new RtpSocket(socket, socket.address().port);
  }

  send(to: { address: string; port: number }): void {
    const packet = Buffer.alloc(12 + 160, 0xff);
    packet.writeUInt8(0x80, 0); // RTP version 2
    packet.writeUInt8(0, 1); // payload type 0, PCMU
    packet.writeUInt16BE(this.sequence, 2);
    packet.writeUInt32BE(this.sequence * 160, 4);
    packet.writeUInt32BE(this.port, 8); // SSRC
    this.sequence++;
    this.socket.send(packet, to.port, to.address);
  }

  /** The sender of the next packet within `ms`, or undefined. */
  heard(ms: number): Promise<{ address: string; port: number } | undefined> {
    return new Promise((done) => {
      const timer = setTimeout(() => {
        this.socket.off('message', onMessage);
        done(undefined);
      }, ms);
      const onMessage = (_: Buffer, from: { address: string; port: number }) => {
        clearTimeout(timer);
        this.socket.off('message', onMessage);
        done({ address: from.address, port: from.port });
      };
      this.socket.on('message', onMessage);
    });
  }

  /** Sends a packet every 20 ms until `listener` hears one (5 s at most); who it heard it from. */
  async sendUntilHeard(
    to: { address: string; port: number },
    listener: RtpSocket,
  ): Promise<{ address: string; port: number }> {
    for (let i = 0; i < 250; i++) {
      const heard = listener.heard(20);
      this.send(to);
      const from = await heard;
      if (from) return from;
    }
    throw new Error(`nothing sent to ${to.address}:${to.port} was heard`);
  }

  close(): void {
    this.socket.close();
  }
}

/** Every header and the body of what the callee received, for "the caller's number is nowhere". */
function everything(agent: SipAgent): string {
  return agent.received.map((m) => m.raw).join('\n');
}

describe('the SIP edge (Kamailio asking POST /v1/route)', () => {
  let dir: string;
  let veil: SipVeil;
  let edge: RunningEdge;
  let rtpengine: RunningRtpengine;
  /** Plays the trunk delivering calls from the phone network (the caller's side). */
  let caller: SipAgent;
  /** Plays the trunk where calls go out (the callee's phone answers there). */
  let callee: SipAgent;
  let a: Participant;
  let b: Participant;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'veil-sip-'));
    veil = await startSipVeil(dir, [A, B]);
    [a, b] = veil.participants as [Participant, Participant];
    caller = await SipAgent.start();
    callee = await SipAgent.start(true);
    rtpengine = await startRtpengine();
    edge = await startEdge({
      veilUrl: veil.server.url,
      routeKey: veil.routeKey,
      trunk: callee.address,
      allow: [caller.address, callee.address],
      rtpengine: rtpengine.control,
    });
  });
  after(async () => {
    await edge?.stop();
    await rtpengine?.stop();
    await caller?.close();
    await callee?.close();
    await veil?.server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Waits (3 s at most) until rtpengine no longer anchors the call's media. */
  const released = async (callId: string) => {
    for (let i = 0; (await rtpengine.calls()).includes(callId); i++) {
      assert.ok(i < 30, `rtpengine still carries ${callId}:\n${edge.log()}\n${rtpengine.log()}`);
      await sleep(100);
    }
  };

  const invite = (from: string | null, to: string, headers: string[] = []) =>
    caller.request({
      method: 'INVITE',
      from: from === null ? null : from,
      to,
      proxy: edge.address,
      headers,
      body: sdp(from ?? 'anonymous', caller.mediaPort),
    });

  it('connects A to B: B is rung at their real number, shown the proxy, and nothing of A reaches them', async () => {
    // What B's side of the trunk may say of B in its answers.
    callee.replyHeaders = [
      `P-Asserted-Identity: <sip:${B}@carrier.example>`,
      `Remote-Party-ID: <sip:${B}@carrier.example>;party=called`,
      `X-Callee: ${B.slice(1)}`,
    ];
    const callId = invite(A, a.proxyNumber, [
      `P-Asserted-Identity: <sip:${A}@carrier.example>`,
      `Remote-Party-ID: <sip:${A}@carrier.example>;party=calling`,
      `Diversion: <sip:${A}@carrier.example>;reason=unconditional`,
      `History-Info: <sip:${A}@carrier.example>;index=1`,
      'Privacy: none',
      `X-Carrier-Caller: ${A}`,
      `User-Agent: carrier-sbc ${A.slice(1)}`,
    ]);
    const answer = await caller.finalResponse(callId, 5000).finally(() => {
      callee.replyHeaders = [];
    });
    assert.equal(answer.status, 200, edge.log());
    const rung = await callee.waitFor((m) => m.method === 'INVITE');
    assert.match(rung.startLine, new RegExp(`^INVITE sip:\\${B}@${callee.address} SIP/2.0$`));
    assert.match(header(rung, 'to') ?? '', new RegExp(`sip:\\${B}@`));
    assert.match(header(rung, 'from') ?? '', new RegExp(`^"?\\${b.proxyNumber}"? <sip:\\${b.proxyNumber}@`));
    for (const name of [
      'p-asserted-identity',
      'remote-party-id',
      'diversion',
      'history-info',
      'privacy',
      'x-carrier-caller',
      'user-agent',
    ]) {
      assert.equal(rung.headers.has(name), false, `${name} reached the callee`);
    }
    assert.equal(rung.body.includes(A.slice(1)), false, `the caller's number is in the SDP:\n${rung.body}`);
    assert.equal(
      rung.startLine.includes(a.proxyNumber.slice(1)),
      false,
      'the proxy A dialled reached the callee',
    );
    // Nor do the replies tell the caller B's real number.
    const replies = caller.received
      .filter((m) => header(m, 'call-id') === callId)
      .map((m) => m.raw)
      .join('\n');
    assert.equal(replies.includes(B.slice(1)), false, `B's number reached the caller:\n${replies}`);
    // Via, Contact, Record-Route and Call-ID masked (topoh): neither side sees the other's address.
    const seen = everything(callee);
    assert.equal(seen.includes(A.slice(1)), false, `the caller's number reached the callee:\n${seen}`);
    assert.equal(seen.includes(String(caller.port)), false, `the caller's port reached the callee:\n${seen}`);
    assert.equal(
      replies.includes(String(callee.port)),
      false,
      `the callee's port reached the caller:\n${replies}`,
    );
    // The media is anchored: each side's SDP names rtpengine, never the other side's media port.
    assert.equal(mediaOf(rung.body).address, rtpengine.mediaAddress, rung.body);
    assert.equal(rung.body.includes(String(caller.mediaPort)), false, rung.body);
    assert.equal(mediaOf(answer.body).address, rtpengine.mediaAddress, answer.body);
    assert.equal(answer.body.includes(String(callee.mediaPort)), false, answer.body);
  });

  it('carries the media through rtpengine both ways, and stops carrying it when the call ends', async () => {
    const h = '+14155550351';
    const session = await veil.api('POST', '/v1/sessions', {
      participants: [{ number: h }, { number: '+14155550352' }],
    });
    const [hView] = session.participants as Participant[];
    assert.ok(hView);
    await withMedia(async (callerMedia, calleeMedia) => {
      const callId = caller.request({
        method: 'INVITE',
        from: h,
        to: hView.proxyNumber,
        proxy: edge.address,
        body: sdp(h, callerMedia.port),
      });
      const ok = await caller.finalResponse(callId, 5000);
      assert.equal(ok.status, 200, edge.log());
      caller.ack(ok, edge.address);
      const rung = await callee.waitFor(
        (m) => m.method === 'INVITE' && (header(m, 'to') ?? '').includes('+14155550352'),
      );
      // The caller speaks to where its answer says; the callee hears it from rtpengine.
      const toCallee = await callerMedia.sendUntilHeard(mediaOf(ok.body), calleeMedia);
      assert.equal(toCallee.address, rtpengine.mediaAddress);
      assert.notEqual(toCallee.port, callerMedia.port);
      const toCaller = await calleeMedia.sendUntilHeard(mediaOf(rung.body), callerMedia);
      assert.equal(toCaller.address, rtpengine.mediaAddress);
      assert.notEqual(toCaller.port, calleeMedia.port);
      callee.hangUp(rung, edge.address);
      await caller.waitFor((m) => m.method === 'BYE' && header(m, 'call-id') === callId, 3000, edge.log);
      // The call is over: rtpengine relays nothing more between them.
      await sleep(200);
      callerMedia.send(mediaOf(ok.body));
      assert.equal(await calleeMedia.heard(500), undefined, 'media was relayed after the BYE');
      await released(callId);
    });
  });

  /** A new session between `from` and `to`: the proxy number `from` calls `to` at. */
  const proxyFor = async (from: string, to: string) => {
    const session = await veil.api('POST', '/v1/sessions', {
      participants: [{ number: from }, { number: to }],
    });
    const [view] = session.participants as Participant[];
    assert.ok(view);
    return view.proxyNumber;
  };

  /** What the callee received of the call to `number` (its real number): all with the Call-ID it was rung with. */
  const calleeGot = (number: string) => {
    const rung = callee.received.find(
      (m) => m.method === 'INVITE' && m.status === undefined && (header(m, 'to') ?? '').includes(number),
    );
    return callee.received.filter((m) => rung && header(m, 'call-id') === header(rung, 'call-id'));
  };

  /** Neither the caller's number nor its SIP port in what the callee got of the call to `callee`. */
  const assertCallerHidden = (calleeNumber: string, callerNumber: string) => {
    const seen = calleeGot(calleeNumber)
      .map((x) => x.raw)
      .join('\n');
    assert.equal(
      seen.includes(callerNumber.slice(1)),
      false,
      `the caller's number reached the callee:\n${seen}`,
    );
    assert.equal(seen.includes(String(caller.port)), false, `the caller's port reached the callee:\n${seen}`);
  };

  /** Runs `body` with a media socket for each side, the callee's answers naming its own. */
  const withMedia = async (body: (callerMedia: RtpSocket, calleeMedia: RtpSocket) => Promise<void>) => {
    const callerMedia = await RtpSocket.open();
    const calleeMedia = await RtpSocket.open();
    const calleeSdpPort = callee.mediaPort;
    callee.mediaPort = calleeMedia.port;
    try {
      await body(callerMedia, calleeMedia);
    } finally {
      callee.mediaPort = calleeSdpPort;
      callerMedia.close();
      calleeMedia.close();
    }
  };

  /** RTP both ways, each side sending where the SDP it was given says: each hears rtpengine. */
  const assertMediaAnchored = async (
    callerMedia: RtpSocket,
    callerWasTold: string,
    calleeMedia: RtpSocket,
    calleeWasTold: string,
  ) => {
    const toCallee = await callerMedia.sendUntilHeard(mediaOf(callerWasTold), calleeMedia);
    assert.equal(toCallee.address, rtpengine.mediaAddress);
    const toCaller = await calleeMedia.sendUntilHeard(mediaOf(calleeWasTold), callerMedia);
    assert.equal(toCaller.address, rtpengine.mediaAddress);
  };

  /** The callee hangs up: the caller gets the BYE, and rtpengine lets the call go. */
  const calleeHangsUp = async (rung: SipMessage, callId: string) => {
    callee.hangUp(rung, edge.address);
    await caller.waitFor((x) => x.method === 'BYE' && header(x, 'call-id') === callId, 3000, edge.log);
    await released(callId);
  };

  it('anchors a late offer: the offer in the 200 and the answer in the ACK each name rtpengine, and media flows', async () => {
    const l = '+14155550361';
    const m = '+14155550362';
    const proxy = await proxyFor(l, m);
    await withMedia(async (callerMedia, calleeMedia) => {
      const callId = caller.request({ method: 'INVITE', from: l, to: proxy, proxy: edge.address });
      const ok = await caller.finalResponse(callId, 5000);
      assert.equal(ok.status, 200, edge.log());
      const rung = await callee.waitFor((x) => x.method === 'INVITE' && calleeGot(m).includes(x));
      assert.equal(rung.body, '', 'the INVITE gained a body');
      // The offer came in the 200: the caller is told rtpengine's address, not the callee's.
      assert.equal(mediaOf(ok.body).address, rtpengine.mediaAddress, ok.body);
      assert.equal(ok.body.includes(String(calleeMedia.port)), false, ok.body);
      caller.ack(ok, edge.address, sdp(l, callerMedia.port));
      const ack = await callee.waitFor((x) => x.method === 'ACK' && calleeGot(m).includes(x), 3000, edge.log);
      assert.equal(mediaOf(ack.body).address, rtpengine.mediaAddress, ack.body);
      assert.equal(ack.body.includes(String(callerMedia.port)), false, ack.body);
      assertCallerHidden(m, l);
      await assertMediaAnchored(callerMedia, ok.body, calleeMedia, ack.body);
      await calleeHangsUp(rung, callId);
    });
  });

  it("anchors the caller's re-INVITE (a new media port): each side's SDP names rtpengine, From and To stay masked, media flows", async () => {
    const r = '+14155550371';
    const s = '+14155550372';
    const proxy = await proxyFor(r, s);
    const firstMedia = await RtpSocket.open();
    await withMedia(async (callerMedia, calleeMedia) => {
      const callId = caller.request({
        method: 'INVITE',
        from: r,
        to: proxy,
        proxy: edge.address,
        body: sdp(r, firstMedia.port),
      });
      const ok = await caller.finalResponse(callId, 5000);
      assert.equal(ok.status, 200, edge.log());
      caller.ack(ok, edge.address);
      const rung = await callee.waitFor((x) => x.method === 'INVITE' && calleeGot(s).includes(x));
      // The caller moves its media to another port.
      const dialog = callerDialog(ok);
      const cseq = caller.sendInDialog(dialog, 'INVITE', edge.address, { body: sdp(r, callerMedia.port) });
      const reinvite = await callee.waitFor(
        (x) => x.method === 'INVITE' && x.status === undefined && x !== rung && calleeGot(s).includes(x),
        3000,
        edge.log,
      );
      assert.equal(mediaOf(reinvite.body).address, rtpengine.mediaAddress, reinvite.body);
      assert.equal(reinvite.body.includes(String(callerMedia.port)), false, reinvite.body);
      // The callee's view of the call: From the proxy number it knows the caller by, To itself.
      assert.equal(uriOf(header(reinvite, 'from')), uriOf(header(rung, 'from')));
      assert.match(uriOf(header(reinvite, 'to')), new RegExp(`^sip:\\${s}@`));
      const reOk = await caller.waitFor(
        (x) => x.status === 200 && header(x, 'call-id') === callId && header(x, 'cseq') === `${cseq} INVITE`,
        3000,
        edge.log,
      );
      assert.equal(mediaOf(reOk.body).address, rtpengine.mediaAddress, reOk.body);
      assert.equal(reOk.body.includes(String(calleeMedia.port)), false, reOk.body);
      caller.sendInDialog(dialog, 'ACK', edge.address, { cseq });
      assertCallerHidden(s, r);
      const replies = caller.received
        .filter((x) => header(x, 'call-id') === callId)
        .map((x) => x.raw)
        .join('\n');
      assert.equal(
        replies.includes(s.slice(1)),
        false,
        `the callee's number reached the caller:\n${replies}`,
      );
      // The media now flows from the new port, through rtpengine.
      await assertMediaAnchored(callerMedia, reOk.body, calleeMedia, reinvite.body);
      await calleeHangsUp(rung, callId);
    }).finally(() => firstMedia.close());
  });

  it("anchors the callee's re-INVITE (hold): the caller sees rtpengine and neither the callee's number nor its address", async () => {
    const t = '+14155550381';
    const u = '+14155550382';
    const proxy = await proxyFor(t, u);
    const callId = invite(t, proxy);
    const ok = await caller.finalResponse(callId, 5000);
    assert.equal(ok.status, 200, edge.log());
    caller.ack(ok, edge.address);
    const rung = await callee.waitFor((x) => x.method === 'INVITE' && calleeGot(u).includes(x));
    const dialog = callee.calleeDialog(rung);
    const hold = `${sdp(u, callee.mediaPort + 2)}a=sendonly\r\n`;
    const cseq = callee.sendInDialog(dialog, 'INVITE', edge.address, { body: hold });
    const reinvite = await caller.waitFor(
      (x) => x.method === 'INVITE' && x.status === undefined && header(x, 'call-id') === callId,
      3000,
      edge.log,
    );
    assert.equal(mediaOf(reinvite.body).address, rtpengine.mediaAddress, reinvite.body);
    assert.equal(reinvite.body.includes(String(callee.mediaPort + 2)), false, reinvite.body);
    assert.match(reinvite.body, /^a=sendonly\r?$/m);
    // The caller's own view of the call: From the proxy it dialled, To itself.
    assert.match(uriOf(header(reinvite, 'from')), new RegExp(`^sip:\\${proxy}@`));
    assert.match(uriOf(header(reinvite, 'to')), new RegExp(`^sip:\\${t}@`));
    caller.reply(reinvite, '200 OK', edge.address, sdp(t, caller.mediaPort + 2));
    const reOk = await callee.waitFor(
      (x) =>
        x.status === 200 &&
        header(x, 'cseq') === `${cseq} INVITE` &&
        header(x, 'call-id') === header(rung, 'call-id'),
      3000,
      edge.log,
    );
    assert.equal(mediaOf(reOk.body).address, rtpengine.mediaAddress, reOk.body);
    assert.equal(reOk.body.includes(String(caller.mediaPort + 2)), false, reOk.body);
    callee.sendInDialog(dialog, 'ACK', edge.address, { cseq });
    await caller.waitFor((x) => x.method === 'ACK' && header(x, 'call-id') === callId, 3000, edge.log);
    const told = caller.received
      .filter((x) => header(x, 'call-id') === callId)
      .map((x) => x.raw)
      .join('\n');
    assert.equal(told.includes(u.slice(1)), false, `the callee's number reached the caller:\n${told}`);
    assert.equal(told.includes(String(callee.port)), false, `the callee's port reached the caller:\n${told}`);
    assertCallerHidden(u, t);
    await calleeHangsUp(rung, callId);
  });

  it('anchors early media in a reliable 183 (100rel): its SDP names rtpengine, the PRACK reaches the callee, then the 200', async () => {
    const p = '+14155550391';
    const q = '+14155550392';
    const proxy = await proxyFor(p, q);
    callee.inviteAnswer = 'early';
    try {
      const callId = invite(p, proxy, ['Supported: 100rel']);
      const early = await caller.waitFor(
        (x) => x.status === 183 && header(x, 'call-id') === callId,
        3000,
        edge.log,
      );
      assert.equal(header(early, 'require'), '100rel');
      assert.equal(header(early, 'rseq'), '1');
      assert.equal(mediaOf(early.body).address, rtpengine.mediaAddress, early.body);
      assert.equal(early.body.includes(String(callee.mediaPort)), false, early.body);
      const dialog = callerDialog(early);
      const cseq = caller.sendInDialog(dialog, 'PRACK', edge.address, { headers: ['RAck: 1 1 INVITE'] });
      const prack = await callee.waitFor(
        (x) => x.method === 'PRACK' && calleeGot(q).includes(x),
        3000,
        edge.log,
      );
      assert.equal(header(prack, 'rack'), '1 1 INVITE');
      await caller.waitFor(
        (x) => x.status === 200 && header(x, 'call-id') === callId && header(x, 'cseq') === `${cseq} PRACK`,
        3000,
        edge.log,
      );
      const ok = await caller.waitFor(
        (x) => x.status === 200 && x.method === 'INVITE' && header(x, 'call-id') === callId,
        3000,
        edge.log,
      );
      assert.equal(mediaOf(ok.body).address, rtpengine.mediaAddress, ok.body);
      caller.ack(ok, edge.address);
      const rung = await callee.waitFor((x) => x.method === 'INVITE' && calleeGot(q).includes(x));
      assertCallerHidden(q, p);
      await calleeHangsUp(rung, callId);
    } finally {
      callee.inviteAnswer = '200 OK';
    }
  });

  it('refuses a REFER from either side with 403, and it never reaches the other side', async () => {
    const v = '+14155550401';
    const w = '+14155550402';
    const proxy = await proxyFor(v, w);
    const callId = invite(v, proxy);
    const ok = await caller.finalResponse(callId, 5000);
    assert.equal(ok.status, 200, edge.log());
    caller.ack(ok, edge.address);
    const rung = await callee.waitFor((x) => x.method === 'INVITE' && calleeGot(w).includes(x));
    const fromCaller = caller.sendInDialog(callerDialog(ok), 'REFER', edge.address, {
      headers: [`Refer-To: <sip:${STRANGER}@${caller.address}>`, `Referred-By: <sip:${v}@${caller.address}>`],
    });
    const refused = await caller.waitFor(
      (x) => header(x, 'call-id') === callId && header(x, 'cseq') === `${fromCaller} REFER`,
      3000,
      edge.log,
    );
    assert.equal(refused.status, 403);
    const dialog = callee.calleeDialog(rung);
    const fromCallee = callee.sendInDialog(dialog, 'REFER', edge.address, {
      headers: [`Refer-To: <sip:${STRANGER}@${callee.address}>`],
    });
    const refusedToo = await callee.waitFor(
      (x) => header(x, 'cseq') === `${fromCallee} REFER` && calleeGot(w).includes(x),
      3000,
      edge.log,
    );
    assert.equal(refusedToo.status, 403);
    await sleep(200);
    assert.equal(
      calleeGot(w).some((x) => x.method === 'REFER' && x.status === undefined),
      false,
      "the caller's REFER reached the callee",
    );
    assert.equal(
      caller.received.some((x) => x.method === 'REFER' && x.status === undefined),
      false,
      "the callee's REFER reached the caller",
    );
    callee.hangUp(rung, edge.address);
    await released(callId);
  });

  it('ends a call at maxCallSeconds with a BYE to both sides, and its end and duration reach the interaction', async () => {
    const c = '+14155550311';
    const d = '+14155550312';
    const session = await veil.api('POST', '/v1/sessions', {
      participants: [{ number: c }, { number: d }],
      // Not 1: the dialog timer ticks in whole seconds, so a 1 s limit may end the call within the
      // second it was answered in, and its duration (whole seconds) reads 0.
      maxCallSeconds: 2,
    });
    const [cView] = session.participants as Participant[];
    assert.ok(cView);
    const byesBefore = callee.received.filter((m) => m.method === 'BYE').length;
    const callId = invite(c, cView.proxyNumber);
    const ok = await caller.finalResponse(callId, 5000);
    assert.equal(ok.status, 200);
    caller.ack(ok, edge.address);
    const started = Date.now();
    await callee.waitFor(
      (m) => m.method === 'BYE' && callee.received.filter((x) => x.method === 'BYE').length > byesBefore,
      6000,
      edge.log,
    );
    await caller.waitFor((m) => m.method === 'BYE' && header(m, 'call-id') === callId, 6000);
    const lasted = Date.now() - started;
    assert.ok(lasted > 500 && lasted < 4000, `the BYE came after ${lasted} ms`);
    await released(callId);
    let ended: { status: string; durationSeconds: number | null } | undefined;
    for (let i = 0; i < 50 && !ended; i++) {
      const { data } = await veil.api('GET', '/v1/interactions');
      ended = (data as { from: string; status: string; durationSeconds: number | null }[]).find(
        (x) => x.from === c && x.status === 'completed',
      );
      if (!ended) await sleep(100);
    }
    assert.ok(ended, `no completed interaction:\n${edge.log()}`);
    assert.ok(
      (ended.durationSeconds ?? 0) >= 1 && (ended.durationSeconds ?? 0) <= 4,
      `lasted ${ended.durationSeconds}`,
    );
  });

  it("carries the callee's BYE back to the caller, and the call's end reaches the interaction", async () => {
    const e = '+14155550331';
    const session = await veil.api('POST', '/v1/sessions', {
      participants: [{ number: e }, { number: '+14155550332' }],
    });
    const [eView] = session.participants as Participant[];
    assert.ok(eView);
    const callId = invite(e, eView.proxyNumber);
    const ok = await caller.finalResponse(callId, 5000);
    assert.equal(ok.status, 200);
    caller.ack(ok, edge.address);
    const rung = await callee.waitFor(
      (m) => m.method === 'INVITE' && (header(m, 'to') ?? '').includes('+14155550332'),
    );
    callee.hangUp(rung, edge.address);
    const bye = await caller.waitFor(
      (m) => m.method === 'BYE' && header(m, 'call-id') === callId,
      3000,
      edge.log,
    );
    assert.match(bye.startLine, new RegExp(`^BYE sip:\\${e}@${caller.address}`));
    assert.equal(
      bye.raw.includes(String(callee.port)),
      false,
      `the callee's port reached the caller:\n${bye.raw}`,
    );
    let ended: unknown;
    for (let i = 0; i < 50 && !ended; i++) {
      const { data } = await veil.api('GET', '/v1/interactions');
      ended = (data as { from: string; status: string; durationSeconds: number | null }[]).find(
        (x) =>
          x.from === e && x.status === 'completed' && x.durationSeconds !== null && x.durationSeconds <= 2,
      );
      if (!ended) await sleep(100);
    }
    assert.ok(ended, `no completed interaction:\n${edge.log()}`);
  });

  it('carries a CANCEL to the ringing callee, and the call reaches the interaction as canceled', async () => {
    const g = '+14155550341';
    const session = await veil.api('POST', '/v1/sessions', {
      participants: [{ number: g }, { number: '+14155550342' }],
    });
    const [gView] = session.participants as Participant[];
    assert.ok(gView);
    callee.inviteAnswer = 'ring';
    try {
      const callId = invite(g, gView.proxyNumber);
      await caller.waitFor((m) => m.status === 180 && header(m, 'call-id') === callId);
      caller.cancel(callId, edge.address);
      const ended = await caller.waitFor(
        (m) => m.method === 'INVITE' && (m.status ?? 0) >= 200 && header(m, 'call-id') === callId,
        3000,
        edge.log,
      );
      assert.equal(ended.status, 487);
      await callee.waitFor((m) => m.method === 'CANCEL');
    } finally {
      callee.inviteAnswer = '200 OK';
    }
    let canceled: unknown;
    for (let i = 0; i < 50 && !canceled; i++) {
      const { data } = await veil.api('GET', '/v1/interactions');
      canceled = (data as { from: string; status: string }[]).find(
        (x) => x.from === g && x.status === 'canceled',
      );
      if (!canceled) await sleep(100);
    }
    assert.ok(canceled, `no canceled interaction:\n${edge.log()}`);
  });

  it('reports a busy callee to the interaction as busy', async () => {
    const c = '+14155550321';
    const session = await veil.api('POST', '/v1/sessions', {
      participants: [{ number: c }, { number: '+14155550322' }],
    });
    const [cView] = session.participants as Participant[];
    assert.ok(cView);
    callee.inviteAnswer = '486 Busy Here';
    try {
      const callId = invite(c, cView.proxyNumber);
      assert.equal((await caller.finalResponse(callId, 5000)).status, 486);
      await released(callId);
    } finally {
      callee.inviteAnswer = '200 OK';
    }
    let busy: unknown;
    for (let i = 0; i < 50 && !busy; i++) {
      const { data } = await veil.api('GET', '/v1/interactions');
      busy = (data as { from: string; status: string }[]).find((x) => x.from === c && x.status === 'busy');
      if (!busy) await sleep(100);
    }
    assert.ok(busy, `no busy interaction:\n${edge.log()}`);
  });

  it('answers 403 to an address that may not send, without asking Veil', async () => {
    const outsider = await SipAgent.start();
    try {
      const logged = (await veil.api('GET', '/v1/interactions')).data.length;
      const callId = outsider.request({
        method: 'INVITE',
        from: A,
        to: a.proxyNumber,
        proxy: edge.address,
        body: sdp(A, outsider.mediaPort),
      });
      assert.equal((await outsider.finalResponse(callId)).status, 403);
      await sleep(200);
      assert.equal((await veil.api('GET', '/v1/interactions')).data.length, logged);
    } finally {
      await outsider.close();
    }
  });

  it('refuses a stranger with 403 and rings nobody', async () => {
    const before = callee.received.length;
    const callId = invite(STRANGER, a.proxyNumber);
    assert.equal((await caller.finalResponse(callId)).status, 403);
    await sleep(200);
    assert.equal(callee.received.length, before);
  });

  it('refuses a number that is not a pool number with 403, and user parts that are no number with 404', async () => {
    const before = callee.received.length;
    assert.equal((await caller.finalResponse(invite(A, '+14155550999'))).status, 403);
    assert.equal((await caller.finalResponse(invite(A, 'alice'))).status, 404);
    const odd = (await caller.finalResponse(invite('"; drop', a.proxyNumber))).status;
    assert.ok(odd === 400 || odd === 404, `answered ${odd}`);
    await sleep(200);
    assert.equal(callee.received.length, before);
  });

  it('relays a MESSAGE to B with its body unchanged, from the proxy', async () => {
    const text = 'Your order is at the door — ring twice. {"json":"too"} +14155550123?';
    const callId = caller.request({
      method: 'MESSAGE',
      from: A,
      to: a.proxyNumber,
      proxy: edge.address,
      body: text,
      contentType: 'text/plain;charset=utf-8',
      headers: [`P-Asserted-Identity: <sip:${A}@carrier.example>`],
    });
    assert.equal((await caller.finalResponse(callId)).status, 200, edge.log());
    const got = await callee.waitFor((m) => m.method === 'MESSAGE');
    assert.equal(got.body, text);
    assert.match(got.startLine, new RegExp(`^MESSAGE sip:\\${B}@`));
    assert.match(header(got, 'from') ?? '', new RegExp(`sip:\\${b.proxyNumber}@`));
    assert.equal(got.headers.has('p-asserted-identity'), false);
  });

  it('refuses malformed SIP, a missing From and a huge header, ringing nobody', async () => {
    const before = callee.received.length;
    const noFrom = invite(null, a.proxyNumber);
    const noFromAnswer = await caller.finalResponse(noFrom).catch(() => undefined);
    assert.ok(noFromAnswer === undefined || noFromAnswer.status === 400, noFromAnswer?.startLine);
    const huge = invite(A, a.proxyNumber, [`X-Padding: ${'x'.repeat(60_000)}`]);
    const hugeAnswer = await caller.finalResponse(huge).catch(() => undefined);
    assert.equal(hugeAnswer?.status, 513);
    caller.sendRaw('INVITE nonsense\r\n\r\n', edge.address);
    caller.sendRaw('\u0000\u0001garbage', edge.address);
    await sleep(300);
    assert.equal(callee.received.length, before);
  });
});

describe('the SIP edge when Veil does not answer', () => {
  it('fails the call with 503 and rings nobody, when Veil is down or slower than a second', async () => {
    // Veil down: nothing listens; Veil slow: an HTTP server that never answers.
    const silent: Server = createServer(() => {});
    await new Promise<void>((done) => silent.listen(0, '127.0.0.1', done));
    const address = silent.address();
    assert.ok(address && typeof address === 'object');
    const caller = await SipAgent.start();
    const callee = await SipAgent.start(true);
    try {
      for (const veilUrl of ['http://127.0.0.1:9', `http://127.0.0.1:${address.port}`]) {
        const edge = await startEdge({
          veilUrl,
          routeKey: 'route-key',
          trunk: callee.address,
          allow: [caller.address],
        });
        try {
          const started = Date.now();
          const callId = caller.request({
            method: 'INVITE',
            from: A,
            to: '+14155550150',
            proxy: edge.address,
            body: sdp(A, caller.mediaPort),
          });
          assert.equal((await caller.finalResponse(callId, 4000)).status, 503, veilUrl);
          assert.ok(Date.now() - started < 2500, `answered after ${Date.now() - started} ms`);
        } finally {
          await edge.stop();
        }
      }
      assert.equal(callee.received.length, 0);
    } finally {
      await caller.close();
      await callee.close();
      silent.closeAllConnections();
      await new Promise<void>((done) => silent.close(() => done()));
    }
  });
});

describe('deploy/kamailio/start.sh', () => {
  it('stops with a message naming a missing variable', () => {
    const run = spawnSync(START, [], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        VEIL_URL: 'http://127.0.0.1:3000',
        SIP_LISTEN: 'udp:127.0.0.1:5060',
      },
      encoding: 'utf8',
    });
    assert.equal(run.status, 78);
    assert.match(run.stderr, /^VEIL_ROUTE_KEY: missing/);
  });

  const started = (overrides: Record<string, string>) =>
    spawnSync(START, [], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        VEIL_URL: 'http://127.0.0.1:3000',
        VEIL_ROUTE_KEY: 'k',
        SIP_LISTEN: 'udp:127.0.0.1:5060',
        SIP_TRUNK: '127.0.0.1:5070',
        RTPENGINE: 'none',
        KAMAILIO: 'false',
        ...overrides,
      },
      encoding: 'utf8',
    });

  it('refuses a SIP_LISTEN that is not udp:IP:PORT', () => {
    const run = started({ SIP_LISTEN: '127.0.0.1:5060' });
    assert.equal(run.status, 78);
    assert.match(run.stderr, /^SIP_LISTEN: /);
  });

  it('needs RTPENGINE, and says what RTPENGINE=none leaves visible', () => {
    const missing = started({ RTPENGINE: '' });
    assert.equal(missing.status, 78);
    assert.match(missing.stderr, /^RTPENGINE: missing/);
    const odd = started({ RTPENGINE: 'rtpengine.example:2223' });
    assert.equal(odd.status, 78);
    assert.match(odd.stderr, /^RTPENGINE: "rtpengine.example:2223" is neither udp:IP:PORT nor none/);
    // KAMAILIO=false stands in for kamailio: the script got as far as starting it.
    const bare = started({ RTPENGINE: 'none' });
    assert.equal(bare.status, 1);
    assert.match(bare.stderr, /^RTPENGINE=none: media is not anchored/);
  });

  it('runs SIP_WORKERS workers (default 4), from 1 to 64', () => {
    // KAMAILIO=echo prints the command line kamailio would get.
    const workers = (run: ReturnType<typeof started>) => /(?:^| )-n (\S+)/.exec(run.stdout)?.[1];
    assert.equal(workers(started({ KAMAILIO: 'echo' })), '4');
    assert.equal(workers(started({ KAMAILIO: 'echo', SIP_WORKERS: '16' })), '16');
    for (const bad of ['0', '65', 'x', '4 -A X', '']) {
      const run = started({ KAMAILIO: 'echo', SIP_WORKERS: bad });
      if (bad === '') {
        assert.equal(workers(run), '4', 'empty means the default');
        continue;
      }
      assert.equal(run.status, 78, bad);
      assert.match(run.stderr, /^SIP_WORKERS: .* from 1 to 64$/m);
    }
  });
});
