import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { maskNumber } from '../../src/domain/phone.ts';
import { DEFAULT_TENANT } from '../../src/domain/tenants.ts';
import { createLogger } from '../../src/logger.ts';
import { type RunningServer, startServer } from '../../src/server.ts';
import { getSetting } from '../../src/store/settings.ts';
import { createVeil, type Veil } from '../../src/veil.ts';
import { json, refused, Workspace } from './run.ts';

// Every run of the CLI is a real process (bin/veil), ~1 s of start-up: runs that do not depend on
// each other go in parallel, and the suites, each on its own database, run side by side.

const CUSTOMER = '+14155550101';
const COURIER = '+14155550102';
const STRANGER = '+14155550199';
const PROXIES = ['+14155550150', '+14155550151', '+14155550152', '+14155550153'];
const SIM_SECRET = 'cli-test-sim-secret';
const ADMIN_KEY = 'cli-test-admin-key-0123456789';

/** The core on a workspace's database, to check what the CLI wrote. */
function openCore(ws: Workspace): Promise<Veil> {
  const config = loadConfig({ DATABASE_URL: ws.env.DATABASE_URL, SIM_WEBHOOK_SECRET: SIM_SECRET });
  return createVeil(config, { logger: createLogger('silent') });
}

/** A server as `npm start` runs it, in this process, on a free port and the workspace's database. */
function serverOn(ws: Workspace, env: Record<string, string> = {}): Promise<RunningServer> {
  return startServer(
    loadConfig({
      PORT: '0',
      DATABASE_URL: ws.env.DATABASE_URL,
      VEIL_DEMO_POOL: 'false',
      VEIL_API_KEY: ADMIN_KEY,
      LOG_LEVEL: 'silent',
      ...env,
    }),
  );
}

/** A session between the customer and the courier, opened through the core on a pool of PROXIES. */
async function courierSession(veil: Veil) {
  for (const number of PROXIES) await veil.numbers.add(DEFAULT_TENANT, { number, provider: 'sim' });
  const { session } = await veil.sessions.create(DEFAULT_TENANT, {
    participants: [
      { number: CUSTOMER, label: 'customer' },
      { number: COURIER, label: 'courier' },
    ],
  });
  const [customer, courier] = session.participants;
  assert.ok(customer && courier);
  return { id: session.id, customerProxy: customer.proxyNumber, courierProxy: courier.proxyNumber };
}

/** A port on which nothing listens. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === 'object' && address ? address.port : 1;
}

describe('veil (the command line)', { concurrency: true }, () => {
  describe('veil numbers', { concurrency: 1 }, () => {
    const ws = new Workspace();
    let core: Veil;
    before(async () => {
      core = await openCore(ws);
    });
    after(async () => {
      await core.close();
      ws.remove();
    });
    const pool = async () => (await core.numbers.list(DEFAULT_TENANT, { limit: 500 })).data;

    it('adds numbers: in plain words, or as the API shows them with --json', async () => {
      const [plain, full] = await Promise.all([
        ws.veil(['numbers', 'add', PROXIES[0] as string]),
        ws.veil([
          'numbers',
          'add',
          PROXIES[1] as string,
          '--region',
          '628',
          '--tag',
          'city=sf',
          '--tag',
          'tier=gold',
          '--max-sessions',
          '5',
          '--capabilities',
          'voice',
          '--json',
        ]),
      ]);
      assert.equal(plain.code, 0, plain.stderr);
      assert.match(
        plain.stdout,
        /^added \+14155550150 \(num_\w+\): sim, US region 415, voice\+sms, no session cap\n$/,
      );
      assert.equal(full.code, 0, full.stderr);
      const shown = json(full);
      assert.equal(shown.number, PROXIES[1]);
      assert.equal(shown.status, 'active');
      const stored = (await pool()).find((n) => n.number === PROXIES[1]);
      assert.ok(stored);
      assert.equal(shown.id, stored.id);
      assert.equal(stored.provider, 'sim');
      assert.equal(stored.region, '628');
      assert.deepEqual(stored.tags, { city: 'sf', tier: 'gold' });
      assert.equal(stored.maxSessions, 5);
      assert.deepEqual(stored.capabilities, ['voice']);
      assert.equal((await pool()).length, 2);
    });

    it('refuses bad input with exit 1 and one line naming the problem, adding nothing', async () => {
      const cases: [string[], RegExp][] = [
        [['numbers', 'add', '4155550154'], /^veil: number must be an E\.164 number/],
        [['numbers', 'add', PROXIES[0] as string], /\+1415\*{5}50 is already in the pool/],
        [
          ['numbers', 'add', PROXIES[2] as string, '--provider', 'nope'],
          /^veil: provider must be one of sim, twilio, vonage, plivo, telnyx, aliyun, sip\n$/,
        ],
        [
          ['numbers', 'add', PROXIES[2] as string, '--max-sessions', '0', '--json'],
          /"field":"--max-sessions"/,
        ],
      ];
      const runs = await Promise.all(cases.map(([args]) => ws.veil(args)));
      for (const [i, run] of runs.entries()) {
        assert.ok(refused(run), `${cases[i]?.[0].join(' ')}: ${JSON.stringify(run)}`);
        assert.match(run.stderr, cases[i]?.[1] as RegExp);
        assert.ok(!run.stderr.includes('5550150'), 'an error never echoes a number in clear');
      }
      assert.equal((await pool()).length, 2);
    });

    it('lists the pool, filtered, as a table or as the API’s page', async () => {
      const [table, page, none] = await Promise.all([
        ws.veil(['numbers', 'list']),
        ws.veil(['numbers', 'list', '--status', 'active', '--country', 'us', '--limit', '1', '--json']),
        ws.veil(['numbers', 'list', '--country', 'GB']),
      ]);
      assert.equal(table.code, 0, table.stderr);
      const [header, ...lines] = table.stdout.trim().split('\n');
      assert.match(
        header as string,
        /^ID +NUMBER +PROVIDER +COUNTRY +REGION +STATUS +LOAD +CAPABILITIES +TAGS$/,
      );
      assert.equal(lines.length, 2);
      assert.ok(
        lines.some((l) => /^num_\w+ +\+14155550150 +sim +US +415 +active +0\/- +voice,sms +-$/.test(l)),
      );
      assert.ok(
        lines.some((l) =>
          /^num_\w+ +\+14155550151 +sim +US +628 +active +0\/5 +voice +city=sf,tier=gold$/.test(l),
        ),
      );
      const { data, nextCursor } = json<{ data: { number: string }[]; nextCursor: string }>(page);
      assert.equal(data.length, 1);
      assert.ok(PROXIES.slice(0, 2).includes(data[0]?.number as string));
      assert.match(nextCursor, /^num_/);
      assert.equal(none.stdout, 'no numbers match\n');
    });

    it('retires a number by E.164 or by id; an unknown one is refused without echoing it', async () => {
      const [byNumber, missing] = await Promise.all([
        ws.veil(['numbers', 'retire', PROXIES[0] as string]),
        ws.veil(['numbers', 'retire', '+14155550177']),
      ]);
      assert.equal(byNumber.code, 0, byNumber.stderr);
      assert.match(byNumber.stdout, /^retired \+14155550150 \(num_\w+\)\n$/);
      assert.ok(refused(missing));
      assert.equal(missing.stderr, 'veil: +1415*****77 is not in the pool\n');

      const second = (await pool()).find((n) => n.number === PROXIES[1]);
      assert.ok(second);
      const byId = await ws.veil(['numbers', 'retire', second.id, '--json']);
      assert.equal(byId.code, 0, byId.stderr);
      assert.equal(json(byId).status, 'retired');
      assert.deepEqual(
        (await pool()).map((n) => n.status),
        ['retired', 'retired'],
      );
    });

    it('imports: buys numbers (on sim, made up), a line for each as it is bought', async () => {
      const plain = await ws.veil([
        'numbers',
        'import',
        '--provider',
        'sim',
        '--country',
        'us',
        '--area-code',
        '628',
        '--count',
        '2',
      ]);
      assert.equal(plain.code, 0, plain.stderr);
      assert.match(
        plain.stdout,
        /^bought 1\/2: \+16285550100 \(num_\w+\)\nbought 2\/2: \+16285550101 \(num_\w+\)\nadded 2 of 2 numbers from sim to the pool\n$/,
      );
      const full = await ws.veil([
        'numbers',
        'import',
        '--provider',
        'sim',
        '--country',
        'US',
        '--area-code',
        '628',
        '--count',
        '1',
        '--json',
      ]);
      assert.equal(full.code, 0, full.stderr);
      assert.deepEqual(json(full).purchase, { requested: 1, bought: 1 });
      assert.match(full.stderr, /^bought 1\/1: \+16285550102/);
      const bad = await ws.veil([
        'numbers',
        'import',
        '--provider',
        'sim',
        '--country',
        'US',
        '--count',
        '0',
      ]);
      assert.ok(refused(bad));
      assert.match(bad.stderr, /--count must be a whole number from 1 to 100/);
      assert.equal((await pool()).filter((n) => n.number.startsWith('+1628')).length, 3);
    });
  });

  describe('veil providers', { concurrency: 1 }, () => {
    const ws = new Workspace();
    let core: Veil;
    before(async () => {
      core = await openCore(ws);
    });
    after(async () => {
      await core.close();
      ws.remove();
    });

    it('lists the carriers, switches one off and on (an event each), and refuses one it lacks', async () => {
      const listed = await ws.veil(['providers', 'list']);
      assert.equal(listed.code, 0, listed.stderr);
      const [header, ...lines] = listed.stdout.trim().split('\n');
      assert.match(header as string, /^PROVIDER +ENABLED +HEALTH$/);
      assert.deepEqual(
        lines.map((l) => l.split(/ +/)),
        [
          ['sim', 'yes', 'healthy'],
          ['sip', 'yes', 'healthy'],
        ],
      );
      const off = await ws.veil(['providers', 'disable', 'sim', '--json']);
      assert.equal(off.code, 0, off.stderr);
      assert.equal(json<{ enabled: boolean }>(off).enabled, false);
      assert.equal((await core.providers.list())[0]?.enabled, false);
      const on = await ws.veil(['providers', 'enable', 'sim']);
      assert.equal(on.stdout, 'sim is enabled: new sessions may get its numbers again\n');
      const events = await core.store.db.selectFrom('events').select('type').orderBy('id').execute();
      assert.deepEqual(
        events.map((e) => e.type),
        ['provider.down', 'provider.up'],
      );
      const unknown = await ws.veil(['providers', 'disable', 'nope']);
      assert.ok(refused(unknown), JSON.stringify(unknown));
      assert.match(unknown.stderr, /provider nope not found/);
    });

    it('veil events lists the outbox (by type, a page at a time) and redelivers one event', async () => {
      const all = await ws.veil(['events', 'list']);
      assert.equal(all.code, 0, all.stderr);
      const [header, ...lines] = all.stdout.trim().split('\n');
      assert.match(header as string, /^EVENT +TYPE +AT +DELIVERIES$/);
      assert.deepEqual(
        lines.map((l) => l.split(/ +/).slice(1, 2).concat(l.split(/ +/).slice(3))),
        [
          ['provider.down', '-'],
          ['provider.up', '-'],
        ],
      );
      const first = await ws.veil(['events', 'list', '--limit', '1', '--json']);
      const page = json<{ data: { id: string; type: string; data: unknown }[]; nextCursor: string }>(first);
      assert.deepEqual(
        page.data.map((e) => [e.type, e.data]),
        [['provider.down', { provider: 'sim', reason: 'disabled' }]],
      );
      const next = await ws.veil(['events', 'list', '--cursor', page.nextCursor]);
      assert.match(next.stdout, /provider\.up/);
      assert.doesNotMatch(next.stdout, /provider\.down/);
      const ups = await ws.veil(['events', 'list', '--type', 'provider.up', '--json']);
      assert.deepEqual(
        json<{ data: { type: string }[] }>(ups).data.map((e) => e.type),
        ['provider.up'],
      );
      const again = await ws.veil(['events', 'redeliver', page.data[0]?.id ?? '']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /no endpoint wants it/);
      const badType = await ws.veil(['events', 'list', '--type', 'session.nope']);
      assert.ok(refused(badType));
      assert.match(badType.stderr, /no event is of type session\.nope/);
      const missing = await ws.veil(['events', 'redeliver', 'evt_nope']);
      assert.ok(refused(missing));
      assert.match(missing.stderr, /event evt_nope not found/);
    });
  });

  describe('veil blocklist', { concurrency: 1 }, () => {
    const ws = new Workspace();
    let core: Veil;
    before(async () => {
      core = await openCore(ws);
    });
    after(async () => {
      await core.close();
      ws.remove();
    });
    const blocked = async () => (await core.blocklist.list(DEFAULT_TENANT, { limit: 500 })).data;

    it('blocks numbers, masked in its words, in full with --json; a repeat changes nothing', async () => {
      const [plain, full] = await Promise.all([
        ws.veil(['blocklist', 'add', CUSTOMER]),
        ws.veil(['blocklist', 'add', STRANGER, '--reason', 'fraud', '--json']),
      ]);
      assert.equal(plain.code, 0, plain.stderr);
      assert.match(plain.stdout, /^blocked \+1415\*{5}01: /);
      assert.equal(full.code, 0, full.stderr);
      assert.deepEqual(
        { ...json<Record<string, unknown>>(full), createdAt: undefined },
        { number: STRANGER, reason: 'fraud', createdAt: undefined },
      );
      const again = await ws.veil(['blocklist', 'add', STRANGER, '--reason', 'other']);
      assert.equal(again.stdout, '+1415*****99 was already blocked\n');
      assert.deepEqual((await blocked()).map((e) => [e.number, e.reason]).sort(), [
        [CUSTOMER, null],
        [STRANGER, 'fraud'],
      ]);
      const bad = await ws.veil(['blocklist', 'add', '4155550154']);
      assert.ok(refused(bad), JSON.stringify(bad));
      assert.match(bad.stderr, /^veil: number must be an E\.164 number/);
      assert.equal((await blocked()).length, 2);
    });

    it('lists them masked, or as the API’s page; removes one, and refuses one not blocked', async () => {
      const [table, page] = await Promise.all([
        ws.veil(['blocklist', 'list']),
        ws.veil(['blocklist', 'list', '--limit', '1', '--json']),
      ]);
      assert.equal(table.code, 0, table.stderr);
      const [header, ...lines] = table.stdout.trim().split('\n');
      assert.match(header as string, /^NUMBER +BLOCKED AT +REASON$/);
      assert.deepEqual(lines.map((l) => l.split(/ +/).filter((_, i) => i !== 1)).sort(), [
        ['+1415*****01', '-'],
        ['+1415*****99', 'fraud'],
      ]);
      assert.ok(!table.stdout.includes(CUSTOMER.slice(1)), 'the listing shows a number in clear');
      // A page of one, and a cursor that shows no number.
      const firstPage = json<{ data: unknown[]; nextCursor: string }>(page);
      assert.equal(firstPage.data.length, 1);
      assert.ok(
        firstPage.nextCursor && !firstPage.nextCursor.includes(CUSTOMER.slice(2)),
        firstPage.nextCursor,
      );

      const removed = await ws.veil(['blocklist', 'remove', CUSTOMER]);
      assert.equal(removed.code, 0, removed.stderr);
      assert.equal(removed.stdout, 'unblocked +1415*****01\n');
      const missing = await ws.veil(['blocklist', 'remove', CUSTOMER]);
      assert.ok(refused(missing), JSON.stringify(missing));
      assert.ok(!missing.stderr.includes(CUSTOMER.slice(1)), missing.stderr);
      assert.deepEqual(
        (await blocked()).map((e) => e.number),
        [STRANGER],
      );
    });
  });

  describe('veil sessions', { concurrency: 1 }, () => {
    const ws = new Workspace();
    let core: Veil;
    before(async () => {
      core = await openCore(ws);
      for (const number of PROXIES) await core.numbers.add(DEFAULT_TENANT, { number, provider: 'sim' });
    });
    after(async () => {
      await core.close();
      ws.remove();
    });
    const sessionCount = async () => (await core.sessions.list(DEFAULT_TENANT, { limit: 500 })).data.length;
    let id = '';

    it('opens a session and shows the operator each participant’s number and proxy', async () => {
      const run = await ws.veil([
        'sessions',
        'create',
        '--participant',
        `${CUSTOMER}:customer`,
        '--participant',
        `${COURIER}:courier`,
      ]);
      assert.equal(run.code, 0, run.stderr);
      id = /^session (ses_\w+) \(open, per-participant\)$/m.exec(run.stdout)?.[1] ?? '';
      const session = await core.sessions.get(DEFAULT_TENANT, id);
      const [customer, courier] = session.participants;
      assert.equal(customer?.label, 'customer');
      assert.equal(courier?.number, COURIER);
      assert.notEqual(customer?.proxyNumber, courier?.proxyNumber);
      assert.match(
        run.stdout,
        new RegExp(`^  customer +\\${CUSTOMER} +proxy \\${customer?.proxyNumber}$`, 'm'),
      );
      assert.match(run.stdout, new RegExp(`^  courier +\\${COURIER} +proxy \\${courier?.proxyNumber}$`, 'm'));
      assert.match(
        run.stdout,
        new RegExp(`try: veil call --from \\${CUSTOMER} --to \\${customer?.proxyNumber}`),
      );
    });

    it('takes --external-id, --ttl and --mode; --json prints the API’s view', async () => {
      const args = [
        'sessions',
        'create',
        '--participant',
        '+14155550103',
        '--participant',
        '+14155550104:driver',
        '--external-id',
        'order-7',
        '--ttl',
        '600',
        '--mode',
        'shared',
        '--json',
      ];
      const first = await ws.veil(args);
      assert.equal(first.code, 0, first.stderr);
      const created = json<{
        id: string;
        externalId: string;
        mode: string;
        expiresAt: string;
        participants: { number: string; label: string | null; proxyNumber: string }[];
      }>(first);
      assert.equal(created.externalId, 'order-7');
      assert.equal(created.mode, 'shared');
      assert.ok(Math.abs(Date.parse(created.expiresAt) - (Date.now() + 600_000)) < 30_000);
      assert.deepEqual(
        created.participants.map((p) => [p.number, p.label]),
        [
          ['+14155550103', null],
          ['+14155550104', 'driver'],
        ],
      );
      assert.equal(created.participants[0]?.proxyNumber, created.participants[1]?.proxyNumber);
      const stored = await core.sessions.list(DEFAULT_TENANT, { externalId: 'order-7', limit: 10 });
      assert.deepEqual(
        stored.data.map((s) => s.id),
        [created.id],
      );
    });

    it('gets, lists and closes; a closed session is listed as closed and holds no proxy', async () => {
      const got = await ws.veil(['sessions', 'get', id, '--json']);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(json(got).id, id);
      assert.equal(json<{ participants: { number: string }[] }>(got).participants[0]?.number, CUSTOMER);

      const closed = await ws.veil(['sessions', 'close', id]);
      assert.equal(closed.code, 0, closed.stderr);
      assert.equal(closed.stdout, `closed ${id}; its proxy numbers are released\n`);
      const list = await ws.veil(['sessions', 'list', '--status', 'closed']);
      const rows = list.stdout.trim().split('\n');
      assert.equal(rows.length, 2);
      assert.match(rows[1] as string, new RegExp(`^${id} +closed +per-participant `));
      assert.ok(rows[1]?.includes(maskNumber(CUSTOMER)) && !rows[1]?.includes(CUSTOMER), 'a list masks');
      const session = await core.sessions.get(DEFAULT_TENANT, id);
      assert.equal(session.status, 'closed');
      const held = (await core.numbers.list(DEFAULT_TENANT, { limit: 10 })).data.filter((n) => n.load > 0);
      assert.equal(held.length, 1, 'only the shared session still holds its proxy');
    });

    it('refuses bad input and unknown ids with exit 1 and one line, writing nothing', async () => {
      const before = await sessionCount();
      const cases: [string[], RegExp][] = [
        [
          ['sessions', 'create', '--participant', CUSTOMER, '--participant', '4155550105'],
          /^veil: --participant #2 must be an E\.164 number/,
        ],
        [['sessions', 'get', CUSTOMER], /^veil: that is not a session id \(ses_\.\.\.\)\n$/],
        [['sessions', 'close', 'ses_0000unknown'], /^veil: session ses_0000unknown not found\n$/],
        [
          ['sessions', 'list', '--status', 'gone'],
          /^veil: option '--status <status>' argument 'gone' is invalid/,
        ],
      ];
      const runs = await Promise.all(cases.map(([args]) => ws.veil(args)));
      for (const [i, run] of runs.entries()) {
        assert.ok(refused(run), `${cases[i]?.[0].join(' ')}: ${JSON.stringify(run)}`);
        assert.match(run.stderr, cases[i]?.[1] as RegExp);
        assert.ok(!/\d{7}/.test(run.stderr), 'an error never echoes a number in clear');
      }
      assert.equal(await sessionCount(), before);
    });
  });

  describe('veil call and veil sms (a running server, SIM_WEBHOOK_SECRET set)', { concurrency: 1 }, () => {
    const ws = new Workspace();
    let server: RunningServer;
    let session: Awaited<ReturnType<typeof courierSession>>;
    let env: Record<string, string>;
    before(async () => {
      server = await serverOn(ws, { SIM_WEBHOOK_SECRET: SIM_SECRET });
      session = await courierSession(server.veil);
      // No --url: the CLI finds the server from HOST and PORT, as an operator's shell would.
      env = { PORT: new URL(server.url).port, SIM_WEBHOOK_SECRET: SIM_SECRET };
    });
    after(async () => {
      await server.stop();
      ws.remove();
    });

    it('connects a participant to the other one, a stranger to no one, and forwards a text', async () => {
      const [call, stranger, text] = await Promise.all([
        ws.veil(['call', '--from', CUSTOMER, '--to', session.customerProxy], env),
        ws.veil(['call', '--from', STRANGER, '--to', session.customerProxy], env),
        ws.veil(
          ['sms', '--from', COURIER, '--to', session.courierProxy, '--body', 'at the door', '--json'],
          env,
        ),
      ]);
      assert.equal(call.code, 0, call.stderr);
      assert.equal(
        call.stdout,
        `connect → ${maskNumber(COURIER)} showing ${session.courierProxy} (session ${session.id})\n`,
      );
      assert.equal(stranger.code, 0, stranger.stderr);
      assert.equal(stranger.stdout, 'reject (no_session)\n');
      assert.equal(text.code, 0, text.stderr);
      assert.deepEqual(json(text), {
        action: 'forward',
        to: CUSTOMER,
        from: session.customerProxy,
        body: 'at the door',
        sessionId: session.id,
      });

      const log = (await server.veil.sessions.interactions(DEFAULT_TENANT, session.id, { limit: 10 })).data;
      const voice = log.find((i) => i.channel === 'voice');
      assert.ok(voice, 'the server logged the call');
      assert.equal(voice.action, 'connect');
      assert.equal(voice.from, CUSTOMER);
      assert.equal(voice.target, COURIER);
      assert.equal(voice.provider, 'sim');
      assert.match(voice.providerCallId ?? '', /^sim-[0-9a-f]+$/);
      assert.ok(log.some((i) => i.channel === 'sms' && i.action === 'forward' && i.target === CUSTOMER));
    });

    it('a wrong simulator secret is refused by the server (403): non-zero exit, nothing routed', async () => {
      const interactions = async () => {
        await server.veil.interactions.flush();
        const row = await server.veil.store.db
          .selectFrom('interactions')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow();
        return Number(row.n);
      };
      const before = await interactions();
      const run = await ws.veil(['call', '--from', CUSTOMER, '--to', session.customerProxy], {
        ...env,
        SIM_WEBHOOK_SECRET: 'not-the-secret',
      });
      assert.equal(run.code, 77);
      assert.equal(run.stdout, '');
      assert.match(
        run.stderr,
        /^veil: the server at http:\/\/127\.0\.0\.1:\d+ refused the simulator signature \(403\)/,
      );
      assert.equal(await interactions(), before);
    });

    it('an unreachable server is a non-zero exit with a clear message', async () => {
      const url = `http://127.0.0.1:${await closedPort()}`;
      const run = await ws.veil(
        ['call', '--from', CUSTOMER, '--to', session.customerProxy, '--url', url],
        env,
      );
      assert.equal(run.code, 69);
      assert.equal(run.stdout, '');
      assert.match(
        run.stderr,
        /^veil: cannot reach the Veil server at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/,
      );
    });
  });

  describe('veil call without SIM_WEBHOOK_SECRET', { concurrency: 1 }, () => {
    const ws = new Workspace();
    let server: RunningServer;
    before(async () => {
      // The simulator accepts only signed webhooks, so a connect proves the signature.
      server = await serverOn(ws, { NODE_ENV: 'development', VEIL_DEMO_POOL: 'false', HOST: '127.0.0.1' });
    });
    after(async () => {
      await server.stop();
      ws.remove();
    });

    it('signs with the secret the server stored in the database', async () => {
      const { id, customerProxy, courierProxy } = await courierSession(server.veil);
      assert.ok(await getSetting(server.veil.store.db, 'sim_webhook_secret'));
      const elsewhere = new Workspace();
      try {
        const [call, noDatabase] = await Promise.all([
          ws.veil(['call', '--from', CUSTOMER, '--to', customerProxy, '--url', server.url]),
          // Another directory, no database there: a clear error, and no database created for it.
          elsewhere.veil(['call', '--from', CUSTOMER, '--to', customerProxy, '--url', server.url]),
        ]);
        assert.equal(call.code, 0, call.stderr);
        assert.equal(
          call.stdout,
          `connect → ${maskNumber(COURIER)} showing ${courierProxy} (session ${id})\n`,
        );
        assert.ok(refused(noDatabase), JSON.stringify(noDatabase));
        assert.match(
          noDatabase.stderr,
          /^veil: no simulator secret: set SIM_WEBHOOK_SECRET, or run the server once/,
        );
        assert.equal(existsSync(elsewhere.file), false);
      } finally {
        elsewhere.remove();
      }
    });
  });

  describe('veil serve and configuration', { concurrency: 1 }, () => {
    const ws = new Workspace();
    after(() => ws.remove());

    it('serve starts the server as npm start does, prints where and the key, and stops on SIGTERM', async () => {
      // No DATABASE_URL: ./data/veil.db in the working directory, as with npm start.
      const child = ws.start(['serve'], { PORT: '0', DATABASE_URL: undefined });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      let out = '';
      try {
        const started = await new Promise<RegExpExecArray>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 60_000);
          child.on('exit', () => reject(new Error(`serve exited: ${out}`)));
          child.stdout.on('data', (chunk: Buffer) => {
            out += chunk.toString();
            const found =
              /^Veil is listening on (http:\S+) \(API docs at \S+\/docs\)\nDevelopment API key \(new at every start\): (\S+)\n/m.exec(
                out,
              );
            if (found) {
              clearTimeout(timer);
              resolve(found);
            }
          });
        });
        const [, url, key] = started;
        const response = await fetch(`${url}/v1/numbers?limit=500`, {
          headers: { authorization: `Bearer ${key}` },
        });
        assert.equal(response.status, 200);
        const { data } = (await response.json()) as { data: unknown[] };
        assert.equal(data.length, 20, 'the demo pool of a fresh database');
        assert.ok(existsSync(join(ws.dir, 'data', 'veil.db')), 'the database is ./data/veil.db');
      } finally {
        child.kill('SIGTERM');
      }
      assert.equal(await exited, 0);
    });

    it('a bad environment stops every command with the key named and exit 78', async () => {
      const run = await ws.veil(['numbers', 'list'], { PORT: 'many' });
      assert.equal(run.code, 78);
      assert.equal(
        run.stderr,
        'veil: bad configuration: PORT: must be an integer from 0 to 65535, got "many"\n',
      );
    });
  });
});
