import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

const A = '+14155550123';
const B = '+14155550187';

describeStores('POST /webhooks/sip/status', (store) => {
  let t: TestApp;
  let routeKey: string;
  let readKey: string;
  let proxyOfA: string;
  before(async () => {
    t = await testApp(store());
    await t.api('POST', '/v1/numbers', { number: '+14155550150', provider: 'sim' });
    const s = (await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: B }] })).json();
    proxyOfA = s.participants[0].proxyNumber;
    routeKey = (await t.api('POST', '/v1/keys', { name: 'edge', scopes: ['route'] })).json().key;
    readKey = (await t.api('POST', '/v1/keys', { name: 'reader', scopes: ['read'] })).json().key;
  });
  after(async () => {
    await t.close();
  });
  const status = (body: unknown, key?: string) => t.api('POST', '/webhooks/sip/status', body, key);

  it("lands a call's end and duration on the interaction the route request named with its callId", async () => {
    const routed = await t.api(
      'POST',
      '/v1/route',
      { from: A, to: proxyOfA, channel: 'voice', callId: 'abc123@edge' },
      routeKey,
    );
    assert.equal(routed.json().action, 'connect');
    const r = await status({ callId: 'abc123@edge', status: 'completed', durationSeconds: 42 }, routeKey);
    assert.equal(r.statusCode, 204, r.body);
    const { data } = (await t.api('GET', '/v1/interactions')).json();
    const call = data.find((x: { providerCallId: string | null }) => x.providerCallId === 'abc123@edge');
    assert.deepEqual([call?.provider, call?.status, call?.durationSeconds], ['sip', 'completed', 42]);
  });

  it('answers 404 for a callId no route request gave, 400 for an unknown status', async () => {
    assert.equal((await status({ callId: 'nope@edge', status: 'completed' }, routeKey)).statusCode, 404);
    assert.equal((await status({ callId: 'abc123@edge', status: 'exploded' }, routeKey)).statusCode, 400);
  });

  it("answers 404 to another tenant's route key, and leaves the call as it was", async () => {
    const tenant = (await t.api('POST', '/v1/tenants', { name: 'other' })).json();
    const other = (
      await t.api('POST', '/v1/keys', { name: 'other edge', scopes: ['route'], tenantId: tenant.id })
    ).json().key;
    const r = await status({ callId: 'abc123@edge', status: 'failed', durationSeconds: 1 }, other);
    assert.equal(r.statusCode, 404);
    const { data } = (await t.api('GET', '/v1/interactions')).json();
    const call = data.find((x: { providerCallId: string | null }) => x.providerCallId === 'abc123@edge');
    assert.deepEqual([call?.status, call?.durationSeconds], ['completed', 42]);
  });

  it('takes only a key with scope route', async () => {
    const body = { callId: 'abc123@edge', status: 'failed' };
    assert.equal((await status(body, readKey)).statusCode, 403);
    const anonymous = await t.app.inject({ method: 'POST', url: '/webhooks/sip/status', payload: body });
    assert.equal(anonymous.statusCode, 401);
  });
});
