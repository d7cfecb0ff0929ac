import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { generateWebhookSecret } from '../../src/domain/ids.ts';
import { AppWebhookClient } from '../../src/services/app-hooks.ts';
import { HookApp } from '../support/hook-app.ts';

const PAYLOAD = { from: '+14155550199', to: '+14155550150', channel: 'voice' as const };

/** A port on which nothing listens. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === 'object' && address ? address.port : 1;
}

describe('AppWebhookClient', () => {
  const app = new HookApp();
  const client = new AppWebhookClient(generateWebhookSecret());
  before(() => app.start());
  after(() => app.close());

  it('reads a 2xx JSON answer', async () => {
    app.answer('/hook', { action: 'allow' });
    const result = await client.post(app.url('/hook'), PAYLOAD, AbortSignal.timeout(3000));
    assert.deepEqual(result, { ok: true, body: { action: 'allow' } });
  });

  it('says an app that is not there is unreachable, in the system’s words', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/hook`;
    const result = await client.post(url, PAYLOAD, AbortSignal.timeout(3000));
    assert.deepEqual(result, { ok: false, reason: 'unreachable: ECONNREFUSED' });
  });

  it('gives up when the signal does, while the answer’s body is still coming', async () => {
    // The headers and the start of the body arrive; the rest never does.
    app.reply('/slow-body', { body: '{"action":', unfinished: true });
    const started = performance.now();
    const result = await client.post(app.url('/slow-body'), PAYLOAD, AbortSignal.timeout(200));
    assert.deepEqual(result, { ok: false, reason: 'timeout: no answer in time' });
    assert.ok(performance.now() - started < 1000);
  });
});
