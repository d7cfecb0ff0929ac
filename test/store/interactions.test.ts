import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { interactionOf } from '../../src/domain/interaction.ts';
import { InteractionLog } from '../../src/store/interactions.ts';
import { openStore, type Store } from '../../src/store/store.ts';
import { describeStores, TEST_KEYS } from '../support/stores.ts';

// A store for each test: the first counts every row of the table.
describeStores('InteractionLog', { perTest: true }, (test) => {
  let store: Store;
  beforeEach(async () => {
    store = await openStore(test().config, { keys: TEST_KEYS, schema: test().schema });
  });
  afterEach(async () => {
    await store.close();
  });

  it('writes every entry recorded, in batches of any size, exactly once', async () => {
    const log = new InteractionLog(store, (e) => assert.fail(String(e)));
    const now = Date.now();
    for (let i = 0; i < 1_137; i++) {
      const from = `+1415555${String(1000 + (i % 9000))}`;
      log.record(
        interactionOf(
          `int_${String(i).padStart(6, '0')}`,
          { from, to: '+14155550150', channel: 'voice' },
          { action: 'reject', reason: 'no_session', sessionId: null },
          'default',
          'api',
          `call-${i}`,
          now + i,
        ),
      );
      if (i % 300 === 0) await new Promise((r) => setImmediate(r));
    }
    await log.close();
    const rows = await store.db
      .selectFrom('interactions')
      .select(['id', 'provider_call_id', 'created_at'])
      .orderBy('id')
      .execute();
    assert.equal(rows.length, 1_137);
    assert.deepEqual(rows[1_136], {
      id: 'int_001136',
      provider_call_id: 'call-1136',
      created_at: now + 1_136,
    });
    assert.equal(new Set(rows.map((r) => r.id)).size, 1_137);
  });

  it('writes each field of an entry to its own column', async () => {
    const log = new InteractionLog(store, (e) => assert.fail(String(e)));
    const now = Date.now();
    const entry = interactionOf(
      'int_field_by_field',
      {
        from: '+14155550123',
        to: '+14155550150',
        channel: 'sms',
        body: 'hi',
        media: ['https://media.example/1.jpg', 'https://media.example/2.jpg'],
      },
      { action: 'forward', to: '+14155550187', from: '+14155550151', body: 'hi', sessionId: 'ses_fields' },
      'default',
      'twilio',
      'SM0123',
      now,
    );
    log.record(entry);
    await log.close();
    const [read] = await log.listForSession('default', 'ses_fields', undefined, 10);
    assert.deepEqual(read, entry);
    assert.deepEqual(read?.media, ['https://media.example/1.jpg', 'https://media.example/2.jpg']);
  });

  it("keeps a recording on a call's entry still waiting to be written; not on a text, nor an unknown call", async () => {
    const log = new InteractionLog(store, (e) => assert.fail(String(e)));
    const now = Date.now();
    const entry = (id: string, channel: 'voice' | 'sms') =>
      interactionOf(
        id,
        { from: '+14155550123', to: '+14155550150', channel },
        { action: 'reject', reason: 'no_session', sessionId: 'ses_recorded' },
        'default',
        'twilio',
        `${id}-sid`,
        now,
      );
    log.record(entry('int_call', 'voice'));
    log.record(entry('int_text', 'sms'));
    const recording = { url: 'https://media.example/rec.wav', durationSeconds: 61, status: 'completed' };
    assert.equal(await log.updateRecording('twilio', 'int_call-sid', recording, now + 1), true);
    assert.equal(await log.updateRecording('twilio', 'int_text-sid', recording, now + 1), false);
    assert.equal(await log.updateRecording('sim', 'int_call-sid', recording, now + 1), false);
    assert.equal(await log.updateRecording('twilio', 'unknown', recording, now + 1), false);
    const [call, text] = await log.listForSession('default', 'ses_recorded', undefined, 10);
    assert.deepEqual(call?.recording, recording);
    assert.equal(call?.updatedAt, now + 1);
    assert.equal(text?.recording, null);
    assert.deepEqual(text?.media, []);
    await log.close();
  });
});
