import assert from 'node:assert/strict';
import { ADMIN_KEY, type TestApp } from './app.ts';

/** One sample of a scrape: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A scrape of /metrics, read: its samples and the metric families it declares (`# TYPE`). */
export interface Scrape {
  samples: Sample[];
  /** Each declared metric's type, by name. */
  types: Map<string, string>;
  /**
   * The value of the one sample of `name` whose labels include `labels`; fails the test when
   * there is none or more than one.
   */
  value(name: string, labels?: Record<string, string>): number;
}

/** Reads Prometheus text (format 0.0.4), as far as prom-client writes it. */
export function parseScrape(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type?.[1] && type[2]) types.set(type[1], type[2]);
    if (line === '' || line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample?.[1] && sample[3], `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (sample[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      if (name !== undefined && value !== undefined) labels[name] = value;
    }
    samples.push({ name: sample[1], labels, value: Number(sample[3]) });
  }
  return {
    samples,
    types,
    value(name, labels = {}) {
      const found = samples.filter(
        (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      );
      assert.equal(found.length, 1, `${name}${JSON.stringify(labels)}: ${found.length} samples`);
      return (found[0] as Sample).value;
    },
  };
}

/** GET /metrics with this bearer credential (the admin key by default), answered 200 and read. */
export async function scrape(t: TestApp, credential?: string): Promise<Scrape> {
  const r = await t.app.inject({
    method: 'GET',
    url: '/metrics',
    headers: { authorization: `Bearer ${credential ?? ADMIN_KEY}` },
  });
  assert.equal(r.statusCode, 200, r.body);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parseScrape(r.body);
}
