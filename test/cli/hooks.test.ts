import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { loadConfig } from '../../src/config.ts';
import { DEFAULT_TENANT } from '../../src/domain/tenants.ts';
import { createLogger } from '../../src/logger.ts';
import { createVeil } from '../../src/veil.ts';
import { HookApp } from '../support/hook-app.ts';
import { TEST_KEY_ENV } from '../support/stores.ts';
import { json, Workspace } from './run.ts';

const STRANGER = '+14155550199';
const PROXY = '+14155550150';
const SUPPORT = '+14155550000';

describe('veil hooks secret', { concurrency: true }, () => {
  const ws = new Workspace();
  const app = new HookApp();
  before(() => app.start());
  after(async () => {
    await app.close();
    ws.remove();
  });

  it('prints the signing secret, made once and kept in the database, which the server then signs with', async () => {
    const first = await ws.veil(['hooks', 'secret']);
    assert.equal(first.code, 0, first.stderr);
    const match = /^(whsec_([A-Za-z0-9+/]+={0,2}))\n$/.exec(first.stdout);
    assert.ok(match, first.stdout);
    const [, secret, key] = match as unknown as [string, string, string];
    assert.equal(Buffer.from(key, 'base64').length, 32);
    const again = await ws.veil(['hooks', 'secret', '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(json(again), { secret });

    // The server on that database: a call it puts to the app is signed with the secret printed.
    const veil = await createVeil(
      loadConfig({
        DATABASE_URL: ws.env.DATABASE_URL as string,
        VEIL_OUT_OF_SESSION: `forward:${SUPPORT}`,
        VEIL_INTERCEPT_URL: app.url('/intercept'),
      }),
      { logger: createLogger('silent') },
    );
    try {
      await veil.numbers.add(DEFAULT_TENANT, { number: PROXY, provider: 'sim' });
      app.answer('/intercept', { action: 'allow' });
      const decision = await veil.router.route(
        { from: STRANGER, to: PROXY, channel: 'voice' },
        { provider: 'api', tenantId: DEFAULT_TENANT },
      );
      assert.equal(decision.action, 'connect');
      const [call] = app.calls;
      assert.ok(call);
      const payload = { from: STRANGER, to: PROXY, channel: 'voice' };
      assert.deepEqual(
        new Webhook(secret).verify(call.body, call.headers as Record<string, string>),
        payload,
      );
    } finally {
      await veil.close();
    }
  });

  it('a server refuses to start in production with an http webhook, naming the variable (exit 78)', async () => {
    const runs = await Promise.all(
      [
        { VEIL_OUT_OF_SESSION: 'ask:http://app.example.com/ask' },
        { VEIL_INTERCEPT_URL: 'http://app.example.com/intercept' },
      ].map((env) => ws.veil(['serve'], { NODE_ENV: 'production', ...TEST_KEY_ENV, ...env })),
    );
    for (const [i, key] of ['VEIL_OUT_OF_SESSION', 'VEIL_INTERCEPT_URL'].entries()) {
      const run = runs[i];
      assert.equal(run?.code, 78, JSON.stringify(run));
      assert.match(
        run?.stderr ?? '',
        new RegExp(`^veil: bad configuration: ${key}: must be an https:// URL`),
      );
      assert.equal(run?.stdout, '');
    }
  });
});
