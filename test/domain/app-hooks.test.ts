import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  askedDecision,
  connectRefusal,
  hookRequest,
  interceptedDecision,
  isOutOfSession,
  readAskAnswer,
  readInterceptAnswer,
} from '../../src/domain/app-hooks.ts';
import type { PoolNumber } from '../../src/domain/pool.ts';
import { decideRoute } from '../../src/domain/routing.ts';

const call = { from: '+14155550199', to: '+14155550150', channel: 'voice' as const };
const text = { ...call, channel: 'sms' as const, body: 'hi' };

function poolNumber(number: string, fields: Partial<PoolNumber> = {}): PoolNumber {
  return {
    id: `num_${number}`,
    tenantId: 't1',
    number,
    provider: 'twilio',
    country: 'US',
    region: '415',
    capabilities: ['voice', 'sms'],
    status: 'active',
    tags: {},
    maxSessions: null,
    load: 0,
    dedicatedTo: null,
    createdAt: 0,
    updatedAt: 0,
    ...fields,
  };
}

describe('the ask webhook', () => {
  it('is consulted for what the rule refuses as out of session, and only that', () => {
    const asked = decideRoute(call, undefined, 0, { action: 'ask', url: 'https://app/hook' });
    assert.deepEqual(asked, { action: 'reject', reason: 'no_session', sessionId: null });
    assert.equal(isOutOfSession(asked), true);
    assert.equal(isOutOfSession({ action: 'reject', reason: 'not_allowed', sessionId: 's1' }), false);
    assert.equal(isOutOfSession({ action: 'reject', reason: 'intercepted', sessionId: null }), false);
  });

  it('is sent who calls which proxy, with the session only when there is one, never a text', () => {
    assert.deepEqual(hookRequest(text, null), { from: call.from, to: call.to, channel: 'sms' });
    assert.deepEqual(hookRequest(call, 's1'), { ...call, sessionId: 's1' });
  });

  it('answers connect with E.164 to and callerId, or reject; other fields are ignored', () => {
    const connect = { action: 'connect', to: '+14155550000', callerId: '+14155550151' };
    assert.deepEqual(readAskAnswer({ ...connect, note: 'support' }), { ok: true, answer: connect });
    assert.deepEqual(readAskAnswer({ action: 'reject', to: 'x' }), {
      ok: true,
      answer: { action: 'reject' },
    });
    const malformed: unknown[] = [
      null,
      'connect',
      [connect],
      {},
      { action: 'CONNECT', to: connect.to, callerId: connect.callerId },
      { action: 'allow' },
      { ...connect, to: '4155550000' },
      { ...connect, to: '+1 415 555 0000' },
      { ...connect, to: ['+14155550000'] },
      { ...connect, callerId: null },
      { ...connect, callerId: 14155550151 },
      { action: 'connect', to: connect.to },
    ];
    for (const body of malformed) {
      assert.equal(readAskAnswer(body).ok, false, JSON.stringify(body));
    }
  });

  it('makes a call connected without session, recording or limit, and a text forwarded', () => {
    const answer = { to: '+14155550000', callerId: '+14155550151' };
    assert.deepEqual(askedDecision(call, answer), {
      action: 'connect',
      to: answer.to,
      callerId: answer.callerId,
      sessionId: null,
      record: false,
      maxCallSeconds: null,
    });
    assert.deepEqual(askedDecision(text, answer), {
      action: 'forward',
      to: answer.to,
      from: answer.callerId,
      body: 'hi',
      sessionId: null,
    });
  });

  it('may show only a number of the dialled number’s pool, in service, on its carrier, able to carry the channel; and may not call into the pool', () => {
    const dialled = poolNumber('+14155550150');
    const ok = poolNumber('+14155550151');
    assert.equal(connectRefusal(dialled, dialled, undefined, 'voice'), undefined);
    assert.equal(connectRefusal(dialled, ok, undefined, 'sms'), undefined);
    assert.equal(connectRefusal(dialled, { ...ok, status: 'draining' }, undefined, 'voice'), undefined);
    const refused: [PoolNumber | undefined, PoolNumber | undefined, 'voice' | 'sms', RegExp][] = [
      [undefined, undefined, 'voice', /not a number of the dialled number's pool/],
      [{ ...ok, tenantId: 't2' }, undefined, 'voice', /not a number of the dialled number's pool/],
      [{ ...ok, status: 'retired' }, undefined, 'voice', /retired/],
      [{ ...ok, provider: 'sim' }, undefined, 'voice', /carrier/],
      [{ ...ok, capabilities: ['voice'] }, undefined, 'sms', /cannot carry sms/],
      [ok, poolNumber('+14155550152', { tenantId: 't2' }), 'voice', /to is a pool number/],
    ];
    for (const [callerId, to, channel, problem] of refused) {
      assert.match(connectRefusal(dialled, callerId, to, channel) ?? 'allowed', problem);
    }
  });
});

describe('the intercept webhook', () => {
  it('answers allow or reject; anything else is no answer', () => {
    assert.deepEqual(readInterceptAnswer({ action: 'allow' }), { ok: true, answer: { action: 'allow' } });
    assert.deepEqual(readInterceptAnswer({ action: 'reject' }), { ok: true, answer: { action: 'reject' } });
    for (const body of [null, true, 'allow', ['allow'], {}, { action: 'ALLOW' }, { action: 'connect' }]) {
      assert.equal(readInterceptAnswer(body).ok, false, JSON.stringify(body));
    }
  });

  it('turns a vetoed decision into a refusal that keeps its session', () => {
    const connect = {
      action: 'connect' as const,
      to: '+14155550187',
      callerId: '+14155550151',
      sessionId: 's1',
      record: true,
      maxCallSeconds: 60,
    };
    assert.deepEqual(interceptedDecision(connect), {
      action: 'reject',
      reason: 'intercepted',
      sessionId: 's1',
    });
  });
});
