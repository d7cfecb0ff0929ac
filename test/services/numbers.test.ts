import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

describeStores('NumberService.findByNumber', (store) => {
  let t: TestApp;
  before(async () => {
    t = await testApp(store());
    await t.veil.store.db
      .insertInto('tenants')
      .values({ id: 'other', name: 'other', created_at: 0 })
      .execute();
    await t.veil.numbers.add('default', { number: '+14155550150', provider: 'sim' });
    await t.veil.numbers.add('other', { number: '+14155550151', provider: 'sim' });
  });
  after(async () => {
    await t?.close();
  });

  it("finds a number of the tenant's pool by the number itself", async () => {
    const found = await t.veil.numbers.findByNumber('default', '+14155550150');
    assert.equal(found?.number, '+14155550150');
    assert.equal(found?.tenantId, 'default');
  });

  it("does not find another tenant's number, nor one in no pool", async () => {
    assert.equal(await t.veil.numbers.findByNumber('default', '+14155550151'), undefined);
    assert.equal(await t.veil.numbers.findByNumber('default', '+14155550199'), undefined);
    assert.equal((await t.veil.numbers.findByNumber('other', '+14155550151'))?.tenantId, 'other');
  });
});
