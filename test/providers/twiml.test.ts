import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import twilio from 'twilio';
import { DEFAULT_REJECT_MESSAGE, type RouteDecision } from '../../src/domain/routing.ts';
import { TwilioAdapter } from '../../src/providers/twilio/twilio-adapter.ts';

/**
 * Veil writes its TwiML directly; the `twilio` package's builders are the oracle it must match
 * byte for byte, for every decision and every text a sender may type.
 */
const PUBLIC_URL = 'https://veil.example.test';
const adapter = new TwilioAdapter('token', PUBLIC_URL);
const e164 = fc.stringMatching(/^\+[1-9]\d{7,14}$/);
/** XML 1.0's characters: what the package's builders accept. */
const isXmlChar = (c: string) => {
  const code = c.codePointAt(0) ?? 0;
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code !== 0xfffe && code !== 0xffff);
};
const xmlText = fc.string({ unit: 'grapheme', maxLength: 60 }).map((s) => [...s].filter(isXmlChar).join(''));

function packageVoice(decision: RouteDecision): string {
  const response = new twilio.twiml.VoiceResponse();
  if (decision.action === 'connect') {
    const dial = response.dial({
      callerId: decision.callerId,
      ...(decision.record
        ? {
            record: 'record-from-answer-dual' as const,
            recordingStatusCallback: `${PUBLIC_URL}/webhooks/twilio/recording`,
            recordingStatusCallbackEvent: ['completed' as const, 'absent' as const],
          }
        : {}),
      ...(decision.maxCallSeconds ? { timeLimit: decision.maxCallSeconds } : {}),
    });
    dial.number(decision.to);
  } else {
    const message = (decision.action === 'reject' && decision.message) || { text: DEFAULT_REJECT_MESSAGE };
    if (message.audioUrl) response.play(message.audioUrl);
    else
      response.say(
        {
          ...(message.voice ? { voice: message.voice as never } : {}),
          ...(message.language ? { language: message.language as never } : {}),
        },
        message.text,
      );
    response.hangup();
  }
  return response.toString();
}

function packageSms(decision: RouteDecision): string {
  const response = new twilio.twiml.MessagingResponse();
  if (decision.action === 'forward' && decision.media?.length) {
    // An MMS: the text in a Body (none when there is no text), then each Media.
    const message = response.message({ to: decision.to, from: decision.from }, undefined as never);
    if (decision.body) message.body(decision.body);
    for (const url of decision.media) message.media(url);
  } else if (decision.action === 'forward') {
    response.message({ to: decision.to, from: decision.from }, decision.body);
  }
  return response.toString();
}

describe('TwiML', () => {
  it('a connected call is the Dial the package builds, with recording and a time limit when asked', () => {
    fc.assert(
      fc.property(
        e164,
        e164,
        fc.boolean(),
        fc.option(fc.integer({ min: 1, max: 14_400 }), { nil: null }),
        (to, callerId, record, maxCallSeconds) => {
          const decision: RouteDecision = {
            action: 'connect',
            to,
            callerId,
            record,
            maxCallSeconds,
            sessionId: 'ses_1',
          };
          assert.equal(adapter.renderVoice(decision).body, packageVoice(decision));
        },
      ),
    );
  });

  it('a refused call is the same Say and Hangup as the package writes', () => {
    const decision: RouteDecision = { action: 'reject', reason: 'no_session', sessionId: null };
    assert.equal(adapter.renderVoice(decision).body, packageVoice(decision));
    assert.match(
      adapter.renderVoice(decision).body,
      /<Say>The number you have dialled is not available\.<\/Say><Hangup\/>/,
    );
  });

  it('a refused call says its message in its language and voice, or plays its recording, as the package writes them', () => {
    fc.assert(
      fc.property(
        xmlText.filter((t) => t.length > 0),
        fc.option(fc.constantFrom('en-GB', 'fr-FR', 'cmn-Hans-CN'), { nil: undefined }),
        fc.option(fc.constantFrom('alice', 'Polly.Amy', 'man'), { nil: undefined }),
        fc.option(fc.constantFrom('https://cdn.example/closed.mp3', 'https://cdn.example/a?b=1&c=2'), {
          nil: undefined,
        }),
        (text, language, voice, audioUrl) => {
          const message = {
            text,
            ...(language ? { language } : {}),
            ...(voice ? { voice } : {}),
            ...(audioUrl ? { audioUrl } : {}),
          };
          const decision: RouteDecision = {
            action: 'reject',
            reason: 'no_session',
            message,
            sessionId: null,
          };
          assert.equal(adapter.renderVoice(decision).body, packageVoice(decision));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a forwarded text, whatever it says, is escaped exactly as the package escapes it', () => {
    fc.assert(
      fc.property(e164, e164, xmlText, (to, from, body) => {
        const decision: RouteDecision = { action: 'forward', to, from, body, sessionId: 'ses_1' };
        assert.equal(adapter.renderSms(decision).body, packageSms(decision));
      }),
      { numRuns: 500 },
    );
    const tricky: RouteDecision = {
      action: 'forward',
      to: '+1',
      from: '+2',
      body: `a&b<c>"d'\te\nf\r]]>`,
      sessionId: null,
    };
    assert.equal(adapter.renderSms(tricky).body, packageSms(tricky));
  });

  it('a forwarded MMS is the Message with Body and Media nouns the package builds', () => {
    const url = fc.webUrl({ withQueryParameters: true, withFragments: true });
    fc.assert(
      fc.property(
        e164,
        e164,
        xmlText,
        fc.array(url, { minLength: 1, maxLength: 10 }),
        (to, from, body, media) => {
          const decision: RouteDecision = { action: 'forward', to, from, body, media, sessionId: 'ses_1' };
          assert.equal(adapter.renderSms(decision).body, packageSms(decision));
        },
      ),
      { numRuns: 300 },
    );
    const photos: RouteDecision = {
      action: 'forward',
      to: '+14155550101',
      from: '+14155550150',
      body: 'at the door',
      media: ['https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1?a=1&b=2'],
      sessionId: null,
    };
    assert.equal(
      adapter.renderSms(photos).body,
      '<?xml version="1.0" encoding="UTF-8"?><Response><Message to="+14155550101" from="+14155550150">' +
        '<Body>at the door</Body>' +
        '<Media>https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1?a=1&amp;b=2</Media>' +
        '</Message></Response>',
    );
    // Pictures alone: no Body at all.
    assert.equal(adapter.renderSms({ ...photos, body: '' }).body, packageSms({ ...photos, body: '' }));
    assert.doesNotMatch(adapter.renderSms({ ...photos, body: '' }).body, /<Body/);
  });

  it('a recorded call names the recording callback under VEIL_PUBLIC_URL; an unrecorded one names none', () => {
    const decision: RouteDecision = {
      action: 'connect',
      to: '+14155550101',
      callerId: '+14155550150',
      record: true,
      maxCallSeconds: null,
      sessionId: 'ses_1',
    };
    assert.equal(
      adapter.renderVoice(decision).body,
      '<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="+14155550150" record="record-from-answer-dual" ' +
        'recordingStatusCallback="https://veil.example.test/webhooks/twilio/recording" ' +
        'recordingStatusCallbackEvent="completed absent"><Number>+14155550101</Number></Dial></Response>',
    );
    assert.doesNotMatch(adapter.renderVoice({ ...decision, record: false }).body, /record/);
  });

  it('a refused text and a status acknowledgement are empty responses', () => {
    const refused: RouteDecision = { action: 'reject', reason: 'no_session', sessionId: null };
    assert.equal(adapter.renderSms(refused).body, '<?xml version="1.0" encoding="UTF-8"?><Response/>');
    assert.equal(adapter.acknowledge().body, new twilio.twiml.VoiceResponse().toString());
  });

  it('a text with characters XML cannot carry is delivered without them (the package would throw)', () => {
    const body = 'on my way\u0001 \uFFFE to the door \uD800!';
    const decision: RouteDecision = {
      action: 'forward',
      to: '+14155550101',
      from: '+14155550150',
      body,
      sessionId: null,
    };
    assert.throws(() => packageSms(decision));
    const clean: RouteDecision = { ...decision, body: 'on my way  to the door !' };
    assert.equal(adapter.renderSms(decision).body, packageSms(clean));
  });
});
