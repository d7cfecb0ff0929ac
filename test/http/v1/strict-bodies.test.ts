import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { ROUTE_BODY_LIMIT_BYTES } from '../../../src/http/routes/route.ts';
import { ADMIN_KEY, type TestApp, testApp } from '../../support/app.ts';
import { describeStores, type TestStore } from '../../support/stores.ts';

/** A JSON Schema as the OpenAPI document gives it, as far as this test reads it. */
interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
}

const UNKNOWN = 'surpriseField';
const A = '+14155550123';
const B = '+14155550187';
const C = '+14155550145';

/**
 * Where in `value` an unknown field can be put that its schema must refuse: each object whose
 * schema names its fields, as JSON pointers into the body ('' for the body itself). Free-form maps
 * (tags, metadata: no `properties`) are left out; each one that names its fields must say
 * `additionalProperties: false`, or this fails naming it.
 */
function strictObjects(schema: Schema, value: unknown, at: string, where: string): string[] {
  const branches = schema.anyOf ?? schema.oneOf;
  if (branches) {
    const kind = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
    return branches
      .filter((b) => b.type === kind || (b.anyOf ?? b.oneOf))
      .flatMap((b) => strictObjects(b, value, at, where));
  }
  if (Array.isArray(value) && schema.items) {
    return value.flatMap((item, i) => strictObjects(schema.items as Schema, item, `${at}/${i}`, where));
  }
  if (typeof value !== 'object' || value === null || !schema.properties) return [];
  assert.equal(
    schema.additionalProperties,
    false,
    `${where}: the object at "${at || '/'}" names its fields but takes any other`,
  );
  const inner = Object.entries(value).flatMap(([key, v]) => {
    const property = schema.properties?.[key];
    return property ? strictObjects(property, v, `${at}/${key}`, where) : [];
  });
  return [at, ...inner];
}

/** `body` with the unknown field added to the object at `pointer`. */
function withUnknown(body: unknown, pointer: string): unknown {
  const copy = structuredClone(body);
  let target = copy as Record<string, unknown>;
  for (const part of pointer.split('/').slice(1)) target = target[part] as Record<string, unknown>;
  target[UNKNOWN] = 1;
  return copy;
}

/** Every row of every table, so that a refusal can be shown to have written nothing. */
async function everything(t: TestApp, store: TestStore): Promise<Record<string, string[]>> {
  await t.veil.interactions.flush();
  const db = t.veil.store.db;
  const tables = (await db.introspection.getTables()).filter(
    (table) => !table.isView && (store.schema === undefined || table.schema === store.schema),
  );
  assert.ok(tables.some((table) => table.name === 'sessions'));
  const rows: Record<string, string[]> = {};
  for (const table of tables) {
    const all = await db
      .selectFrom(table.name as 'sessions')
      .selectAll()
      .execute();
    rows[table.name] = all.map((row) => JSON.stringify(row)).sort();
  }
  return rows;
}

/**
 * Strict bodies: every route of the OpenAPI document that takes a JSON body refuses a field it does
 * not know, at the top and in every object nested in it, with 400 invalid_request naming the field,
 * and writes nothing. The routes are read from /docs/json, so a new route without a body here fails.
 */
describeStores('unknown body fields on every route', (store) => {
  let t: TestApp;
  let sessionId: string;
  let participantId: string;
  let proxyOfA: string;
  let numberId: string;
  before(async () => {
    t = await testApp(store());
    for (const number of ['+14155550150', '+14155550151', '+14155550152']) {
      const r = await t.api('POST', '/v1/numbers', { number, provider: 'sim' });
      assert.equal(r.statusCode, 201, r.body);
      numberId = r.json().id;
    }
    const s = await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] });
    assert.equal(s.statusCode, 201, s.body);
    sessionId = s.json().id;
    participantId = s.json().participants[0].id;
    proxyOfA = s.json().participants[0].proxyNumber;
  });
  after(() => t.close());

  /** A body each route accepts (some of them several, to reach each shape of a union). */
  const validBodies = (): Record<string, unknown[]> => ({
    'post /v1/numbers': [{ number: '+14155550170', provider: 'sim', tags: { city: 'sf' } }],
    'post /v1/numbers/import': [
      [{ number: '+14155550171', provider: 'sim' }],
      { provider: 'sim', country: 'US', count: 1 },
    ],
    'patch /v1/numbers/{id}': [{ maxSessions: 5 }],
    'post /v1/sessions': [
      {
        participants: [{ number: C }, { number: '+14155550146', label: 'courier' }],
        rejectMessage: { text: 'not now' },
        metadata: { order: { id: 1 } },
      },
    ],
    'patch /v1/sessions/{id}': [{ ttlSeconds: 60, rejectMessage: { text: 'gone' } }],
    'post /v1/sessions/{id}/participants': [{ number: C }],
    'put /v1/sessions/{id}/participants/{pid}': [{ number: C, label: 'courier' }],
    'patch /v1/sessions/{id}/participants/{pid}': [{ label: 'courier' }],
    'post /v1/route': [{ from: A, to: proxyOfA, channel: 'voice' }],
    'post /v1/keys': [{ name: 'k', scopes: ['read'] }],
    'post /v1/tenants': [{ name: 'acme' }],
    'post /v1/webhook-endpoints': [{ url: 'https://app.example/hooks' }],
    'post /v1/blocklist': [{ number: '+14155550199', reason: 'fraud' }],
    'patch /v1/providers/{name}': [{ enabled: true }],
  });
  const url = (path: string) =>
    path
      .replace('/numbers/{id}', `/numbers/${numberId}`)
      .replace('/sessions/{id}', `/sessions/${sessionId}`)
      .replace('{pid}', participantId)
      .replace('{name}', 'sim');

  it('refuses an unknown field anywhere in any body with 400 naming it, and writes nothing', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json();
    const bodies = validBodies();
    let probes = 0;
    const seen: string[] = [];
    for (const [path, operations] of Object.entries<Record<string, { requestBody?: unknown }>>(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const requestBody = operation.requestBody as
          | { content: Record<string, { schema: Schema }> }
          | undefined;
        if (!requestBody) continue;
        const route = `${method} ${path}`;
        seen.push(route);
        const schema = requestBody.content['application/json']?.schema;
        assert.ok(schema, `${route} takes a body that is not JSON`);
        const valid = bodies[route];
        assert.ok(valid, `${route} takes a body: give this test one it accepts`);
        for (const body of valid) {
          for (const pointer of strictObjects(schema, body, '', route)) {
            const field: string = `${pointer.slice(1)}${pointer ? '/' : ''}${UNKNOWN}`;
            const before = await everything(t, store());
            const r = await t.api(method.toUpperCase() as 'POST', url(path), withUnknown(body, pointer));
            const where: string = `${route} with ${field}: ${r.statusCode} ${r.body}`;
            assert.equal(r.statusCode, 400, where);
            const { error } = r.json();
            assert.equal(error.code, 'invalid_request', where);
            assert.equal(error.field, field, where);
            assert.ok(error.message.includes(field), where);
            assert.deepEqual(await everything(t, store()), before, `a refusal wrote: ${where}`);
            probes++;
          }
        }
      }
    }
    assert.deepEqual(seen.sort(), Object.keys(bodies).sort(), 'routes with a body and this test disagree');
    // Each route at its top, and the objects nested in them (participants, announcements, purchases).
    assert.ok(probes >= 18, `only ${probes} probes`);
  });

  it('refuses a route request over 64 KiB with 413 and logs nothing; one just under it is routed', async () => {
    const routed = (body: string) => ({ from: A, to: proxyOfA, channel: 'sms', body });
    // A text of escaped characters (6 bytes each in JSON), as long as the schema allows.
    const largest = JSON.stringify(routed('\u0007'.repeat(1600)));
    assert.ok(largest.length < ROUTE_BODY_LIMIT_BYTES, `${largest.length}`);
    const send = (payload: string) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/route',
        headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
        payload,
      });
    assert.equal((await send(largest)).json().action, 'forward');
    const before = await everything(t, store());
    const over = JSON.stringify({ ...routed('hi'), padding: 'x'.repeat(ROUTE_BODY_LIMIT_BYTES) });
    const r = await send(over);
    assert.equal(r.statusCode, 413, r.body);
    assert.equal(r.json().error.code, 'payload_too_large');
    assert.deepEqual(await everything(t, store()), before);
  });
});
