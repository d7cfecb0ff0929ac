import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../src/config.ts';
import { type RunningServer, startServer } from '../../src/server.ts';
import { ADMIN_KEY } from '../support/app.ts';
import { PLIVO_ENV } from '../support/plivo.ts';
import { databaseUrl, describeStores } from '../support/stores.ts';

/**
 * The failover worker in a running server (the sessions' writes on their thread, on a SQLite file):
 * switching a carrier off moves its sessions within a second or so, with nobody calling a pass.
 */
describeStores('Failover worker in a running server', { perTest: true }, (store) => {
  let server: RunningServer;
  beforeEach(async () => {
    server = await startServer(
      loadConfig({
        NODE_ENV: 'development',
        DATABASE_URL: databaseUrl(store()),
        VEIL_API_KEY: ADMIN_KEY,
        VEIL_DEMO_POOL: 'false',
        VEIL_FAILOVER_MS: '100',
        PLIVO_API_URL: 'http://127.0.0.1:9',
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'silent',
        ...PLIVO_ENV,
      }),
    );
  });
  afterEach(() => server.stop());

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(server.url + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    // biome-ignore lint/suspicious/noExplicitAny: JSON read back in the test
    return { status: r.status, body: (await r.json()) as any };
  };

  it('moves a session off a carrier switched off within seconds, and tells the app', async () => {
    assert.equal(
      (await api('POST', '/v1/numbers', { number: '+14155550160', provider: 'plivo' })).status,
      201,
    );
    const opened = await api('POST', '/v1/sessions', {
      participants: [{ number: '+14155550100' }, { number: '+14155550101' }],
    });
    assert.equal(opened.status, 201);
    assert.equal(opened.body.participants[0].proxyNumber, '+14155550160');
    assert.equal((await api('POST', '/v1/numbers', { number: '+14155550170', provider: 'sim' })).status, 201);

    const switched = Date.now();
    assert.equal((await api('PATCH', '/v1/providers/plivo', { enabled: false })).status, 200);
    let proxy = '';
    while (Date.now() - switched < 5000) {
      proxy = (await api('GET', `/v1/sessions/${opened.body.id}`)).body.participants[0].proxyNumber;
      if (proxy !== '+14155550160') break;
      await sleep(20);
    }
    assert.equal(proxy, '+14155550170', 'not re-bound within 5 s');
    const events = await api('GET', '/v1/events?type=session.rebound');
    assert.equal(events.status, 200);
    assert.deepEqual(
      events.body.data.map((e: { type: string; data: { id: string } }) => [e.type, e.data.id]),
      [['session.rebound', opened.body.id]],
    );
  });
});
