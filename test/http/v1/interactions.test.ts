import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newId } from '../../../src/domain/ids.ts';
import { interactionOf } from '../../../src/domain/interaction.ts';
import { SCAN_WINDOW } from '../../../src/store/interactions.ts';
import { type TestApp, testApp } from '../../support/app.ts';
import { describeStores } from '../../support/stores.ts';

const COURIER = '+14155550123';
const CUSTOMER = '+14155550187';
const STRANGER = '+14155550199';
const PROXIES = ['+14155550900', '+14155550901'];

interface Entry {
  id: string;
  sessionId: string | null;
  from: string;
  channel: string;
  action: string;
  reason: string | null;
}

describeStores('GET /v1/interactions', (store) => {
  let t: TestApp;
  let proxy: string;
  before(async () => {
    t = await testApp(store());
    for (const number of PROXIES) await t.api('POST', '/v1/numbers', { number, provider: 'sim' });
    const created = await t.api('POST', '/v1/sessions', {
      participants: [{ number: COURIER }, { number: CUSTOMER }],
    });
    assert.equal(created.statusCode, 201, created.body);
    proxy = created.json().participants[0].proxyNumber;
    for (const [from, channel] of [
      [COURIER, 'voice'],
      [STRANGER, 'voice'],
      [COURIER, 'sms'],
      [STRANGER, 'sms'],
    ])
      assert.equal((await t.api('POST', '/v1/route', { from, to: proxy, channel })).statusCode, 200);
  });
  after(async () => {
    await t.close();
  });

  const list = async (query = '', key?: string) => {
    const r = await t.api('GET', `/v1/interactions${query}`, undefined, key);
    assert.equal(r.statusCode, 200, r.body);
    return r.json() as { data: Entry[]; nextCursor: string | null };
  };

  it('lists every call and text across sessions, strangers’ refused ones included, oldest first', async () => {
    const { data, nextCursor } = await list();
    assert.deepEqual(
      data.map((e) => [e.from, e.channel, e.action, e.reason]),
      [
        [COURIER, 'voice', 'connect', null],
        [STRANGER, 'voice', 'reject', 'no_session'],
        [COURIER, 'sms', 'forward', null],
        [STRANGER, 'sms', 'reject', 'no_session'],
      ],
    );
    assert.equal(nextCursor, null);
    assert.equal(data[1]?.sessionId, null, 'a stranger is in no session');
  });

  it('filters by action, reason and channel, and pages with the cursor', async () => {
    const refused = await list('?action=reject');
    assert.deepEqual(
      refused.data.map((e) => [e.from, e.channel]),
      [
        [STRANGER, 'voice'],
        [STRANGER, 'sms'],
      ],
    );
    assert.deepEqual(
      (await list('?reason=no_session&channel=sms')).data.map((e) => e.from),
      [STRANGER],
    );
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: Entry[]; nextCursor: string | null } = await list(
        `?limit=1${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...page.data.map((e) => e.id));
      cursor = page.nextCursor;
    } while (cursor);
    assert.deepEqual(
      seen,
      (await list()).data.map((e) => e.id),
    );
    assert.deepEqual(
      (await list(`?after=${seen[1]}`)).data.map((e) => e.id),
      seen.slice(2),
    );
  });

  it('refuses a filter it does not know (400 naming it) and a key without read', async () => {
    for (const query of ['?action=dial', '?reason=because', '?channel=fax', '?limit=0']) {
      const r = await t.api('GET', `/v1/interactions${query}`);
      assert.equal(r.statusCode, 400, `${query}: ${r.body}`);
    }
    const { secret } = await t.veil.keys.create('default', 'edge', ['route']);
    assert.equal((await t.api('GET', '/v1/interactions', undefined, secret)).statusCode, 403);
    const reader = await t.veil.keys.create('default', 'ops', ['read']);
    assert.equal((await list('', reader.secret)).data.length, 4);
  });

  it('shows another tenant nothing of this one', async () => {
    const tenant = (await t.api('POST', '/v1/tenants', { name: 'other' })).json().id;
    const { secret } = await t.veil.keys.create(tenant, 'other', ['read']);
    assert.deepEqual(await list('', secret), { data: [], nextCursor: null });
  });

  describe('over a long log', () => {
    it(`reads at most ${SCAN_WINDOW} entries a request: a rare filter answers a short page and where to go on`, async () => {
      const now = t.clock.now;
      for (let i = 0; i < SCAN_WINDOW + 10; i++) {
        t.veil.interactions.record(
          interactionOf(
            newId('int', now + 1),
            { from: COURIER, to: proxy, channel: 'voice' },
            {
              action: 'connect',
              to: CUSTOMER,
              callerId: proxy,
              sessionId: null,
              record: false,
              maxCallSeconds: null,
            },
            'default',
            'api',
            null,
            now + 1,
          ),
        );
      }
      const first = await list('?action=reject&channel=voice');
      // The stranger's call comes first; the window ends inside the long run of connects.
      assert.deepEqual(
        first.data.map((e) => e.from),
        [STRANGER],
      );
      assert.ok(first.nextCursor, 'a cursor to go on from');
      const rest = await list(`?action=reject&channel=voice&cursor=${first.nextCursor}`);
      assert.deepEqual(rest, { data: [], nextCursor: null });
    });
  });
});
