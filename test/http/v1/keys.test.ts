import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashKey } from '../../../src/domain/keys.ts';
import { KEY_CACHE_TTL_MS } from '../../../src/services/keys.ts';
import { type TestApp, testApp } from '../../support/app.ts';
import { storeKinds, type TestStore } from '../../support/stores.ts';

const TTL_SECONDS = KEY_CACHE_TTL_MS / 1000;

for (const kind of storeKinds()) {
  describe(`/v1/keys (${kind.name})`, () => {
    let store: TestStore;
    let t: TestApp;
    before(async () => {
      store = await kind.create();
      t = await testApp(store);
    });
    after(async () => {
      try {
        await t?.close();
      } finally {
        await store?.drop();
      }
    });

    /** A new key with the `sessions` scope, already used once (so this instance has it cached). */
    async function usedKey(app = t): Promise<{ id: string; key: string }> {
      const r = await app.api('POST', '/v1/keys', { name: 'courier-app', scopes: ['sessions'] });
      assert.equal(r.statusCode, 201, r.body);
      const { id, key } = r.json();
      assert.equal((await app.api('GET', '/v1/sessions', undefined, key)).statusCode, 200);
      return { id, key };
    }

    const row = (id: string) =>
      t.veil.store.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

    describe('POST /v1/keys', () => {
      it('shows the secret once and stores only its hash', async () => {
        const r = await t.api('POST', '/v1/keys', { name: 'reader', scopes: ['read'] });
        assert.equal(r.statusCode, 201, r.body);
        const created = r.json();
        assert.match(created.key, /^veil_/);
        assert.deepEqual(created.scopes, ['read']);
        assert.equal((await row(created.id)).key_hash, hashKey(created.key));
        const listed = (await t.api('GET', '/v1/keys')).json().data;
        const entry = listed.find((k: { id: string }) => k.id === created.id);
        assert.ok(entry);
        assert.equal(entry.key, undefined);
        assert.ok(!JSON.stringify(listed).includes(created.key));
      });
    });

    describe('DELETE /v1/keys/:id', () => {
      it('revokes at once: the key answers 401 on its very next request', async () => {
        const { id, key } = await usedKey();
        const r = await t.api('DELETE', `/v1/keys/${id}`);
        assert.equal(r.statusCode, 204, r.body);
        const next = await t.api('GET', '/v1/sessions', undefined, key);
        assert.equal(next.statusCode, 401, next.body);
        assert.equal(next.json().error.code, 'unauthorized');
        assert.notEqual((await row(id)).revoked_at, null);
        // Only that key: the others still open the API.
        assert.equal((await t.api('GET', '/v1/sessions')).statusCode, 200);
      });

      it('a key may revoke itself, and its own next request is refused', async () => {
        const r = await t.api('POST', '/v1/keys', { name: 'ops', scopes: ['admin'] });
        const { id, key } = r.json();
        assert.equal((await t.api('DELETE', `/v1/keys/${id}`, undefined, key)).statusCode, 204);
        assert.equal((await t.api('GET', '/v1/keys', undefined, key)).statusCode, 401);
      });

      it('answers 404 not_found for an unknown id, and revokes nothing', async () => {
        const before = await t.veil.store.db
          .selectFrom('api_keys')
          .select('id')
          .where('revoked_at', 'is', null)
          .execute();
        const r = await t.api('DELETE', '/v1/keys/key_0000000000000000');
        assert.equal(r.statusCode, 404, r.body);
        assert.equal(r.json().error.code, 'not_found');
        const after = await t.veil.store.db
          .selectFrom('api_keys')
          .select('id')
          .where('revoked_at', 'is', null)
          .execute();
        assert.deepEqual(after, before);
        assert.equal((await t.api('GET', '/v1/sessions')).statusCode, 200);
      });

      it('a revoked key never comes back: not after the cache expires, not after a restart', async () => {
        const { id, key } = await usedKey();
        assert.equal((await t.api('DELETE', `/v1/keys/${id}`)).statusCode, 204);
        for (let i = 0; i < 3; i++) {
          t.clock.advance(TTL_SECONDS + 1);
          assert.equal((await t.api('GET', '/v1/sessions', undefined, key)).statusCode, 401);
        }
        const restarted = await testApp(store);
        try {
          assert.equal((await restarted.api('GET', '/v1/sessions', undefined, key)).statusCode, 401);
        } finally {
          await restarted.close();
        }
        const listed = (await t.api('GET', '/v1/keys')).json().data;
        assert.notEqual(listed.find((k: { id: string }) => k.id === id)?.revokedAt, null);
      });

      it('a revocation on another instance applies there within the cache TTL', async () => {
        const other = await testApp(store);
        try {
          // The key is verified on the other instance, which now answers it from its cache.
          const { id, key } = await usedKey(other);
          assert.equal((await t.api('DELETE', `/v1/keys/${id}`)).statusCode, 204);
          other.clock.advance(TTL_SECONDS + 1);
          const r = await other.api('GET', '/v1/sessions', undefined, key);
          assert.equal(r.statusCode, 401, r.body);
        } finally {
          await other.close();
        }
      });

      it('a busy key is still read again after the TTL (use does not extend its cache entry)', async () => {
        const other = await testApp(store);
        try {
          const { id, key } = await usedKey(other);
          assert.equal((await t.api('DELETE', `/v1/keys/${id}`)).statusCode, 204);
          // Used every second across the TTL on the other instance: the entry must still expire.
          for (let s = 0; s <= TTL_SECONDS; s++) {
            other.clock.advance(1);
            await other.api('GET', '/v1/sessions', undefined, key);
          }
          other.clock.advance(1);
          assert.equal((await other.api('GET', '/v1/sessions', undefined, key)).statusCode, 401);
        } finally {
          await other.close();
        }
      });
    });
  });
}
