import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BARESIP, Baresip, type BaresipEvent, baresipInstalled } from '../support/baresip.ts';
import { type RunningEdge, type RunningRtpengine, startEdge, startRtpengine } from '../support/kamailio.ts';
import { type Participant, type SipVeil, startSipVeil } from '../support/sip-veil.ts';

const A = '+14155550123';
const B = '+14155550187';
const STRANGER = '+14155550199';

const missing = [
  !baresipInstalled() && `${BARESIP} (apt-get install -y baresip)`,
  spawnSync('kamailio', ['-v'], { stdio: 'ignore' }).status !== 0 &&
    'kamailio (apt-get install -y kamailio kamailio-utils-modules kamailio-json-modules)',
].filter(Boolean);

interface Interaction {
  from: string;
  providerCallId: string | null;
  status: string;
  durationSeconds: number | null;
}

/**
 * From baresip's audio_debug: where its SDP peer says to send media (`remote:`), and the address
 * and count of RTP packets its RTCP session has from the other side.
 */
function heardFrom(debug: string): { remote?: string; from?: string; packets: number } {
  const remote = /remote: ([0-9.]+):/.exec(debug)?.[1];
  const member = /IP=([0-9.]+):[0-9]+ psent=[0-9]+ rcvd=([0-9]+)/.exec(debug);
  return { remote, from: member?.[1], packets: Number(member?.[2] ?? 0) };
}

describe('real phones (baresip) calling through the SIP edge', {
  skip: missing.length > 0 && `needs ${missing.join(' and ')}`,
}, () => {
  let dir: string;
  let veil: SipVeil;
  let rtpengine: RunningRtpengine;
  let edge: RunningEdge;
  /** A's phone, on the trunk side: its calls reach the edge as the phone network's would. */
  let caller: Baresip;
  /** B's phone, where the edge sends calls out (SIP_TRUNK). */
  let callee: Baresip;
  /** A phone whose number is in no session. */
  let stranger: Baresip;
  let a: Participant;
  let b: Participant;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'veil-baresip-sip-'));
    veil = await startSipVeil(dir, [A, B]);
    [a, b] = veil.participants as [Participant, Participant];
    caller = await Baresip.start(A);
    callee = await Baresip.start(B);
    stranger = await Baresip.start(STRANGER);
    rtpengine = await startRtpengine();
    edge = await startEdge({
      veilUrl: veil.server.url,
      routeKey: veil.routeKey,
      trunk: callee.address,
      allow: [caller.address, callee.address, stranger.address],
      rtpengine: rtpengine.control,
    });
  });
  after(async () => {
    await edge?.stop();
    await rtpengine?.stop();
    await caller?.stop();
    await callee?.stop();
    await stranger?.stop();
    await veil?.server.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const logs = () => `--- kamailio\n${edge.log()}\n--- rtpengine\n${rtpengine.log()}`;
  const of = (type: string, id?: string) => (e: BaresipEvent) =>
    e.type === type && (id === undefined || e.id === id);

  it('A dials the proxy: B is rung from the proxy number, answers, media flows through rtpengine, and the hang-up ends the call on both phones and in Veil', async () => {
    await caller.command('dial', `sip:${a.proxyNumber}@${edge.address}`);
    const rung = await callee.waitForEvent(of('CALL_INCOMING'), undefined, logs);
    // B's phone rings at B's real number (baresip answers 404 to a Request-URI naming anyone else),
    // showing the proxy number that reaches A, never A's number.
    assert.match(rung.accountaor, new RegExp(`^sip:\\${B}@`));
    assert.match(rung.peeruri ?? '', new RegExp(`^sip:\\${b.proxyNumber}@`));
    assert.equal(JSON.stringify(rung).includes(A.slice(1)), false, JSON.stringify(rung));

    await callee.command('accept');
    const answered = await callee.waitForEvent(of('CALL_ESTABLISHED', rung.id), undefined, logs);
    const connected = await caller.waitForEvent(of('CALL_ESTABLISHED'), undefined, logs);
    // Nor does A learn B's real number; and the Call-ID B sees is not A's (topoh).
    assert.equal(JSON.stringify(connected).includes(B.slice(1)), false, JSON.stringify(connected));
    assert.notEqual(answered.id, connected.id);
    const callId = connected.id ?? '';

    // Each phone hears the other: RTP arrives on both, relayed by rtpengine for this call.
    await caller.waitForEvent(of('CALL_RTPESTAB', callId), undefined, logs);
    await callee.waitForEvent(of('CALL_RTPESTAB', rung.id), undefined, logs);
    assert.ok((await rtpengine.calls()).includes(callId), `rtpengine does not carry ${callId}`);
    // A second on the line, so that the duration Kamailio reports is at least 1.
    await sleep(1100);
    for (const phone of [caller, callee]) {
      const heard = heardFrom(await phone.command('audio_debug'));
      assert.equal(heard.remote, rtpengine.mediaAddress, `${phone.number} sends its media elsewhere`);
      assert.equal(heard.from, rtpengine.mediaAddress, `${phone.number} hears someone else`);
      assert.ok(heard.packets >= 10, `${phone.number} received ${heard.packets} packets in a second`);
    }
    await caller.command('hangup');
    await caller.waitForEvent(of('CALL_CLOSED', callId), undefined, logs);
    const hungUp = await callee.waitForEvent(of('CALL_CLOSED', rung.id), undefined, logs);
    // baresip's words for a BYE received.
    assert.match(hungUp.param ?? '', /reset by peer/);

    // Kamailio reports the call's end after the BYE: Veil's log has it completed, with its length.
    let ended: Interaction | undefined;
    for (let i = 0; i < 100 && !ended; i++) {
      const { data } = await veil.api('GET', `/v1/sessions/${veil.sessionId}/interactions`);
      ended = (data as Interaction[]).find((x) => x.providerCallId === callId && x.status === 'completed');
      if (!ended) await sleep(100);
    }
    assert.ok(ended, `no completed interaction for ${callId}:\n${logs()}`);
    assert.equal(ended.from, A);
    assert.ok(
      ended.durationSeconds !== null && ended.durationSeconds >= 1 && ended.durationSeconds <= 5,
      `lasted ${ended.durationSeconds}`,
    );
  });

  it('a stranger dialling the proxy is refused with 403, and B is never rung', async () => {
    const rungBefore = callee.events.filter(of('CALL_INCOMING')).length;
    await stranger.command('dial', `sip:${a.proxyNumber}@${edge.address}`);
    const refused = await stranger.waitForEvent(of('CALL_CLOSED'), undefined, logs);
    assert.match(refused.param ?? '', /^403\b/);
    await sleep(300);
    assert.equal(callee.events.filter(of('CALL_INCOMING')).length, rungBefore);
    const { data } = await veil.api('GET', '/v1/interactions');
    assert.ok(
      (data as Interaction[]).some((x) => x.from === STRANGER && x.status === 'refused'),
      JSON.stringify(data),
    );
  });
});
