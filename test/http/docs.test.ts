import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { HTTPMethods } from 'fastify';
import { type TestApp, testApp } from '../support/app.ts';
import { storeKinds, type TestStore } from '../support/stores.ts';

/** Every /v1 route the server has: the document must list each, and no other. */
const V1_ROUTES: [string, string][] = [
  ['POST', '/v1/numbers'],
  ['GET', '/v1/numbers'],
  ['GET', '/v1/pool'],
  ['POST', '/v1/numbers/import'],
  ['GET', '/v1/numbers/:id'],
  ['PATCH', '/v1/numbers/:id'],
  ['DELETE', '/v1/numbers/:id'],
  ['POST', '/v1/sessions'],
  ['GET', '/v1/sessions'],
  ['GET', '/v1/sessions/:id'],
  ['PATCH', '/v1/sessions/:id'],
  ['DELETE', '/v1/sessions/:id'],
  ['POST', '/v1/sessions/:id/participants'],
  ['PUT', '/v1/sessions/:id/participants/:pid'],
  ['PATCH', '/v1/sessions/:id/participants/:pid'],
  ['DELETE', '/v1/sessions/:id/participants/:pid'],
  ['GET', '/v1/sessions/:id/interactions'],
  ['POST', '/v1/route'],
  ['POST', '/v1/keys'],
  ['GET', '/v1/keys'],
  ['DELETE', '/v1/keys/:id'],
  ['POST', '/v1/keys/:id/rotate'],
  ['POST', '/v1/tenants'],
  ['GET', '/v1/tenants'],
  ['GET', '/v1/audit'],
  ['GET', '/v1/blocklist'],
  ['POST', '/v1/blocklist'],
  ['DELETE', '/v1/blocklist/:number'],
  ['GET', '/v1/providers'],
  ['PATCH', '/v1/providers/:name'],
  ['POST', '/v1/webhook-endpoints'],
  ['GET', '/v1/webhook-endpoints'],
  ['GET', '/v1/webhook-endpoints/:id'],
  ['DELETE', '/v1/webhook-endpoints/:id'],
  ['GET', '/v1/events'],
  ['GET', '/v1/interactions'],
  ['POST', '/v1/events/:id/redeliver'],
];
/** POST routes that take no body: an action on the resource the path names. */
const BODILESS = new Set(['/v1/events/:id/redeliver', '/v1/keys/:id/rotate']);
/** Options DESIGN names that are not built yet: the document must not offer them. */

type Schema = {
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  anyOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  additionalProperties?: Schema | boolean;
  minItems?: number;
  maxItems?: number;
};
type Operation = {
  parameters?: { in: string; name: string; description?: string; schema: Schema }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
};

const toOpenApiPath = (path: string) => path.replace(/:(\w+)/g, '{$1}');

/** Every property of `schema`, however deeply nested, with its path. */
function* properties(schema: Schema, path: string): Generator<[string, Schema]> {
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    yield [`${path}.${name}`, property];
    yield* properties(property, `${path}.${name}`);
  }
  if (schema.items) yield* properties(schema.items, `${path}[]`);
  for (const branch of schema.anyOf ?? []) yield* properties(branch, path);
  if (typeof schema.additionalProperties === 'object') yield* properties(schema.additionalProperties, path);
}

/** The values a schema allows when it is an enum: `enum`, or `const`/`enum` alternatives. */
function enumValues(schema: Schema): unknown[] | undefined {
  if (schema.enum) return schema.enum;
  const branches = schema.anyOf?.filter((b) => !(b as { type?: string }).type?.includes('null'));
  if (branches?.every((b) => b.const !== undefined || b.enum)) {
    return branches.flatMap((b) => b.enum ?? [b.const]);
  }
  return undefined;
}

// The document does not depend on the store: one is enough.
const [kind] = storeKinds();

describe('GET /docs', () => {
  let store: TestStore;
  let t: TestApp;
  let doc: { openapi: string; paths: Record<string, Record<string, Operation>> };
  before(async () => {
    assert.ok(kind);
    store = await kind.create();
    t = await testApp(store);
    const r = await t.app.inject({ method: 'GET', url: '/docs/json' });
    assert.equal(r.statusCode, 200, r.body);
    doc = r.json();
  });
  after(async () => {
    try {
      await t?.close();
    } finally {
      await store?.drop();
    }
  });

  const operation = (method: string, path: string): Operation => {
    const op = doc.paths[toOpenApiPath(path)]?.[method.toLowerCase()];
    assert.ok(op, `${method} ${path} is not in the document`);
    return op;
  };
  const body = (method: string, path: string): Schema => {
    const schema = operation(method, path).requestBody?.content['application/json']?.schema;
    assert.ok(schema, `${method} ${path} has no request body schema`);
    return schema;
  };

  it('answers the documentation UI without a key', async () => {
    const r = await t.app.inject({ method: 'GET', url: '/docs' });
    assert.ok([200, 302].includes(r.statusCode), `${r.statusCode} ${r.body}`);
    const page = r.statusCode === 302 ? await t.app.inject({ method: 'GET', url: r.headers.location }) : r;
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(page.body, /swagger/i);
  });

  it('is an OpenAPI 3 document of every /v1 route, and of no route the server lacks', () => {
    assert.match(doc.openapi, /^3\./);
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .filter((route) => !route.startsWith('HEAD '))
      .sort();
    assert.deepEqual(documented, V1_ROUTES.map(([m, p]) => `${m} ${toOpenApiPath(p)}`).sort());
    for (const [method, url] of V1_ROUTES) {
      assert.ok(t.app.hasRoute({ method: method as HTTPMethods, url }), `${method} ${url}`);
    }
  });

  it('gives each route the schemas that validate its requests', () => {
    for (const [method, path] of V1_ROUTES) {
      const op = operation(method, path);
      const inPath = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
      assert.deepEqual(inPath.sort(), [...path.matchAll(/:(\w+)/g)].map((m) => m[1]).sort(), path);
      if (['POST', 'PUT', 'PATCH'].includes(method) && !BODILESS.has(path)) body(method, path);
      assert.ok(op.responses['4XX'], `${method} ${path} documents no error answer`);
    }
    assert.deepEqual(
      (operation('GET', '/v1/sessions').parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
      ['externalId', 'status', 'cursor', 'limit'],
    );
    const participants = body('POST', '/v1/sessions').properties?.participants;
    assert.equal(participants?.minItems, 1, 'a dedicated session has its owner alone');
    assert.equal(participants?.maxItems, 2);
    assert.deepEqual(body('POST', '/v1/route').properties?.channel?.enum, ['voice', 'sms']);
    // A participant's changes are strict: a field of another request is refused, not ignored.
    for (const method of ['PUT', 'PATCH']) {
      const participant = body(method, '/v1/sessions/:id/participants/:pid');
      assert.equal(participant.additionalProperties, false, method);
      assert.deepEqual(
        Object.keys(participant.properties ?? {}).sort(),
        [...(method === 'PUT' ? ['number'] : []), 'canInitiate', 'label', 'revealNumber'].sort(),
        method,
      );
    }
  });

  it('offers mode and sticky as enums of their values', () => {
    const session = body('POST', '/v1/sessions').properties;
    assert.deepEqual(enumValues(session?.mode ?? {}), ['per-participant', 'shared', 'dedicated']);
    assert.deepEqual(enumValues(session?.sticky ?? {}), ['none', 'prefer', 'avoid']);
  });

  it('describes every field of every request and response', () => {
    const missing: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        for (const p of op.parameters ?? []) {
          if (!(p.description ?? p.schema.description)) missing.push(`${where} ${p.in} ${p.name}`);
        }
        const schemas: [string, Schema][] = [
          ...Object.entries(op.requestBody?.content ?? {}).map(([, c]): [string, Schema] => [
            'body',
            c.schema,
          ]),
          ...Object.entries(op.responses).flatMap(([status, r]) =>
            Object.values(r.content ?? {}).map((c): [string, Schema] => [status, c.schema]),
          ),
        ];
        for (const [part, schema] of schemas) {
          for (const [name, property] of properties(schema, `${where} ${part}`)) {
            if (!property.description) missing.push(name);
          }
        }
      }
    }
    assert.deepEqual(missing, []);
  });

  it('lists the values of every field that has a fixed set', () => {
    const session = operation('POST', '/v1/sessions').responses['201']?.content?.['application/json']?.schema;
    assert.ok(session?.properties);
    const fields = session.properties;
    assert.deepEqual(enumValues(fields.status as Schema), ['open', 'closed', 'expired']);
    assert.deepEqual(enumValues(fields.ttlMode as Schema), ['fixed', 'sliding']);
    assert.deepEqual(enumValues(fields.geoMatch as Schema), ['region', 'region-strict', 'country']);
    assert.deepEqual(enumValues(fields.channels?.items as Schema), ['voice', 'sms']);
    const scopes = body('POST', '/v1/keys').properties?.scopes?.items;
    assert.deepEqual(enumValues(scopes as Schema), ['admin', 'sessions', 'route', 'read']);
    const status = operation('GET', '/v1/numbers').parameters?.find((p) => p.name === 'status');
    assert.deepEqual(status && enumValues(status.schema), ['active', 'draining', 'retired']);
  });
});
