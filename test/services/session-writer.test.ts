import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { normalizeSession, type Session, type SessionInput } from '../../src/domain/session.ts';
import { DEFAULT_TENANT } from '../../src/domain/tenants.ts';
import type { Allocator } from '../../src/services/allocator.ts';
import { StoreSessionWriter } from '../../src/services/session-writer.ts';
import type { Db } from '../../src/store/schema.ts';
import { type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

/** A writer whose next allocation waits, once it has begun, until the test lets it go on. */
class PausingWriter extends StoreSessionWriter {
  private release!: () => void;
  private readonly gate = new Promise<void>((resolve) => {
    this.release = resolve;
  });
  private arrive!: () => void;
  /** Resolves when an allocation has begun and waits at the gate. */
  readonly arrived = new Promise<void>((resolve) => {
    this.arrive = resolve;
  });

  goOn(): void {
    this.release();
  }

  protected override allocator(trx: Db, session: Session, now: number): Allocator {
    const allocator = super.allocator(trx, session, now);
    const allocate = allocator.allocate.bind(allocator);
    allocator.allocate = async (requests) => {
      this.arrive();
      await this.gate;
      return allocate(requests);
    };
    return allocator;
  }
}

// Only where writers run side by side: SQLite runs one write transaction at a time, so the second
// create below would wait for the first, which waits for the test.
describeStores('StoreSessionWriter.create: one session per externalId', { only: 'postgres' }, (store) => {
  let t: TestApp;
  before(async () => {
    t = await testApp(store());
    for (const number of ['+14155550150', '+14155550151', '+14155550152']) {
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
    }
  });
  after(async () => {
    await t.close();
  });

  it('a create that looked before another of its externalId committed, and was closed, answers with that one', async () => {
    const input: SessionInput = {
      externalId: 'order-race',
      ttlSeconds: 600,
      participants: [{ number: '+14155550123' }, { number: '+14155550187' }],
    };
    const now = t.clock.now;
    const request = normalizeSession(input, { ttlSeconds: 86_400 }, now);
    const settings = { reuseCooldownSeconds: 0, carriers: ['sim'] };
    const late = new PausingWriter(t.veil.store, settings);
    const quick = new StoreSessionWriter(t.veil.store, settings);

    // The late create has looked for the externalId (nothing yet) and waits in its allocation.
    const lateCreate = late.create(DEFAULT_TENANT, request, now);
    await late.arrived;
    // Meanwhile another create of it commits and the order is closed: no open session is left
    // for the unique index to set against the late one.
    const quickCreate = await quick.create(DEFAULT_TENANT, request, now);
    assert.equal(quickCreate.created, true);
    await quick.close(DEFAULT_TENANT, quickCreate.session.id, now + 1);
    late.goOn();

    const answer = await lateCreate;
    assert.equal(answer.created, false);
    assert.equal(answer.session.id, quickCreate.session.id);
    assert.equal(answer.session.status, 'closed');
    const db = t.veil.store.db;
    assert.deepEqual(await db.selectFrom('sessions').select(['id', 'status']).execute(), [
      { id: quickCreate.session.id, status: 'closed' },
    ]);
    assert.equal((await db.selectFrom('participants').select('id').execute()).length, 2);
    const loads = await db.selectFrom('numbers').select('load').execute();
    assert.deepEqual(
      loads.map((n) => Number(n.load)),
      [0, 0, 0],
      'the late create took no proxy',
    );
  });
});
