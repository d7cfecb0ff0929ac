import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { loadConfig } from '../../src/config.ts';
import { maskNumber } from '../../src/domain/phone.ts';
import { ADMIN_CSP } from '../../src/http/admin.ts';
import { type RunningServer, startServer } from '../../src/server.ts';
import { databaseUrl, describeStores, TEST_KEY_ENV } from '../support/stores.ts';

/**
 * The dashboard end to end: the real server (as `npm start` runs it, with the demo pool) and
 * Debian's Chromium driven headless by playwright-core. No browser is ever downloaded: without
 * /usr/bin/chromium (`apt-get install -y chromium`) this test fails, saying so.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARTEFACTS = resolve(fileURLToPath(import.meta.url), '../../../test-artifacts/admin');
const ADMIN_KEY = 'dashboard-test-admin-key-0123456789';

const CUSTOMER = '+14155550101';
const COURIER = '+14155550102';
const OTHER_CUSTOMER = '+12125550103';
const OTHER_COURIER = '+12125550104';
const REAL_NUMBERS = [CUSTOMER, COURIER, OTHER_CUSTOMER, OTHER_COURIER];

interface Participant {
  label: string | null;
  number: string;
  proxyNumber: string;
}

describeStores('GET /admin: the dashboard in Chromium', { only: 'sqlite' }, (store) => {
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** Console errors and page errors (a CSP violation among them) seen while the tests ran. */
  const problems: string[] = [];
  let session: { id: string; participants: Participant[] };

  const api = async (method: string, path: string, body?: unknown, key = ADMIN_KEY) => {
    const r = await fetch(server.url + path, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
    return JSON.parse(text);
  };
  const shot = (name: string) => page.screenshot({ path: `${ARTEFACTS}/${name}.png`, fullPage: true });

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `${CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium) to test the dashboard`,
    );
    mkdirSync(ARTEFACTS, { recursive: true });
    const config = loadConfig({
      NODE_ENV: 'development',
      ...TEST_KEY_ENV,
      DATABASE_URL: databaseUrl(store()),
      VEIL_API_KEY: ADMIN_KEY,
      VEIL_DEMO_POOL: 'true',
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
    });
    server = await startServer(config, { stopGraceMs: 1000 });
    session = await api('POST', '/v1/sessions', {
      externalId: 'order-dash-1',
      participants: [
        { number: CUSTOMER, label: 'customer' },
        { number: COURIER, label: 'courier' },
      ],
    });
    await api('POST', '/v1/sessions', {
      externalId: 'order-dash-2',
      participants: [
        { number: OTHER_CUSTOMER, label: 'customer' },
        { number: OTHER_COURIER, label: 'courier' },
      ],
    });
    // As root (CI) Chromium's sandbox cannot start; the page is our own.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    // Each step takes well under a second: a missing element fails fast, not after 30 s.
    page.setDefaultTimeout(5000);
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page: ${e.message}`));
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('serves the page at /admin with a CSP of its own origin only, without a key', async () => {
    const redirect = await fetch(`${server.url}/admin`, { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get('location'), '/admin/');
    const r = await fetch(`${server.url}/admin/`);
    assert.equal(r.status, 200);
    assert.match(String(r.headers.get('content-type')), /^text\/html/);
    assert.equal(r.headers.get('content-security-policy'), ADMIN_CSP);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.doesNotMatch(ADMIN_CSP, /unsafe|https?:|\*/);
    for (const file of ['preact.mjs', 'htm.mjs', 'chart.umd.min.js']) {
      const asset = await fetch(`${server.url}/admin/vendor/${file}`);
      assert.equal(asset.status, 200, file);
      assert.equal(asset.headers.get('cache-control'), 'no-store', file);
      assert.match(String(asset.headers.get('content-type')), /javascript/, file);
    }
    // Only the listed files: no path into node_modules.
    for (const path of ['vendor/package.json', 'vendor/..%2F..%2Fpackage.json', 'vendor/__proto__']) {
      assert.equal((await fetch(`${server.url}/admin/${path}`)).status, 404, path);
    }
  });

  it('logs in with the key in a password field and draws the pool', async () => {
    await page.goto(`${server.url}/admin`);
    assert.equal(await page.getAttribute('#api-key', 'type'), 'password');
    await page.fill('#api-key', 'not-a-key-of-this-installation');
    await page.click('#login button[type=submit]');
    await page.getByRole('alert').waitFor();
    assert.match(await page.getByRole('alert').innerText(), /401/);
    assert.equal(await page.evaluate('sessionStorage.length'), 0, 'a refused key is not kept');
    // The browser reports the refused request (401) on its console: that one is expected.
    assert.deepEqual(problems.splice(0), [
      'console: Failed to load resource: the server responded with a status of 401 (Unauthorized)',
    ]);

    await page.fill('#api-key', ADMIN_KEY);
    await page.click('#login button[type=submit]');
    await page.locator('#pool-chart').waitFor();
    await page.locator('tr.session').first().waitFor();
    // The chart shows what GET /v1/pool counts: the demo pool, four of its numbers in use.
    const pool = (await api('GET', '/v1/pool')).data as { free: number; inUse: number; draining: number }[];
    const sum = (key: 'free' | 'inUse' | 'draining') => pool.reduce((n, g) => n + g[key], 0);
    const drawn = await page.evaluate(
      "Chart.getChart('pool-chart').data.datasets.map((d) => [d.label, d.data.reduce((a, b) => a + b, 0)])",
    );
    assert.deepEqual(drawn, [
      ['free', sum('free')],
      ['in use', sum('inUse')],
      ['draining', sum('draining')],
    ]);
    assert.equal(sum('inUse'), 4);
    const box = await page.locator('#pool-chart').boundingBox();
    assert.ok(box && box.width > 200 && box.height > 100, JSON.stringify(box));
    await page.selectOption('#pool-grouping', 'country');
    assert.deepEqual(await page.evaluate("Chart.getChart('pool-chart').data.labels"), ['GB', 'US']);
    await shot('pool');
  });

  it('finds a session by externalId and shows its people masked', async () => {
    await page.fill('#external-id', 'order-dash-1');
    await page.click('#session-search button');
    const row = page.locator(`tr.session[data-session="${session.id}"]`);
    await row.waitFor();
    assert.equal(await page.locator('tr.session').count(), 1);
    await row.click();
    await page.getByRole('heading', { name: 'Timeline of order-dash-1' }).waitFor();
    const text = await page.locator('#timeline').innerText();
    assert.match(text, /No call or text yet/);
    for (const p of session.participants) {
      assert.ok(text.includes(maskNumber(p.number)), `${text} lacks ${maskNumber(p.number)}`);
      assert.ok(text.includes(p.proxyNumber), `${text} lacks the proxy ${p.proxyNumber}`);
    }
  });

  it('shows a routed call in the session’s timeline', async () => {
    const [customer, courier] = session.participants;
    assert.ok(customer && courier);
    const decision = await api('POST', '/v1/route', {
      from: customer.number,
      to: customer.proxyNumber,
      channel: 'voice',
    });
    assert.equal(decision.action, 'connect');
    // The interaction log is written in batches: refresh until it is there.
    const call = page.locator('#timeline li.interaction.connect');
    for (let i = 0; i < 20 && (await call.count()) === 0; i++) {
      await page.click('#refresh');
      await page.waitForTimeout(250);
    }
    assert.equal(await call.count(), 1);
    const text = await call.innerText();
    assert.match(text, /call/);
    assert.ok(text.includes(maskNumber(customer.number)), text);
    assert.ok(text.includes(customer.proxyNumber), text);
    assert.ok(text.includes(`to ${maskNumber(courier.number)} as ${courier.proxyNumber}`), text);
    await shot('timeline');
  });

  it('downgrades a carrier and recovers it with one click each', async () => {
    const sim = page.locator('tr[data-provider="sim"]');
    await sim.waitFor();
    assert.match(await sim.innerText(), /enabled/);
    await sim.getByRole('button', { name: 'Downgrade' }).click();
    await sim.getByText('downgraded').waitFor();
    const down = (await api('GET', '/v1/providers')).data.find((p: { name: string }) => p.name === 'sim');
    assert.equal(down.enabled, false);
    await page.locator('#events tr.event', { hasText: 'provider.down' }).waitFor();
    await shot('downgraded');

    await sim.getByRole('button', { name: 'Recover' }).click();
    await sim.getByText('enabled').waitFor();
    const up = (await api('GET', '/v1/providers')).data.find((p: { name: string }) => p.name === 'sim');
    assert.equal(up.enabled, true);
    await page.locator('#events tr.event', { hasText: 'provider.up' }).waitFor();
  });

  it('shows no real number in clear, and keeps the key out of the URL and cookies', async () => {
    // Both sessions on screen, the timeline and the events of their creation too.
    await page.fill('#external-id', '');
    await page.click('#session-search button');
    await page.locator('tr.session').nth(1).waitFor();
    const text = await page.locator('body').innerText();
    const html = await page.content();
    for (const number of REAL_NUMBERS) {
      const digits = number.slice(1);
      assert.ok(!text.includes(digits), `the page shows ${maskNumber(number)} in clear`);
      assert.ok(!html.includes(digits), `the page's HTML holds ${maskNumber(number)} in clear`);
    }
    assert.ok(text.includes(maskNumber(OTHER_CUSTOMER)));
    assert.ok(!page.url().includes(ADMIN_KEY), page.url());
    assert.equal(await page.evaluate('document.cookie'), '');
    assert.deepEqual(await context.cookies(), []);
    assert.equal(await page.evaluate('localStorage.length'), 0);
    assert.equal(await page.evaluate("sessionStorage.getItem('veil.apiKey')"), ADMIN_KEY);
    assert.deepEqual(problems, []);
    await shot('dashboard');
  });

  it('forgets the key on logging out', async () => {
    await page.click('#logout');
    await page.locator('#api-key').waitFor();
    assert.equal(await page.evaluate('sessionStorage.length'), 0);
    await page.reload();
    await page.locator('#api-key').waitFor();
  });
});
