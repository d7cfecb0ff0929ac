import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

const BLOCKED = '+14155550123';
const POOL = '+14155550150';

describeStores('GET /v1/audit', (store) => {
  let t: TestApp;
  let bootstrapId: string;
  before(async () => {
    t = await testApp(store());
    bootstrapId = (
      await t.veil.store.db
        .selectFrom('api_keys')
        .select('id')
        .where('name', '=', 'bootstrap')
        .executeTakeFirstOrThrow()
    ).id;
  });
  after(async () => {
    await t.close();
  });

  const entries = async (query = '', key?: string) => {
    const r = await t.api('GET', `/v1/audit?limit=100${query}`, undefined, key);
    assert.equal(r.statusCode, 200, r.body);
    return r.json().data as { action: string; keyId: string; targetId: string; createdAt: string }[];
  };

  it('lists each admin action with the acting key, the target and the time, oldest first', async () => {
    const key = (await t.api('POST', '/v1/keys', { name: 'ops', scopes: ['admin'] })).json();
    // The next actions are the ops key's own.
    const as = (m: 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown) => t.api(m, url, body, key.key);
    const number = (await as('POST', '/v1/numbers', { number: POOL, provider: 'sim' })).json();
    await as('PATCH', `/v1/numbers/${number.id}`, { tags: { city: 'sf' } });
    await as('DELETE', `/v1/numbers/${number.id}`);
    await as('POST', '/v1/blocklist', { number: BLOCKED, reason: 'fraud' });
    await as('DELETE', `/v1/blocklist/${encodeURIComponent(BLOCKED)}`);
    const endpoint = (await as('POST', '/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook' })).json();
    await as('DELETE', `/v1/webhook-endpoints/${endpoint.id}`);
    await as('PATCH', '/v1/providers/sim', { enabled: false });
    await as('PATCH', '/v1/providers/sim', { enabled: true });
    const tenant = (await as('POST', '/v1/tenants', { name: 'acme' })).json();
    const other = (await as('POST', '/v1/keys', { name: 'x', scopes: ['read'] })).json();
    const rotated = (await t.api('POST', `/v1/keys/${other.id}/rotate`, undefined, key.key)).json();
    assert.equal((await t.api('DELETE', `/v1/keys/${other.id}`, undefined, key.key)).statusCode, 204);

    const listed = await entries();
    assert.deepEqual(
      listed.map((e) => [e.action, e.keyId, e.targetId]),
      [
        ['key.created', bootstrapId, key.id],
        ['number.added', key.id, number.id],
        ['number.changed', key.id, number.id],
        ['number.retired', key.id, number.id],
        ['blocklist.added', key.id, '+1415*****23'],
        ['blocklist.removed', key.id, '+1415*****23'],
        ['webhook_endpoint.created', key.id, endpoint.id],
        ['webhook_endpoint.deleted', key.id, endpoint.id],
        ['provider.disabled', key.id, 'sim'],
        ['provider.enabled', key.id, 'sim'],
        ['tenant.created', key.id, tenant.id],
        ['key.created', key.id, other.id],
        ['key.rotated', key.id, other.id],
        ['key.revoked', key.id, other.id],
      ],
    );
    assert.ok(listed.every((e) => e.createdAt === new Date(t.clock.now).toISOString()));
    // No real number in clear, in the answer or in the table; no secret either.
    const rows = JSON.stringify(await t.veil.store.db.selectFrom('audit').selectAll().execute());
    for (const text of [JSON.stringify(listed), rows]) {
      assert.ok(!text.includes(BLOCKED) && !text.includes(POOL), text);
      assert.ok(!text.includes(key.key) && !text.includes(rotated.key));
    }
  });

  it('writes nothing for an action refused or that changed nothing', async () => {
    const before = (await entries()).length;
    await t.api('POST', '/v1/numbers', { number: '+14155550151', provider: 'sim' });
    const afterAdd = (await entries()).length;
    assert.equal(afterAdd, before + 1);
    assert.equal(
      (await t.api('POST', '/v1/numbers', { number: '+14155550151', provider: 'sim' })).statusCode,
      409,
    );
    assert.equal((await t.api('DELETE', '/v1/keys/key_00000000')).statusCode, 404);
    assert.equal((await t.api('DELETE', `/v1/blocklist/${encodeURIComponent(BLOCKED)}`)).statusCode, 404);
    await t.api('PATCH', '/v1/providers/sim', { enabled: true });
    assert.equal((await entries()).length, afterAdd);
  });

  it('a tenant sees only its own entries; the installation reads a tenant’s with tenantId', async () => {
    const tenant = (await t.api('POST', '/v1/tenants', { name: 'apart' })).json();
    const admin = (
      await t.api('POST', '/v1/keys', { name: 'admin', scopes: ['admin'], tenantId: tenant.id })
    ).json();
    await t.api('POST', '/v1/blocklist', { number: '+14155550177' }, admin.key);
    const theirs = await entries('', admin.key);
    assert.deepEqual(
      theirs.map((e) => e.action),
      ['key.created', 'blocklist.added'],
    );
    assert.deepEqual(await entries(`&tenantId=${tenant.id}`), theirs);
    const ours = await entries();
    assert.ok(!ours.some((e) => theirs.some((x) => JSON.stringify(x) === JSON.stringify(e))));
    // Scope admin only: a reader of the tenant is refused.
    const reader = (await t.api('POST', '/v1/keys', { name: 'r', scopes: ['read'] }, admin.key)).json();
    assert.equal((await t.api('GET', '/v1/audit', undefined, reader.key)).statusCode, 403);
  });

  it('pages with the cursor', async () => {
    const all = await entries();
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r = await t.api('GET', `/v1/audit?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      const body = r.json();
      seen.push(...body.data.map((e: { id: string }) => e.id));
      cursor = body.nextCursor;
    } while (cursor);
    assert.deepEqual(
      seen,
      all.map((e) => (e as unknown as { id: string }).id),
    );
  });
});
