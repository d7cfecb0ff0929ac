/**
 * The numbering plan of the benchmark: a pool of proxy numbers in the 555-01XX range (reserved for
 * fiction) of twenty US area codes, and the real numbers of people and strangers in other exchanges,
 * so that no person is ever a pool number. Every number is valid for libphonenumber, so the API
 * accepts them as a client would send them.
 */

export const AREA_CODES =
  '212 213 312 415 510 617 646 702 713 718 202 206 305 404 503 512 602 614 720 801'.split(' ');
export const POOL_NUMBERS_PER_AREA = 100;
export const POOL_SIZE = AREA_CODES.length * POOL_NUMBERS_PER_AREA;

/** People live in exchanges 200-554: room for 20 × 3.55M people. */
const PEOPLE_FIRST_SUBSCRIBER = 2_000_000;
const PEOPLE_PER_AREA = 3_550_000;
/** Strangers (callers with no session) live in exchanges 900-999. */
const STRANGERS_FIRST_SUBSCRIBER = 9_000_000;
const STRANGERS_PER_AREA = 1_000_000;

const AREAS = AREA_CODES.length;

/** The area code of a person: people are spread evenly over the areas. */
export function areaOfPerson(person: number): number {
  return person % AREAS;
}

/** Pool number i (0 ≤ i < POOL_SIZE): area i / 100, line 0100-0199. */
export function poolNumber(i: number): { number: string; region: string } {
  const region = AREA_CODES[Math.floor(i / POOL_NUMBERS_PER_AREA)];
  if (region === undefined) throw new RangeError(`pool number ${i} is outside the pool`);
  const line = String(100 + (i % POOL_NUMBERS_PER_AREA)).padStart(4, '0');
  return { number: `+1${region}555${line}`, region };
}

/** The index of the first pool number of an area. */
export function firstPoolNumberOfArea(area: number): number {
  return area * POOL_NUMBERS_PER_AREA;
}

/** The real number of person i. */
export function personNumber(person: number): string {
  const subscriber = Math.floor(person / AREAS);
  if (subscriber >= PEOPLE_PER_AREA) throw new RangeError(`person ${person} is outside the plan`);
  return `+1${AREA_CODES[areaOfPerson(person)]}${PEOPLE_FIRST_SUBSCRIBER + subscriber}`;
}

/** The real number of stranger i: nobody with a session. */
export function strangerNumber(stranger: number): string {
  const subscriber = Math.floor(stranger / AREAS) % STRANGERS_PER_AREA;
  return `+1${AREA_CODES[stranger % AREAS]}${STRANGERS_FIRST_SUBSCRIBER + subscriber}`;
}
