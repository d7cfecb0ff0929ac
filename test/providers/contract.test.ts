import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertWebhookRefused, interactionRows, type TestApp, testApp } from '../support/app.ts';
import { plivoHarness } from '../support/carriers/plivo.ts';
import { simHarness } from '../support/carriers/sim.ts';
import { telnyxHarness } from '../support/carriers/telnyx.ts';
import { twilioHarness } from '../support/carriers/twilio.ts';
import { vonageHarness } from '../support/carriers/vonage.ts';
import type { CarrierHarness } from '../support/carriers.ts';
import { describeStores } from '../support/stores.ts';
import { sessionInteractions } from '../support/twilio.ts';

/**
 * One contract for every carrier adapter, written once and run per carrier on both stores: the
 * same people, sessions and calls, sent as each carrier sends them and read back from its answer.
 */
const HARNESSES: CarrierHarness[] = [simHarness, twilioHarness, vonageHarness, plivoHarness, telnyxHarness];

const POOL = ['+14155550400', '+14155550401', '+14155550402', '+14155550403'];
const CUSTOMER = '+14155550111';
const COURIER = '+14155550112';
const COURIER_2 = '+14155550113';
const STRANGER = '+14155550999';

for (const carrier of HARNESSES) {
  describeStores(`carrier contract: ${carrier.name}`, (store) => {
    let t: TestApp;
    let first: { id: string; proxyOf: Map<string, string> };
    let second: { id: string; proxyOf: Map<string, string> };
    let seq = 0;
    const id = () => `${carrier.name}-call-${++seq}`;

    const open = async (numbers: string[]) => {
      const r = await t.api('POST', '/v1/sessions', { participants: numbers.map((number) => ({ number })) });
      assert.equal(r.statusCode, 201, r.body);
      const s = r.json();
      return {
        id: s.id as string,
        proxyOf: new Map<string, string>(
          s.participants.map((p: { number: string; proxyNumber: string }) => [p.number, p.proxyNumber]),
        ),
      };
    };
    const proxy = (s: typeof first, number: string) => {
      const p = s.proxyOf.get(number);
      assert.ok(p);
      return p;
    };

    before(async () => {
      await carrier.start?.();
      t = await testApp(store(), carrier.env());
      // Signatures with a time in them are judged on the wall clock; keep the app's on it too.
      t.clock.now = Date.now();
      for (const number of POOL) {
        const r = await t.api('POST', '/v1/numbers', { number, provider: carrier.name });
        assert.equal(r.statusCode, 201, r.body);
      }
      // The customer in two sessions, one courier each: their two proxies tell the sessions apart.
      first = await open([CUSTOMER, COURIER]);
      second = await open([CUSTOMER, COURIER_2]);
    });
    after(async () => {
      await t?.close();
      await carrier.stop?.();
    });

    it('connects a call both ways, each side shown the other’s proxy', async () => {
      const out = await carrier.call(t, { from: CUSTOMER, to: proxy(first, CUSTOMER), id: id() });
      assert.deepEqual(out, { status: 200, action: 'connect', to: COURIER, callerId: proxy(first, COURIER) });
      const back = await carrier.call(t, { from: COURIER, to: proxy(first, COURIER), id: id() });
      assert.deepEqual(back, {
        status: 200,
        action: 'connect',
        to: CUSTOMER,
        callerId: proxy(first, CUSTOMER),
      });
    });

    it('finds the right session among several by the proxy dialled', async () => {
      const out = await carrier.call(t, { from: CUSTOMER, to: proxy(second, CUSTOMER), id: id() });
      assert.deepEqual(out, {
        status: 200,
        action: 'connect',
        to: COURIER_2,
        callerId: proxy(second, COURIER_2),
      });
      // The first courier dialling the second session's proxy is a stranger there.
      const across = await carrier.call(t, { from: COURIER, to: proxy(second, CUSTOMER), id: id() });
      assert.equal(across.action, 'reject');
    });

    it('refuses a stranger and tells the carrier nothing to dial', async () => {
      const out = await carrier.call(t, { from: STRANGER, to: proxy(first, CUSTOMER), id: id() });
      assert.deepEqual(out, { status: 200, action: 'reject' });
      const text = await carrier.text(t, {
        from: STRANGER,
        to: proxy(first, CUSTOMER),
        id: id(),
        body: 'hi',
      });
      assert.equal(text.action, 'reject');
    });

    it('relays a text both ways, from the sender’s proxy', async () => {
      const out = await carrier.text(t, {
        from: CUSTOMER,
        to: proxy(first, CUSTOMER),
        id: id(),
        body: 'at the door',
      });
      assert.deepEqual(out, {
        status: 200,
        action: 'forward',
        to: COURIER,
        from: proxy(first, COURIER),
        body: 'at the door',
      });
      const back = await carrier.text(t, { from: COURIER, to: proxy(first, COURIER), id: id(), body: 'ok' });
      assert.deepEqual(back, {
        status: 200,
        action: 'forward',
        to: CUSTOMER,
        from: proxy(first, CUSTOMER),
        body: 'ok',
      });
    });

    it('lands a status callback on the call’s interaction', async () => {
      const call = { from: COURIER_2, to: proxy(second, COURIER_2), id: id() };
      assert.equal((await carrier.call(t, call)).action, 'connect');
      const r = await carrier.status(t, { ...call, durationSeconds: 42 });
      assert.equal(r.statusCode, 200, r.body);
      await t.veil.interactions.flush();
      const row = (await sessionInteractions(t, second.id)).find((i) => i.providerCallId === call.id);
      assert.ok(row, 'the call has an interaction');
      assert.equal(row.status, 'completed');
      assert.equal(row.durationSeconds, 42);
    });

    describe('forged webhooks', () => {
      const call = { from: CUSTOMER, to: '', id: 'forged' };
      for (const forgery of carrier.forgeries(call)) {
        it(`refuses ${forgery.name} with 403, writing nothing`, async () => {
          const forged = carrier.forgeries({ ...call, to: proxy(first, CUSTOMER) });
          const same = forged.find((f) => f.name === forgery.name);
          assert.ok(same);
          await assertWebhookRefused(t, () => same.send(t));
          const rows = await interactionRows(t);
          assert.ok(!rows.some((r) => r.provider_call_id === 'forged'));
        });
      }
    });
  });
}
