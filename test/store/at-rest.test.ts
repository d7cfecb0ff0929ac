import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { ConfigError } from '../../src/config.ts';
import { migrateTo } from '../../src/store/migrations.ts';
import { sealAll } from '../../src/store/sealing.ts';
import { openStore } from '../../src/store/store.ts';
import {
  type DataKeys,
  generateDataKeys,
  NumberVault,
  SealedValueError,
  vaultOf,
} from '../../src/store/vault.ts';
import { type TestApp, testApp } from '../support/app.ts';
import { describeStores, TEST_KEYS, type TestStore } from '../support/stores.ts';

// The people of the workload: each must be found nowhere in the database files or the logs.
const COURIER = '+14155550123';
const CUSTOMER = '+14155550187';
const REPLACEMENT = '+14155550164';
const STRANGER = '+14155550199';
const BLOCKED = '+14155550142';
const PEOPLE = [COURIER, CUSTOMER, REPLACEMENT, STRANGER, BLOCKED];
const PROXIES = ['+14155550900', '+14155550901', '+14155550902'];

/** The ways a number could be written down: E.164, without its plus, and national. */
const spellings = (number: string) => [number, number.slice(1), number.slice(2)];

/** The people whose number appears in `text`, in any spelling. */
const found = (text: string, people = PEOPLE) =>
  people.filter((n) => spellings(n).some((s) => text.includes(s)));

/** Every byte of a SQLite database: the file, its WAL and its shared-memory file (as Latin-1 text). */
function sqliteBytes(file: string): string {
  return ['', '-wal', '-shm', '-journal']
    .map((suffix) => file + suffix)
    .filter((f) => existsSync(f))
    .map((f) => readFileSync(f).toString('latin1'))
    .join('\n');
}

/** Every row of every table of a PostgreSQL schema, as text. */
async function postgresRows(store: TestStore): Promise<string> {
  if (store.config.dialect !== 'postgres') throw new Error('a PostgreSQL store');
  const client = new pg.Client({ connectionString: store.config.url });
  await client.connect();
  try {
    const tables = await client.query<{ table_name: string }>(
      'select table_name from information_schema.tables where table_schema = $1',
      [store.schema],
    );
    const texts: string[] = [];
    for (const { table_name } of tables.rows) {
      const rows = await client.query(`select t::text as row from ${store.schema}."${table_name}" t`);
      texts.push(...rows.rows.map((r) => r.row as string));
    }
    return texts.join('\n');
  } finally {
    await client.end();
  }
}

describeStores('real numbers at rest', { perTest: true }, (store) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp(store());
  });
  afterEach(async () => {
    await t?.close();
  });

  /** Sessions, calls, a stranger, a text, a replacement, a blocked number, a close: every table a number reaches. */
  async function workload(): Promise<void> {
    for (const number of PROXIES)
      assert.equal((await t.api('POST', '/v1/numbers', { number, provider: 'sim' })).statusCode, 201);
    const created = await t.api('POST', '/v1/sessions', {
      externalId: 'order-1',
      participants: [
        { number: COURIER, label: 'courier' },
        { number: CUSTOMER, revealNumber: true },
      ],
    });
    assert.equal(created.statusCode, 201, created.body);
    const session = created.json();
    const [courier, customer] = session.participants;
    const call = await t.api('POST', '/v1/route', {
      from: COURIER,
      to: courier.proxyNumber,
      channel: 'voice',
    });
    assert.deepEqual([call.json().action, call.json().to], ['connect', CUSTOMER]);
    const text = await t.api('POST', '/v1/route', {
      from: CUSTOMER,
      to: customer.proxyNumber,
      channel: 'sms',
    });
    assert.equal(text.json().action, 'forward');
    const stranger = await t.api('POST', '/v1/route', {
      from: STRANGER,
      to: courier.proxyNumber,
      channel: 'voice',
    });
    assert.equal(stranger.json().action, 'reject');
    assert.equal(
      (await t.api('POST', '/v1/blocklist', { number: BLOCKED, reason: 'abuse' })).statusCode,
      201,
    );
    const replaced = await t.api('PUT', `/v1/sessions/${session.id}/participants/${customer.id}`, {
      number: REPLACEMENT,
    });
    assert.equal(replaced.statusCode, 200, replaced.body);
    assert.ok([200, 204].includes((await t.api('DELETE', `/v1/sessions/${session.id}`)).statusCode));
    await t.veil.interactions.flush();
  }

  it('holds no participant number in clear in the database or the logs, before and after shutdown', async () => {
    await workload();
    // The API still answers with the numbers: they are sealed, not lost.
    const listed = (await t.api('GET', '/v1/sessions?externalId=order-1')).json().data[0];
    assert.deepEqual(
      listed.participants.map((p: { number: string }) => p.number),
      [COURIER, REPLACEMENT],
    );
    const log = (await t.api('GET', `/v1/sessions/${listed.id}/interactions`)).json().data;
    assert.deepEqual(
      log.map((i: { from: string }) => i.from),
      [COURIER, CUSTOMER],
    );
    const blocklist = (await t.api('GET', '/v1/blocklist')).json().data;
    assert.deepEqual(
      blocklist.map((b: { number: string }) => b.number),
      [BLOCKED],
    );
    const events = (await t.api('GET', '/v1/events')).json().data;
    assert.ok(found(JSON.stringify(events)).includes(COURIER), 'events answer with the numbers');

    const scan = async () =>
      store().name === 'sqlite'
        ? sqliteBytes((store().config as { file: string }).file)
        : postgresRows(store());
    const running = await scan();
    // The scan itself works: pool numbers, which are no one's, are stored in clear and found.
    assert.deepEqual(found(running, PROXIES), PROXIES);
    assert.deepEqual(found(running), [], 'a participant number in clear while running');
    assert.deepEqual(found(t.logs.join('\n')), [], 'a participant number in clear in the logs');
    await t.close();
    assert.deepEqual(found(await scan()), [], 'a participant number in clear after shutdown');
  });

  it('rotates: a new first key seals new writes, older values still open, rotate-data moves them all', async () => {
    const r1 = generateDataKeys('r1');
    const env = (keys: { id: string; key: Uint8Array }[]) => ({
      VEIL_DATA_KEYS: keys.map((k) => `${k.id}:${Buffer.from(k.key).toString('base64')}`).join(','),
      // The index key the database was first opened with (TEST_KEYS): it cannot change.
      VEIL_INDEX_KEY: Buffer.from(TEST_KEYS.indexKey).toString('base64'),
    });
    const [first] = r1.dataKeys as [{ id: string; key: Uint8Array }];
    const second = { id: 'r2', key: generateDataKeys().dataKeys[0]?.key as Uint8Array };
    await t.close();
    t = await testApp(store(), env([first]));
    await workload();
    await t.close();

    // r2 first, r1 kept to read: everything written under r1 still reads.
    t = await testApp(store(), env([second, first]));
    const sessions = (await t.api('GET', '/v1/sessions?externalId=order-1')).json().data;
    assert.deepEqual(
      sessions[0].participants.map((p: { number: string }) => p.number),
      [COURIER, REPLACEMENT],
    );
    const keyIds = async () => {
      const db = t.veil.store.db;
      const values = [
        ...(await db.selectFrom('participants').select('number_sealed as v').execute()),
        ...(await db.selectFrom('blocklist').select('number_sealed as v').execute()),
        ...(await db.selectFrom('interactions').select('from_number as v').execute()),
        ...(await db.selectFrom('events').select('payload as v').execute()),
      ];
      return new Set(values.map((r) => NumberVault.keyIdOf(r.v ?? '')));
    };
    assert.deepEqual(await keyIds(), new Set(['r1']));
    const progress: string[] = [];
    const done = await sealAll(t.veil.store, 'rotate', (table, n) => progress.push(`${table} ${n}`));
    assert.ok(
      done.participants >= 3 && done.interactions >= 3 && done.blocklist === 1 && done.events >= 2,
      JSON.stringify(done),
    );
    assert.ok(progress.length >= 4, progress.join('; '));
    assert.deepEqual(await keyIds(), new Set(['r2']));
    // A second pass finds nothing left to do.
    assert.deepEqual(await sealAll(t.veil.store, 'rotate'), {
      participants: 0,
      blocklist: 0,
      interactions: 0,
      events: 0,
      sessions: 0,
    });
    await t.close();

    // r1 dropped: everything reads under r2 alone, and routing still finds the people.
    t = await testApp(store(), env([second]));
    const again = (await t.api('GET', '/v1/sessions?externalId=order-1')).json().data[0];
    assert.deepEqual(
      again.participants.map((p: { number: string }) => p.number),
      [COURIER, REPLACEMENT],
    );
    assert.equal((await t.api('GET', '/v1/blocklist')).json().data[0].number, BLOCKED);
    await t.close();

    // Without the key a value was sealed under, reading it fails loudly, never with a wrong number.
    t = await testApp(store(), env([first]));
    const refused = await t.api('GET', '/v1/sessions?externalId=order-1');
    assert.equal(refused.statusCode, 500);
    assert.ok(!found(refused.body).length);
  });
});

describeStores('the keys a database was opened with', { perTest: true }, (store) => {
  const open = (keys: DataKeys) =>
    openStore(store().config, { keys, schema: store().schema, background: false });
  const refusedFor = (variable: string) => (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.key, variable);
    return true;
  };

  it('refuses another index key, or another key under a data key id it knows, and opens with its own', async () => {
    await (await open(TEST_KEYS)).close();
    const other = generateDataKeys('k1');
    const [ours] = TEST_KEYS.dataKeys as [{ id: string; key: Uint8Array }];
    const [theirs] = other.dataKeys as [{ id: string; key: Uint8Array }];
    await assert.rejects(
      open({ indexKey: other.indexKey, dataKeys: TEST_KEYS.dataKeys }),
      refusedFor('VEIL_INDEX_KEY'),
    );
    await assert.rejects(
      open({ indexKey: TEST_KEYS.indexKey, dataKeys: [{ id: ours.id, key: theirs.key }] }),
      refusedFor('VEIL_DATA_KEYS'),
    );
    // The same id kept second, to read with, is refused too.
    await assert.rejects(
      open({
        indexKey: TEST_KEYS.indexKey,
        dataKeys: [
          { id: 'k9', key: theirs.key },
          { id: ours.id, key: theirs.key },
        ],
      }),
      refusedFor('VEIL_DATA_KEYS'),
    );
    // A new key under a new id is what rotation adds: accepted, and checked from then on.
    await (
      await open({ indexKey: TEST_KEYS.indexKey, dataKeys: [{ id: 'k9', key: theirs.key }, ours] })
    ).close();
    await assert.rejects(
      open({ indexKey: TEST_KEYS.indexKey, dataKeys: [{ id: 'k9', key: ours.key }, ours] }),
      refusedFor('VEIL_DATA_KEYS'),
    );
    await (await open(TEST_KEYS)).close();
  });
});

describeStores('migration 0015_sealed_numbers', { perTest: true }, (store) => {
  /** A bare Kysely over the test store, migrated by hand. */
  function bare(): Kysely<unknown> {
    const s = store();
    if (s.config.dialect === 'sqlite')
      return new Kysely({ dialect: new SqliteDialect({ database: new Database(s.config.file) }) });
    const pool = new pg.Pool({ connectionString: s.config.url, options: `-c search_path=${s.schema}` });
    return new Kysely({ dialect: new PostgresDialect({ pool }) });
  }

  it('seals what an older Veil wrote in clear when the store opens: lookups, blocks, logs and events keep working', async () => {
    const db = bare();
    const now = Date.parse('2026-01-01T00:00:00Z');
    try {
      await migrateTo(db, '0014_webhook_receipts', store().schema);
      await sql`insert into numbers (id, tenant_id, number, provider, country, region, voice, sms, status, tags, max_sessions, load, created_at, updated_at)
        values ('num_1', 'default', '+14155550900', 'sim', 'US', '415', 1, 1, 'active', '{}', null, 1, ${now}, ${now})`.execute(
        db,
      );
      await sql`insert into sessions (id, tenant_id, external_id, fingerprint, mode, status, ttl_mode, ttl_seconds, expires_at, record, channels, max_call_seconds, geo_match, sticky, extension_fallback, metadata, created_at, updated_at, closed_at)
        values ('ses_1', 'default', 'order-1', 'f', 'shared', 'open', 'fixed', 60, ${now + 3_600_000}, 0, 'voice,sms', null, 'region', 'none', 0, '{}', ${now}, ${now}, null)`.execute(
        db,
      );
      for (const [id, number] of [
        ['par_1', COURIER],
        ['par_2', CUSTOMER],
      ]) {
        await sql`insert into participants (id, tenant_id, session_id, number, label, proxy_number_id, proxy_number, reveal_number, can_initiate, active, created_at, extension, binding_version, binding_attempts)
          values (${id}, 'default', 'ses_1', ${number}, null, 'num_1', '+14155550900', 0, 1, 1, ${now}, '', 0, 0)`.execute(
          db,
        );
      }
      await sql`insert into blocklist (tenant_id, number, reason, created_at) values ('default', ${BLOCKED}, null, ${now})`.execute(
        db,
      );
      await sql`insert into interactions (id, tenant_id, session_id, channel, from_number, to_number, target_number, caller_id, action, reason, provider, provider_call_id, status, duration_seconds, created_at, updated_at)
        values ('int_1', 'default', 'ses_1', 'voice', ${COURIER}, '+14155550900', ${CUSTOMER}, '+14155550900', 'connect', null, 'sim', null, 'initiated', null, ${now}, ${now})`.execute(
        db,
      );
      await sql`insert into events (id, tenant_id, type, payload, created_at, fanned_out)
        values ('evt_1', 'default', 'session.created', ${JSON.stringify({ id: 'ses_1', participants: [{ number: COURIER }] })}, ${now}, 1)`.execute(
        db,
      );
    } finally {
      await db.destroy();
    }
    const opened = await openStore(store().config, {
      keys: TEST_KEYS,
      schema: store().schema,
      background: false,
    });
    try {
      const vault = vaultOf(opened.db);
      const participants = await opened.db.selectFrom('participants').selectAll().orderBy('id').execute();
      assert.deepEqual(
        participants.map((p) => [p.number_index, vault.openNumber(p.number_sealed)]),
        [
          [vault.index(COURIER), COURIER],
          [vault.index(CUSTOMER), CUSTOMER],
        ],
      );
      const [block] = await opened.db.selectFrom('blocklist').selectAll().execute();
      assert.deepEqual(
        [block?.number_index, vault.openNumber(block?.number_sealed ?? null)],
        [vault.index(BLOCKED), BLOCKED],
      );
      const [call] = await opened.db.selectFrom('interactions').selectAll().execute();
      assert.deepEqual(
        [
          call?.from_index,
          vault.open(call?.from_number ?? ''),
          vault.openOrNull(call?.target_number ?? null),
        ],
        [vault.index(COURIER), COURIER, CUSTOMER],
      );
      const [event] = await opened.db.selectFrom('events').selectAll().execute();
      assert.equal(JSON.parse(vault.open(event?.payload ?? '')).participants[0].number, COURIER);
      // Done once for the database: later opens find the setting and skip the walk.
      const [done] = await opened.db
        .selectFrom('settings')
        .select('value')
        .where('key', '=', 'numbers_sealed')
        .execute();
      assert.ok(done, 'the walk is recorded as done');
      // The request's fingerprint, a plain hash then, is keyed now.
      const [session] = await opened.db.selectFrom('sessions').select('fingerprint').execute();
      assert.equal(session?.fingerprint, vault.fingerprint('f'));
      // Nothing is left in clear, and opening again changes nothing.
      assert.deepEqual(found(JSON.stringify([participants, block, call, event])), []);
      assert.deepEqual(await sealAll(opened, 'legacy'), {
        participants: 0,
        blocklist: 0,
        interactions: 0,
        events: 0,
        sessions: 0,
      });
    } finally {
      await opened.close();
    }
  });
});

describe('NumberVault', () => {
  const vault = new NumberVault(TEST_KEYS);

  it('seals with a fresh nonce each time, opens what it sealed, and refuses a tampered or foreign value', () => {
    const a = vault.seal(COURIER);
    const b = vault.seal(COURIER);
    assert.notEqual(a, b);
    assert.equal(vault.open(a), COURIER);
    assert.equal(vault.open(b), COURIER);
    const [id, body] = a.split(':') as [string, string];
    const flipped = `${id}:${body.slice(0, 20)}${body[20] === 'A' ? 'B' : 'A'}${body.slice(21)}`;
    assert.throws(() => new NumberVault(TEST_KEYS).open(flipped), SealedValueError);
    assert.throws(() => vault.open(COURIER), SealedValueError);
    assert.throws(() => new NumberVault(generateDataKeys()).open(a), SealedValueError);
    assert.throws(
      () => new NumberVault({ ...TEST_KEYS, dataKeys: [{ id: 'k9', key: TEST_KEYS.indexKey }] }).open(a),
      /no data key "k1"/,
    );
  });

  it('gives each number one blind index under its key, another under another key', () => {
    assert.equal(vault.index(COURIER), new NumberVault(TEST_KEYS).index(COURIER));
    assert.notEqual(vault.index(COURIER), vault.index(CUSTOMER));
    assert.notEqual(vault.index(COURIER), new NumberVault(generateDataKeys()).index(COURIER));
    assert.deepEqual(found(vault.index(COURIER) + vault.sealNumber(COURIER)), []);
  });

  it('refuses keys of the wrong size, a bad id, or the same id twice', () => {
    const key = TEST_KEYS.indexKey;
    assert.throws(
      () => new NumberVault({ indexKey: key.subarray(1), dataKeys: [{ id: 'a', key }] }),
      /index key/,
    );
    assert.throws(() => new NumberVault({ indexKey: key, dataKeys: [] }), /at least one/);
    assert.throws(() => new NumberVault({ indexKey: key, dataKeys: [{ id: 'a:b', key }] }), /id "a:b"/);
    assert.throws(
      () =>
        new NumberVault({
          indexKey: key,
          dataKeys: [
            { id: 'a', key },
            { id: 'a', key },
          ],
        }),
      /twice/,
    );
  });
});
