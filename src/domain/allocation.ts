import type { PhoneNumber } from './phone.ts';
import type { Channel, GeoMatch, SessionMode } from './session.ts';

/**
 * Which of the numbers that fit to take. `least-loaded` spreads sessions over the pool;
 * `most-loaded` packs them onto the busiest numbers; `first-fit` takes the oldest number (the
 * textbook greedy colouring, kept as a baseline for the pool benchmark).
 */
export type ProxyPreference = 'least-loaded' | 'most-loaded' | 'first-fit';

/**
 * The preference each mode allocates with.
 *
 * In `per-participant` mode any number a person does not hold will do, so a pool of Δ numbers (the
 * most sessions one person has open) never runs out whatever is chosen: spreading the load is free.
 *
 * In `shared` mode a number must be free for both people, and the pool runs out when the numbers
 * the two hold between them cover it. Packing sessions onto numbers that are already busy keeps
 * everyone's numbers drawn from the same few, so two people's sets overlap and their union stays
 * small. On churning courier/customer workloads it never ran out with Δ+1 or Δ+2 numbers, where
 * spreading needed Δ+2 or Δ+3 and greedy's bound is 2Δ−1 (bench/sections/pool.ts measures it).
 * No online choice can promise Δ itself, since a number may not change under an open session.
 */
export function preferenceFor(mode: SessionMode): ProxyPreference {
  return mode === 'shared' ? 'most-loaded' : 'least-loaded';
}

/**
 * What a proxy is taken for:
 * - `direct`: an ordinary proxy, under the number's cap, that none of the people holds;
 * - `dedicated`: a number no open session holds, which the session then owns alone (AXN);
 * - `extension`: a number shared with other sessions and told apart by a code (AXE), whatever its
 *   load, that none of the people holds directly (a person dialling it must be asked for a code).
 * No direct or extension participation ever lands on a dedicated number.
 */
export type ProxyUse = 'direct' | 'dedicated' | 'extension';

/**
 * One attempt to find a proxy number: the store answers it with the active number of the country
 * (and region, when given) and of one of `carriers` that fits the use, that none of `people` holds in an open session (nor
 * released since `releasedSince`, when given, nor among `avoid`), and that comes first by the
 * preference; or, with `number`, that number alone if it fits.
 */
export interface ProxySearch {
  use: ProxyUse;
  tenantId: string;
  /**
   * The carriers the number may belong to: those that route, or the one carrier a session's other
   * proxies belong to (a call's outbound leg can only show a caller ID its carrier owns).
   */
  carriers: readonly string[];
  country: string;
  region?: string;
  channels: readonly Channel[];
  /** Real numbers of the people who will dial it. */
  people: readonly string[];
  /** Also pass over the numbers they gave back since this time (the reuse cooldown). */
  releasedSince?: number;
  /** Also pass over these numbers (ids): the proxies a `sticky: avoid` pair had before. */
  avoid?: readonly string[];
  /** Only this number: one a participant asked for, or the proxy a `sticky: prefer` pair had. */
  number?: string;
  preference: ProxyPreference;
}

export interface ProxyRequest {
  use: ProxyUse;
  tenantId: string;
  carriers: readonly string[];
  /** The people who will all dial the number: one in `per-participant`, both in `shared`. */
  people: readonly PhoneNumber[];
  geoMatch: GeoMatch;
  channels: readonly Channel[];
  preference: ProxyPreference;
  /** Start of the reuse cooldown, when one of the people gave a number back since: avoided when possible. */
  coolingSince?: number;
  /** Numbers (ids) to pass over while another fits (`sticky: avoid`). */
  avoid?: readonly string[];
}

/**
 * The searches to try, best first, for a proxy number that one or more people will all dial. The
 * order states the preferences: a number the people held recently is avoided before a region is
 * given up (a redial from call history must not reach a stranger), and the country always matches
 * (caller ID must be local).
 */
export function proxySearchPlan(request: ProxyRequest): ProxySearch[] {
  const { use, tenantId, carriers, people, geoMatch, channels, preference, coolingSince } = request;
  const country = people[0]?.country ?? '';
  const numbers = people.map((p) => p.e164);
  const regions = geoMatch === 'country' ? [] : [...new Set(people.map((p) => p.region).filter(Boolean))];
  const scopes: (string | undefined)[] = geoMatch === 'region-strict' ? regions : [...regions, undefined];
  const avoids = request.avoid?.length ? [request.avoid, undefined] : [undefined];
  const plan: ProxySearch[] = [];
  for (const avoid of avoids) {
    for (const releasedSince of coolingSince === undefined ? [undefined] : [coolingSince, undefined]) {
      for (const region of scopes) {
        plan.push({
          use,
          tenantId,
          carriers,
          country,
          region,
          channels,
          people: numbers,
          releasedSince,
          avoid,
          preference,
        });
      }
    }
  }
  return plan;
}

/**
 * Gray release: which carrier new sessions use, by weight, for everyone (`default`) or for the
 * people of one region (area code) or country. A carrier with no weight in the rule that applies
 * is tried only after the weighted ones.
 */
export interface CarrierWeights {
  default: Readonly<Record<string, number>>;
  /** By region (an area code such as `415`) or country (`GB`): the region's rule wins. */
  scoped: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/**
 * The carriers a new session is tried on, in order: without weights, all at once (the least
 * loaded number of any); with them, one at a time in a weighted random order (a carrier of weight
 * 3 comes first three times as often as one of weight 1), then the unweighted ones together.
 */
export function carrierRounds(
  carriers: readonly string[],
  weights: CarrierWeights | undefined,
  person: PhoneNumber,
  random: () => number = Math.random,
): string[][] {
  const rule =
    weights && (weights.scoped[person.region] ?? weights.scoped[person.country] ?? weights.default);
  const weighted = carriers.filter((c) => (rule?.[c] ?? 0) > 0);
  if (!rule || weighted.length === 0) return [[...carriers]];
  const rounds: string[][] = [];
  const left = [...weighted];
  while (left.length > 0) {
    const total = left.reduce((sum, c) => sum + (rule[c] ?? 0), 0);
    const draw = random() * total;
    let reach = 0;
    const i = left.findIndex((c) => {
      reach += rule[c] ?? 0;
      return draw < reach;
    });
    const [chosen] = left.splice(i === -1 ? left.length - 1 : i, 1);
    rounds.push([chosen as string]);
  }
  const unweighted = carriers.filter((c) => !weighted.includes(c));
  return unweighted.length > 0 ? [...rounds, unweighted] : rounds;
}
