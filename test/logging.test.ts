import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import twilio from 'twilio';
import { maskNumber, maskNumbersInText, parsePhone } from '../src/domain/phone.ts';
import { createLogger } from '../src/logger.ts';
import { signSimRequest } from '../src/providers/sim/sim-adapter.ts';
import { ADMIN_KEY, PUBLIC_URL, SIM_SECRET, type TestApp, TWILIO_TOKEN, testApp } from './support/app.ts';
import { describeStores } from './support/stores.ts';

/** Every way a real number could show in clear: E.164, without '+', national. */
function clearForms(e164: string): string[] {
  return [e164, e164.slice(1), e164.slice(2)];
}

function assertNoClearNumber(text: string, numbers: readonly string[]): void {
  for (const number of numbers)
    for (const form of clearForms(number))
      assert.ok(!text.includes(form), `${form} appears in clear in: ${text}`);
}

describe('maskNumbersInText', () => {
  it('masks E.164 numbers as +1415*****02', () => {
    assert.equal(maskNumber('+14155550102'), '+1415*****02');
    assert.equal(maskNumbersInText('call from +14155550102 ended'), 'call from +1415*****02 ended');
    assert.equal(maskNumbersInText('+442079460101'), '+4420******01');
  });

  it('masks numbers written without the +', () => {
    assert.equal(maskNumbersInText('from 14155550102 to 442079460101'), 'from 1415*****02 to 4420******01');
  });

  it('masks URL-encoded numbers (%2B)', () => {
    const form = 'From=%2B14155550102&To=%2B14155550200&Body=hi';
    assert.equal(maskNumbersInText(form), 'From=%2B1415*****02&To=%2B1415*****00&Body=hi');
  });

  it('masks URL-encoded numbers written with a lower-case %2b', () => {
    // Lower-case percent-encoding is just as valid (RFC 3986 §2.1) and just as much a number.
    assertNoClearNumber(maskNumbersInText('From=%2b14155550102&To=%2b14155550200'), [
      '+14155550102',
      '+14155550200',
    ]);
  });

  it('masks numbers inside JSON, whatever the field', () => {
    const line = JSON.stringify({
      level: 30,
      msg: 'routed +14155550102',
      from: '+14155550102',
      to: '14155550103',
      nested: { numbers: ['+442079460101'] },
      err: { message: 'Key (number)=(+14155550104) already exists.' },
    });
    const masked = maskNumbersInText(line);
    assertNoClearNumber(masked, ['+14155550102', '+14155550103', '+442079460101', '+14155550104']);
    // Still JSON, with the masks where the numbers were.
    const parsed = JSON.parse(masked);
    assert.equal(parsed.from, '+1415*****02');
    assert.equal(parsed.to, '1415*****03');
    assert.deepEqual(parsed.nested.numbers, ['+4420******01']);
  });

  it('masks every number the API accepts, however short', () => {
    // parsePhone accepts an 8-digit Falkland Islands number; it must not then be logged in clear.
    for (const number of ['+50031234', '+4721234567', '+4212345678']) {
      assert.equal(parsePhone(number, 'number').e164, number);
      assertNoClearNumber(maskNumbersInText(`from ${number} ok`), [number]);
    }
  });

  it('leaves timestamps, ids, uuids and short numbers alone', () => {
    for (const text of [
      '2026-01-01T00:00:00.000Z',
      '2026-01-01T12:34:56+01:00',
      'ses_019b76daa8000003cea07a297f58',
      'int_01234567890123456789',
      '123e4567-e89b-12d3-a456-426614174000',
      'port 3000, took 12345 ms, dropped 123456789',
      '{"level":30,"pid":12345,"reqId":"req-1","statusCode":403}',
    ]) {
      assert.equal(maskNumbersInText(text), text);
    }
  });
});

describe('createLogger', () => {
  it('masks numbers and removes the Authorization header before a line is written', () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (line: string) => lines.push(line) });
    logger.info(
      { from: '+14155550102', req: { headers: { authorization: `Bearer ${ADMIN_KEY}` } } },
      'call from 14155550103',
    );
    logger.child({ reqId: 'r1' }).warn({ headers: { authorization: `Bearer ${ADMIN_KEY}` } }, 'refused');
    assert.equal(lines.length, 2);
    const text = lines.join('');
    assertNoClearNumber(text, ['+14155550102', '+14155550103']);
    assert.ok(text.includes('+1415*****02'));
    assert.ok(!text.includes(ADMIN_KEY), text);
  });
});

describe('createLogger with pretty', () => {
  it('lays lines out for a person, numbers still masked', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger('info', sink, { pretty: true });
    logger.info({ from: '+14155550102' }, 'call from 14155550103');
    const text = lines.join('');
    assert.ok(text.includes('call from 1415*****03'), text);
    assert.ok(!text.trimStart().startsWith('{'), `not JSON: ${text}`);
    assertNoClearNumber(text, ['+14155550102', '+14155550103']);
  });
});

describeStores('one line per request', (store) => {
  const A = '+14155550161';
  let t: TestApp;
  before(async () => {
    t = await testApp(store(), { LOG_LEVEL: 'info' });
    await t.api('POST', '/v1/numbers', { number: '+14155550560', provider: 'sim' });
  });
  after(async () => {
    await t?.close();
  });
  const lines = () => t.logs.map((l) => JSON.parse(l) as Record<string, unknown>);

  it('at info: method, route pattern, status, time and key for the API; routing requests only at debug', async () => {
    const before = t.logs.length;
    await t.api('DELETE', `/v1/blocklist/${encodeURIComponent(A)}`);
    await t.api('POST', '/v1/route', { from: A, to: '+14155550560', channel: 'voice' });
    await t.api('GET', '/v1/nowhere');
    const logged = lines().slice(before);
    assert.deepEqual(
      logged.map((l) => [l.msg, l.method, l.route, l.status]),
      [
        ['request', 'DELETE', '/v1/blocklist/:number', 404],
        ['request', 'GET', 'unmatched', 404],
      ],
    );
    assert.equal(typeof logged[0]?.ms, 'number');
    assert.match(String(logged[0]?.key), /^key_/);
    assertNoClearNumber(t.logs.join('\n'), [A]);
  });

  it('at debug: a routing request adds the carrier, the action and the reason, and no number', async () => {
    await t.close();
    t = await testApp(store(), { LOG_LEVEL: 'debug' });
    const before = t.logs.length;
    await t.api('POST', '/v1/route', { from: A, to: '+14155550560', channel: 'voice' });
    const routed = lines()
      .slice(before)
      .filter((l) => l.msg === 'routed');
    assert.deepEqual(
      routed.map((l) => [l.route, l.status, l.provider, l.channel, l.action, l.reason]),
      [['/v1/route', 200, 'api', 'voice', 'reject', 'no_session']],
    );
    assertNoClearNumber(t.logs.join('\n'), [A]);
  });
});

describeStores('what the server logs', (store) => {
  const PROXIES = ['+14155550500', '+14155550501'];
  const A = '+14155550141';
  const B = '+14155550142';
  const C = '+14155550143';
  const D = '+14155550144';
  const STRANGER = '+14155550145';
  const REAL_NUMBERS = [A, B, C, D, STRANGER];

  let t: TestApp;
  let proxyOfA: string;
  let readKey: string;

  before(async () => {
    // The most talkative level: whatever any layer logs, it must still be masked.
    t = await testApp(store(), { LOG_LEVEL: 'trace' });
    t.clock.now = Date.now();
    for (const [number, provider] of [
      [PROXIES[0], 'twilio'],
      [PROXIES[1], 'twilio'],
      ['+14155550502', 'sim'],
      ['+14155550503', 'sim'],
    ]) {
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider })).statusCode, 201);
    }
    const s = await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] });
    assert.equal(s.statusCode, 201, s.body);
    proxyOfA = s.json().participants[0].proxyNumber;
    const k = await t.api('POST', '/v1/keys', { name: 'reader', scopes: ['read'] });
    readKey = k.json().key;
  });
  after(async () => {
    await t?.close();
  });

  const twilioVoice = (params: Record<string, string>, signature: string) =>
    t.app.inject({
      method: 'POST',
      url: '/webhooks/twilio/voice',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': signature,
        authorization: `Bearer ${ADMIN_KEY}`,
      },
      payload: new URLSearchParams(params).toString(),
    });

  /** Makes `table`'s inserts fail with a driver error that quotes the real number, as some do. */
  async function refuseInserts(table: string, column: string): Promise<() => Promise<void>> {
    const name = `veil_test_refuse_${table}`;
    if (store().name === 'sqlite') {
      await sql
        .raw(
          `create trigger ${name} before insert on ${table} begin select raise(abort, 'refused ' || new.${column}); end`,
        )
        .execute(t.veil.store.db);
      return async () => void (await sql.raw(`drop trigger ${name}`).execute(t.veil.store.db));
    }
    await sql
      .raw(
        `create or replace function ${name}() returns trigger language plpgsql as $$ begin raise exception 'refused %', new.${column}; end $$`,
      )
      .execute(t.veil.store.db);
    await sql
      .raw(`create trigger ${name} before insert on ${table} for each row execute function ${name}()`)
      .execute(t.veil.store.db);
    return async () => void (await sql.raw(`drop trigger ${name} on ${table}`).execute(t.veil.store.db));
  }

  it('a forged webhook is logged as a warning without the numbers it carried', async () => {
    const params = { CallSid: `CA${'1'.repeat(32)}`, From: A, To: proxyOfA };
    const forged = twilio.getExpectedTwilioSignature('not-the-token-0000000000000000', PUBLIC_URL, params);
    assert.equal((await twilioVoice(params, forged)).statusCode, 403);
    const simBody = JSON.stringify({ from: B, to: proxyOfA });
    const sim = await t.app.inject({
      method: 'POST',
      url: '/webhooks/sim/voice',
      headers: { 'content-type': 'application/json', ...signSimRequest('wrong-secret', simBody) },
      payload: simBody,
    });
    assert.equal(sim.statusCode, 403);
    // Percent-encoding may come in lower case too.
    const lowerCase = await t.app.inject({
      method: 'POST',
      url: '/webhooks/twilio/voice',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': forged },
      payload: `CallSid=CA1&From=%2b${A.slice(1)}&To=%2b${proxyOfA.slice(1)}`,
    });
    assert.equal(lowerCase.statusCode, 403);
    const warnings = t.logs.filter((l) => JSON.parse(l).level === 40);
    assert.ok(warnings.length >= 2, t.logs.join(''));
    assert.ok(warnings.some((l) => l.includes('twilio')) && warnings.some((l) => l.includes('sim')));
    // And the signed one still routes (the forged one was refused for its signature alone).
    const signed = twilio.getExpectedTwilioSignature(
      TWILIO_TOKEN,
      `${PUBLIC_URL}/webhooks/twilio/voice`,
      params,
    );
    assert.match((await twilioVoice(params, signed)).body, /<Dial/);
  });

  it('an error response for a bad number never echoes the number', async () => {
    const cases: [string, unknown][] = [
      ['/v1/sessions', { participants: [{ number: '+1415555' }, { number: B }] }],
      ['/v1/sessions', { participants: [{ number: '12345678901234' }, { number: B }] }],
      ['/v1/sessions', { participants: [{ number: '4155550146' }, { number: B }] }],
      ['/v1/sessions', { participants: [{ number: '4155550' }, { number: B }] }],
      ['/v1/sessions', { participants: [{ number: '+999999999999999' }, { number: B }] }],
      ['/v1/sessions', { participants: [{ number: `${A}${A}${A}` }, { number: B }] }],
      ['/v1/numbers', { number: '+1415555', provider: 'sim' }],
      ['/v1/route', { from: '12345678901234', to: proxyOfA, channel: 'voice' }],
    ];
    for (const [url, body] of cases) {
      const r = await t.api('POST', url, body);
      assert.equal(r.statusCode, 400, `${url} ${JSON.stringify(body)} → ${r.body}`);
      assert.equal(r.json().error.code, 'invalid_request');
      for (const bad of ['1415555', '12345678901234', '4155550', '999999999999999', A.slice(1)])
        assert.ok(!r.body.includes(bad), `${r.body} echoes ${bad}`);
    }
  });

  // People's numbers are sealed before they reach the database (store/vault.ts), so a driver's
  // error can quote only a pool number: the triggers below quote those.
  const POOL = [...PROXIES, '+14155550502', '+14155550503'];
  const maskedPoolNumber = /refused \+1415\*{5}\d\d/;

  it('an internal error answers a bare 500 and logs the cause with the numbers masked', async () => {
    const restore = await refuseInserts('participants', 'proxy_number');
    try {
      const r = await t.api('POST', '/v1/sessions', { participants: [{ number: C }, { number: D }] });
      assert.deepEqual(
        [r.statusCode, r.json()],
        [500, { error: { code: 'internal', message: 'internal error' } }],
      );
    } finally {
      await restore();
    }
    const errors = t.logs.filter((l) => JSON.parse(l).level === 50);
    assert.ok(
      errors.some((l) => l.includes('request failed') && maskedPoolNumber.test(l)),
      `the cause, with a masked number, was not logged: ${errors.join('')}`,
    );
    assertNoClearNumber(errors.join(''), POOL);
  });

  it('a failed interaction write is logged with the numbers masked, and retried', async () => {
    const restore = await refuseInserts('interactions', 'to_number');
    const params = { CallSid: `CA${'2'.repeat(32)}`, From: A, To: proxyOfA };
    const signed = twilio.getExpectedTwilioSignature(
      TWILIO_TOKEN,
      `${PUBLIC_URL}/webhooks/twilio/voice`,
      params,
    );
    try {
      assert.match((await twilioVoice(params, signed)).body, /<Dial/);
      await t.veil.interactions.flush();
    } finally {
      await restore();
    }
    assert.ok(
      t.logs.some((l) => l.includes('interaction log write failed') && l.includes(maskNumber(proxyOfA))),
      t.logs.join(''),
    );
    await t.veil.interactions.flush();
    const row = await t.veil.store.db
      .selectFrom('interactions')
      .select('id')
      .where('provider_call_id', '=', params.CallSid)
      .executeTakeFirst();
    assert.ok(row, 'the interaction was lost');
  });

  it('a closed database answers 500 and is logged', async () => {
    const broken = await testApp(store(), { LOG_LEVEL: 'trace' });
    try {
      await broken.veil.store.close();
      // The pool is written on this thread's own connection (sessions may go to their writer thread).
      const r = await broken.api('POST', '/v1/numbers', { number: C, provider: 'sim' });
      assert.deepEqual(
        [r.statusCode, r.json()],
        [500, { error: { code: 'internal', message: 'internal error' } }],
      );
      assert.ok(
        broken.logs.some((l) => JSON.parse(l).level === 50),
        broken.logs.join(''),
      );
      assertNoClearNumber(broken.logs.join(''), REAL_NUMBERS);
      assert.ok(!broken.logs.join('').includes(ADMIN_KEY));
    } finally {
      await broken.app.close();
      await broken.veil.sessionThread?.stop();
      await broken.veil.interactions.close();
    }
  });

  it('after all that, no log line holds a real number in clear or an API key', async () => {
    // Its own flow, whichever tests ran before: forged webhooks carrying real numbers (warnings),
    // and errors whose causes quote them, as some drivers' errors do (their numbers reach the logger).
    await twilioVoice({ CallSid: `CA${'3'.repeat(32)}`, From: A, To: proxyOfA }, 'forged');
    const simBody = JSON.stringify({ from: B, to: proxyOfA });
    await t.app.inject({
      method: 'POST',
      url: '/webhooks/sim/voice',
      headers: { 'content-type': 'application/json', ...signSimRequest('wrong-secret', simBody) },
      payload: simBody,
    });
    const restore = await refuseInserts('participants', 'proxy_number');
    try {
      for (const number of [A, C])
        await t.api('POST', '/v1/sessions', { participants: [{ number }, { number: D }] });
    } finally {
      await restore();
    }
    // Unauthorized and forbidden requests too.
    await t.api('POST', '/v1/sessions', { participants: [{ number: C }, { number: D }] }, readKey);
    await t.api('GET', '/v1/sessions', undefined, `${ADMIN_KEY}x`);
    const text = t.logs.join('');
    assert.ok(t.logs.length >= 4, 'the flow above should have logged');
    // A driver's error quoted a number (a pool one: people's are sealed), masked on its way out.
    assert.ok(maskedPoolNumber.test(text), `a pool number masked: ${text}`);
    assertNoClearNumber(text, [...REAL_NUMBERS, ...POOL]);
    for (const secret of [ADMIN_KEY, readKey, `Bearer ${ADMIN_KEY}`, TWILIO_TOKEN, SIM_SECRET])
      assert.ok(!text.includes(secret), `${secret} appears in the log`);
  });
});
