import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { startServer } from '../../src/server.ts';

const ADMIN_KEY = 'sip-edge-admin-key-0123456789abcdef';

/** A participant as POST /v1/sessions shows them: their real number and the proxy they dial. */
export interface Participant {
  number: string;
  proxyNumber: string;
}

/**
 * Veil as the SIP edge tests run it, on a SQLite file in `dir`: two pool numbers of provider sip,
 * a session between `numbers`, and a key with scope `route` for Kamailio.
 */
export async function startSipVeil(dir: string, numbers: [string, string]) {
  const server = await startServer(
    loadConfig({
      NODE_ENV: 'development',
      DATABASE_URL: `sqlite:${join(dir, 'veil.db')}`,
      PORT: '0',
      VEIL_API_KEY: ADMIN_KEY,
      VEIL_DEMO_POOL: 'false',
      LOG_LEVEL: 'silent',
    }),
  );
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.ok(response.ok, `${method} ${path}: ${response.status} ${await response.clone().text()}`);
    // biome-ignore lint/suspicious/noExplicitAny: the API answers JSON the tests read field by field
    return (await response.json()) as any;
  };
  for (const number of ['+14155550150', '+14155550151']) {
    await api('POST', '/v1/numbers', { number, provider: 'sip' });
  }
  const session = await api('POST', '/v1/sessions', {
    participants: numbers.map((number) => ({ number })),
  });
  const key = await api('POST', '/v1/keys', { name: 'sip edge', scopes: ['route'] });
  return {
    server,
    api,
    sessionId: session.id as string,
    participants: session.participants as Participant[],
    routeKey: key.key as string,
  };
}

export type SipVeil = Awaited<ReturnType<typeof startSipVeil>>;
