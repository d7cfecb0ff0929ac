import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { STUCK_RETRY_MS } from '../../../src/services/failover.ts';
import { setProviderFlag } from '../../../src/store/providers.ts';
import { payloadOf, type TestApp, testApp } from '../../support/app.ts';
import { PLIVO_ENV } from '../../support/plivo.ts';
import { describeStores } from '../../support/stores.ts';

const PLIVO_NUMBERS = ['+14155550160', '+14155550161', '+14155550162'];
const SIM_NUMBERS = ['+14155550170', '+14155550171', '+14155550172'];
const [A, B, C, D] = ['+14155550100', '+14155550101', '+14155550102', '+14155550103'];

interface Participant {
  id: string;
  number: string;
  proxyNumber: string;
  extension: string | null;
}
interface Session {
  id: string;
  participants: Participant[];
}

describeStores(
  'Failover: sessions re-bound off a carrier down or switched off',
  { perTest: true },
  (store) => {
    let t: TestApp;
    beforeEach(async () => {
      // Plivo's API is never reached here: a carrier is put down through its shared flag.
      t = await testApp(store(), { ...PLIVO_ENV, PLIVO_API_URL: 'http://127.0.0.1:9' });
    });
    afterEach(() => t.close());

    const pool = async (
      numbers: readonly string[],
      provider: string,
      extra: Record<string, unknown> = {},
    ) => {
      for (const number of numbers) {
        const r = await t.api('POST', '/v1/numbers', { number, provider, ...extra });
        assert.equal(r.statusCode, 201, r.body);
      }
    };
    const open = async (body: Record<string, unknown>): Promise<Session> => {
      const r = await t.api('POST', '/v1/sessions', body);
      assert.equal(r.statusCode, 201, r.body);
      return r.json();
    };
    const pair = (a: string, b: string) => open({ participants: [{ number: a }, { number: b }] });
    const read = async (id: string): Promise<Session> => (await t.api('GET', `/v1/sessions/${id}`)).json();
    const route = async (from: string, to: string) =>
      (await t.api('POST', '/v1/route', { from, to, channel: 'voice' })).json();
    const switchOff = async (name: string) => {
      const r = await t.api('PATCH', `/v1/providers/${name}`, { enabled: false });
      assert.equal(r.statusCode, 200, r.body);
    };
    const rebound = async () =>
      (
        await t.veil.store.db
          .selectFrom('events')
          .selectAll()
          .where('type', '=', 'session.rebound')
          .orderBy('id')
          .execute()
      ).map((e) => payloadOf(t.veil.store.db, e.payload));
    /** Every open participation's (person, proxy) appears once: the routing invariant. */
    const assertInvariant = async () => {
      const rows = await t.veil.store.db
        .selectFrom('participants')
        .select(['number_index', 'proxy_number', 'extension'])
        .where('active', '=', 1)
        .execute();
      const keys = rows.map((r) => `${r.number_index}|${r.proxy_number}|${r.extension}`);
      assert.equal(new Set(keys).size, keys.length, `a person holds a proxy twice: ${keys}`);
    };
    const loads = async (numbers: readonly string[]) =>
      (
        await t.veil.store.db
          .selectFrom('numbers')
          .select(['number', 'load'])
          .where('number', 'in', numbers)
          .orderBy('number')
          .execute()
      ).map((r) => Number(r.load));

    it('moves every open session off a carrier switched off: same participants, new proxies, session.rebound; new proxies route, old ones refuse', async () => {
      await pool(PLIVO_NUMBERS, 'plivo');
      const first = await pair(A, B);
      const second = await pair(C, D);
      const closed = await pair(A, C);
      assert.equal((await t.api('DELETE', `/v1/sessions/${closed.id}`)).statusCode, 200);
      await pool(SIM_NUMBERS, 'sim');
      // Nothing to move while every carrier is in use.
      assert.deepEqual(await t.veil.failover.pass(), { carriers: [], rebound: 0, stranded: 0 });

      await switchOff('plivo');
      assert.deepEqual(await t.veil.failover.pass(), { carriers: ['plivo'], rebound: 2, stranded: 0 });
      for (const before of [first, second]) {
        const after = await read(before.id);
        // The participants keep their ids (the app's references hold) and get sim numbers.
        assert.deepEqual(
          after.participants.map((p) => [p.id, p.number]),
          before.participants.map((p) => [p.id, p.number]),
        );
        for (const p of after.participants) assert.ok(SIM_NUMBERS.includes(p.proxyNumber), p.proxyNumber);
        const [a, b] = after.participants as [Participant, Participant];
        const [oldA] = before.participants as [Participant];
        const there = await route(a.number, a.proxyNumber);
        assert.deepEqual([there.action, there.to, there.callerId], ['connect', b.number, b.proxyNumber]);
        // The old proxy connects this caller to nobody now.
        const old = await route(a.number, oldA.proxyNumber);
        assert.equal(old.action, 'reject');
      }
      const events = await rebound();
      assert.deepEqual(
        events.map((e) => [e.rebound.from, e.rebound.to]),
        [
          ['plivo', 'sim'],
          ['plivo', 'sim'],
        ],
      );
      assert.deepEqual(events.map((e) => e.id).sort(), [first.id, second.id].sort());
      const [event] = events;
      const before = [first, second].find((s) => s.id === event.id) as Session;
      assert.deepEqual(
        event.rebound.previous,
        before.participants.map((p) => ({ participantId: p.id, proxyNumber: p.proxyNumber })),
      );
      // The app reads it as the API shows a session, with what moved.
      const listed = (await t.api('GET', '/v1/events?type=session.rebound')).json().data;
      const shown = listed.find((e: { data: { id: string } }) => e.data.id === event.id).data;
      assert.deepEqual(shown.rebound, event.rebound);
      assert.deepEqual(shown.participants, (await read(event.id)).participants);
      const proxies = (s: Session) => s.participants.map((p) => [p.id, p.proxyNumber]);
      assert.deepEqual(proxies(event), proxies(await read(event.id)));
      // Every one of them, in the webhook's envelope too.
      assert.deepEqual(
        listed.map((e: { data: { id: string; rebound: unknown } }) => [e.data.id, e.data.rebound]),
        events.map((e) => [e.id, e.rebound]),
      );
      // Plivo's numbers hold nothing now; the closed session stayed as it was.
      assert.deepEqual(await loads(PLIVO_NUMBERS), [0, 0, 0]);
      assert.deepEqual(
        (await read(closed.id)).participants.map((p) => p.proxyNumber),
        closed.participants.map((p) => p.proxyNumber),
      );
      await assertInvariant();
      // Done: the next pass finds nothing.
      assert.deepEqual(await t.veil.failover.pass(), { carriers: ['plivo'], rebound: 0, stranded: 0 });
    });

    it('leaves a session the pool has no room for where it is, and moves it once there is room', async () => {
      await pool(PLIVO_NUMBERS.slice(0, 1), 'plivo');
      const s = await pair(A, B);
      await switchOff('plivo');
      assert.deepEqual(await t.veil.failover.pass(), { carriers: ['plivo'], rebound: 0, stranded: 1 });
      // All or nothing: it holds its proxy still, which still routes (the carrier may carry it).
      assert.deepEqual(await read(s.id), s);
      const [a, b] = s.participants as [Participant, Participant];
      assert.equal((await route(a.number, a.proxyNumber)).to, b.number);
      assert.deepEqual(await rebound(), []);
      assert.ok(t.logs.some((l) => l.includes('sessions left on carriers down or off')));

      // Looked at once more after the change, then after a while: a pass walks every open session.
      assert.deepEqual(await t.veil.failover.pass(), { carriers: ['plivo'], rebound: 0, stranded: 1 });
      await pool(SIM_NUMBERS.slice(0, 1), 'sim');
      assert.deepEqual(await t.veil.failover.pass(), { carriers: ['plivo'], rebound: 0, stranded: 1 });
      t.clock.advance(STUCK_RETRY_MS / 1000);
      assert.deepEqual(await t.veil.failover.pass(), { carriers: ['plivo'], rebound: 1, stranded: 0 });
      assert.equal((await read(s.id)).participants[0]?.proxyNumber, SIM_NUMBERS[0]);
      assert.equal((await rebound()).length, 1);
    });

    it('moves a carrier found down too; once up again its numbers go to new sessions, moved ones stay', async () => {
      await pool(PLIVO_NUMBERS.slice(0, 1), 'plivo');
      const s = await pair(A, B);
      await pool(SIM_NUMBERS.slice(0, 1), 'sim');
      await setProviderFlag(t.veil.store.db, 'plivo', 'down', true);
      assert.equal((await t.veil.failover.pass()).rebound, 1);
      // Sim's one number holds A and B now; C and D find no carrier with room but the one down.
      const refused = await t.api('POST', '/v1/sessions', { participants: [{ number: A }, { number: C }] });
      assert.equal(refused.statusCode, 503, refused.body);
      assert.equal(refused.json().error.code, 'pool_exhausted');

      await setProviderFlag(t.veil.store.db, 'plivo', 'down', false);
      const later = await pair(C, D);
      assert.deepEqual(
        later.participants.map((p) => p.proxyNumber),
        [PLIVO_NUMBERS[0], PLIVO_NUMBERS[0]],
      );
      assert.equal((await read(s.id)).participants[0]?.proxyNumber, SIM_NUMBERS[0]);
      assert.deepEqual(await t.veil.failover.pass(), { carriers: [], rebound: 0, stranded: 0 });
      await assertInvariant();
    });

    it('keeps a shared session shared: one new proxy for all, each with a code when reached by extension', async () => {
      await pool(PLIVO_NUMBERS.slice(0, 1), 'plivo');
      const s = await open({ mode: 'shared', participants: [{ number: A }, { number: B }] });
      await pool(SIM_NUMBERS.slice(0, 1), 'sim');
      await switchOff('plivo');
      assert.equal((await t.veil.failover.pass()).rebound, 1);
      const after = await read(s.id);
      assert.deepEqual(
        after.participants.map((p) => p.proxyNumber),
        [SIM_NUMBERS[0], SIM_NUMBERS[0]],
      );
      const [a, b] = after.participants as [Participant, Participant];
      assert.equal((await route(a.number, a.proxyNumber)).to, b.number);
      assert.equal((await route(b.number, b.proxyNumber)).to, a.number);
      await assertInvariant();
    });

    it('moves each session once when two passes run at once (two instances)', async () => {
      await pool(PLIVO_NUMBERS, 'plivo');
      const sessions = [await pair(A, B), await pair(C, D), await pair(A, C)];
      await pool(SIM_NUMBERS, 'sim');
      await switchOff('plivo');
      const [one, two] = await Promise.all([t.veil.failover.pass(), t.veil.failover.pass()]);
      assert.equal((one?.rebound ?? 0) + (two?.rebound ?? 0), sessions.length);
      const events = await rebound();
      assert.deepEqual(events.map((e) => e.id).sort(), sessions.map((s) => s.id).sort());
      await assertInvariant();
    });
  },
);
