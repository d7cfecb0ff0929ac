import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { interactionRows, type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

/**
 * Tenants apart, and scopes enforced, on every route of the API as the OpenAPI document lists it:
 * a route added later without a line in REQUESTS below fails these tests until it is probed too.
 */

// Tenant A's people and pool; B's own, so that B's lists are not empty.
const A_PEOPLE = ['+14155550101', '+14155550102'];
const A_BLOCKED = '+14155550109';
const A_POOL = ['+14155550201', '+14155550202'];
const B_PEOPLE = ['+14155550111', '+14155550112'];
const B_POOL = ['+14155550211', '+14155550212'];

/** Two people not seen before, for a session of the caller's own (each probe makes one). */
let fresh = 300;
const freshPeople = () => [`+14155550${fresh++}`, `+14155550${fresh++}`];

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
type Scope = 'admin' | 'sessions' | 'route' | 'read';
/** What a route needs: a scope, or the installation's admin (an admin key of the default tenant). */
type Needs = Scope | 'installation';

/** A tenant's objects, whose ids the probes use. */
interface Ids {
  tenant: string;
  number: string;
  session: string;
  participant: string;
  people: string[];
  proxyOfFirst: string;
  key: string;
  endpoint: string;
  event: string;
  blocked: string;
  externalId: string;
}

/** One request on a route, built from the ids of the tenant it aims at. */
interface Probe {
  url: string;
  body?: unknown;
  /** What a key of another tenant must get: 404, a list without the ids, or 403 / 409 as noted. */
  refusal: 'not_found' | 'list' | 'forbidden' | 'conflict' | 'reject' | 'separate';
}

/** The route as the document names it (`GET /v1/sessions/{id}`), what it needs, and its request. */
const REQUESTS: Record<string, { needs: Needs; probe: (ids: Ids) => Probe }> = {
  'POST /v1/numbers': {
    needs: 'admin',
    probe: (a) => ({
      url: '/v1/numbers',
      body: { number: a.proxyOfFirst, provider: 'sim' },
      refusal: 'conflict',
    }),
  },
  'GET /v1/numbers': { needs: 'read', probe: () => ({ url: '/v1/numbers?limit=100', refusal: 'list' }) },
  'GET /v1/pool': { needs: 'read', probe: () => ({ url: '/v1/pool', refusal: 'list' }) },
  'POST /v1/numbers/import': {
    needs: 'admin',
    probe: (a) => ({
      url: '/v1/numbers/import',
      body: [{ number: a.proxyOfFirst, provider: 'sim' }],
      refusal: 'conflict',
    }),
  },
  'GET /v1/numbers/{id}': {
    needs: 'read',
    probe: (a) => ({ url: `/v1/numbers/${a.number}`, refusal: 'not_found' }),
  },
  'PATCH /v1/numbers/{id}': {
    needs: 'admin',
    probe: (a) => ({ url: `/v1/numbers/${a.number}`, body: { tags: { city: 'x' } }, refusal: 'not_found' }),
  },
  'DELETE /v1/numbers/{id}': {
    needs: 'admin',
    probe: (a) => ({ url: `/v1/numbers/${a.number}`, refusal: 'not_found' }),
  },
  'POST /v1/sessions': {
    needs: 'sessions',
    // A's idempotency key names a session of B's own, never A's.
    probe: (a) => ({
      url: '/v1/sessions',
      body: { externalId: a.externalId, participants: freshPeople().map((number) => ({ number })) },
      refusal: 'separate',
    }),
  },
  'GET /v1/sessions': {
    needs: 'read',
    probe: (a) => ({ url: `/v1/sessions?externalId=${a.externalId}`, refusal: 'list' }),
  },
  'GET /v1/sessions/{id}': {
    needs: 'read',
    probe: (a) => ({ url: `/v1/sessions/${a.session}`, refusal: 'not_found' }),
  },
  'PATCH /v1/sessions/{id}': {
    needs: 'sessions',
    probe: (a) => ({ url: `/v1/sessions/${a.session}`, body: { ttlSeconds: 600 }, refusal: 'not_found' }),
  },
  'DELETE /v1/sessions/{id}': {
    needs: 'sessions',
    probe: (a) => ({ url: `/v1/sessions/${a.session}`, refusal: 'not_found' }),
  },
  'POST /v1/sessions/{id}/participants': {
    needs: 'sessions',
    probe: (a) => ({
      url: `/v1/sessions/${a.session}/participants`,
      body: { number: '+14155550177' },
      refusal: 'not_found',
    }),
  },
  'PUT /v1/sessions/{id}/participants/{pid}': {
    needs: 'sessions',
    probe: (a) => ({
      url: `/v1/sessions/${a.session}/participants/${a.participant}`,
      body: { number: '+14155550178' },
      refusal: 'not_found',
    }),
  },
  'PATCH /v1/sessions/{id}/participants/{pid}': {
    needs: 'sessions',
    probe: (a) => ({
      url: `/v1/sessions/${a.session}/participants/${a.participant}`,
      body: { label: 'x' },
      refusal: 'not_found',
    }),
  },
  'DELETE /v1/sessions/{id}/participants/{pid}': {
    needs: 'sessions',
    probe: (a) => ({ url: `/v1/sessions/${a.session}/participants/${a.participant}`, refusal: 'not_found' }),
  },
  'GET /v1/sessions/{id}/interactions': {
    needs: 'read',
    probe: (a) => ({ url: `/v1/sessions/${a.session}/interactions`, refusal: 'not_found' }),
  },
  'POST /v1/route': {
    needs: 'route',
    probe: (a) => ({
      url: '/v1/route',
      body: { from: a.people[0], to: a.proxyOfFirst, channel: 'voice' },
      refusal: 'reject',
    }),
  },
  'POST /v1/keys': {
    needs: 'admin',
    probe: (a) => ({
      url: '/v1/keys',
      body: { name: 'probe', scopes: ['admin'], tenantId: a.tenant },
      refusal: 'not_found',
    }),
  },
  'GET /v1/keys': {
    needs: 'admin',
    probe: (a) => ({ url: `/v1/keys?tenantId=${a.tenant}`, refusal: 'not_found' }),
  },
  'DELETE /v1/keys/{id}': {
    needs: 'admin',
    probe: (a) => ({ url: `/v1/keys/${a.key}`, refusal: 'not_found' }),
  },
  'POST /v1/keys/{id}/rotate': {
    needs: 'admin',
    probe: (a) => ({ url: `/v1/keys/${a.key}/rotate`, refusal: 'not_found' }),
  },
  'GET /v1/blocklist': { needs: 'read', probe: () => ({ url: '/v1/blocklist?limit=100', refusal: 'list' }) },
  'POST /v1/blocklist': {
    needs: 'admin',
    // B blocking a number A blocked makes B's own entry; A's stays as it was.
    probe: (a) => ({
      url: '/v1/blocklist',
      body: { number: a.blocked, reason: 'probe' },
      refusal: 'separate',
    }),
  },
  'DELETE /v1/blocklist/{number}': {
    needs: 'admin',
    probe: (a) => ({ url: `/v1/blocklist/${encodeURIComponent(a.blocked)}`, refusal: 'not_found' }),
  },
  'GET /v1/providers': {
    needs: 'installation',
    probe: () => ({ url: '/v1/providers', refusal: 'forbidden' }),
  },
  'PATCH /v1/providers/{name}': {
    needs: 'installation',
    probe: () => ({ url: '/v1/providers/sim', body: { enabled: true }, refusal: 'forbidden' }),
  },
  'POST /v1/webhook-endpoints': {
    needs: 'admin',
    probe: () => ({
      url: '/v1/webhook-endpoints',
      body: { url: 'http://127.0.0.1:9/probe' },
      refusal: 'separate',
    }),
  },
  'GET /v1/webhook-endpoints': {
    needs: 'admin',
    probe: () => ({ url: '/v1/webhook-endpoints?limit=100', refusal: 'list' }),
  },
  'GET /v1/webhook-endpoints/{id}': {
    needs: 'admin',
    probe: (a) => ({ url: `/v1/webhook-endpoints/${a.endpoint}`, refusal: 'not_found' }),
  },
  'DELETE /v1/webhook-endpoints/{id}': {
    needs: 'admin',
    probe: (a) => ({ url: `/v1/webhook-endpoints/${a.endpoint}`, refusal: 'not_found' }),
  },
  'GET /v1/events': { needs: 'read', probe: () => ({ url: '/v1/events?limit=100', refusal: 'list' }) },
  'GET /v1/interactions': {
    needs: 'read',
    probe: () => ({ url: '/v1/interactions?limit=100', refusal: 'list' }),
  },
  'POST /v1/events/{id}/redeliver': {
    needs: 'admin',
    probe: (a) => ({ url: `/v1/events/${a.event}/redeliver`, refusal: 'not_found' }),
  },
  'POST /v1/tenants': {
    needs: 'installation',
    probe: () => ({ url: '/v1/tenants', body: { name: 'probe' }, refusal: 'forbidden' }),
  },
  'GET /v1/tenants': { needs: 'installation', probe: () => ({ url: '/v1/tenants', refusal: 'forbidden' }) },
  'GET /v1/audit': {
    needs: 'admin',
    probe: (a) => ({ url: `/v1/audit?tenantId=${a.tenant}`, refusal: 'not_found' }),
  },
};

/** What each scope grants (DESIGN §4), as a reader of the API is told. */
const GRANTS: Record<Scope, Needs[]> = {
  admin: ['admin', 'sessions', 'route', 'read', 'installation'],
  sessions: ['sessions', 'route', 'read'],
  route: ['route'],
  read: ['read'],
};
const SCOPES = Object.keys(GRANTS) as Scope[];

/** Every /v1 route of the OpenAPI document, as `METHOD /v1/path/{param}`. */
async function documentedRoutes(t: TestApp): Promise<string[]> {
  const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json() as {
    paths: Record<string, Record<string, unknown>>;
  };
  return Object.entries(doc.paths)
    .filter(([path]) => path.startsWith('/v1/'))
    .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
    .filter((route) => !route.startsWith('HEAD '))
    .sort();
}

/** Every row of every table, in a stable order: equal before and after means nothing was written. */
async function snapshot(t: TestApp): Promise<string> {
  await t.veil.interactions.flush();
  const db = t.veil.store.db;
  const tables = [
    'tenants',
    'api_keys',
    'numbers',
    'sessions',
    'participants',
    'interactions',
    'events',
    'blocklist',
    'webhook_endpoints',
    'deliveries',
    'audit',
    'purchases',
  ] as const;
  const all: Record<string, unknown[]> = {};
  for (const table of tables) {
    const rows = await db.selectFrom(table).selectAll().execute();
    all[table] = rows.map((r) => JSON.stringify(r)).sort();
  }
  return JSON.stringify(all);
}

/** A tenant's rows only (for the probes: B's own writes are allowed, none of A's). */
async function tenantRows(t: TestApp, tenant: string, endpoint: string): Promise<string> {
  await t.veil.interactions.flush();
  const db = t.veil.store.db;
  const out: unknown[] = [];
  for (const table of [
    'api_keys',
    'numbers',
    'sessions',
    'participants',
    'interactions',
    'events',
    'blocklist',
    'webhook_endpoints',
    'audit',
  ] as const) {
    const rows = await db.selectFrom(table).selectAll().where('tenant_id', '=', tenant).execute();
    out.push(table, rows.map((r) => JSON.stringify(r)).sort());
  }
  out.push(await db.selectFrom('deliveries').selectAll().where('endpoint_id', '=', endpoint).execute());
  out.push(await db.selectFrom('tenants').selectAll().where('id', '=', tenant).execute());
  return JSON.stringify(out);
}

describeStores('every route, across tenants and scopes', (store) => {
  let t: TestApp;
  let routes: string[];
  const admins: Record<string, string> = {};
  const ids: Record<'a' | 'b', Ids> = {} as never;
  /** B's keys, one per scope. */
  const bKeys = {} as Record<Scope, string>;
  /** Keys of the installation's own tenant, one per scope (the scope matrix). */
  const ownKeys = {} as Record<Scope, string>;

  async function ok(r: LightMyRequestResponse, status = 201) {
    assert.equal(r.statusCode, status, r.body);
    return r.json();
  }

  /** A tenant with an admin key, two pool numbers, a session, a block, an endpoint and its events. */
  async function populate(name: 'a' | 'b', people: string[], pool: string[], blocked: string): Promise<Ids> {
    const tenant = (await ok(await t.api('POST', '/v1/tenants', { name }))).id;
    const adminKey = await ok(
      await t.api('POST', '/v1/keys', { name: 'admin', scopes: ['admin'], tenantId: tenant }),
    );
    const admin = adminKey.key;
    admins[name] = admin;
    let number = '';
    for (const n of pool)
      number ||= (await ok(await t.api('POST', '/v1/numbers', { number: n, provider: 'sim' }, admin))).id;
    const endpoint = (
      await ok(await t.api('POST', '/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook' }, admin))
    ).id;
    await ok(await t.api('POST', '/v1/blocklist', { number: blocked }, admin));
    const externalId = `order-${name}`;
    const session = await ok(
      await t.api(
        'POST',
        '/v1/sessions',
        { externalId, participants: people.map((number) => ({ number })) },
        admin,
      ),
    );
    const first = session.participants[0];
    // An interaction in the session, logged on the tenant.
    const routed = await ok(
      await t.api(
        'POST',
        '/v1/route',
        { from: people[0], to: first.proxyNumber, channel: 'sms', body: 'hi' },
        admin,
      ),
      200,
    );
    assert.equal(routed.action, 'forward');
    const events = (await ok(await t.api('GET', '/v1/events', undefined, admin), 200)).data;
    assert.ok(events.length > 0);
    return {
      tenant,
      number,
      session: session.id,
      participant: first.id,
      people,
      proxyOfFirst: first.proxyNumber,
      key: adminKey.id,
      endpoint,
      event: events[0].id,
      blocked,
      externalId,
    };
  }

  before(async () => {
    t = await testApp(store());
    routes = await documentedRoutes(t);
    ids.a = await populate('a', A_PEOPLE, A_POOL, A_BLOCKED);
    ids.b = await populate('b', B_PEOPLE, B_POOL, '+14155550119');
    for (const scope of SCOPES) {
      bKeys[scope] = (
        await ok(await t.api('POST', '/v1/keys', { name: scope, scopes: [scope] }, admins.b))
      ).key;
      ownKeys[scope] = (await ok(await t.api('POST', '/v1/keys', { name: scope, scopes: [scope] }))).key;
    }
  });
  after(async () => {
    await t.close();
  });

  it('knows every route the document lists, and lists every route it knows', () => {
    assert.deepEqual(routes, Object.keys(REQUESTS).sort());
  });

  it("B's keys get 404 (or a list without them) for A's ids on every route, and write nothing of A's", async () => {
    const before = await tenantRows(t, ids.a.tenant, ids.a.endpoint);
    // What must never appear in an answer to B: A's ids and A's people's real numbers.
    const a = ids.a;
    const secrets = [a.number, a.session, a.participant, a.key, a.endpoint, a.event, a.tenant, ...a.people];
    const tally: Record<string, number> = {};
    let probes = 0;
    let refused = 0;
    const failures: string[] = [];
    for (const route of routes) {
      const [method] = route.split(' ') as [Method];
      const spec = REQUESTS[route];
      assert.ok(spec, route);
      for (const scope of SCOPES) {
        const probe = spec.probe(a);
        const r = await t.api(method, probe.url, probe.body, bKeys[scope]);
        probes++;
        const where = `${route} with B's ${scope} key: ${r.statusCode} ${r.body.slice(0, 200)}`;
        // An id the request itself sent may be named back ("session ses_... not found").
        const sent = probe.url + JSON.stringify(probe.body ?? '');
        const leaked = secrets.filter((s) => r.body.includes(s) && !sent.includes(s));
        const granted = GRANTS[scope].includes(spec.needs);
        const outcome = !granted ? 'forbidden_scope' : probe.refusal;
        let fine = leaked.length === 0;
        if (outcome === 'forbidden_scope' || outcome === 'forbidden') {
          fine &&= r.statusCode === 403 && r.json().error.code === 'forbidden';
        } else if (outcome === 'not_found') {
          fine &&= r.statusCode === 404 && r.json().error.code === 'not_found';
        } else if (outcome === 'conflict') {
          // The number is in another tenant's pool: refused, without saying whose.
          fine &&= r.statusCode === 409 && !r.body.includes(a.tenant);
        } else if (outcome === 'list') {
          fine &&= r.statusCode === 200 && Array.isArray(r.json().data);
        } else if (outcome === 'reject') {
          fine &&=
            r.statusCode === 200 && r.json().action === 'reject' && !r.body.includes(a.people[1] as string);
        } else if (outcome === 'separate') {
          // Made in B (or B's own made by the probe before, under the same externalId): never A's.
          fine &&= [200, 201, 409].includes(r.statusCode);
        }
        if (fine) refused++;
        else failures.push(`${where}${leaked.length ? ` (shows ${leaked.join(', ')})` : ''}`);
        tally[outcome] = (tally[outcome] ?? 0) + 1;
      }
    }
    assert.deepEqual(failures, []);
    assert.equal(await tenantRows(t, a.tenant, a.endpoint), before, "a probe wrote on A's rows");
    // A still works as before.
    const again = await t.api(
      'POST',
      '/v1/route',
      { from: a.people[0], to: a.proxyOfFirst, channel: 'voice' },
      admins.a,
    );
    assert.equal(again.json().action, 'connect', again.body);
    const counts = Object.entries(tally)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ');
    console.log(
      `# ${store().name}: ${probes} cross-tenant probes over ${routes.length} routes, ${refused} refused or kept apart (${counts})`,
    );
    assert.equal(refused, probes);
  });

  it("a route key of B never routes A's calls: refused, nothing revealed, nothing logged on A", async () => {
    const a = ids.a;
    const logged = async () =>
      (await interactionRows(t)).filter((r) => r.tenant_id === a.tenant).map((r) => r.id);
    const before = await logged();
    for (const channel of ['voice', 'sms'] as const) {
      for (const [from, to] of [
        [a.people[0], a.proxyOfFirst],
        [a.people[1], a.proxyOfFirst],
      ]) {
        const r = await t.api('POST', '/v1/route', { from, to, channel, body: 'x' }, bKeys.route);
        assert.equal(r.statusCode, 200, r.body);
        assert.equal(r.json().action, 'reject', r.body);
        for (const p of a.people) if (p !== from) assert.ok(!r.body.includes(p), r.body);
        assert.ok(!r.body.includes(a.session), r.body);
      }
    }
    assert.deepEqual(await logged(), before);
  });

  it('each scope reaches exactly its routes: every other answers 403 forbidden and writes nothing', async () => {
    // The installation's own tenant's ids, so that a request let through would really act.
    const own = await populateOwn();
    let allowed = 0;
    let forbidden = 0;
    for (const route of routes) {
      const [method] = route.split(' ') as [Method];
      const spec = REQUESTS[route];
      assert.ok(spec, route);
      // Refused scopes first, while everything the request names still exists.
      const order = [...SCOPES].sort(
        (x, y) => Number(GRANTS[x].includes(spec.needs)) - Number(GRANTS[y].includes(spec.needs)),
      );
      for (const scope of order) {
        const probe = spec.probe(own);
        if (!GRANTS[scope].includes(spec.needs)) {
          const before = await snapshot(t);
          const r = await t.api(method, probe.url, probe.body, ownKeys[scope]);
          assert.equal(r.statusCode, 403, `${route} with a ${scope} key: ${r.body}`);
          assert.equal(r.json().error.code, 'forbidden');
          assert.equal(await snapshot(t), before, `${route} with a ${scope} key wrote`);
          forbidden++;
        } else {
          const r = await t.api(method, probe.url, probe.body, ownKeys[scope]);
          assert.ok(![401, 403].includes(r.statusCode), `${route} with a ${scope} key: ${r.body}`);
          allowed++;
        }
      }
    }
    console.log(
      `# ${store().name}: scope matrix of ${routes.length} routes × ${SCOPES.length} scopes: ${allowed} allowed, ${forbidden} refused 403`,
    );
  });

  /** The installation's own tenant's objects, made with the bootstrap key, for the scope matrix. */
  async function populateOwn(): Promise<Ids> {
    const pool = ['+14155550221', '+14155550222'];
    const people = ['+14155550121', '+14155550122'];
    let number = '';
    for (const n of pool)
      number ||= (await ok(await t.api('POST', '/v1/numbers', { number: n, provider: 'sim' }))).id;
    const endpoint = (
      await ok(await t.api('POST', '/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/own' }))
    ).id;
    await ok(await t.api('POST', '/v1/blocklist', { number: '+14155550129' }));
    const session = await ok(
      await t.api('POST', '/v1/sessions', {
        externalId: 'order-own',
        participants: people.map((number) => ({ number })),
      }),
    );
    const key = (await ok(await t.api('POST', '/v1/keys', { name: 'throwaway', scopes: ['read'] }))).id;
    const events = (await ok(await t.api('GET', '/v1/events'), 200)).data;
    return {
      tenant: 'default',
      number,
      session: session.id,
      participant: session.participants[0].id,
      people,
      proxyOfFirst: session.participants[0].proxyNumber,
      key,
      endpoint,
      event: events[0].id,
      blocked: '+14155550129',
      externalId: 'order-own',
    };
  }
});
