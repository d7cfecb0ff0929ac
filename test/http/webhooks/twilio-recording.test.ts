import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_MEDIA_URL_LENGTH } from '../../../src/domain/media.ts';
import {
  interactionRows,
  PUBLIC_URL,
  refusalLogged,
  type TestApp,
  TWILIO_SID,
  TWILIO_TOKEN,
  testApp,
} from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';
import {
  openSession,
  postTwilio,
  sessionInteractions,
  type TwilioParams,
  type TwilioSigning,
} from '../../support/twilio.ts';

const PATH = '/webhooks/twilio/recording';
const A = '+14155550121';
const B = '+14155550122';
const C = '+14155550123';
const D = '+14155550124';
const EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>';

describeStores('POST /webhooks/twilio/recording', (store) => {
  let t: TestApp;
  let recorded: { id: string; proxyOf: Map<string, string> };
  let plain: { id: string; proxyOf: Map<string, string> };
  let seq = 0;

  before(async () => {
    t = await testApp(store());
    for (const number of ['+14155550250', '+14155550251']) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'twilio' });
      assert.equal(r.statusCode, 201, r.body);
    }
    recorded = await openSession(t, [A, B], { record: true });
    plain = await openSession(t, [C, D]);
  });
  after(async () => {
    await t?.close();
  });

  const sid = (prefix: string) => `${prefix}${String(++seq).padStart(32, '0')}`;

  /** A call from A through the recorded session, as Twilio's voice webhook brings it: its CallSid. */
  async function recordedCall(): Promise<string> {
    const callSid = sid('CA');
    const r = await postTwilio(t, '/webhooks/twilio/voice', {
      AccountSid: TWILIO_SID,
      CallSid: callSid,
      From: A,
      To: recorded.proxyOf.get(A) as string,
      CallStatus: 'ringing',
      Direction: 'inbound',
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.match(r.body, new RegExp(`recordingStatusCallback="${PUBLIC_URL}${PATH}"`));
    return callSid;
  }

  /** Twilio's recording status callback for a call, with every field it sends. */
  const recordingParams = (callSid: string, fields: TwilioParams = {}): TwilioParams => {
    const recordingSid = sid('RE');
    return {
      AccountSid: TWILIO_SID,
      CallSid: callSid,
      RecordingSid: recordingSid,
      RecordingUrl: `https://api.twilio.com/2010-04-01/Accounts/${TWILIO_SID}/Recordings/${recordingSid}`,
      RecordingStatus: 'completed',
      RecordingDuration: '37',
      RecordingChannels: '2',
      RecordingSource: 'DialVerb',
      RecordingStartTime: 'Thu, 01 Jan 2026 00:00:05 +0000',
      ErrorCode: '0',
      ...fields,
    };
  };

  const interactionOf = async (sessionId: string, callSid: string) => {
    const found = (await sessionInteractions(t, sessionId)).find((i) => i.providerCallId === callSid);
    assert.ok(found, `no interaction with ${callSid}`);
    return found;
  };

  it("keeps the recording's URL, duration and status on the call, shown by GET /v1/sessions/:id/interactions", async () => {
    const callSid = await recordedCall();
    assert.equal((await interactionOf(recorded.id, callSid)).recording, null);

    const params = recordingParams(callSid);
    const r = await postTwilio(t, PATH, params);
    assert.equal(r.statusCode, 200, r.body);
    assert.match(String(r.headers['content-type']), /^text\/xml/);
    assert.equal(r.body, EMPTY_TWIML);

    const call = await interactionOf(recorded.id, callSid);
    assert.deepEqual(call.recording, { url: params.RecordingUrl, durationSeconds: 37, status: 'completed' });
    // The call's own status is the status callback's, untouched by the recording's.
    assert.equal(call.status, 'routed');
    assert.equal(call.durationSeconds, null);
    assert.deepEqual(call.media, []);
  });

  it('finds a call whose interaction is still waiting in the batch', async () => {
    // No flush between the call and its recording: the callback must see the pending row.
    const callSid = await recordedCall();
    const r = await postTwilio(t, PATH, recordingParams(callSid, { RecordingDuration: '5' }));
    assert.equal(r.statusCode, 200, r.body);
    const rows = (await interactionRows(t)).filter((row) => row.provider_call_id === callSid);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.recording_duration_seconds, 5);
    assert.equal(rows[0]?.recording_status, 'completed');
  });

  it('keeps a status and call status that arrive in either order', async () => {
    const callSid = await recordedCall();
    await postTwilio(t, PATH, recordingParams(callSid, { RecordingDuration: '40' }));
    const status = await postTwilio(t, '/webhooks/twilio/status', {
      AccountSid: TWILIO_SID,
      CallSid: callSid,
      CallStatus: 'completed',
      CallDuration: '44',
    });
    assert.equal(status.statusCode, 200, status.body);
    const call = await interactionOf(recorded.id, callSid);
    assert.equal(call.status, 'completed');
    assert.equal(call.durationSeconds, 44);
    assert.equal(call.recording?.durationSeconds, 40);
    assert.equal(call.recording?.status, 'completed');
  });

  it('keeps an absent recording as a status with no URL', async () => {
    const callSid = await recordedCall();
    const params = recordingParams(callSid, { RecordingStatus: 'absent', RecordingDuration: '0' });
    delete params.RecordingUrl;
    assert.equal((await postTwilio(t, PATH, params)).statusCode, 200);
    assert.deepEqual((await interactionOf(recorded.id, callSid)).recording, {
      url: null,
      durationSeconds: 0,
      status: 'absent',
    });
  });

  it('names no callback for a call the session does not record, and shows its recording as null', async () => {
    const callSid = sid('CA');
    const r = await postTwilio(t, '/webhooks/twilio/voice', {
      AccountSid: TWILIO_SID,
      CallSid: callSid,
      From: C,
      To: plain.proxyOf.get(C) as string,
    });
    assert.match(r.body, /<Dial /);
    assert.doesNotMatch(r.body, /record/);
    const call = await interactionOf(plain.id, callSid);
    assert.equal(call.recording, null);
    assert.deepEqual(call.media, []);
  });

  describe('bounds what it keeps', () => {
    it(`keeps a URL of ${MAX_MEDIA_URL_LENGTH} characters, and none longer, as no URL`, async () => {
      const base = 'https://api.twilio.com/recordings/';
      const longest = base + 'r'.repeat(MAX_MEDIA_URL_LENGTH - base.length);
      const kept = await recordedCall();
      await postTwilio(t, PATH, recordingParams(kept, { RecordingUrl: longest }));
      assert.equal((await interactionOf(recorded.id, kept)).recording?.url, longest);

      const tooLong = await recordedCall();
      await postTwilio(t, PATH, recordingParams(tooLong, { RecordingUrl: `${longest}r` }));
      // The status and duration still say what became of the recording.
      assert.deepEqual((await interactionOf(recorded.id, tooLong)).recording, {
        url: null,
        durationSeconds: 37,
        status: 'completed',
      });
      const row = (await interactionRows(t)).find((i) => i.provider_call_id === tooLong);
      assert.equal(row?.recording_url, null);
    });

    it('keeps only an http(s) URL', async () => {
      for (const url of [
        'javascript:alert(1)',
        'ftp://api.twilio.com/recording',
        'file:///etc/passwd',
        'https://api.twilio.com/a recording',
        'https://',
        '/2010-04-01/Recordings/RE1',
      ]) {
        const callSid = await recordedCall();
        assert.equal(
          (await postTwilio(t, PATH, recordingParams(callSid, { RecordingUrl: url }))).statusCode,
          200,
        );
        assert.equal((await interactionOf(recorded.id, callSid)).recording?.url, null, url);
      }
      const plainHttp = await recordedCall();
      await postTwilio(
        t,
        PATH,
        recordingParams(plainHttp, { RecordingUrl: 'http://recordings.example/RE1' }),
      );
      assert.equal(
        (await interactionOf(recorded.id, plainHttp)).recording?.url,
        'http://recordings.example/RE1',
      );
    });

    it('keeps a duration only as a whole number of seconds within a 32-bit integer', async () => {
      for (const [given, kept] of [
        ['0', 0],
        ['2147483647', 2_147_483_647],
        ['2147483648', null],
        ['99999999999', null],
        ['-5', null],
        ['1.5', null],
        ['', null],
        ['ten', null],
      ] as const) {
        const callSid = await recordedCall();
        await postTwilio(t, PATH, recordingParams(callSid, { RecordingDuration: given }));
        assert.equal((await interactionOf(recorded.id, callSid)).recording?.durationSeconds, kept, given);
      }
    });

    it('acknowledges a report without CallSid or RecordingStatus, and keeps nothing', async () => {
      const callSid = await recordedCall();
      const without = (name: string) => {
        const params = recordingParams(callSid);
        delete params[name];
        return params;
      };
      for (const name of ['CallSid', 'RecordingStatus']) {
        const r = await postTwilio(t, PATH, without(name));
        assert.equal(r.statusCode, 200, r.body);
        assert.equal(r.body, EMPTY_TWIML);
      }
      assert.equal((await interactionOf(recorded.id, callSid)).recording, null);
    });
  });

  describe('a report for a call Veil has no interaction of', () => {
    it('is acknowledged with 200, changes nothing and is logged by call id, with no number', async () => {
      const before = await interactionRows(t);
      const from = t.logs.length;
      const unknown = sid('CA');
      const r = await postTwilio(t, PATH, recordingParams(unknown));
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.body, EMPTY_TWIML);
      assert.deepEqual(await interactionRows(t), before);

      const lines = t.logs.slice(from);
      const warnings = lines.map((l) => JSON.parse(l)).filter((l) => l.providerCallId === unknown);
      assert.equal(warnings.length, 1, lines.join(''));
      assert.equal(warnings[0].level, 40);
      assert.equal(warnings[0].provider, 'twilio');
      assert.equal(warnings[0].msg, 'recording reported for a call with no interaction');
      for (const number of [A, B, C, D, ...recorded.proxyOf.values(), ...plain.proxyOf.values()]) {
        for (const form of [number, number.slice(1)])
          assert.ok(!lines.join('').includes(form), `the log shows ${form}`);
      }
    });

    it("is not applied to a text that has the CallSid's id", async () => {
      const messageSid = sid('SM');
      const text = await postTwilio(t, '/webhooks/twilio/sms', {
        AccountSid: TWILIO_SID,
        MessageSid: messageSid,
        From: C,
        To: plain.proxyOf.get(C) as string,
        Body: 'hi',
        NumMedia: '0',
      });
      assert.equal(text.statusCode, 200, text.body);
      const r = await postTwilio(t, PATH, recordingParams(messageSid));
      assert.equal(r.statusCode, 200, r.body);
      const row = (await interactionRows(t)).find((i) => i.provider_call_id === messageSid);
      assert.equal(row?.channel, 'sms');
      assert.equal(row?.recording_status, null);
      assert.equal(row?.recording_url, null);
    });
  });

  describe('refuses with 403 and keeps nothing', () => {
    const refusals: [string, (params: TwilioParams) => TwilioSigning | 'unsigned'][] = [
      ['an unsigned report', () => 'unsigned'],
      ['a report signed with another auth token', () => ({ token: 'another-accounts-auth-token-000000' })],
      ['a report signed for another host', () => ({ signedUrl: `https://evil.example${PATH}` })],
      ['a report signed for the status path', () => ({ signedUrl: `${PUBLIC_URL}/webhooks/twilio/status` })],
      [
        'a report whose URL was changed after signing',
        (params) => ({ signedParams: { ...params, RecordingUrl: 'https://api.twilio.com/original' } }),
      ],
      [
        'a report whose duration was changed after signing',
        (params) => ({ signedParams: { ...params, RecordingDuration: '1' } }),
      ],
    ];
    for (const [what, signing] of refusals) {
      it(what, async () => {
        const callSid = await recordedCall();
        const before = await interactionRows(t);
        const params = recordingParams(callSid, { RecordingUrl: 'https://evil.example/forged' });
        const r = await postTwilio(t, PATH, params, signing(params));
        assert.equal(r.statusCode, 403, r.body);
        assert.equal(r.json().error.code, 'forbidden');
        assert.deepEqual(await interactionRows(t), before);
        assert.equal((await interactionOf(recorded.id, callSid)).recording, null);
      });
    }

    it('says why in a warning naming the recording URL it checked, without the token', async () => {
      const callSid = await recordedCall();
      const { warning } = await refusalLogged(
        t,
        { provider: 'twilio', path: PATH, secret: TWILIO_TOKEN },
        () => postTwilio(t, PATH, recordingParams(callSid), 'unsigned'),
      );
      assert.equal(warning.reason, 'missing X-Twilio-Signature header');
    });
  });

  describe('without Twilio credentials', () => {
    let u: TestApp | undefined;
    before(async () => {
      await t.veil.interactions.flush();
      u = await testApp(store(), { TWILIO_ACCOUNT_SID: '', TWILIO_AUTH_TOKEN: '' });
    });
    after(async () => {
      await u?.close();
    });

    it('answers 404', async () => {
      assert.ok(u);
      const r = await postTwilio(u, PATH, recordingParams(sid('CA')));
      assert.equal(r.statusCode, 404, r.body);
      assert.equal(r.json().error.code, 'not_found');
    });
  });
});
