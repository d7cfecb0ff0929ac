import assert from 'node:assert/strict';
import { afterEach, it } from 'node:test';
import { DEFAULT_REJECT_MESSAGE } from '../../../src/domain/routing.ts';
import { type TestApp, TWILIO_SID, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';
import { postTwilio } from '../../support/twilio.ts';

/**
 * What a caller hears on a call that does not connect: the installation's reject message and
 * gather prompt (text in a language and voice, or a recording), and a session's own reject message,
 * through /v1/route and Twilio's TwiML.
 */
const A = '+14155550121';
const B = '+14155550122';
const C = '+14155550123';
const STRANGER = '+14155550199';
const POOL = ['+14155550190', '+14155550191'];
const CLOSED = { text: 'Your order is closed.', language: 'en-GB', voice: 'Polly.Amy' };

describeStores('reject messages and gather prompts', { perTest: true }, (store) => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  async function start(env: Record<string, string> = {}, pool = POOL, maxSessions?: number): Promise<void> {
    t = await testApp(store(), env);
    for (const number of pool) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'twilio', maxSessions });
      assert.equal(r.statusCode, 201, r.body);
    }
  }
  async function open(body: Record<string, unknown>): Promise<{ id: string; proxyOf: Map<string, string> }> {
    const r = await t.api('POST', '/v1/sessions', body);
    assert.equal(r.statusCode, 201, r.body);
    const s = r.json();
    return {
      id: s.id,
      proxyOf: new Map(
        s.participants.map((p: { number: string; proxyNumber: string }) => [p.number, p.proxyNumber]),
      ),
    };
  }
  const route = async (from: string, to: string, extra: Record<string, unknown> = {}) =>
    (await t.api('POST', '/v1/route', { from, to, channel: 'voice', ...extra })).json();
  // Each call with a CallSid of its own, as Twilio gives it: the same signed request again is a replay.
  let calls = 0;
  const twiml = async (from: string, to: string) =>
    (
      await postTwilio(t, '/webhooks/twilio/voice', {
        AccountSid: TWILIO_SID,
        CallSid: `CA${String(++calls).padStart(32, '0')}`,
        From: from,
        To: to,
        CallStatus: 'ringing',
      })
    ).body;

  it('says the installation’s message in its language and voice, or plays its recording', async () => {
    await start({
      VEIL_REJECT_MESSAGE: 'Nobody here.',
      VEIL_VOICE_LANGUAGE: 'fr-FR',
      VEIL_VOICE: 'Polly.Celine',
    });
    const s = await open({ participants: [{ number: A }, { number: B }] });
    const proxy = s.proxyOf.get(A) as string;
    assert.deepEqual((await route(STRANGER, proxy)).message, {
      text: 'Nobody here.',
      language: 'fr-FR',
      voice: 'Polly.Celine',
    });
    assert.match(
      await twiml(STRANGER, proxy),
      /<Response><Say voice="Polly\.Celine" language="fr-FR">Nobody here\.<\/Say><Hangup\/><\/Response>$/,
    );
    // A refused text says nothing.
    const text = await t.api('POST', '/v1/route', { from: STRANGER, to: proxy, channel: 'sms', body: 'hi' });
    assert.equal(text.json().message, undefined);
    await t.close();

    await start({ VEIL_REJECT_AUDIO_URL: 'https://cdn.example.test/closed.mp3' }, []);
    assert.match(
      await twiml(STRANGER, proxy),
      /<Response><Play>https:\/\/cdn\.example\.test\/closed\.mp3<\/Play><Hangup\/><\/Response>$/,
    );
  });

  it('says a session’s own message to a caller refused within it, until it is taken back', async () => {
    await start();
    const s = await open({
      rejectMessage: CLOSED,
      participants: [{ number: A, canInitiate: false }, { number: B }],
    });
    const shown = await t.api('GET', `/v1/sessions/${s.id}`);
    assert.deepEqual(shown.json().rejectMessage, CLOSED);
    const proxy = s.proxyOf.get(A) as string;
    // A may not start calls: refused within the session, told the session's message.
    const refused = await route(A, proxy);
    assert.deepEqual([refused.reason, refused.message], ['not_allowed', CLOSED]);
    assert.match(
      await twiml(A, proxy),
      /<Say voice="Polly\.Amy" language="en-GB">Your order is closed\.<\/Say><Hangup\/>/,
    );
    // A stranger on the same proxy is in no session: the installation's message.
    assert.deepEqual((await route(STRANGER, proxy)).message, { text: DEFAULT_REJECT_MESSAGE });

    const back = await t.api('PATCH', `/v1/sessions/${s.id}`, { rejectMessage: null });
    assert.equal(back.statusCode, 200, back.body);
    assert.equal(back.json().rejectMessage, null);
    assert.deepEqual((await route(A, proxy)).message, { text: DEFAULT_REJECT_MESSAGE });
    const again = await t.api('PATCH', `/v1/sessions/${s.id}`, {
      rejectMessage: { text: 'Call the shop.', audioUrl: 'https://cdn.example.test/shop.wav' },
    });
    assert.equal(again.statusCode, 200, again.body);
    assert.match(await twiml(A, proxy), /<Play>https:\/\/cdn\.example\.test\/shop\.wav<\/Play><Hangup\/>/);
  });

  it('refuses a malformed message with 400 naming the field, and writes nothing', async () => {
    await start();
    const bad: [unknown, string][] = [
      [{ text: '' }, 'rejectMessage/text'],
      [{ text: 'x'.repeat(501) }, 'rejectMessage/text'],
      [{ text: 'hi', language: 'english please' }, 'rejectMessage/language'],
      [{ text: 'hi', voice: '<script>' }, 'rejectMessage/voice'],
      [{ text: 'hi', audioUrl: 'javascript:alert(1)' }, 'rejectMessage/audioUrl'],
      [{ text: 'hi', loud: true }, 'rejectMessage/loud'],
      ['closed', 'rejectMessage'],
    ];
    for (const [rejectMessage, field] of bad) {
      const r = await t.api('POST', '/v1/sessions', {
        rejectMessage,
        participants: [{ number: A }, { number: B }],
      });
      assert.equal(r.statusCode, 400, `${JSON.stringify(rejectMessage)}: ${r.body}`);
      assert.equal(r.json().error.field, field, r.body);
    }
    const listed = await t.api('GET', '/v1/sessions?limit=10');
    assert.deepEqual(listed.json().data, []);
  });

  it('takes the message into an externalId’s idempotency: the same body is the same session', async () => {
    await start();
    const body = {
      externalId: 'order-9',
      rejectMessage: CLOSED,
      participants: [{ number: A }, { number: C }],
    };
    const first = await t.api('POST', '/v1/sessions', body);
    assert.equal(first.statusCode, 201, first.body);
    const retry = await t.api('POST', '/v1/sessions', body);
    assert.equal(retry.statusCode, 200, retry.body);
    const other = await t.api('POST', '/v1/sessions', { ...body, rejectMessage: { text: 'Other.' } });
    assert.equal(other.statusCode, 409, other.body);
  });

  it('asks for an extension in the installation’s voice, or with its recording', async () => {
    await start(
      {
        VEIL_EXTENSION_FALLBACK: 'true',
        VEIL_GATHER_PROMPT: 'Key your code.',
        VEIL_VOICE_LANGUAGE: 'en-GB',
        VEIL_GATHER_AUDIO_URL: 'https://cdn.example.test/code.mp3',
      },
      [POOL[0] as string],
      1,
    );
    await open({ participants: [{ number: A }, { number: B }] });
    // The pool's one number carries all it may: C and another share it by extension.
    const shared = await open({ participants: [{ number: C }, { number: STRANGER }] });
    const proxy = shared.proxyOf.get(C) as string;
    const asked = await route(C, proxy);
    assert.deepEqual(
      [asked.action, asked.prompt, asked.message],
      [
        'gather',
        'Key your code.',
        { text: 'Key your code.', language: 'en-GB', audioUrl: 'https://cdn.example.test/code.mp3' },
      ],
    );
    const body = await twiml(C, proxy);
    assert.match(body, /<Gather [^>]*><Play>https:\/\/cdn\.example\.test\/code\.mp3<\/Play><\/Gather>/);
    // Keying nothing ends the call with the reject message, in the installation's language.
    assert.match(
      body,
      /<\/Gather><Say language="en-GB">The number you have dialled is not available\.<\/Say><Hangup\/>/,
    );
  });
});
