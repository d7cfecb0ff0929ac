import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { hashKey } from '../../src/domain/keys.ts';
import { DEFAULT_TENANT } from '../../src/domain/tenants.ts';
import { createLogger } from '../../src/logger.ts';
import { createVeil, type Veil } from '../../src/veil.ts';
import { json, refused, Workspace } from './run.ts';

describe('veil keys', { concurrency: 1 }, () => {
  const ws = new Workspace();
  let core: Veil;
  before(async () => {
    core = await createVeil(loadConfig({ DATABASE_URL: ws.env.DATABASE_URL }), {
      logger: createLogger('silent'),
    });
  });
  after(async () => {
    await core.close();
    ws.remove();
  });

  it('creates, lists, rotates and revokes keys; the secret is printed only when made', async () => {
    const made = await ws.veil(['keys', 'create', 'edge', '--scope', 'route', '--json']);
    assert.equal(made.code, 0, made.stderr);
    const key = json<{ id: string; key: string; scopes: string[]; tenantId: string }>(made);
    assert.deepEqual(key.scopes, ['route']);
    assert.equal(key.tenantId, DEFAULT_TENANT);
    assert.equal((await core.keys.authenticate(key.key))?.id, key.id);

    const plain = await ws.veil(['keys', 'create', 'ops', '--scope', 'admin', '--scope', 'read']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(
      plain.stdout,
      /^created key key_\w+ \(admin, read\) for tenant default\nsecret, shown this once: veil_/,
    );

    const [table, listed] = await Promise.all([
      ws.veil(['keys', 'list']),
      ws.veil(['keys', 'list', '--json']),
    ]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^ID +NAME +SCOPES +CREATED AT +REVOKED AT\n/);
    assert.ok(!table.stdout.includes(key.key) && !listed.stdout.includes(key.key));
    const ids = json<{ data: { id: string }[] }>(listed).data.map((k) => k.id);
    assert.ok(ids.includes(key.id));

    const rotated = await ws.veil(['keys', 'rotate', key.id, '--json']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const secret = json<{ id: string; key: string }>(rotated).key;
    assert.notEqual(secret, key.key);
    // The core in this process hears of it as another instance would: on its next look-up.
    assert.equal(await core.keys.authenticate(key.key), undefined);
    assert.equal((await core.keys.authenticate(secret))?.id, key.id);
    const row = await core.store.db
      .selectFrom('api_keys')
      .selectAll()
      .where('id', '=', key.id)
      .executeTakeFirstOrThrow();
    assert.equal(row.key_hash, hashKey(secret));

    const revoked = await ws.veil(['keys', 'revoke', key.id]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(revoked.stdout, `revoked key ${key.id} (edge)\n`);
    assert.equal(await core.keys.authenticate(secret), undefined);

    const audit = await core.audit.list(DEFAULT_TENANT, { limit: 100 });
    assert.deepEqual(
      audit.data.filter((e) => e.targetId === key.id).map((e) => [e.action, e.keyId]),
      [
        ['key.created', null],
        ['key.rotated', null],
        ['key.revoked', null],
      ],
    );
  });

  it('refuses a bad scope, an unknown key and an unknown tenant, writing nothing', async () => {
    const before = (await core.keys.list(DEFAULT_TENANT)).length;
    const runs = await Promise.all([
      ws.veil(['keys', 'create', 'x', '--scope', 'root']),
      ws.veil(['keys', 'create', 'x']),
      ws.veil(['keys', 'create', 'x', '--scope', 'read', '--tenant', 'ten_none']),
      ws.veil(['keys', 'revoke', 'key_none']),
      ws.veil(['keys', 'rotate', 'key_none', '--json']),
    ]);
    for (const r of runs) assert.ok(refused(r), JSON.stringify(r));
    assert.match(runs[0]?.stderr ?? '', /--scope must be one of admin, sessions, route, read/);
    assert.equal((await core.keys.list(DEFAULT_TENANT)).length, before);
  });
});

describe('veil keys rotate-data', { concurrency: 1 }, () => {
  const key = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;
  const [k1, k2] = [key('k1'), key('k2')];
  const ws = new Workspace({ VEIL_INDEX_KEY: randomBytes(32).toString('base64') });
  const CUSTOMER = '+14155550101';
  after(() => ws.remove());

  it('seals every stored number again under the first key, with progress, and the old key can go', async () => {
    const added = await ws.veil(['blocklist', 'add', CUSTOMER, '--json'], { VEIL_DATA_KEYS: k1 });
    assert.equal(added.code, 0, added.stderr);
    const rotated = await ws.veil(['keys', 'rotate-data'], { VEIL_DATA_KEYS: `${k2},${k1}` });
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stdout, /^blocklist: 1 sealed again\n/m);
    assert.match(rotated.stdout, /every stored number is sealed under data key k2 \(.*blocklist 1.*\)\n$/);
    const again = await ws.veil(['keys', 'rotate-data', '--json'], { VEIL_DATA_KEYS: `${k2},${k1}` });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(json<Record<string, unknown>>(again), {
      keyId: 'k2',
      participants: 0,
      blocklist: 0,
      interactions: 0,
      events: 0,
      sessions: 0,
    });
    // k1 dropped: the number reads under k2 alone.
    const listed = await ws.veil(['blocklist', 'list', '--json'], { VEIL_DATA_KEYS: k2 });
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      json<{ data: { number: string }[] }>(listed).data.map((e) => e.number),
      [CUSTOMER],
    );
    // Without the key the values are sealed under, the command fails and says so, naming no number.
    const lost = await ws.veil(['blocklist', 'list', '--json'], { VEIL_DATA_KEYS: k1 });
    assert.notEqual(lost.code, 0);
    assert.ok(!`${lost.stdout}${lost.stderr}`.includes(CUSTOMER.slice(2)), lost.stderr);
  });
});
