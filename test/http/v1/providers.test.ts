import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setProviderFlag } from '../../../src/store/providers.ts';
import { payloadOf, type TestApp, testApp } from '../../support/app.ts';
import { PLIVO_ENV } from '../../support/plivo.ts';
import { describeStores } from '../../support/stores.ts';

/**
 * Plivo's numbers API as the health probe meets it: a lookup of a number the account does not own
 * is 404 while the carrier is up; while it is down every request is 503.
 */
class SwitchableCarrier {
  down = false;
  requests = 0;
  private server?: Server;

  get url(): string {
    const address = this.server?.address() as AddressInfo | undefined;
    return `http://127.0.0.1:${address?.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      this.requests++;
      request.resume();
      response.writeHead(this.down ? 503 : 404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: this.down ? 'service unavailable' : 'not found' }));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

const FAILURES = 3;
// Long enough that the steps checking a circuit open run within its wait, even on a busy machine.
const HALF_OPEN_MS = 2000;
const PLIVO_NUMBERS = ['+14155550160', '+14155550161'];
const CUSTOMER = '+14155550100';
const COURIER = '+14155550101';

describeStores(
  'GET and PATCH /v1/providers: health and the one-click downgrade',
  { perTest: true },
  (store) => {
    let t: TestApp;
    let carrier: SwitchableCarrier;
    beforeEach(async () => {
      carrier = new SwitchableCarrier();
      await carrier.start();
      t = await testApp(store(), {
        ...PLIVO_ENV,
        PLIVO_API_URL: carrier.url,
        // Twilio's API, probed too, answers nothing here: refused at once.
        TWILIO_API_URL: 'http://127.0.0.1:9',
        VEIL_PROVIDER_FAILURES: String(FAILURES),
        VEIL_PROVIDER_HALF_OPEN_MS: String(HALF_OPEN_MS),
      });
      for (const number of PLIVO_NUMBERS) {
        const r = await t.api('POST', '/v1/numbers', { number, provider: 'plivo' });
        assert.equal(r.statusCode, 201, r.body);
      }
    });
    afterEach(async () => {
      await t.close();
      await carrier.stop();
    });

    const providers = async () => {
      const r = await t.api('GET', '/v1/providers');
      assert.equal(r.statusCode, 200, r.body);
      return new Map(
        (r.json().data as { name: string }[]).map((p) => [p.name, p as Record<string, unknown>]),
      );
    };
    /** Plivo's provider events (Twilio, unreachable here, falls too when probed). */
    const events = async (type: string) =>
      (
        await t.veil.store.db
          .selectFrom('events')
          .selectAll()
          .where('type', '=', type)
          .orderBy('id')
          .execute()
      )
        .map((e) => payloadOf(t.veil.store.db, e.payload))
        .filter((e) => e.provider === 'plivo');
    const create = () =>
      t.api('POST', '/v1/sessions', {
        participants: [
          { number: CUSTOMER, label: 'customer' },
          { number: COURIER, label: 'courier' },
        ],
      });
    /** One failed call to the carrier: a purchase whose search it answers 503. */
    const fail = async () => {
      const r = await t.api('POST', '/v1/numbers/import', { provider: 'plivo', country: 'US', count: 1 });
      assert.equal(r.statusCode, 503, r.body);
    };
    /** Waits for what a circuit's change writes (the breaker tells the service without waiting). */
    const eventually = async (check: () => Promise<boolean>) => {
      for (let i = 0; i < 100 && !(await check()); i++) await sleep(10);
      assert.ok(await check(), 'not written in time');
    };

    it('lists every enabled carrier, switched on and healthy, to admin keys only', async () => {
      const list = await providers();
      assert.deepEqual([...list.keys()], ['sim', 'twilio', 'plivo', 'sip']);
      assert.deepEqual(list.get('plivo'), {
        name: 'plivo',
        enabled: true,
        health: 'healthy',
        errorRate: 0,
        latencyMs: null,
        calls: 0,
      });
      const reader = (await t.api('POST', '/v1/keys', { name: 'reader', scopes: ['read'] })).json().key;
      const refused = await t.api('GET', '/v1/providers', undefined, reader);
      assert.equal(refused.statusCode, 403);
      const patch = await t.api('PATCH', '/v1/providers/plivo', { enabled: false }, reader);
      assert.equal(patch.statusCode, 403);
      assert.equal((await providers()).get('plivo')?.enabled, true);
    });

    it('switched off, gives its numbers to no new session (503) and writes provider.down once; on again, it does', async () => {
      const off = await t.api('PATCH', '/v1/providers/plivo', { enabled: false });
      assert.equal(off.statusCode, 200, off.body);
      assert.equal(off.json().enabled, false);
      assert.equal((await t.api('PATCH', '/v1/providers/plivo', { enabled: false })).statusCode, 200);
      assert.deepEqual(await events('provider.down'), [{ provider: 'plivo', reason: 'disabled' }]);

      const refused = await create();
      assert.equal(refused.statusCode, 503, refused.body);
      assert.equal(refused.json().error.code, 'pool_exhausted');
      assert.equal(
        await t.veil.store.db
          .selectFrom('sessions')
          .select('id')
          .execute()
          .then((r) => r.length),
        0,
      );

      const on = await t.api('PATCH', '/v1/providers/plivo', { enabled: true });
      assert.equal(on.json().enabled, true);
      assert.deepEqual(await events('provider.up'), [{ provider: 'plivo', reason: 'enabled' }]);
      const opened = await create();
      assert.equal(opened.statusCode, 201, opened.body);
      for (const p of opened.json().participants) assert.ok(PLIVO_NUMBERS.includes(p.proxyNumber));
    });

    it('keeps the sessions open on a carrier switched off (they hold its numbers until failover moves them)', async () => {
      const opened = (await create()).json();
      await t.api('PATCH', '/v1/providers/plivo', { enabled: false });
      const still = await t.api('GET', `/v1/sessions/${opened.id}`);
      assert.equal(still.json().status, 'open');
      const [a] = opened.participants;
      const routed = await t.api('POST', '/v1/route', {
        from: a.number,
        to: a.proxyNumber,
        channel: 'voice',
      });
      assert.equal(routed.json().action, 'connect');
    });

    it('answers 404 for an unknown or not enabled carrier and 400 for a bad body, changing nothing', async () => {
      for (const name of ['nope', 'vonage']) {
        const r = await t.api('PATCH', `/v1/providers/${name}`, { enabled: false });
        assert.equal(r.statusCode, 404, r.body);
        assert.equal(r.json().error.code, 'not_found');
      }
      for (const body of [{ enabled: 'no' }, {}, { enabled: false, extra: 1 }]) {
        const r = await t.api('PATCH', '/v1/providers/plivo', body);
        assert.equal(r.statusCode, 400, r.body);
      }
      assert.equal((await providers()).get('plivo')?.enabled, true);
      assert.deepEqual(await events('provider.down'), []);
    });

    it('counts a carrier down after its calls fail in a row, and back up when a probe succeeds after the wait', async () => {
      await t.veil.providers.probe();
      assert.equal(carrier.requests, 0, 'a carrier up is not probed');
      carrier.down = true;
      for (let i = 0; i < FAILURES - 1; i++) await fail();
      assert.equal((await providers()).get('plivo')?.health, 'degraded'); // failing, not yet down
      await fail();
      await eventually(async () => (await events('provider.down')).length === 1);
      assert.deepEqual(await events('provider.down'), [{ provider: 'plivo', reason: 'failing' }]);
      const down = (await providers()).get('plivo');
      assert.equal(down?.health, 'down');
      assert.equal(down?.errorRate, 1);
      assert.equal(down?.enabled, true);
      assert.ok(t.logs.some((l) => l.includes('carrier down') && l.includes('plivo')));

      // Down: no new session gets its numbers, and its API is not called at all.
      assert.equal((await create()).statusCode, 503);
      const before = carrier.requests;
      const buy = await t.api('POST', '/v1/numbers/import', { provider: 'plivo', country: 'US', count: 1 });
      assert.equal(buy.statusCode, 503, buy.body);
      assert.match(buy.json().error.message, /plivo is down/);
      await t.veil.providers.probe(); // within the wait: not tried
      assert.equal(carrier.requests, before);

      // The carrier recovers; the first probe after the wait closes the circuit.
      carrier.down = false;
      await sleep(HALF_OPEN_MS + 20);
      await t.veil.providers.probe();
      assert.equal(carrier.requests, before + 1);
      await eventually(async () => (await events('provider.up')).length === 1);
      assert.deepEqual(await events('provider.up'), [{ provider: 'plivo', reason: 'recovered' }]);
      assert.equal((await providers()).get('plivo')?.health, 'degraded'); // recent failures still in view
      assert.equal((await create()).statusCode, 201);
    });

    it('fails again at once when the probe after the wait fails, and stays down', async () => {
      carrier.down = true;
      for (let i = 0; i < FAILURES; i++) await fail();
      await eventually(async () => (await events('provider.down')).length === 1);
      await sleep(HALF_OPEN_MS + 20);
      await t.veil.providers.probe(); // the one try after the wait fails: open again
      assert.equal((await providers()).get('plivo')?.health, 'down');
      assert.equal((await events('provider.down')).length, 1, 'one event per fall');
      assert.equal((await create()).statusCode, 503);
    });

    it('honours another instance’s finding (the shared flag), and clears it when its own probe succeeds', async () => {
      await setProviderFlag(t.veil.store.db, 'plivo', 'down', true);
      assert.equal((await providers()).get('plivo')?.health, 'down');
      assert.equal((await create()).statusCode, 503);
      await t.veil.providers.probe();
      assert.equal((await providers()).get('plivo')?.health, 'healthy');
      assert.deepEqual(await events('provider.up'), [{ provider: 'plivo', reason: 'recovered' }]);
      assert.equal((await create()).statusCode, 201);
    });

    it('does not count refused requests for or against a carrier: a carrier’s 4xx answer leaves it up', async () => {
      // A purchase the carrier refuses (a 4xx): its clear answer, so no fault.
      const buy = await t.api('POST', '/v1/numbers/import', { provider: 'plivo', country: 'US', count: 1 });
      assert.equal(buy.statusCode, 503, `${buy.body}\n${t.logs.join('\n')}`); // nothing on sale at this fake
      for (let i = 0; i < FAILURES; i++) {
        await t.api('POST', '/v1/numbers/import', { provider: 'plivo', country: 'US', count: 1 });
      }
      assert.notEqual((await providers()).get('plivo')?.health, 'down');
    });
  },
);
