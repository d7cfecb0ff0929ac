import type { PhoneNumber } from './phone.ts';
import type { Channel, GeoMatch } from './session.ts';

/**
 * One attempt to find a proxy number: the store answers it with the least-loaded active number of
 * the country (and region, when given) that is not excluded and has room under its cap.
 */
export interface ProxySearch {
  tenantId: string;
  country: string;
  region?: string;
  channels: readonly Channel[];
  /** Number ids that must not be chosen. */
  exclude: readonly string[];
}

/** What the store knows of a person's proxies: held in open sessions, or released not long ago. */
export interface ProxyHistory {
  /** Proxy number ids the person holds in open sessions: the invariant forbids them. */
  held: ReadonlySet<string>;
  /** Proxy number ids released by the person within the reuse cooldown: avoided when possible. */
  cooling: ReadonlySet<string>;
}

/**
 * The searches to try, best first, for a proxy number that one or more people will all dial
 * (one person in `per-participant`, both in `shared`). The order states the preferences:
 * a number the people held recently is avoided before a region is given up (a redial from call
 * history must not reach a stranger), and the country always matches (caller ID must be local).
 */
export function proxySearchPlan(
  tenantId: string,
  people: readonly PhoneNumber[],
  histories: readonly ProxyHistory[],
  geoMatch: GeoMatch,
  channels: readonly Channel[],
): ProxySearch[] {
  const country = people[0]?.country ?? '';
  const held = union(histories.map((h) => h.held));
  const heldOrCooling = union([held, ...histories.map((h) => h.cooling)]);
  const regions = geoMatch === 'country' ? [] : [...new Set(people.map((p) => p.region).filter(Boolean))];
  const scopes: (string | undefined)[] = geoMatch === 'region-strict' ? regions : [...regions, undefined];
  const plan: ProxySearch[] = [];
  for (const exclude of heldOrCooling.size > held.size ? [heldOrCooling, held] : [held]) {
    for (const region of scopes) plan.push({ tenantId, country, region, channels, exclude: [...exclude] });
  }
  return plan;
}

function union(sets: readonly ReadonlySet<string>[]): Set<string> {
  const all = new Set<string>();
  for (const s of sets) for (const v of s) all.add(v);
  return all;
}
