import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import twilio from 'twilio';
import { signSimRequest } from '../../src/providers/sim/sim-adapter.ts';
import { ADMIN_KEY, PUBLIC_URL, SIM_SECRET, type TestApp, TWILIO_TOKEN, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

/**
 * Hostile bodies at every route that takes one, as an attacker would send them: for each route,
 * fast-check bodies built from the route's own field names with any JSON values, and any JSON at
 * all. However bad the body, the server answers within a bound, never with a 5xx, and a 4xx
 * leaves the database exactly as it was. Webhooks are signed, so that the bodies get past the
 * signature to the parsing behind it. Then every route of the API document (`/docs/json`, so a
 * new route is never missed), with hostile path ids, query strings and bodies.
 *
 * FC_SEED and FC_RUNS replay or widen a run.
 */

const RUNS = Number(process.env.FC_RUNS) || 25;
const ANSWER_WITHIN_MS = 5_000;
const POOL = ['+14155550150', '+14155550151', '+14155550152', '+12125550150'];
const A = '+14155550123';
const B = '+14155550187';

/** Strings an attacker would try where a field is expected: numbers in every form, and junk. */
const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom(A, B, ...POOL, '+1 (415) 555-0100', '00447700900123', '+', '', ' ', '\u0000', '𝟏𝟐𝟑'),
  fc.stringMatching(/^\+?[0-9 ()-]{0,20}$/),
);
const hostileValue = fc.oneof(hostileString, fc.jsonValue({ maxDepth: 12 }));

/** A body made of the route's own fields (some of them, any values) or any JSON at all. */
const bodyOf = (fields: readonly string[]) =>
  fc.oneof(
    fc.dictionary(fc.constantFrom(...fields), hostileValue, { maxKeys: fields.length }),
    fc.record({ participants: fc.array(fc.dictionary(fc.constantFrom('number', 'label'), hostileValue)) }),
    fc.jsonValue({ maxDepth: 12 }),
  );

/** An operation of the OpenAPI document, as far as this test reads it. */
interface Operation {
  parameters?: { in: string; name: string }[];
  requestBody?: { content: Record<string, { schema?: { properties?: Record<string, unknown> } }> };
}

interface Target {
  method: 'POST' | 'PATCH';
  url: string;
  body: fc.Arbitrary<unknown>;
  /** How the body travels: the API's JSON, a signed simulator request or a signed Twilio form. */
  as: 'api' | 'sim' | 'twilio';
}

describeStores('hostile bodies at every route', (store) => {
  let t: TestApp;
  let sessionId: string;
  let numberId: string;
  before(async () => {
    t = await testApp(store());
    for (const number of POOL) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'sim' });
      assert.equal(r.statusCode, 201, r.body);
      numberId = r.json().id;
    }
    const s = await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] });
    assert.equal(s.statusCode, 201, s.body);
    sessionId = s.json().id;
  });
  after(() => t.close());

  const sessionFields = ['externalId', 'mode', 'ttlSeconds', 'expiresAt', 'ttlMode', 'record', 'channels'];
  const targets = (): Target[] => [
    {
      method: 'POST',
      url: '/v1/sessions',
      as: 'api',
      body: bodyOf([...sessionFields, 'maxCallSeconds', 'geoMatch', 'metadata', 'participants']),
    },
    { method: 'PATCH', url: `/v1/sessions/${sessionId}`, as: 'api', body: bodyOf(sessionFields) },
    {
      method: 'POST',
      url: `/v1/sessions/${sessionId}/participants`,
      as: 'api',
      body: bodyOf(['number', 'label', 'revealNumber', 'canInitiate']),
    },
    { method: 'POST', url: '/v1/route', as: 'api', body: bodyOf(['from', 'to', 'channel', 'body', 'media']) },
    {
      method: 'POST',
      url: '/v1/numbers',
      as: 'api',
      body: bodyOf(['number', 'provider', 'capabilities', 'tags', 'maxSessions']),
    },
    { method: 'POST', url: '/v1/numbers/import', as: 'api', body: bodyOf(['numbers', 'provider']) },
    {
      method: 'PATCH',
      url: `/v1/numbers/${numberId}`,
      as: 'api',
      body: bodyOf(['status', 'tags', 'maxSessions', 'capabilities']),
    },
    { method: 'POST', url: '/v1/keys', as: 'api', body: bodyOf(['name', 'scopes', 'tenantId']) },
    { method: 'POST', url: '/v1/blocklist', as: 'api', body: bodyOf(['number', 'reason']) },
    { method: 'POST', url: '/webhooks/sim/voice', as: 'sim', body: bodyOf(['from', 'to', 'callId']) },
    {
      method: 'POST',
      url: '/webhooks/sim/status',
      as: 'sim',
      body: bodyOf(['callId', 'status', 'durationSeconds', 'from', 'to', 'channel']),
    },
    {
      method: 'POST',
      url: '/webhooks/sim/recording',
      as: 'sim',
      body: bodyOf(['callId', 'status', 'url', 'durationSeconds']),
    },
    { method: 'POST', url: '/webhooks/sim/sms', as: 'sim', body: bodyOf(['from', 'to', 'body', 'media']) },
    {
      method: 'POST',
      url: '/webhooks/twilio/recording',
      as: 'twilio',
      body: fc.dictionary(
        fc.constantFrom('CallSid', 'RecordingSid', 'RecordingUrl', 'RecordingStatus', 'RecordingDuration'),
        hostileString,
      ),
    },
    {
      method: 'POST',
      url: '/webhooks/twilio/sms',
      as: 'twilio',
      body: fc.dictionary(
        fc.constantFrom(
          'From',
          'To',
          'MessageSid',
          'Body',
          'NumMedia',
          'MediaUrl0',
          'MediaUrl1',
          'MediaUrl9',
        ),
        hostileString,
      ),
    },
    {
      method: 'POST',
      url: '/webhooks/twilio/voice',
      as: 'twilio',
      body: fc.dictionary(fc.constantFrom('From', 'To', 'CallSid', 'AccountSid', 'Body'), hostileString),
    },
    {
      method: 'POST',
      url: '/webhooks/twilio/status',
      as: 'twilio',
      body: fc.dictionary(
        fc.constantFrom('CallSid', 'CallStatus', 'CallDuration', 'From', 'To', 'MessageSid', 'MessageStatus'),
        hostileString,
      ),
    },
  ];

  function send(target: Target, body: unknown) {
    if (target.as === 'twilio') {
      const params = body as Record<string, string>;
      return t.app.inject({
        method: target.method,
        url: target.url,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-twilio-signature': twilio.getExpectedTwilioSignature(
            TWILIO_TOKEN,
            PUBLIC_URL + target.url,
            params,
          ),
        },
        payload: new URLSearchParams(params).toString(),
      });
    }
    const payload = JSON.stringify(body);
    return t.app.inject({
      method: target.method,
      url: target.url,
      headers: {
        'content-type': 'application/json',
        ...(target.as === 'api'
          ? { authorization: `Bearer ${ADMIN_KEY}` }
          : signSimRequest(SIM_SECRET, payload)),
      },
      payload,
    });
  }

  /** Everything a request could change, once the interaction log has written what it holds. */
  async function snapshot() {
    await t.veil.interactions.flush();
    const db = t.veil.store.db;
    return {
      sessions: await db.selectFrom('sessions').selectAll().orderBy('id').execute(),
      participants: await db.selectFrom('participants').selectAll().orderBy('id').execute(),
      numbers: await db.selectFrom('numbers').selectAll().orderBy('id').execute(),
      keys: await db.selectFrom('api_keys').selectAll().orderBy('id').execute(),
      interactions: await db.selectFrom('interactions').selectAll().orderBy('id').execute(),
      events: await db.selectFrom('events').select('id').orderBy('id').execute(),
      blocklist: await db.selectFrom('blocklist').selectAll().orderBy('number_index').execute(),
      tenants: await db.selectFrom('tenants').selectAll().orderBy('id').execute(),
      endpoints: await db.selectFrom('webhook_endpoints').selectAll().orderBy('id').execute(),
      audit: await db.selectFrom('audit').select('id').orderBy('id').execute(),
      settings: await db.selectFrom('settings').selectAll().orderBy('key').execute(),
    };
  }

  /** Sends one request, answered within the bound; never 5xx, and a 4xx leaves everything as it was. */
  async function probe(where: string, send: () => Promise<{ statusCode: number; body: string }>) {
    const before = await snapshot();
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      send(),
      new Promise<never>((_, fail) => {
        timer = setTimeout(() => fail(new Error(`no answer in time: ${where}`)), ANSWER_WITHIN_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    const what = `${where} → ${r.statusCode} ${r.body.slice(0, 300)}`;
    assert.ok(r.statusCode < 500, what);
    if (r.statusCode >= 400) assert.deepEqual(await snapshot(), before, `a refusal changed state: ${what}`);
  }

  it('answers every body within the bound, never 5xx, and a 4xx changes nothing', async () => {
    for (const target of targets()) {
      await fc.assert(
        fc.asyncProperty(target.body, async (body) => {
          const before = await snapshot();
          let timer: NodeJS.Timeout | undefined;
          const r = await Promise.race([
            send(target, body),
            new Promise<never>((_, fail) => {
              timer = setTimeout(() => fail(new Error('no answer in time')), ANSWER_WITHIN_MS);
            }),
          ]).finally(() => clearTimeout(timer));
          const where = `${target.method} ${target.url} → ${r.statusCode} ${r.body.slice(0, 300)}`;
          assert.ok(r.statusCode < 500, where);
          if (r.statusCode >= 400)
            assert.deepEqual(await snapshot(), before, `a refusal changed state: ${where}`);
        }),
        { numRuns: RUNS, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}) },
      );
    }
  });

  it('answers hostile bodies, queries and ids at every route of the API document the same way', async (context) => {
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json() as {
      paths: Record<string, Record<string, Operation>>;
    };
    let routes = 0;
    let probes = 0;
    for (const [path, operations] of Object.entries(doc.paths)) {
      if (!path.startsWith('/v1/')) continue;
      for (const [method, operation] of Object.entries(operations)) {
        routes++;
        const queryNames = (operation.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
        const schema = operation.requestBody?.content['application/json']?.schema;
        const bodyFields = Object.keys(schema?.properties ?? {});
        const ids = fc.oneof(fc.constantFrom(sessionId, numberId, 'sim'), hostileString);
        const request = fc.record({
          ids: fc.array(ids, { minLength: 3, maxLength: 3 }),
          query: fc.dictionary(fc.constantFrom('x', ...queryNames), hostileString, { maxKeys: 4 }),
          body: schema ? bodyOf(bodyFields.length > 0 ? bodyFields : ['x']) : fc.constant(undefined),
        });
        await fc.assert(
          fc.asyncProperty(request, async ({ ids: [a, b, c], query, body }) => {
            let n = 0;
            const url = path.replace(/\{[^}]+\}/g, () => encodeURIComponent([a, b, c][n++] ?? ''));
            const search = new URLSearchParams(query as Record<string, string>).toString();
            const where = `${method.toUpperCase()} ${url}${search ? `?${search}` : ''}`;
            probes++;
            await probe(where, () =>
              t.app.inject({
                method: method.toUpperCase() as 'GET',
                url: `${url}${search ? `?${search}` : ''}`,
                headers: {
                  authorization: `Bearer ${ADMIN_KEY}`,
                  ...(body === undefined ? {} : { 'content-type': 'application/json' }),
                },
                ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
              }),
            );
          }),
          { numRuns: RUNS, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}) },
        );
      }
    }
    assert.ok(routes >= 30, `only ${routes} routes in the API document`);
    assert.ok(probes >= routes * RUNS, `${probes} probes over ${routes} routes`);
    context.diagnostic(`${probes} hostile requests over ${routes} routes: none 5xx, no 4xx wrote anything`);
  });
});
