import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { MAX_TTL_SECONDS, METADATA_LIMITS } from '../../../src/domain/session.ts';
import { ADMIN_KEY, type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

const POOL = ['+14155550150', '+14155550151', '+14155550152', '+14155550153'];

/** `{"a":{"a":…{"a":1}}}` with `levels` objects, as JSON text (JSON.stringify would recurse). */
const nested = (levels: number) => `${'{"a":'.repeat(levels - 1)}{"a":1}${'}'.repeat(levels - 1)}`;
/** An array nested `levels` deep inside a metadata object: `{"a":[[…[1]…]]}`. */
const nestedArray = (levels: number) => `{"a":${'['.repeat(levels)}1${']'.repeat(levels)}}`;

/**
 * Bounds on what a request may carry: metadata nested thousands deep, or megabytes of it, is
 * refused at the door (400 naming the limit) before a thread, the fingerprint or the database
 * walks it, and a session cannot be given a life past the one-year cap by expiresAt either.
 */
describeStores('bounded session input', (store) => {
  let t: TestApp;
  before(async () => {
    t = await testApp(store());
    for (const number of POOL)
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
  });
  after(() => t.close());

  // Two new people for each session, so that no one runs out of proxies in the small pool.
  let people = 160;
  const participants = () => [
    { number: `+1415555${String(people++).padStart(4, '0')}` },
    { number: `+1415555${String(people++).padStart(4, '0')}` },
  ];
  const sessionRows = async () =>
    Number(
      (
        await t.veil.store.db
          .selectFrom('sessions')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  /** Sends a JSON text as it is, so a body too deep for JSON.stringify can be sent at all. */
  const send = (method: 'POST' | 'PATCH', url: string, json: string) =>
    t.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      payload: json,
    });
  const createWith = (metadataJson: string, externalId?: string) =>
    send(
      'POST',
      '/v1/sessions',
      `{${externalId ? `"externalId":"${externalId}",` : ''}"participants":${JSON.stringify(participants())},"metadata":${metadataJson}}`,
    );

  /** Asserts a 400 on metadata that names the limit, answered within a second. */
  async function refusedFast(request: () => ReturnType<typeof send>, limit: RegExp) {
    const started = performance.now();
    const r = await request();
    const took = performance.now() - started;
    assert.equal(r.statusCode, 400, r.body);
    const { error } = r.json();
    assert.equal(error.code, 'invalid_request');
    assert.equal(error.field, 'metadata');
    assert.match(error.message, limit);
    assert.ok(took < 1000, `answered in ${Math.round(took)} ms`);
  }

  it(`takes metadata ${METADATA_LIMITS.depth} levels deep, objects or arrays`, async () => {
    const r = await createWith(nested(METADATA_LIMITS.depth), 'deep-enough');
    assert.equal(r.statusCode, 201, r.body);
    let level = r.json().metadata;
    for (let i = 1; i < METADATA_LIMITS.depth; i++) level = level.a;
    assert.deepEqual(level, { a: 1 });
    const arrays = await createWith(nestedArray(METADATA_LIMITS.depth - 1), 'arrays-deep-enough');
    assert.equal(arrays.statusCode, 201, arrays.body);
  });

  it('refuses metadata one level deeper, or thousands deep, with 400 naming the limit, writing nothing', async () => {
    const before = await sessionRows();
    const limit = new RegExp(`at most ${METADATA_LIMITS.depth} levels deep`);
    for (const json of [
      nested(METADATA_LIMITS.depth + 1),
      nestedArray(METADATA_LIMITS.depth),
      nested(2_500),
      nested(100_000),
      nestedArray(100_000),
    ]) {
      await refusedFast(() => createWith(json), limit);
    }
    assert.equal(await sessionRows(), before);
  });

  it(`refuses metadata over ${METADATA_LIMITS.bytes} bytes as JSON, and takes it at the limit`, async () => {
    const before = await sessionRows();
    const filler = (bytes: number) => `{"note":"${'x'.repeat(bytes - '{"note":""}'.length)}"}`;
    await refusedFast(() => createWith(filler(METADATA_LIMITS.bytes + 1)), /at most 16384 bytes/);
    assert.equal(await sessionRows(), before);
    const r = await createWith(filler(METADATA_LIMITS.bytes), 'at-the-size-limit');
    assert.equal(r.statusCode, 201, r.body);
  });

  it('refuses the same on PATCH, leaving the session as it was', async () => {
    const created = await t.api('POST', '/v1/sessions', {
      participants: participants(),
      metadata: { order: 'o-1' },
    });
    assert.equal(created.statusCode, 201, created.body);
    const url = `/v1/sessions/${created.json().id}`;
    await refusedFast(() => send('PATCH', url, `{"metadata":${nested(3_000)}}`), /levels deep/);
    await refusedFast(
      () => send('PATCH', url, `{"metadata":{"note":"${'x'.repeat(METADATA_LIMITS.bytes)}"}}`),
      /bytes/,
    );
    assert.deepEqual((await t.api('GET', url)).json().metadata, { order: 'o-1' });
  });

  it('says the limits in the OpenAPI document', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json();
    const body = doc.paths['/v1/sessions'].post.requestBody.content['application/json'].schema;
    assert.match(body.properties.metadata.description, /at most 8 levels deep and 16384 bytes/);
    assert.match(body.properties.expiresAt.description, /at most a year from now/);
  });

  it('refuses an expiresAt past the one-year cap, as ttlSeconds is, on create and on renewal', async () => {
    const before = await sessionRows();
    const tooLate = new Date(t.clock.now + (MAX_TTL_SECONDS + 60) * 1000).toISOString();
    for (const expiresAt of ['9999-12-31T23:59:59Z', tooLate]) {
      const r = await t.api('POST', '/v1/sessions', { participants: participants(), expiresAt });
      assert.equal(r.statusCode, 400, r.body);
      assert.equal(r.json().error.field, 'expiresAt');
      assert.match(r.json().error.message, /one year/);
    }
    assert.equal(await sessionRows(), before);

    const inAYear = new Date(t.clock.now + MAX_TTL_SECONDS * 1000).toISOString();
    const created = await t.api('POST', '/v1/sessions', { participants: participants(), expiresAt: inAYear });
    assert.equal(created.statusCode, 201, created.body);
    const url = `/v1/sessions/${created.json().id}`;
    const renewed = await t.api('PATCH', url, { expiresAt: '9999-12-31T23:59:59Z' });
    assert.equal(renewed.statusCode, 400, renewed.body);
    assert.equal(renewed.json().error.field, 'expiresAt');
    assert.equal((await t.api('GET', url)).json().expiresAt, inAYear);
  });
});
