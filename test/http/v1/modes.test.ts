import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import type { InjectOptions } from 'fastify';
import twilio from 'twilio';
import { DEFAULT_REJECT_MESSAGE } from '../../../src/domain/routing.ts';
import {
  interactionRows,
  PUBLIC_URL,
  type TestApp,
  TWILIO_SID,
  TWILIO_TOKEN,
  testApp,
} from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

/** What a refused caller hears when nothing else is configured. */
const REFUSED = { text: DEFAULT_REJECT_MESSAGE };

/**
 * The modes and policies beyond per-participant and shared (DESIGN §1): dedicated numbers,
 * extension fallback, per-number caps, stickiness and a proxy asked for, through the API and the
 * routing it leads to (POST /v1/route, and Twilio's signed webhooks).
 */
const OWNER = '+14155550100';
const CALLER = '+14155550111';
const OTHER_CALLER = '+14155550112';
const A = '+14155550121';
const B = '+14155550122';
const C = '+14155550123';
const D = '+14155550124';
const STRANGER = '+14155550199';

interface Participant {
  id: string;
  number: string;
  proxyNumber: string;
  extension?: string;
}

describeStores('session modes and policies', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store(), { VEIL_CALLBACK_WINDOW_SECONDS: '600' });
  });
  afterEach(async () => {
    await t.close();
  });

  async function pool(numbers: string[], extra: Record<string, unknown> = {}): Promise<void> {
    for (const number of numbers) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'twilio', ...extra });
      assert.equal(r.statusCode, 201, r.body);
    }
  }
  const open = (body: Record<string, unknown>) => t.api('POST', '/v1/sessions', body);
  async function opened(body: Record<string, unknown>): Promise<{ id: string; participants: Participant[] }> {
    const r = await open(body);
    assert.equal(r.statusCode, 201, r.body);
    return r.json();
  }
  const people = (...numbers: string[]) => numbers.map((number) => ({ number }));
  const route = async (from: string, to: string, extra: Record<string, unknown> = {}) => {
    const r = await t.api('POST', '/v1/route', { from, to, channel: 'voice', ...extra });
    assert.equal(r.statusCode, 200, r.body);
    return r.json();
  };
  const loads = async () => {
    const list = (await t.api('GET', '/v1/numbers?limit=100')).json().data as {
      number: string;
      load: number;
    }[];
    return Object.fromEntries(list.map((n) => [n.number, n.load]));
  };

  let callSeq = 0;
  /** A Twilio voice webhook, signed with the real package over VEIL_PUBLIC_URL, path and params. */
  function twilioVoice(
    from: string,
    to: string,
    path = '/webhooks/twilio/voice',
    extra: Record<string, string> = {},
  ) {
    const params = {
      AccountSid: TWILIO_SID,
      CallSid: `CA${String(++callSeq).padStart(32, '0')}`,
      From: from,
      To: to,
      ...extra,
    };
    const options: InjectOptions = {
      method: 'POST',
      url: path,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': twilio.getExpectedTwilioSignature(TWILIO_TOKEN, PUBLIC_URL + path, params),
      },
      payload: new URLSearchParams(params).toString(),
    };
    return t.app.inject(options);
  }

  it('dedicated: the owner alone gets a number no other open session holds or may get', async () => {
    await pool(['+14155550200', '+14155550201']);
    const busy = await opened({ participants: people(A, B) });
    const taken = new Set(busy.participants.map((p) => p.proxyNumber));
    assert.equal(taken.size, 2);
    // Both numbers carry a session: neither can be dedicated.
    const refused = await open({ mode: 'dedicated', participants: people(OWNER) });
    assert.equal(refused.statusCode, 503, refused.body);
    assert.equal(refused.json().error.code, 'pool_exhausted');
    await pool(['+14155550202']);
    const d = await opened({ mode: 'dedicated', participants: people(OWNER) });
    const [owner] = d.participants as [Participant];
    assert.equal(owner.proxyNumber, '+14155550202');
    const numbers = (await t.api('GET', '/v1/numbers?limit=100')).json().data;
    assert.equal(numbers.find((n: { number: string }) => n.number === owner.proxyNumber).dedicatedTo, d.id);
    // No other session gets it while it is open, even for people who hold nothing.
    const next = await open({ participants: people(C, D) });
    assert.equal(next.statusCode, 201, next.body);
    assert.ok(next.json().participants.every((p: Participant) => p.proxyNumber !== owner.proxyNumber));
    const asked = await open({
      participants: [{ number: STRANGER, proxyNumber: owner.proxyNumber }, { number: CALLER }],
    });
    assert.equal(asked.statusCode, 409, asked.body);
    assert.match(asked.json().error.message, /dedicated to another open session/);
    // A second participant never joins it.
    const added = await t.api('POST', `/v1/sessions/${d.id}/participants`, { number: CALLER });
    assert.equal(added.statusCode, 409, added.body);
    // Closed, the number is an ordinary one again.
    await t.api('DELETE', `/v1/sessions/${d.id}`);
    await t.api('DELETE', `/v1/sessions/${next.json().id}`);
    const after = (await t.api('GET', '/v1/numbers?limit=100')).json().data;
    assert.equal(after.find((n: { number: string }) => n.number === owner.proxyNumber).dedicatedTo, null);
    assert.equal((await loads())[owner.proxyNumber], 0);
  });

  it('dedicated: anyone reaches the owner; the owner calls back the most recent caller in the window', async () => {
    await pool(['+14155550200']);
    const d = await opened({ mode: 'dedicated', participants: people(OWNER) });
    const x = (d.participants[0] as Participant).proxyNumber;
    // An owner nobody has called is refused.
    assert.deepEqual(await route(OWNER, x), {
      action: 'reject',
      reason: 'no_counterpart',
      message: REFUSED,
      sessionId: d.id,
    });
    for (const caller of [CALLER, OTHER_CALLER]) {
      const r = await route(caller, x);
      assert.deepEqual([r.action, r.to, r.callerId, r.sessionId], ['connect', OWNER, x, d.id]);
      t.clock.advance(10);
    }
    const back = await route(OWNER, x);
    assert.deepEqual([back.action, back.to, back.callerId], ['connect', OTHER_CALLER, x]);
    // The owner's own calls are not callers: still the last stranger.
    assert.equal((await route(OWNER, x)).to, OTHER_CALLER);
    // Texts reach the owner the same way.
    const text = (
      await t.api('POST', '/v1/route', { from: CALLER, to: x, channel: 'sms', body: 'here' })
    ).json();
    assert.deepEqual([text.action, text.to, text.from], ['forward', OWNER, x]);
    // Past the window, nobody to call back.
    t.clock.advance(601);
    assert.equal((await route(OWNER, x)).reason, 'no_counterpart');
    // Through Twilio: <Dial callerId=X><Number>owner</Number></Dial>.
    const tw = await twilioVoice(STRANGER, x);
    assert.equal(tw.statusCode, 200);
    assert.match(tw.body, new RegExp(`<Dial callerId="\\${x}"><Number>\\${OWNER}</Number></Dial>`));
    assert.equal((await route(OWNER, x)).to, STRANGER);
    // Closed, the number refuses everyone.
    await t.api('DELETE', `/v1/sessions/${d.id}`);
    assert.equal((await route(STRANGER, x)).reason, 'no_session');
    assert.equal((await route(OWNER, x)).reason, 'no_session');
  });

  it('per-number cap: a full pool is 503 and writes nothing; closing one makes room', async () => {
    await pool(['+14155550200', '+14155550201'], { maxSessions: 1 });
    const first = await opened({ participants: people(A, B) });
    const before = await loads();
    const full = await open({ participants: people(C, D) });
    assert.equal(full.statusCode, 503, full.body);
    assert.equal(full.json().error.code, 'pool_exhausted');
    assert.deepEqual(await loads(), before);
    const sessions = (await t.api('GET', '/v1/sessions')).json().data;
    assert.equal(sessions.length, 1);
    await t.api('DELETE', `/v1/sessions/${first.id}`);
    await opened({ participants: people(C, D) });
    // A raised cap makes room at once.
    const id = (await t.api('GET', '/v1/numbers')).json().data[0].id;
    await t.api('PATCH', `/v1/numbers/${id}`, { maxSessions: 2 });
    const third = await open({ participants: people(A, STRANGER) });
    assert.equal(third.statusCode, 503, 'one number with room cannot serve two people who need two');
  });

  it('extension fallback: a full pool shares a number, and the code leads to its own session only', async () => {
    await pool(['+14155550200', '+14155550201'], { maxSessions: 1 });
    const first = await opened({ participants: people(A, B) });
    // Without the fallback, the same request is refused and writes nothing.
    const before = await loads();
    const refused = await open({ participants: people(C, D) });
    assert.equal(refused.statusCode, 503);
    assert.deepEqual(await loads(), before);
    const shared = await opened({ participants: people(C, D), extensionFallback: true });
    const [c, d] = shared.participants as [Participant, Participant];
    assert.match(c.extension ?? '', /^\d{4}$/);
    assert.match(d.extension ?? '', /^\d{4}$/);
    assert.notEqual(c.extension, d.extension);
    // The first session's direct participants are not asked for anything.
    const [a] = first.participants as [Participant];
    assert.equal((await route(A, a.proxyNumber)).to, B);
    // C dials their number: asked for the code; keyed, put through to D showing D's number.
    assert.deepEqual(await route(C, c.proxyNumber), {
      action: 'gather',
      numDigits: 4,
      prompt: 'Please enter the extension you were given.',
      message: { text: 'Please enter the extension you were given.' },
      sessionId: null,
    });
    const through = await route(C, c.proxyNumber, { digits: c.extension });
    assert.deepEqual(
      [through.action, through.to, through.callerId, through.sessionId],
      ['connect', D, d.proxyNumber, shared.id],
    );
    // A wrong code, another participant's code and a stranger with a valid code: refused alike.
    for (const [from, digits] of [
      [C, '0000'],
      [C, d.extension],
      [STRANGER, c.extension],
    ] as const) {
      const r = await route(from, c.proxyNumber, { digits });
      assert.deepEqual(
        r,
        { action: 'reject', reason: 'wrong_extension', message: REFUSED, sessionId: null },
        `${from} ${digits}`,
      );
    }
    // A text cannot key a code: without a direct participation it is in no session, code or not.
    for (const digits of [{}, { digits: c.extension }]) {
      const text = await t.api('POST', '/v1/route', {
        from: C,
        to: c.proxyNumber,
        channel: 'sms',
        body: 'hi',
        ...digits,
      });
      assert.deepEqual(text.json(), { action: 'reject', reason: 'no_session', sessionId: null });
    }
    // Closed, the codes lead nowhere and the number asks nobody.
    await t.api('DELETE', `/v1/sessions/${shared.id}`);
    assert.equal((await route(C, c.proxyNumber, { digits: c.extension })).action, 'reject');
    assert.equal((await route(C, c.proxyNumber)).reason, 'no_session');
  });

  it('extension fallback on Twilio: a signed Gather, the digits put through, wrong ones end the call', async () => {
    await pool(['+14155550200'], { maxSessions: 1 });
    await opened({ participants: people(A, B), mode: 'shared' });
    const s = await opened({ participants: people(C, D), mode: 'shared', extensionFallback: true });
    const [c] = s.participants as [Participant];
    const x = c.proxyNumber;
    const asked = await twilioVoice(C, x);
    const action = `${PUBLIC_URL}/webhooks/twilio/voice?attempt=1`;
    assert.equal(
      asked.body,
      `<?xml version="1.0" encoding="UTF-8"?><Response><Gather input="dtmf" numDigits="4" action="${action}" method="POST"><Say>Please enter the extension you were given.</Say></Gather><Say>The number you have dialled is not available.</Say><Hangup/></Response>`,
    );
    const keyed = await twilioVoice(C, x, '/webhooks/twilio/voice?attempt=1', { Digits: c.extension ?? '' });
    assert.match(keyed.body, new RegExp(`<Dial callerId="\\${x}"><Number>\\${D}</Number></Dial>`));
    // Wrong digits are never dialled: asked again, then the call ends.
    const wrong1 = await twilioVoice(C, x, '/webhooks/twilio/voice?attempt=1', { Digits: '0000' });
    assert.match(wrong1.body, /attempt=2.*That extension is not valid\./);
    assert.doesNotMatch(wrong1.body, /<Dial/);
    const wrong3 = await twilioVoice(C, x, '/webhooks/twilio/voice?attempt=3', { Digits: '0000' });
    assert.match(wrong3.body, /<Say>The number you have dialled is not available\.<\/Say><Hangup\/>/);
    assert.doesNotMatch(wrong3.body, /<Gather|<Dial/);
    // The attempt is signed: a caller cannot reset it by forging the URL.
    const params = { AccountSid: TWILIO_SID, CallSid: 'CAforged', From: C, To: x, Digits: '1234' };
    const forged = await t.app.inject({
      method: 'POST',
      url: '/webhooks/twilio/voice?attempt=1',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': twilio.getExpectedTwilioSignature(
          TWILIO_TOKEN,
          `${PUBLIC_URL}/webhooks/twilio/voice?attempt=3`,
          params,
        ),
      },
      payload: new URLSearchParams(params).toString(),
    });
    assert.equal(forged.statusCode, 403);
    const logged = (await interactionRows(t)).map((r) => r.action);
    assert.ok(logged.includes('gather'));
  });

  it('sticky prefer gives the same two people their former proxies, even over less loaded numbers', async () => {
    await pool(['+14155550200', '+14155550201', '+14155550202', '+14155550203']);
    const first = await opened({ participants: people(A, B) });
    const former = Object.fromEntries(first.participants.map((p) => [p.number, p.proxyNumber]));
    await t.api('DELETE', `/v1/sessions/${first.id}`);
    // Load the former proxies so that others are less loaded.
    await opened({
      participants: [
        { number: C, proxyNumber: former[A] },
        { number: D, proxyNumber: former[B] },
      ],
    });
    const again = await opened({ participants: people(A, B), sticky: 'prefer' });
    assert.deepEqual(Object.fromEntries(again.participants.map((p) => [p.number, p.proxyNumber])), former);
    await t.api('DELETE', `/v1/sessions/${again.id}`);
    // Without stickiness, the cooldown keeps them away from their former numbers.
    const plain = await opened({ participants: people(A, B) });
    for (const p of plain.participants) assert.notEqual(p.proxyNumber, former[p.number]);
  });

  it('sticky avoid never gives the former proxies while another number fits', async () => {
    await pool(['+14155550200', '+14155550201', '+14155550202', '+14155550203']);
    const first = await opened({ participants: people(A, B) });
    const formerNumbers = new Set(first.participants.map((p) => p.proxyNumber));
    await t.api('DELETE', `/v1/sessions/${first.id}`);
    t.clock.advance(7200); // past the cooldown, which would otherwise avoid them anyway
    const again = await opened({ participants: people(A, B), sticky: 'avoid' });
    for (const p of again.participants) assert.ok(!formerNumbers.has(p.proxyNumber), p.proxyNumber);
    await t.api('DELETE', `/v1/sessions/${again.id}`);
    t.clock.advance(7200);
    // With no other number left that fits, a former one is still better than none.
    const others = again.participants.map((p) => p.proxyNumber);
    await opened({
      participants: [
        { number: C, proxyNumber: others[0] },
        { number: D, proxyNumber: others[1] },
      ],
    });
    await t.api('PATCH', `/v1/numbers/${await numberId(others[0] as string)}`, { maxSessions: 1 });
    await t.api('PATCH', `/v1/numbers/${await numberId(others[1] as string)}`, { maxSessions: 1 });
    const last = await opened({ participants: people(A, B), sticky: 'avoid' });
    for (const p of last.participants) assert.ok(formerNumbers.has(p.proxyNumber));
  });

  async function numberId(number: string): Promise<string> {
    const list = (await t.api('GET', '/v1/numbers?limit=100')).json().data as {
      id: string;
      number: string;
    }[];
    return (list.find((n) => n.number === number) as { id: string }).id;
  }

  it('a participant may ask for a pool number: given when the invariant allows, else 409 or 400 saying why', async () => {
    await pool(['+14155550200', '+14155550201', '+14155550202']);
    await pool(['+442071838750']);
    const s = await opened({ participants: [{ number: A, proxyNumber: '+14155550202' }, { number: B }] });
    assert.equal((s.participants[0] as Participant).proxyNumber, '+14155550202');
    // Others holding it do not matter.
    const other = await opened({ participants: [{ number: C, proxyNumber: '+14155550202' }, { number: D }] });
    assert.equal((other.participants[0] as Participant).proxyNumber, '+14155550202');
    const cases: [Record<string, unknown>, number, RegExp, string?][] = [
      [{ number: A, proxyNumber: '+14155550202' }, 409, /already holds/],
      [
        { number: STRANGER, proxyNumber: '+14155550299' },
        400,
        /not a number of the pool/,
        'participants/0/proxyNumber',
      ],
      [{ number: STRANGER, proxyNumber: '+442071838750' }, 400, /not local/, 'participants/0/proxyNumber'],
      [{ number: STRANGER, proxyNumber: 'x' }, 400, /./, 'participants/0/proxyNumber'],
    ];
    for (const [participant, status, message, field] of cases) {
      const before = await loads();
      const r = await open({ participants: [participant, { number: OTHER_CALLER }] });
      assert.equal(r.statusCode, status, r.body);
      assert.match(r.json().error.message, message);
      if (field) assert.equal(r.json().error.field, field);
      assert.deepEqual(await loads(), before, 'a refused request took a number');
    }
    // Taken out of the pool: a number still carrying sessions drains (409), an idle one retires (400).
    for (const number of ['+14155550200', '+14155550201']) {
      const id = await numberId(number);
      await t.api('DELETE', `/v1/numbers/${id}`);
      const { status } = (await t.api('GET', `/v1/numbers/${id}`)).json();
      const r = await open({ participants: [{ number: STRANGER, proxyNumber: number }, { number: CALLER }] });
      assert.equal(r.statusCode, status === 'draining' ? 409 : 400, `${status}: ${r.body}`);
    }
  });
});
