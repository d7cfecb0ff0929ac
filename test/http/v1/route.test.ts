import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { DEFAULT_REJECT_MESSAGE } from '../../../src/domain/routing.ts';
import { type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

/** What a refused caller hears when nothing else is configured. */
const REFUSED = { text: DEFAULT_REJECT_MESSAGE };

const A = '+14155550123';
const B = '+14155550187';
const STRANGER = '+14155550199';
const SUPPORT = '+14155550000';

interface ParticipantView {
  number: string;
  proxyNumber: string;
}

describeStores('POST /v1/route', (store) => {
  let t: TestApp;
  let a: ParticipantView;
  let b: ParticipantView;
  let sessionId: string;
  before(async () => {
    t = await testApp(store());
    for (const number of ['+14155550150', '+14155550151', '+14155550152']) {
      await t.api('POST', '/v1/numbers', { number, provider: 'sim' });
    }
    const s = (await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] })).json();
    sessionId = s.id;
    [a, b] = s.participants;
  });
  after(async () => {
    await t.close();
  });
  const route = (body: Record<string, unknown>, key?: string) => t.api('POST', '/v1/route', body, key);

  it('connects A to B showing B the proxy B knows, and B back to A', async () => {
    const there = (await route({ from: A, to: a.proxyNumber, channel: 'voice' })).json();
    assert.equal(there.action, 'connect');
    assert.equal(there.to, B);
    assert.equal(there.callerId, b.proxyNumber);
    const back = (await route({ from: B, to: b.proxyNumber, channel: 'voice' })).json();
    assert.deepEqual([back.to, back.callerId], [A, a.proxyNumber]);
  });

  it('answers calls that arrive together (their lookups run as one batch) each with its own session', async () => {
    const pairs: [ParticipantView, ParticipantView][] = [];
    for (let i = 0; i < 6; i++) {
      const people = [`+1415555030${i}`, `+1415555040${i}`];
      const s = (
        await t.api('POST', '/v1/sessions', { participants: people.map((number) => ({ number })) })
      ).json();
      pairs.push(s.participants);
    }
    const calls = pairs.flatMap(([x, y]) => [
      { from: x.number, to: x.proxyNumber, expect: [y.number, y.proxyNumber] },
      { from: y.number, to: y.proxyNumber, expect: [x.number, x.proxyNumber] },
      { from: STRANGER, to: x.proxyNumber, expect: undefined },
    ]);
    const answers = await Promise.all(
      calls.map(async ({ from, to }) => (await route({ from, to, channel: 'voice' })).json()),
    );
    calls.forEach(({ expect }, i) => {
      const answer = answers[i];
      if (expect) assert.deepEqual([answer.action, answer.to, answer.callerId], ['connect', ...expect]);
      else
        assert.deepEqual(answer, {
          action: 'reject',
          reason: 'no_session',
          message: REFUSED,
          sessionId: null,
        });
    });
  });

  it('forwards a text from the proxy the recipient knows', async () => {
    const r = (await route({ from: A, to: a.proxyNumber, channel: 'sms', body: 'at the door' })).json();
    assert.deepEqual(r, {
      action: 'forward',
      to: B,
      from: b.proxyNumber,
      body: 'at the door',
      sessionId,
    });
  });

  it("forwards a text's media (an MMS) and keeps it on the interaction", async () => {
    const media = ['https://media.example/door.jpg', 'http://media.example/parcel.png?size=large'];
    const r = (await route({ from: A, to: a.proxyNumber, channel: 'sms', body: 'here', media })).json();
    assert.deepEqual(r, { action: 'forward', to: B, from: b.proxyNumber, body: 'here', media, sessionId });
    const log = (await t.api('GET', `/v1/sessions/${sessionId}/interactions?limit=500`)).json().data;
    const texts = log.filter((i: { media: string[] }) => i.media.length > 0);
    assert.equal(texts.length, 1);
    assert.deepEqual(texts[0].media, media);
    assert.equal(texts[0].recording, null);
    assert.ok(log.every((i: { recording: unknown }) => i.recording === null));
    // A call carries no media, whatever the request says.
    const call = (await route({ from: A, to: a.proxyNumber, channel: 'voice', media })).json();
    assert.equal(call.media, undefined);
  });

  it('refuses more than 10 media, a URL too long or one that is not http(s) (400), writing nothing', async () => {
    await t.veil.interactions.flush();
    const before = await t.veil.store.db.selectFrom('interactions').select('id').execute();
    const text = { from: A, to: a.proxyNumber, channel: 'sms', body: 'x' };
    const ok = 'https://media.example/a.jpg';
    for (const [media, field] of [
      [Array.from({ length: 11 }, () => ok), 'media'],
      [[ok, `https://media.example/${'a'.repeat(2048)}`], 'media/1'],
      [['javascript:alert(1)'], 'media/0'],
      [[ok, ok, 'ftp://media.example/a.jpg'], 'media/2'],
      [['https://media.example/a b.jpg'], 'media/0'],
      [[42], 'media/0'],
    ] as const) {
      const r = await route({ ...text, media });
      assert.equal(r.statusCode, 400, r.body);
      assert.equal(r.json().error.code, 'invalid_request');
      assert.equal(r.json().error.field, field);
    }
    await t.veil.interactions.flush();
    assert.deepEqual(await t.veil.store.db.selectFrom('interactions').select('id').execute(), before);
  });

  it('refuses a stranger, and a participant dialling a proxy that is not theirs, revealing no number', async () => {
    // The case the name is about needs B's proxy to be another number than A's (least-loaded
    // allocation over three free numbers gives them two): A holds B's proxy in no session.
    assert.notEqual(b.proxyNumber, a.proxyNumber);
    for (const body of [
      { from: STRANGER, to: a.proxyNumber, channel: 'voice' },
      { from: A, to: b.proxyNumber, channel: 'voice' },
      { from: A, to: '+14155550152', channel: 'sms', body: 'x' },
    ]) {
      const r = await route(body);
      assert.equal(r.statusCode, 200);
      assert.deepEqual(r.json(), {
        action: 'reject',
        reason: 'no_session',
        ...(body.channel === 'voice' ? { message: REFUSED } : {}),
        sessionId: null,
      });
    }
  });

  it('refuses numbers that are not E.164 (400), with no interaction written', async () => {
    await t.veil.interactions.flush();
    const count = async () =>
      Number(
        (
          await t.veil.store.db
            .selectFrom('interactions')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await count();
    for (const [body, field] of [
      [{ from: '4155550123', to: a.proxyNumber, channel: 'voice' }, 'from'],
      [{ from: A, to: 'anonymous', channel: 'voice' }, 'to'],
      [{ from: A, to: a.proxyNumber, channel: 'fax' }, 'channel'],
    ] as const) {
      const r = await route(body);
      assert.equal(r.statusCode, 400, r.body);
      assert.equal(r.json().error.field, field);
    }
    await t.veil.interactions.flush();
    assert.equal(await count(), before);
  });

  it('does not route another tenant’s session', async () => {
    await t.veil.store.db
      .insertInto('tenants')
      .values({ id: 'other', name: 'other', created_at: t.clock.now })
      .execute();
    const { secret } = await t.veil.keys.create('other', 'other app', ['route']);
    const r = await route({ from: A, to: a.proxyNumber, channel: 'voice' }, secret);
    assert.deepEqual(r.json(), { action: 'reject', reason: 'no_session', message: REFUSED, sessionId: null });
  });

  it('needs the route scope (a read key is forbidden)', async () => {
    const { secret } = await t.veil.keys.create('default', 'reader', ['read']);
    assert.equal((await route({ from: A, to: a.proxyNumber, channel: 'voice' }, secret)).statusCode, 403);
  });

  it('honours canInitiate, revealNumber and channels', async () => {
    const s = (
      await t.api('POST', '/v1/sessions', {
        channels: ['voice'],
        participants: [
          { number: '+14155550124', revealNumber: true },
          { number: '+14155550188', canInitiate: false },
        ],
      })
    ).json();
    const [p, q] = s.participants as ParticipantView[];
    const shown = (await route({ from: p?.number, to: p?.proxyNumber, channel: 'voice' })).json();
    assert.deepEqual([shown.to, shown.callerId], ['+14155550188', '+14155550124']);
    const quiet = (await route({ from: q?.number, to: q?.proxyNumber, channel: 'voice' })).json();
    assert.deepEqual([quiet.action, quiet.reason], ['reject', 'not_allowed']);
    const text = (await route({ from: p?.number, to: p?.proxyNumber, channel: 'sms', body: 'x' })).json();
    assert.deepEqual([text.action, text.reason], ['reject', 'channel_not_allowed']);
  });
});

describeStores('POST /v1/route with VEIL_OUT_OF_SESSION and VEIL_DEFAULT_COUNTRY', (store) => {
  let t: TestApp;
  before(async () => {
    t = await testApp(store(), { VEIL_OUT_OF_SESSION: `forward:${SUPPORT}`, VEIL_DEFAULT_COUNTRY: 'US' });
    await t.api('POST', '/v1/numbers', { number: '(415) 555-0150', provider: 'sim' });
  });
  after(async () => {
    await t.close();
  });

  it('sends a stranger to the support line, shown the proxy they dialled', async () => {
    const r = (
      await t.api('POST', '/v1/route', { from: STRANGER, to: '+14155550150', channel: 'voice' })
    ).json();
    assert.deepEqual([r.action, r.to, r.callerId, r.sessionId], ['connect', SUPPORT, '+14155550150', null]);
  });

  it('accepts national numbers and routes them as E.164', async () => {
    const s = (
      await t.api('POST', '/v1/sessions', {
        participants: [{ number: '415-555-0123' }, { number: '(415) 555 0187' }],
      })
    ).json();
    assert.equal(s.participants[0].number, A);
    const r = (
      await t.api('POST', '/v1/route', { from: '4155550123', to: '415 555 0150', channel: 'voice' })
    ).json();
    assert.deepEqual([r.action, r.to], ['connect', B]);
  });
});
