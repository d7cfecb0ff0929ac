import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideRoute, type Participation } from '../../src/domain/routing.ts';

const NOW = 1_000_000;
const participation: Participation = {
  participantId: 'p1',
  sessionId: 's1',
  tenantId: 't',
  mode: 'per-participant',
  expiresAt: NOW + 1,
  record: true,
  channels: ['voice', 'sms'],
  maxCallSeconds: 600,
  canInitiate: true,
  revealNumber: false,
  number: '+14155550123',
  callerBlocked: false,
  other: { participantId: 'p2', number: '+14155550187', proxyNumber: '+14155550151' },
  otherBlocked: false,
};
const call = { from: '+14155550123', to: '+14155550150', channel: 'voice' as const };
const reject = { action: 'reject' as const };

describe('decideRoute', () => {
  it('connects to the other participant, showing the proxy they know', () => {
    assert.deepEqual(decideRoute(call, participation, NOW, reject), {
      action: 'connect',
      to: '+14155550187',
      callerId: '+14155550151',
      sessionId: 's1',
      record: true,
      maxCallSeconds: 600,
    });
  });

  it('refuses without a participation, or once it has expired, unless a fallback is configured', () => {
    const refused = { action: 'reject', reason: 'no_session', sessionId: null };
    assert.deepEqual(decideRoute(call, undefined, NOW, reject), refused);
    assert.deepEqual(decideRoute(call, { ...participation, expiresAt: NOW }, NOW, reject), refused);
    const forwarded = decideRoute(call, undefined, NOW, { action: 'forward', to: '+14155550000' });
    assert.deepEqual(forwarded, {
      action: 'connect',
      to: '+14155550000',
      callerId: '+14155550150',
      sessionId: null,
      record: false,
      maxCallSeconds: null,
    });
  });

  it('refuses a channel the session does not relay, a participant who may not initiate, and a lone participant', () => {
    const sms = { ...call, channel: 'sms' as const, body: 'hi' };
    assert.equal(decideRoute(sms, { ...participation, channels: ['voice'] }, NOW, reject).action, 'reject');
    const cases: [Participation, string][] = [
      [{ ...participation, canInitiate: false }, 'not_allowed'],
      [{ ...participation, other: null }, 'no_counterpart'],
    ];
    for (const [p, reason] of cases) {
      assert.deepEqual(decideRoute(call, p, NOW, reject), { action: 'reject', reason, sessionId: 's1' });
    }
  });

  it('forwards texts, and shows the real number of a participant who reveals it', () => {
    const sms = { ...call, channel: 'sms' as const, body: 'hi' };
    assert.deepEqual(decideRoute(sms, { ...participation, revealNumber: true }, NOW, reject), {
      action: 'forward',
      to: '+14155550187',
      from: '+14155550123',
      body: 'hi',
      sessionId: 's1',
    });
  });

  describe('the blocklist', () => {
    const sms = { ...call, channel: 'sms' as const, body: 'hi' };
    const forward = { action: 'forward' as const, to: '+14155550000' };

    it('refuses a blocked caller and a call to a blocked participant, before any other reason', () => {
      for (const blocked of [{ callerBlocked: true }, { otherBlocked: true }]) {
        for (const p of [
          { ...participation, ...blocked },
          { ...participation, ...blocked, canInitiate: false, channels: ['sms' as const] },
        ]) {
          for (const request of [call, sms]) {
            assert.deepEqual(decideRoute(request, p, NOW, reject), {
              action: 'reject',
              reason: 'blocked',
              sessionId: 's1',
            });
          }
        }
      }
    });

    it('never forwards a blocked stranger out of session, but forwards one who is not blocked', () => {
      const refused = { action: 'reject', reason: 'blocked', sessionId: null };
      assert.deepEqual(decideRoute(call, undefined, NOW, forward, true), refused);
      assert.deepEqual(decideRoute(sms, undefined, NOW, forward, true), refused);
      assert.equal(decideRoute(call, undefined, NOW, forward, false).action, 'connect');
      assert.equal(decideRoute(sms, undefined, NOW, forward).action, 'forward');
    });

    it('judges the caller of an ended session by their own number, not the other participant’s', () => {
      const ended = { ...participation, expiresAt: NOW };
      const refused = { action: 'reject', reason: 'blocked', sessionId: null };
      assert.deepEqual(decideRoute(call, { ...ended, callerBlocked: true }, NOW, forward), refused);
      const other = decideRoute(call, { ...ended, otherBlocked: true }, NOW, forward);
      assert.deepEqual([other.action, 'to' in other && other.to], ['connect', '+14155550000']);
    });

    it('refuses a stranger as no_session when out-of-session calls are refused, blocked or not', () => {
      const refused = { action: 'reject', reason: 'no_session', sessionId: null };
      assert.deepEqual(decideRoute(call, undefined, NOW, reject, true), refused);
      assert.deepEqual(
        decideRoute(call, { ...participation, expiresAt: NOW, callerBlocked: true }, NOW, reject),
        refused,
      );
    });
  });
});
