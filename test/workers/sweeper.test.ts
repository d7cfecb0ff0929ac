import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../src/logger.ts';
import { startSweeper } from '../../src/workers/sweeper.ts';
import { type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

const INTERVAL_MS = 10;
/** A sweeper that never sweeps, or a stop() that never returns, fails the test instead of hanging it. */
const TIMEOUT = { timeout: 10_000 };

/** Waits until `done()` holds, looking every interval; fails after `ms`. */
async function until(done: () => Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await sleep(INTERVAL_MS);
  }
}

describeStores('expiry sweeper', (store) => {
  let t: TestApp;
  before(async () => {
    t = await testApp(store());
    for (const number of ['+14155550150', '+14155550151']) {
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
    }
  });
  after(async () => {
    await t?.close();
  });

  /** The sweeper's log lines, as JSON. */
  const logged = () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (line: string) => lines.push(line) });
    return { logger, entries: () => lines.map((l) => JSON.parse(l)) };
  };

  /** A session of two people of its own, one second long, with the clock moved past its end. */
  const expiredSession = async (customer: string, courier: string): Promise<string> => {
    const r = await t.api('POST', '/v1/sessions', {
      ttlSeconds: 1,
      participants: [{ number: customer }, { number: courier }],
    });
    assert.equal(r.statusCode, 201, r.body);
    t.clock.advance(2);
    return r.json().id;
  };

  /** The session as stored: an expired one stays `open` there until something ends it. */
  const stored = (id: string) =>
    t.veil.store.db
      .selectFrom('sessions')
      .select(['status', 'closed_at'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
  const ended = async (id: string) => (await stored(id)).status === 'expired';

  it('ends the sessions past their expiry on its own, and releases their proxies', TIMEOUT, async () => {
    const id = await expiredSession('+14155550101', '+14155550102');
    assert.equal((await stored(id)).status, 'open', 'nothing ended it before the sweeper ran');
    const { logger, entries } = logged();
    const sweeper = startSweeper(t.veil.sessions, logger, INTERVAL_MS);
    try {
      await until(() => ended(id), 'the sweeper ended the session');
    } finally {
      await sweeper.stop();
    }
    assert.equal(Number((await stored(id)).closed_at), t.clock.now);
    const held = await t.veil.store.db.selectFrom('numbers').select('load').where('load', '<>', 0).execute();
    assert.deepEqual(held, [], 'its proxies are released');
    assert.deepEqual(
      entries().map((e) => [e.msg, e.ended]),
      [['expired sessions', 1]],
    );
  });

  it('logs a sweep that fails and sweeps again at the next interval', TIMEOUT, async () => {
    const id = await expiredSession('+14155550103', '+14155550104');
    let failures = 1;
    const sessions = {
      expireDue: async () => {
        if (failures-- > 0) throw new Error('database unreachable');
        return t.veil.sessions.expireDue();
      },
    };
    const { logger, entries } = logged();
    const sweeper = startSweeper(sessions, logger, INTERVAL_MS);
    try {
      await until(() => ended(id), 'the sweep after the failed one ended the session');
    } finally {
      await sweeper.stop();
    }
    const errors = entries().filter((e) => e.level === 50);
    assert.deepEqual(
      errors.map((e) => [e.msg, e.err?.message]),
      [['sweeper failed; will try again', 'database unreachable']],
    );
  });

  it('sweeps one at a time; stop() waits for a sweep in progress, none runs after', TIMEOUT, async () => {
    const id = await expiredSession('+14155550105', '+14155550106');
    let calls = 0;
    let began!: () => void;
    const running = new Promise<void>((resolve) => {
      began = resolve;
    });
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const sessions = {
      expireDue: async () => {
        calls++;
        began();
        await held;
        return t.veil.sessions.expireDue();
      },
    };
    const sweeper = startSweeper(sessions, logged().logger, INTERVAL_MS);
    await running;
    await sleep(5 * INTERVAL_MS);
    assert.equal(calls, 1, 'a second sweep started beside the first');
    let stopped = false;
    const stopping = sweeper.stop().then(() => {
      stopped = true;
    });
    await sleep(5 * INTERVAL_MS);
    assert.equal(stopped, false, 'stop() returned while a sweep was running');
    release();
    await stopping;
    assert.equal((await stored(id)).status, 'expired', 'the sweep in progress finished its work');
    const sweptBeforeStop = calls;
    await sleep(5 * INTERVAL_MS);
    assert.equal(calls, sweptBeforeStop, 'a sweep ran after stop()');
  });
});
