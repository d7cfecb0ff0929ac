import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { ADMIN_KEY, type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

const SESSION = { participants: [{ number: '+14155550131' }, { number: '+14155550132' }] };
/** DESIGN §2: bodies up to 1 MiB are accepted. */
const ONE_MIB = 1024 * 1024;
const TABLES = ['sessions', 'participants', 'numbers', 'interactions', 'api_keys', 'events'] as const;

/** Asserts the one error shape of DESIGN §2: {"error":{"code","message"}} and an optional field. */
function assertError(r: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(r.statusCode, status, r.body);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const body = r.json();
  assert.deepEqual(Object.keys(body), ['error']);
  const keys = Object.keys(body.error);
  assert.deepEqual(keys.slice(0, 2), ['code', 'message'], r.body);
  assert.ok(keys.length === 2 || (keys.length === 3 && keys[2] === 'field'), r.body);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  if (keys.length === 3) assert.equal(typeof body.error.field, 'string');
}

describeStores('error responses', (store) => {
  let t: TestApp;
  let readKey: string;

  before(async () => {
    t = await testApp(store());
    for (const number of ['+14155550400', '+14155550401']) {
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
    }
    const k = await t.api('POST', '/v1/keys', { name: 'reader', scopes: ['read'] });
    assert.equal(k.statusCode, 201, k.body);
    readKey = k.json().key;
    // A session exists, so that "nothing written" is measured against a database in use.
    assert.equal((await t.api('POST', '/v1/sessions', SESSION)).statusCode, 201);
  });
  after(async () => {
    await t?.close();
  });

  async function rowCounts(): Promise<Record<string, number>> {
    await t.veil.interactions.flush();
    const counts: Record<string, number> = {};
    for (const table of TABLES) {
      const row = await t.veil.store.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      counts[table] = Number(row.n);
    }
    return counts;
  }

  /** Runs `send`, checks the error it gets, and that the database did not change. */
  async function assertRefused(
    send: () => Promise<LightMyRequestResponse>,
    status: number,
    code: string,
  ): Promise<LightMyRequestResponse> {
    const before = await rowCounts();
    const r = await send();
    assertError(r, status, code);
    assert.deepEqual(await rowCounts(), before, 'an error response wrote to the database');
    return r;
  }

  const postSession = (payload: string | Buffer, contentType: string, key = ADMIN_KEY) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/sessions',
      headers: { authorization: `Bearer ${key}`, 'content-type': contentType },
      payload,
    });

  describe('unknown routes', () => {
    it('answer 404 not_found', async () => {
      await assertRefused(() => t.app.inject({ method: 'GET', url: '/nope' }), 404, 'not_found');
      await assertRefused(() => t.api('GET', '/v1/nope'), 404, 'not_found');
      await assertRefused(() => t.api('POST', '/v1/sessions/ses_x/nope', {}), 404, 'not_found');
      await assertRefused(() => t.api('PUT', '/v1/sessions', SESSION), 404, 'not_found');
      await assertRefused(
        () => t.app.inject({ method: 'POST', url: '/webhooks/nope/voice' }),
        404,
        'not_found',
      );
    });

    const assertNoEcho = async (path: string) => {
      const r = await assertRefused(() => t.api('GET', path), 404, 'not_found');
      assert.ok(!r.body.includes('4155550131'), `${path} → ${r.body}`);
    };

    it('do not echo a number given in the path', async () => {
      for (const path of ['/nope/+14155550131', '/nope/14155550131', '/nope/%2B14155550131'])
        await assertNoEcho(path);
    });

    it('do not echo a number URL-encoded with a lower-case %2b', async () => {
      await assertNoEcho('/nope/%2b14155550131');
    });

    it('do not echo a number given as a field name, in the message or in `field`', async () => {
      const r = await postSession(JSON.stringify({ ...SESSION, '+14155550131': 'x' }), 'application/json');
      assertError(r, 400, 'invalid_request');
      assert.ok(!r.body.includes('14155550131'), r.body);
      assert.match(r.json().error.field, /^\+1415\*+31$/);
    });
  });

  describe('bodies the API cannot take', () => {
    it('a text holding NUL (U+0000), anywhere: 400 naming the field, nothing written', async () => {
      // PostgreSQL's text cannot hold it: the write failed with a 500 before (found by the fuzz test).
      for (const [path, body, field] of [
        ['/v1/blocklist', { number: '+14155550123', reason: '\u0000' }, 'reason'],
        ['/v1/sessions', { ...SESSION, externalId: 'order\u00001' }, 'externalId'],
        ['/v1/sessions', { ...SESSION, metadata: { note: { deep: 'a\u0000b' } } }, 'metadata/note/deep'],
        ['/v1/sessions', { ...SESSION, metadata: { 'k\u0000': 1 } }, 'metadata/k\u0000'],
      ] as const) {
        const r = await assertRefused(() => t.api('POST', path, body), 400, 'invalid_request');
        assert.equal(r.json().error.field, field);
        assert.match(r.json().error.message, /NUL/);
      }
      const query = await t.api('GET', '/v1/sessions?externalId=a%00b');
      assertError(query, 400, 'invalid_request');
    });

    it('over 1 MiB: 413 payload_too_large', async () => {
      const big = JSON.stringify({ ...SESSION, metadata: { pad: 'x'.repeat(ONE_MIB) } });
      assert.ok(Buffer.byteLength(big) > ONE_MIB);
      await assertRefused(() => postSession(big, 'application/json'), 413, 'payload_too_large');
    });

    it('just under 1 MiB is accepted as far as the size goes', async () => {
      // The control for the case above: the limit is 1 MiB, not less.
      const padding = ONE_MIB - 1000;
      const body = JSON.stringify({ ...SESSION, colour: 'x'.repeat(padding) });
      const r = await postSession(body, 'application/json');
      assertError(r, 400, 'invalid_request');
      assert.equal(r.json().error.field, 'colour');
    });

    it('text/plain: 415 unsupported_media_type', async () => {
      await assertRefused(
        () => postSession(JSON.stringify(SESSION), 'text/plain'),
        415,
        'unsupported_media_type',
      );
    });

    it('another media type, or none: 415 unsupported_media_type', async () => {
      await assertRefused(
        () => postSession('participants=x', 'application/x-www-form-urlencoded'),
        415,
        'unsupported_media_type',
      );
      await assertRefused(() => postSession('<session/>', 'application/xml'), 415, 'unsupported_media_type');
      await assertRefused(
        () =>
          t.app.inject({
            method: 'POST',
            url: '/v1/sessions',
            headers: { authorization: `Bearer ${ADMIN_KEY}` },
            payload: Buffer.from(JSON.stringify(SESSION)),
          }),
        415,
        'unsupported_media_type',
      );
    });

    it('invalid JSON: 400 invalid_request', async () => {
      await assertRefused(
        () => postSession('{"participants": [{"number": "+14155550131"}', 'application/json'),
        400,
        'invalid_request',
      );
      await assertRefused(() => postSession('', 'application/json'), 400, 'invalid_request');
    });

    it('a body that fails validation: 400 invalid_request naming the field', async () => {
      const r = await assertRefused(
        () => t.api('POST', '/v1/sessions', { ...SESSION, ttlSeconds: 'soon' }),
        400,
        'invalid_request',
      );
      assert.equal(r.json().error.field, 'ttlSeconds');
    });
  });

  describe('validation errors name the field and what it allows', () => {
    const cases: [string, string, unknown, string, string][] = [
      [
        'POST',
        '/v1/route',
        { from: '+14155550131', to: '+14155550400', channel: 'fax' },
        'channel',
        'body/channel must be one of voice, sms',
      ],
      [
        'POST',
        '/v1/sessions',
        { ...SESSION, mode: 'private' },
        'mode',
        'body/mode must be one of per-participant, shared, dedicated',
      ],
      [
        'POST',
        '/v1/sessions',
        { ...SESSION, channels: ['voice', 'fax'] },
        'channels/1',
        'body/channels/1 must be one of voice, sms',
      ],
      [
        'POST',
        '/v1/sessions',
        { ...SESSION, ttlMode: 'forever' },
        'ttlMode',
        'body/ttlMode must be one of fixed, sliding',
      ],
      [
        'POST',
        '/v1/sessions',
        { ...SESSION, geoMatch: 'city' },
        'geoMatch',
        'body/geoMatch must be one of region, region-strict, country',
      ],
      [
        'GET',
        '/v1/sessions?status=gone',
        undefined,
        'status',
        'querystring/status must be one of open, closed, expired',
      ],
      [
        'GET',
        '/v1/numbers?status=gone',
        undefined,
        'status',
        'querystring/status must be one of active, draining, retired',
      ],
      [
        'POST',
        '/v1/numbers',
        { number: '+14155550402', provider: 'carrier-pigeon' },
        'provider',
        'body/provider must be one of sim, twilio, vonage, plivo, telnyx, aliyun, sip',
      ],
      [
        'POST',
        '/v1/numbers',
        { number: '+14155550402', provider: 'sim', maxSessions: 'x' },
        'maxSessions',
        'body/maxSessions must be integer or null',
      ],
      [
        'POST',
        '/v1/keys',
        { name: 'k', scopes: ['root'] },
        'scopes/0',
        'body/scopes/0 must be one of admin, sessions, route, read',
      ],
      [
        'POST',
        '/v1/sessions',
        { ...SESSION, sticky: 'always' },
        'sticky',
        'body/sticky must be one of none, prefer, avoid',
      ],
      [
        'POST',
        '/v1/sessions',
        { ...SESSION, extensionFallback: 'yes' },
        'extensionFallback',
        'body/extensionFallback must be boolean',
      ],
      ['POST', '/v1/sessions', { mode: 'shared' }, 'participants', 'body/participants is required'],
    ];
    for (const [method, url, body, field, message] of cases) {
      it(`${method} ${url} ${JSON.stringify(body ?? {})}`, async () => {
        const r = await assertRefused(() => t.api(method as 'GET', url, body), 400, 'invalid_request');
        assert.equal(r.json().error.field, field);
        assert.equal(r.json().error.message, message);
      });
    }

    it('a session takes exactly two participants, a dedicated one its owner alone', async () => {
      const [a, b] = SESSION.participants;
      const cases = [
        [{ participants: [a] }, /^a per-participant session takes exactly two participants$/],
        [
          { participants: [a, b, { number: '+14155550133' }] },
          /^body\/participants must NOT have more than 2 items$/,
        ],
        [
          { mode: 'dedicated', participants: [a, b] },
          /^a dedicated session takes exactly one participant, the owner$/,
        ],
        [{ mode: 'dedicated', participants: [] }, /^body\/participants must NOT have fewer than 1 items$/],
      ] as const;
      for (const [body, message] of cases) {
        const r = await assertRefused(() => t.api('POST', '/v1/sessions', body), 400, 'invalid_request');
        assert.equal(r.json().error.field, 'participants');
        assert.match(r.json().error.message, message);
      }
    });
  });

  describe('keys', () => {
    it('no key, a malformed header or an unknown key: 401 unauthorized', async () => {
      await assertRefused(
        () => t.app.inject({ method: 'POST', url: '/v1/sessions', payload: SESSION }),
        401,
        'unauthorized',
      );
      await assertRefused(
        () =>
          t.app.inject({
            method: 'POST',
            url: '/v1/sessions',
            headers: { authorization: ADMIN_KEY },
            payload: SESSION,
          }),
        401,
        'unauthorized',
      );
      await assertRefused(
        () =>
          t.app.inject({
            method: 'POST',
            url: '/v1/sessions',
            headers: { authorization: `Basic ${Buffer.from(`x:${ADMIN_KEY}`).toString('base64')}` },
            payload: SESSION,
          }),
        401,
        'unauthorized',
      );
      await assertRefused(() => t.api('POST', '/v1/sessions', SESSION, 'not-a-key'), 401, 'unauthorized');
      await assertRefused(() => t.api('GET', '/v1/sessions', undefined, ''), 401, 'unauthorized');
    });

    it('a key without the scope: 403 forbidden', async () => {
      await assertRefused(() => t.api('POST', '/v1/sessions', SESSION, readKey), 403, 'forbidden');
      await assertRefused(
        () => t.api('POST', '/v1/numbers', { number: '+14155550402', provider: 'sim' }, readKey),
        403,
        'forbidden',
      );
      await assertRefused(
        () => t.api('POST', '/v1/keys', { name: 'escalate', scopes: ['admin'] }, readKey),
        403,
        'forbidden',
      );
      // The control: the same key may read.
      assert.equal((await t.api('GET', '/v1/sessions', undefined, readKey)).statusCode, 200);
    });

    it('are checked before the body is read', async () => {
      // An unauthenticated client learns nothing about the body it sent.
      await assertRefused(
        () =>
          t.app.inject({
            method: 'POST',
            url: '/v1/sessions',
            headers: { 'content-type': 'application/json' },
            payload: '{not json',
          }),
        401,
        'unauthorized',
      );
    });
  });
});
