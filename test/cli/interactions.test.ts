import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { DEFAULT_TENANT } from '../../src/domain/tenants.ts';
import { createLogger } from '../../src/logger.ts';
import { createVeil } from '../../src/veil.ts';
import { json, refused, Workspace } from './run.ts';

const PROXY = '+14155550150';
const COURIER = '+14155550101';
const CUSTOMER = '+14155550102';
const STRANGER = '+14155550199';

describe('veil interactions list', { concurrency: 1 }, () => {
  const ws = new Workspace();
  before(async () => {
    const veil = await createVeil(loadConfig({ DATABASE_URL: ws.env.DATABASE_URL }), {
      logger: createLogger('silent'),
    });
    try {
      await veil.numbers.add(DEFAULT_TENANT, { number: PROXY, provider: 'sim' });
      await veil.sessions.create(DEFAULT_TENANT, {
        participants: [{ number: COURIER }, { number: CUSTOMER }],
      });
      for (const from of [COURIER, STRANGER])
        await veil.router.route(
          { from, to: PROXY, channel: 'voice' },
          { provider: 'api', tenantId: DEFAULT_TENANT },
        );
    } finally {
      await veil.close();
    }
  });
  after(() => ws.remove());

  it('lists the log masked, or as the API’s page with --json; filters; refuses an unknown filter', async () => {
    const [plain, refusals, bad] = await Promise.all([
      ws.veil(['interactions', 'list']),
      ws.veil(['interactions', 'list', '--action', 'reject', '--json']),
      ws.veil(['interactions', 'list', '--action', 'dial']),
    ]);
    assert.equal(plain.code, 0, plain.stderr);
    const [header, ...lines] = plain.stdout.trim().split('\n');
    assert.match(header as string, /^AT +CHANNEL +FROM +TO +ACTION +REASON +SESSION$/);
    assert.deepEqual(
      lines.map((l) => l.split(/ +/).slice(1, 6)),
      [
        ['voice', '+1415*****01', '+1415*****50', 'connect', '-'],
        ['voice', '+1415*****99', '+1415*****50', 'reject', 'no_session'],
      ],
    );
    assert.ok(![COURIER, STRANGER].some((n) => plain.stdout.includes(n.slice(2))), plain.stdout);
    assert.equal(refusals.code, 0, refusals.stderr);
    const page = json<{ data: { from: string; reason: string }[]; nextCursor: string | null }>(refusals);
    assert.deepEqual(page, { data: [page.data[0]], nextCursor: null });
    assert.deepEqual([page.data[0]?.from, page.data[0]?.reason], [STRANGER, 'no_session']);
    assert.ok(refused(bad), JSON.stringify(bad));
    assert.match(bad.stderr, /--action must be one of connect, forward, gather, reject/);
  });
});
