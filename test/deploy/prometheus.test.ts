import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { type TestApp, testApp } from '../support/app.ts';
import { type Scrape, scrape } from '../support/metrics.ts';
import { storeKinds, type TestStore } from '../support/stores.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const RULES = join(ROOT, 'deploy', 'prometheus', 'alerts.yml');
const CONFIG = join(ROOT, 'deploy', 'prometheus', 'prometheus.yml');
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'veil.json');

/** The alerts issue 18 asks for. */
const ALERTS = [
  'VeilDown',
  'VeilCarrierDown',
  'VeilCarrierDisabled',
  'VeilPoolLow',
  'VeilPoolExhausted',
  'VeilSessionsStranded',
  'VeilBindingsFailing',
  'VeilOutboxLag',
  'VeilOutboxDeadLetters',
  // Issue 20's, over what this instance counts.
  'VeilRouteSlow',
  'VeilWebhooksRefused',
];
const SEVERITIES = ['critical', 'warning', 'info'];
/** Labels Prometheus gives every scraped series (the target's). */
const TARGET_LABELS = ['job', 'instance'];

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

const rules = (): Rule[] =>
  (parse(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap(
    (g) => g.rules,
  );

/** The suffixes of a histogram's series: `name_bucket` belongs to the family `name`. */
/** How the board names its datasource variable where a uid goes (Grafana's syntax, not a template string). */
const DATASOURCE_VARIABLE = ['$', '{datasource}'].join('');

const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;

/** The metric names an expression reads: Veil's own, and `up`, which Prometheus writes. */
function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b(veil_[a-z0-9_]+)\b/g)].map((m) => m[1] as string))];
}

/** The label names an expression groups, matches or selects by. */
function labelNames(expr: string): string[] {
  const names = new Set<string>();
  for (const [, list] of expr.matchAll(
    /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
  )) {
    for (const name of (list ?? '').split(',')) if (name.trim()) names.add(name.trim());
  }
  for (const [, selector] of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const [, name] of (selector ?? '').matchAll(/(\w+)\s*(?:=~|!=|!~|=)/g)) names.add(name as string);
  }
  return [...names];
}

/** The README's headings as GitHub anchors them. */
function readmeAnchors(): Set<string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  return new Set(
    [...readme.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
      (m[1] as string)
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    ),
  );
}

/**
 * A scrape after a little of everything, so that every family has samples to read labels from: a
 * number in the pool, a session, a routed call, a refused webhook.
 */
async function busyScrape(t: TestApp): Promise<Scrape> {
  const r = await t.api('POST', '/v1/numbers', { number: '+14155550190', provider: 'sim' });
  assert.equal(r.statusCode, 201, r.body);
  const s = await t.api('POST', '/v1/sessions', {
    participants: [{ number: '+14155550101' }, { number: '+14155550102' }],
  });
  assert.equal(s.statusCode, 201, s.body);
  const routed = await t.api('POST', '/v1/route', {
    from: '+14155550101',
    to: '+14155550190',
    channel: 'voice',
  });
  assert.equal(routed.statusCode, 200, routed.body);
  const forged = await t.app.inject({
    method: 'POST',
    url: '/webhooks/sim/voice',
    headers: { 'content-type': 'application/json' },
    payload: '{}',
  });
  assert.equal(forged.statusCode, 403, forged.body);
  return scrape(t);
}

/** The family a series belongs to: itself, or the histogram whose `_bucket`, `_sum` or `_count` it is. */
function familyOf(exported: Scrape, name: string): string {
  const family = name.replace(HISTOGRAM_SERIES, '');
  return exported.types.has(name) || exported.types.get(family) !== 'histogram' ? name : family;
}

function promtool(...args: string[]): string {
  return execFileSync('promtool', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const hasPromtool = (() => {
  try {
    promtool('--version');
    return true;
  } catch {
    return false;
  }
})();

describe('deploy/prometheus/alerts.yml', () => {
  it('has the alerts of issues 18 and 20, each with an expression, a severity, a summary, a description and a runbook', () => {
    const all = rules();
    assert.deepEqual(all.map((r) => r.alert).sort(), [...ALERTS].sort());
    for (const rule of all) {
      assert.equal(typeof rule.expr, 'string', rule.alert);
      assert.ok(SEVERITIES.includes(rule.labels?.severity ?? ''), `${rule.alert}: severity`);
      if (rule.for !== undefined) assert.match(rule.for, /^\d+[smh]$/, rule.alert);
      for (const field of ['summary', 'description', 'runbook_url']) {
        assert.ok(rule.annotations?.[field], `${rule.alert} has no ${field}`);
      }
      assert.match(rule.annotations.runbook_url ?? '', /^README\.md#[a-z0-9-]+$/, rule.alert);
    }
  });

  it('points its runbooks at sections the README has', () => {
    const anchors = readmeAnchors();
    for (const rule of rules()) {
      const anchor = (rule.annotations.runbook_url ?? '').split('#')[1] ?? '';
      assert.ok(anchors.has(anchor), `${rule.alert}: README has no #${anchor}`);
    }
  });

  describe('reads only what GET /metrics exports', () => {
    let store: TestStore;
    let t: TestApp;
    let exported: Scrape;
    before(async () => {
      const [kind] = storeKinds();
      assert.ok(kind);
      store = await kind.create();
      t = await testApp(store, { VEIL_REPLENISH: 'US/415=3' });
      exported = await busyScrape(t);
    });
    after(async () => {
      await t?.close();
      await store?.drop();
    });

    it('every metric each expression names, with the labels it uses', () => {
      for (const rule of rules()) {
        const names = metricNames(rule.expr);
        if (rule.alert !== 'VeilDown') assert.ok(names.length > 0, `${rule.alert} reads no Veil metric`);
        const labels = new Set(TARGET_LABELS);
        for (const name of names) {
          assert.ok(exported.types.has(familyOf(exported, name)), `${rule.alert}: /metrics has no ${name}`);
          const samples = exported.samples.filter((s) => s.name === name);
          assert.ok(samples.length > 0, `${rule.alert}: ${name} has no sample`);
          for (const s of samples) for (const label of Object.keys(s.labels)) labels.add(label);
        }
        for (const label of labelNames(rule.expr)) {
          assert.ok(labels.has(label), `${rule.alert}: no metric it reads has the label ${label}`);
        }
      }
    });
  });

  describe('with promtool', { skip: !hasPromtool && 'promtool is not installed' }, () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'veil-promtool-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('checks the rules and the example configuration', () => {
      assert.match(promtool('check', 'rules', RULES), /SUCCESS: 11 rules found/);
      // The example reads the token from /etc/prometheus; promtool wants the file to exist.
      const token = join(dir, 'token');
      writeFileSync(token, 'metrics-token-0123456789abcdef');
      const config = readFileSync(CONFIG, 'utf8').replaceAll('/etc/prometheus/veil-metrics-token', token);
      assert.notEqual(config, readFileSync(CONFIG, 'utf8'));
      writeFileSync(join(dir, 'prometheus.yml'), config);
      writeFileSync(join(dir, 'alerts.yml'), readFileSync(RULES, 'utf8'));
      promtool('check', 'config', join(dir, 'prometheus.yml'));
    });

    it('fires each alert when its state holds, and not otherwise (promtool test rules)', () => {
      // The rules as they are, less their annotations: the test is about when each alert fires.
      const doc = parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Partial<Rule>[] }[] };
      for (const group of doc.groups) for (const rule of group.rules) delete rule.annotations;
      writeFileSync(join(dir, 'rules.yml'), stringify(doc));
      const series = (name: string, labels: Record<string, string>, values: string) => ({
        series: `${name}{${Object.entries({ job: 'veil', instance: 'veil-1:3000', ...labels })
          .map(([k, v]) => `${k}="${v}"`)
          .join(',')}}`,
        values,
      });
      const tests = {
        rule_files: ['rules.yml'],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [
              series('up', {}, '1 0x10'),
              // plivo found down on one instance only; twilio switched off (and down: no CarrierDown).
              series('veil_provider_up', { provider: 'plivo' }, '1 0x10'),
              series('veil_provider_up', { provider: 'plivo', instance: 'veil-2:3000' }, '1x10'),
              series('veil_provider_enabled', { provider: 'plivo' }, '1x10'),
              series('veil_provider_up', { provider: 'twilio' }, '0x10'),
              series('veil_provider_enabled', { provider: 'twilio' }, '0x10'),
              series('veil_provider_up', { provider: 'sim' }, '1x10'),
              series('veil_provider_enabled', { provider: 'sim' }, '1x10'),
              // US: free numbers only at carriers out of use; GB: free at sim, in use.
              series('veil_pool_free_numbers', { provider: 'plivo', country: 'US', region: '415' }, '5x10'),
              series('veil_pool_free_numbers', { provider: 'twilio', country: 'US', region: '212' }, '3x10'),
              series('veil_pool_free_numbers', { provider: 'sim', country: 'US', region: '415' }, '0x10'),
              series('veil_pool_free_numbers', { provider: 'sim', country: 'GB', region: '20' }, '2x10'),
              series('veil_pool_scope_free_numbers', { scope: 'US/415' }, '2x10'),
              series('veil_pool_scope_min_free_numbers', { scope: 'US/415' }, '3x10'),
              series('veil_pool_scope_free_numbers', { scope: 'GB' }, '5x10'),
              series('veil_pool_scope_min_free_numbers', { scope: 'GB' }, '5x10'),
              series('veil_bindings_failed', { operation: 'bind' }, '0 1x10'),
              series('veil_bindings_failed', { operation: 'unbind' }, '0x10'),
              series('veil_bindings_retrying', { operation: 'bind' }, '0x10'),
              series('veil_bindings_retrying', { operation: 'unbind' }, '0x10'),
              series('veil_outbox_dead_deliveries', {}, '0 0 1x10'),
              // One session stuck from 1m on one instance, none on the other.
              series('veil_failover_stranded_sessions', {}, '0 1x10'),
              series('veil_failover_stranded_sessions', { instance: 'veil-2:3000' }, '0x10'),
              // The oldest event owed was made at 0 and is still owed: the lag grows with time.
              series('veil_outbox_oldest_undelivered_timestamp_seconds', {}, '0x20'),
              // Half the routes take between 0.1 s and 1 s: p99 near 1 s.
              series('veil_route_duration_seconds_bucket', { provider: 'api', le: '0.1' }, '0+60x20'),
              series('veil_route_duration_seconds_bucket', { provider: 'api', le: '1' }, '0+120x20'),
              series('veil_route_duration_seconds_bucket', { provider: 'api', le: '+Inf' }, '0+120x20'),
              // A forged twilio webhook a second; plivo's a minute.
              series(
                'veil_webhooks_total',
                { provider: 'twilio', path: 'voice', result: 'refused_signature' },
                '0+60x20',
              ),
              series('veil_webhooks_total', { provider: 'plivo', path: 'voice', result: 'replay' }, '0+1x20'),
              series(
                'veil_webhooks_total',
                { provider: 'plivo', path: 'voice', result: 'accepted' },
                '0+600x20',
              ),
            ],
            alert_rule_test: [
              ...['VeilDown', 'VeilCarrierDown', 'VeilPoolExhausted'].map((alertname) => ({
                eval_time: '30s',
                alertname,
                exp_alerts: [],
              })),
              {
                eval_time: '3m',
                alertname: 'VeilDown',
                exp_alerts: [{ exp_labels: { severity: 'critical', job: 'veil', instance: 'veil-1:3000' } }],
              },
              {
                eval_time: '3m',
                alertname: 'VeilCarrierDown',
                exp_alerts: [{ exp_labels: { severity: 'critical', provider: 'plivo' } }],
              },
              {
                eval_time: '6m',
                alertname: 'VeilCarrierDisabled',
                exp_alerts: [{ exp_labels: { severity: 'info', provider: 'twilio' } }],
              },
              {
                eval_time: '6m',
                alertname: 'VeilPoolLow',
                exp_alerts: [{ exp_labels: { severity: 'warning', scope: 'US/415' } }],
              },
              {
                eval_time: '3m',
                alertname: 'VeilPoolExhausted',
                exp_alerts: [{ exp_labels: { severity: 'critical', country: 'US' } }],
              },
              { eval_time: '4m', alertname: 'VeilBindingsFailing', exp_alerts: [] },
              {
                eval_time: '7m',
                alertname: 'VeilBindingsFailing',
                exp_alerts: [{ exp_labels: { severity: 'warning' } }],
              },
              { eval_time: '9m', alertname: 'VeilOutboxLag', exp_alerts: [] },
              {
                eval_time: '11m',
                alertname: 'VeilOutboxLag',
                exp_alerts: [{ exp_labels: { severity: 'warning' } }],
              },
              { eval_time: '2m', alertname: 'VeilSessionsStranded', exp_alerts: [] },
              {
                eval_time: '3m',
                alertname: 'VeilSessionsStranded',
                exp_alerts: [{ exp_labels: { severity: 'critical' } }],
              },
              { eval_time: '5m', alertname: 'VeilRouteSlow', exp_alerts: [] },
              {
                eval_time: '13m',
                alertname: 'VeilRouteSlow',
                exp_alerts: [{ exp_labels: { severity: 'warning' } }],
              },
              { eval_time: '3m', alertname: 'VeilWebhooksRefused', exp_alerts: [] },
              {
                eval_time: '8m',
                alertname: 'VeilWebhooksRefused',
                exp_alerts: [{ exp_labels: { severity: 'warning', provider: 'twilio' } }],
              },
              { eval_time: '1m', alertname: 'VeilOutboxDeadLetters', exp_alerts: [] },
              {
                eval_time: '3m',
                alertname: 'VeilOutboxDeadLetters',
                exp_alerts: [{ exp_labels: { severity: 'warning' } }],
              },
            ],
          },
          {
            // All well: nothing fires.
            interval: '1m',
            input_series: [
              series('up', {}, '1x20'),
              series('veil_provider_up', { provider: 'plivo' }, '1x20'),
              series('veil_provider_enabled', { provider: 'plivo' }, '1x20'),
              series('veil_pool_free_numbers', { provider: 'plivo', country: 'US', region: '415' }, '9x20'),
              series('veil_pool_scope_free_numbers', { scope: 'US/415' }, '9x20'),
              series('veil_pool_scope_min_free_numbers', { scope: 'US/415' }, '3x20'),
              series('veil_bindings_failed', { operation: 'bind' }, '0x20'),
              series('veil_bindings_failed', { operation: 'unbind' }, '0x20'),
              series('veil_bindings_retrying', { operation: 'bind' }, '0x20'),
              series('veil_outbox_dead_deliveries', {}, '4x20'),
              // Nothing owed: the scrape's own time.
              series('veil_outbox_oldest_undelivered_timestamp_seconds', {}, '0+60x20'),
              // Every route within a millisecond; a forged webhook now and then.
              series('veil_route_duration_seconds_bucket', { provider: 'api', le: '0.001' }, '0+6000x20'),
              series('veil_route_duration_seconds_bucket', { provider: 'api', le: '+Inf' }, '0+6000x20'),
              series(
                'veil_webhooks_total',
                { provider: 'plivo', path: 'voice', result: 'refused_signature' },
                '0+1x20',
              ),
            ],
            alert_rule_test: ALERTS.map((alertname) => ({ eval_time: '15m', alertname, exp_alerts: [] })),
          },
        ],
      };
      writeFileSync(join(dir, 'tests.yml'), stringify(tests));
      try {
        promtool('test', 'rules', join(dir, 'tests.yml'));
      } catch (error) {
        const { stdout, stderr } = error as { stdout?: string; stderr?: string };
        assert.fail(`promtool test rules failed:\n${stdout}${stderr}`);
      }
    });
  });
});

describe('deploy/grafana/veil.json', () => {
  interface Panel {
    title: string;
    datasource?: { type: string; uid: string };
    targets?: { expr: string; datasource?: { uid: string } }[];
  }
  const dashboard = () =>
    JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      panels: Panel[];
      templating: { list: { name: string; type: string; query: unknown }[] };
    };
  const exprs = () =>
    dashboard().panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

  it('takes its Prometheus datasource as a variable, which every panel and query uses', () => {
    const d = dashboard();
    const variable = d.templating.list.find((v) => v.name === 'datasource');
    assert.deepEqual([variable?.type, variable?.query], ['datasource', 'prometheus']);
    assert.ok(d.panels.length >= 10);
    for (const panel of d.panels) {
      assert.equal(panel.datasource?.uid, DATASOURCE_VARIABLE, panel.title);
      assert.ok((panel.targets ?? []).length > 0, `${panel.title} queries nothing`);
      for (const target of panel.targets ?? [])
        assert.equal(target.datasource?.uid, DATASOURCE_VARIABLE, panel.title);
    }
  });

  describe('queries only what GET /metrics exports', () => {
    let store: TestStore;
    let t: TestApp;
    let exported: Scrape;
    before(async () => {
      const [kind] = storeKinds();
      assert.ok(kind);
      store = await kind.create();
      t = await testApp(store);
      exported = await busyScrape(t);
    });
    after(async () => {
      await t?.close();
      await store?.drop();
    });

    it('every metric each panel queries, with the labels it uses', () => {
      const queried = new Set<string>();
      for (const { panel, expr } of exprs()) {
        const names = metricNames(expr);
        assert.ok(names.length > 0, `${panel} reads no Veil metric`);
        const labels = new Set(TARGET_LABELS);
        for (const name of names) {
          const family = familyOf(exported, name);
          assert.ok(exported.types.has(family), `${panel}: /metrics has no ${name}`);
          const samples = exported.samples.filter((s) => s.name === name);
          assert.ok(samples.length > 0, `${panel}: ${name} has no sample`);
          for (const s of samples) for (const label of Object.keys(s.labels)) labels.add(label);
          queried.add(family);
        }
        for (const label of labelNames(expr)) {
          assert.ok(labels.has(label), `${panel}: no metric it reads has the label ${label}`);
        }
      }
      // The board shows what issue 20 asks for.
      for (const name of [
        'veil_route_decisions_total',
        'veil_route_duration_seconds',
        'veil_webhooks_total',
        'veil_sessions_open',
        'veil_sessions_created_total',
        'veil_pool_free_numbers',
        'veil_pool_exhausted_total',
        'veil_provider_up',
        'veil_outbox_oldest_undelivered_timestamp_seconds',
        'veil_outbox_dead_deliveries',
        'veil_sqlite_writer_queue',
      ]) {
        assert.ok(queried.has(name), `the board shows no ${name}`);
      }
    });
  });
});
