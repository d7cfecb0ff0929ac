import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

// A call's outbound leg can only show a caller ID its carrier owns: all proxies of a session come
// from one carrier, whatever the pool mixes.
const SIM = '+14155550160';
const SIM_2 = '+14155550163';
const TWILIO = ['+14155550161', '+14155550162'];
const [A, B, C, D, E] = ['+14155550131', '+14155550132', '+14155550133', '+14155550134', '+14155550135'];

interface View {
  id: string;
  participants: { id: string; number: string; proxyNumber: string }[];
}

describeStores('one carrier per session', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store());
    // The simulator's number first: the oldest, so the first taken on a tie.
    for (const [number, provider] of [[SIM, 'sim'], ...TWILIO.map((n) => [n, 'twilio'])]) {
      const r = await t.api('POST', '/v1/numbers', { number, provider });
      assert.equal(r.statusCode, 201, r.body);
    }
  });
  afterEach(async () => {
    await t.close();
  });

  const carrierOf = (proxy: string) => ([SIM, SIM_2].includes(proxy) ? 'sim' : 'twilio');
  const create = async (participants: Record<string, unknown>[]): Promise<View> => {
    const r = await t.api('POST', '/v1/sessions', { participants });
    assert.equal(r.statusCode, 201, r.body);
    return r.json();
  };
  const carriers = (s: View) => [...new Set(s.participants.map((p) => carrierOf(p.proxyNumber)))];

  it('gives both participants numbers of the carrier the first got', async () => {
    // The new user's pool: a session's first proxy is the simulator's, the least loaded and oldest.
    const s = await create([{ number: A }, { number: B }]);
    assert.deepEqual(carriers(s), ['sim']);
    for (let i = 0; i < 4; i++) {
      const more = await create([{ number: `+1415555017${i}` }, { number: `+1415555018${i}` }]);
      assert.equal(carriers(more).length, 1, JSON.stringify(more.participants));
    }
  });

  it('moves a new session to another carrier when the first one’s has nothing for the others', async () => {
    // B holds the simulator's only number; the twilio numbers carry a session each.
    await create([{ number: B, proxyNumber: SIM }, { number: C }]);
    await create([
      { number: D, proxyNumber: TWILIO[0] },
      { number: E, proxyNumber: TWILIO[1] },
    ]);
    // A's first pick is the simulator's number (a tie on load, the oldest); B cannot have it.
    const s = await create([{ number: A }, { number: B }]);
    assert.deepEqual(carriers(s), ['twilio']);
    const numbers = (await t.api('GET', '/v1/numbers?limit=10')).json().data as {
      number: string;
      load: number;
    }[];
    assert.deepEqual(
      numbers.map((n) => [n.number, n.load]),
      [
        [SIM, 1],
        [TWILIO[0], 2],
        [TWILIO[1], 2],
      ],
      'what was taken on the first carrier is given back',
    );
  });

  it('adds a newcomer on the session’s carrier, or refuses rather than mixing', async () => {
    const s = await create([{ number: A, proxyNumber: TWILIO[0] }, { number: B }]);
    assert.deepEqual(carriers(s), ['twilio']);
    const gone = await t.api('DELETE', `/v1/sessions/${s.id}/participants/${s.participants[1]?.id}`);
    assert.equal(gone.statusCode, 200, gone.body);
    const asked = await t.api('POST', `/v1/sessions/${s.id}/participants`, { number: D, proxyNumber: SIM });
    assert.equal(asked.statusCode, 409, asked.body);
    assert.match(asked.json().error.message, /sim number; this session's proxies are twilio's/);
    // The simulator's number is the least loaded now; the newcomer gets a twilio one all the same.
    const add = await t.api('POST', `/v1/sessions/${s.id}/participants`, { number: C });
    assert.equal(add.statusCode, 201, add.body);
    assert.equal(carrierOf(add.json().proxyNumber), 'twilio');
    // A courier replaced keeps to the carrier too.
    const put = await t.api('PUT', `/v1/sessions/${s.id}/participants/${add.json().id}`, { number: E });
    assert.equal(put.statusCode, 200, put.body);
    assert.deepEqual(carriers(put.json()), ['twilio']);
  });

  it('lists the pool by carrier', async () => {
    const twilio = await t.api('GET', '/v1/numbers?provider=twilio');
    assert.equal(twilio.statusCode, 200, twilio.body);
    assert.deepEqual(
      twilio.json().data.map((n: { number: string }) => n.number),
      TWILIO,
    );
    const bad = await t.api('GET', '/v1/numbers?provider=nope');
    assert.equal(bad.statusCode, 400, bad.body);
  });

  it('sends new sessions to the carrier the gray release weighs, and on when it is full', async () => {
    await t.close();
    t = await testApp(store(), { VEIL_CARRIER_WEIGHTS: 'twilio=1;212:sim=1' });
    const added = await t.api('POST', '/v1/numbers', { number: SIM_2, provider: 'sim' });
    assert.equal(added.statusCode, 201, added.body);
    // The simulator's numbers are the oldest and least loaded; twilio is weighed, so twilio first.
    const s = await create([{ number: A }, { number: B }]);
    assert.deepEqual(carriers(s), ['twilio']);
    // New York's rule weighs the simulator.
    const ny = await create([{ number: '+12125550131' }, { number: '+12125550132' }]);
    assert.deepEqual(carriers(ny), ['sim']);
    // With both twilio numbers full, a session goes on to the carriers not weighed.
    for (const number of TWILIO) {
      const id = (await t.api('GET', '/v1/numbers?provider=twilio'))
        .json()
        .data.find((n: { number: string }) => n.number === number).id;
      assert.equal((await t.api('PATCH', `/v1/numbers/${id}`, { maxSessions: 1 })).statusCode, 200);
    }
    const spill = await create([{ number: C }, { number: D }]);
    assert.deepEqual(carriers(spill), ['sim']);
  });
});
