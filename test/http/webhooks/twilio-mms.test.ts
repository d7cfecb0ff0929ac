import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_MEDIA, MAX_MEDIA_URL_LENGTH } from '../../../src/domain/media.ts';
import {
  assertWebhookRefused,
  interactionRows,
  type TestApp,
  TWILIO_SID,
  testApp,
} from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';
import { openSession, postTwilio, sessionInteractions, type TwilioParams } from '../../support/twilio.ts';

const PATH = '/webhooks/twilio/sms';
const A = '+14155550131';
const B = '+14155550132';
const STRANGER = '+14155550999';
const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

/** A media URL as Twilio gives it: its own API's, one per picture. */
const twilioMedia = (n: number) =>
  `https://api.twilio.com/2010-04-01/Accounts/${TWILIO_SID}/Messages/MM1/Media/ME${String(n).padStart(32, '0')}`;

describeStores('POST /webhooks/twilio/sms with media (MMS)', (store) => {
  let t: TestApp;
  let session: { id: string; proxyOf: Map<string, string> };
  let seq = 0;

  before(async () => {
    t = await testApp(store());
    for (const number of ['+14155550260', '+14155550261']) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'twilio' });
      assert.equal(r.statusCode, 201, r.body);
    }
    session = await openSession(t, [A, B]);
  });
  after(async () => {
    await t?.close();
  });

  const proxy = (number: string) => session.proxyOf.get(number) as string;

  /** Twilio's inbound message webhook: the text, NumMedia and a MediaUrlN and MediaContentTypeN per media. */
  function mms(
    body: string,
    media: string[],
    fields: TwilioParams = {},
  ): TwilioParams & { MessageSid: string } {
    const params: TwilioParams & { MessageSid: string } = {
      AccountSid: TWILIO_SID,
      MessageSid: `MM${String(++seq).padStart(32, '0')}`,
      From: A,
      To: proxy(A),
      Body: body,
      NumMedia: String(media.length),
      NumSegments: '1',
    };
    media.forEach((url, i) => {
      params[`MediaUrl${i}`] = url;
      params[`MediaContentType${i}`] = 'image/jpeg';
    });
    return { ...params, ...fields };
  }

  /** The TwiML relaying `body` and `media` to B, from the proxy B knows. */
  const relayed = (body: string, media: string[]) =>
    `${XML_DECLARATION}<Response><Message to="${B}" from="${proxy(B)}">` +
    (body ? `<Body>${body}</Body>` : '') +
    media.map((url) => `<Media>${url.replaceAll('&', '&amp;')}</Media>`).join('') +
    '</Message></Response>';

  const mediaOf = async (messageSid: string) => {
    const found = (await sessionInteractions(t, session.id)).find((i) => i.providerCallId === messageSid);
    assert.ok(found, `no interaction with ${messageSid}`);
    return found.media;
  };

  it('relays the text in a Body and each picture in a Media, and keeps the media on the interaction', async () => {
    const media = [twilioMedia(0), `${twilioMedia(1)}?size=large&crop=1`];
    const params = mms('the parcel, at the door', media);
    const r = await postTwilio(t, PATH, params);
    assert.equal(r.statusCode, 200, r.body);
    assert.match(String(r.headers['content-type']), /^text\/xml/);
    assert.equal(r.body, relayed('the parcel, at the door', media));

    assert.deepEqual(await mediaOf(params.MessageSid), media);
    const row = (await interactionRows(t)).find((i) => i.provider_call_id === params.MessageSid);
    assert.equal(row?.action, 'forward');
    assert.equal(row?.target_number, B);
    assert.equal(row?.recording_status, null);
  });

  it('relays pictures without a text with no Body', async () => {
    const params = mms('', [twilioMedia(2)]);
    const r = await postTwilio(t, PATH, params);
    assert.equal(r.body, relayed('', [twilioMedia(2)]));
    assert.doesNotMatch(r.body, /<Body/);
  });

  it('relays a text without media as before, and shows its media as empty', async () => {
    // A MediaUrl0 beside NumMedia 0 is not media: NumMedia says how many there are.
    const params = mms('on my way', [], { MediaUrl0: twilioMedia(3) });
    const r = await postTwilio(t, PATH, params);
    assert.equal(
      r.body,
      `${XML_DECLARATION}<Response><Message to="${B}" from="${proxy(B)}">on my way</Message></Response>`,
    );
    assert.deepEqual(await mediaOf(params.MessageSid), []);
    const row = (await interactionRows(t)).find((i) => i.provider_call_id === params.MessageSid);
    assert.equal(row?.media, null);
  });

  it("answers a stranger's MMS with an empty response", async () => {
    const r = await postTwilio(t, PATH, mms('look', [twilioMedia(4)], { From: STRANGER }));
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.body, `${XML_DECLARATION}<Response/>`);
  });

  describe('bounds the media', () => {
    it(`relays and keeps the first ${MAX_MEDIA} of more media than Twilio sends`, async () => {
      const media = Array.from({ length: MAX_MEDIA + 1 }, (_, i) => twilioMedia(10 + i));
      const params = mms('eleven', media);
      const r = await postTwilio(t, PATH, params);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.body, relayed('eleven', media.slice(0, MAX_MEDIA)));
      assert.equal(r.body.match(/<Media>/g)?.length, MAX_MEDIA);
      assert.deepEqual(await mediaOf(params.MessageSid), media.slice(0, MAX_MEDIA));
    });

    it('reads no slot past the tenth, whatever NumMedia says, and none when it is not a count', async () => {
      for (const count of ['1000000', '9'.repeat(400)]) {
        const params = mms('many', [twilioMedia(30)], { NumMedia: count });
        const r = await postTwilio(t, PATH, params);
        assert.equal(r.statusCode, 200, r.body);
        assert.equal(r.body, relayed('many', [twilioMedia(30)]), count);
      }
      for (const count of ['-1', 'two', '', '1e9', 'Infinity', '0x10']) {
        const params = mms('none', [twilioMedia(31)], { NumMedia: count });
        const r = await postTwilio(t, PATH, params);
        assert.equal(
          r.body,
          `${XML_DECLARATION}<Response><Message to="${B}" from="${proxy(B)}">none</Message></Response>`,
        );
      }
    });

    it(`drops a URL longer than ${MAX_MEDIA_URL_LENGTH} characters and relays the rest`, async () => {
      const base = 'https://media.example/';
      const longest = base + 'm'.repeat(MAX_MEDIA_URL_LENGTH - base.length);
      const params = mms('sizes', [`${longest}m`, longest, twilioMedia(40)]);
      const r = await postTwilio(t, PATH, params);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.body, relayed('sizes', [longest, twilioMedia(40)]));
      assert.deepEqual(await mediaOf(params.MessageSid), [longest, twilioMedia(40)]);
    });

    it('drops a media URL that is not http(s), and still relays the text', async () => {
      const bad = [
        'javascript:alert(1)',
        'file:///etc/passwd',
        'ftp://media.example/a.jpg',
        'data:image/png;base64,iVBORw0KGgo=',
        'https://media.example/a picture.jpg',
        'https://',
        '//media.example/a.jpg',
      ];
      const params = mms('pictures', [...bad, 'http://media.example/a.jpg']);
      const r = await postTwilio(t, PATH, params);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.body, relayed('pictures', ['http://media.example/a.jpg']));
      assert.deepEqual(await mediaOf(params.MessageSid), ['http://media.example/a.jpg']);

      const none = mms('only bad ones', bad.slice(0, 3));
      const plain = await postTwilio(t, PATH, none);
      assert.equal(
        plain.body,
        `${XML_DECLARATION}<Response><Message to="${B}" from="${proxy(B)}">only bad ones</Message></Response>`,
      );
      assert.deepEqual(await mediaOf(none.MessageSid), []);
    });
  });

  it('refuses an MMS whose media was changed after signing with 403, and writes nothing', async () => {
    const signed = mms('look', [twilioMedia(50)]);
    await assertWebhookRefused(t, () =>
      postTwilio(t, PATH, { ...signed, MediaUrl0: 'https://evil.example/x.jpg' }, { signedParams: signed }),
    );
    await assertWebhookRefused(t, () =>
      postTwilio(
        t,
        PATH,
        { ...signed, NumMedia: '2', MediaUrl1: 'https://evil.example/y.jpg' },
        { signedParams: signed },
      ),
    );
    await assertWebhookRefused(t, () => postTwilio(t, PATH, signed, 'unsigned'));
  });
});
